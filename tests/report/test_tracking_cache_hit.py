"""The summary a tracker logs after a reference-cache hit has Δm: the seed's run trains no
single-task model (the cached ones are reused), yet the tracking run gets the completed
summary (baselines, Δm, Δm_t), the same one written to the seed's summary.json."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from mtlkit.config import load_config
from mtlkit.run import run_seeds
from mtlkit.tracking import _final, amend_summary


@pytest.fixture
def config(tmp_path):
    r = np.random.default_rng(0)
    df = pd.DataFrame(r.normal(size=(90, 3)), columns=["a", "b", "c"])
    df["y"] = (df["a"] > 0).astype(int)
    df["z"] = df["b"] - df["c"] + 3.0
    df.to_csv(tmp_path / "d.csv", index=False)
    cfg = {"name": "hit", "data": {"path": str(tmp_path / "d.csv")},
           "tasks": [{"name": "y", "kind": "binary"}, {"name": "z", "kind": "regression"}],
           "model": {"trunk": {"name": "mlp", "hidden": [8]}},
           "training": {"epochs": 2, "batch_size": 32}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    return tmp_path / "c.yaml"


def test_amend_summary_applies_only_inside_its_block():
    with amend_summary(lambda s: {**s, "delta_m": 1.5}):
        assert _final({"delta_m": None})["delta_m"] == 1.5
    assert _final({"delta_m": None})["delta_m"] is None


def test_tensorboard_summary_after_a_cache_hit_has_delta_m(config, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = load_config(config)
    cache = tmp_path / "cache"
    run_seeds(cfg, [0], out_dir=tmp_path / "a", cache_dir=cache, report=False)  # stores the references
    tracked = load_config(config, [f"tracking.tensorboard={tmp_path / 'tb'}", "training.weighting.name=dwa"])
    res = run_seeds(tracked, [0], out_dir=tmp_path / "b", cache_dir=cache, report=False)
    assert res.record["references"]["0"]["cache"] == "hit"
    written = json.loads((tmp_path / "b" / "seed-0" / "summary.json").read_text())
    assert written["delta_m"] is not None and written["references_from_cache"]

    (logdir,) = list((tmp_path / "tb").iterdir())
    acc = EventAccumulator(str(logdir))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"summary/delta_m", "summary/delta_m_per_task/y", "summary/delta_m_per_task/z"} <= tags
    assert acc.Scalars("summary/delta_m")[0].value == pytest.approx(written["delta_m"], rel=1e-5)
    assert "summary/stl_test/z/mae" in tags  # the cached references' metrics too


def test_mlflow_summary_after_a_cache_hit_has_delta_m(config, tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    cfg = load_config(config)
    cache = tmp_path / "cache"
    run_seeds(cfg, [0], out_dir=tmp_path / "a", cache_dir=cache, report=False)
    uri = f"sqlite:///{tmp_path / 'ml' / 'mlflow.db'}"
    tracked = load_config(config, [f"tracking.mlflow={uri}", "tracking.experiment=hit", "training.weighting.name=dwa"])
    run_seeds(tracked, [0], out_dir=tmp_path / "b", cache_dir=cache, report=False)
    written = json.loads((tmp_path / "b" / "seed-0" / "summary.json").read_text())
    client = MlflowClient(tracking_uri=uri)
    (r,) = client.search_runs([client.get_experiment_by_name("hit").experiment_id])
    assert r.data.metrics["summary/delta_m"] == pytest.approx(written["delta_m"])
