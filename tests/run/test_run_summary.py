"""The typed summary and epoch record write exactly the JSON the run format has and read it
back; reading is lenient (old or damaged runs still render)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mtlkit import Task, fit
from mtlkit.run import EpochRecord, ModelResult, Summary

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "report"))
from report_fake_run import mtl_records, summary


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    r = np.random.default_rng(0)
    df = pd.DataFrame(r.normal(size=(120, 3)), columns=["a", "b", "c"])
    df["y"] = (df["a"] > 0).astype(int)
    df["z"] = df["b"] - df["c"]
    out = tmp_path_factory.mktemp("s") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("mtlkit.run.execute.write_report_safely", lambda run_dir, say: None)
        res = fit(df, [Task("y", "binary"), Task("z", "regression")], epochs=2, out_dir=out)
    return out, res


def test_summary_json_round_trips_exactly(finished):
    out, res = finished
    text = (out / "summary.json").read_text()
    data = json.loads(text)
    s = Summary.from_dict(data)
    assert json.dumps(s.to_dict(), indent=2) + "\n" == text  # same keys, same order, same values
    assert isinstance(s.mtl, ModelResult) and s.mtl.epochs_run == 2
    assert set(s.baselines) == {"y", "z"} and s.baselines["y"].val is None
    assert s.task_names() == ["y", "z"] and s.task("z")["kind"] == "regression"
    assert res.record.delta_m == res.delta_m


def test_metrics_lines_round_trip_exactly(finished):
    out, _ = finished
    for line in (out / "metrics.jsonl").read_text().splitlines():
        rec = EpochRecord.from_dict(json.loads(line))
        assert json.dumps(rec.to_dict()) == line
        assert rec.epoch >= 1 and set(rec.train_loss) == {"y", "z"}
    for rec in mtl_records():
        assert EpochRecord.from_dict(rec).to_dict() == rec


def test_reading_is_lenient_and_keeps_unknown_keys():
    s = summary()
    assert Summary.from_dict(s).to_dict() == s  # "auxiliary" is unknown: kept in extra
    partial = {"name": "x", "mtl": "garbage", "baselines": {"a": 3}, "future_key": [1]}
    read = Summary.from_dict(partial)
    assert read.mtl is None and read.baselines == {} and read.extra == {"future_key": [1]}
    assert Summary.from_dict({"name": "n"}).to_dict() == {"name": "n"}  # absent keys stay absent


def test_a_summary_built_in_python_writes_optional_parts_only_when_present():
    s = Summary(name="r", mtl=ModelResult(test={"y": {"mae": 1.0}}, val={}, epochs_run=3))
    d = s.to_dict()
    assert "search_phase" not in d and "resumed" not in d and "stl_params_total" not in d
    assert d["baselines"] is None and d["delta_m"] is None  # always written, null when absent
    assert list(d["mtl"]) == ["test", "val", "params", "inference_ms", "fit_time_s", "best_epoch", "epochs_run"]
