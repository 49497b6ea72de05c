"""Runs over seeds: each seed a run folder, seeds.json with intervals and verdicts, the
single-task reference cache (hit when only the multi-task config changes: no retraining),
``mtlkit train --seeds N`` and its bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

import mtlkit.run.execute as execute
from mtlkit.cli import get_app
from mtlkit.config import load_config
from mtlkit.run import run_seeds

runner = CliRunner()


@pytest.fixture
def config(tmp_path):
    r = np.random.default_rng(0)
    df = pd.DataFrame(r.normal(size=(120, 4)), columns=["a", "b", "c", "d"])
    df["y"] = (df["a"] + df["b"] > 0).astype(int)
    df["z"] = df["c"] - 2 * df["d"] + 3.0
    df.to_csv(tmp_path / "d.csv", index=False)
    cfg = {"name": "sd", "seed": 0, "data": {"path": str(tmp_path / "d.csv")},
           "tasks": [{"name": "y", "kind": "binary"}, {"name": "z", "kind": "regression"}],
           "model": {"trunk": {"name": "mlp", "hidden": [8]}},
           "training": {"epochs": 2, "batch_size": 32}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    return tmp_path / "c.yaml"


@pytest.fixture
def count_baselines(monkeypatch):
    calls = []
    real = execute.train_baselines

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(execute, "train_baselines", counting)
    return calls


def test_seeds_and_reference_cache(config, tmp_path, count_baselines):
    cfg = load_config(config)
    cache = tmp_path / "cache"
    first = run_seeds(cfg, [0, 1], out_dir=tmp_path / "runs" / "a", cache_dir=cache, report=False)
    assert len(count_baselines) == 2  # one set of references per seed
    rec = json.loads((tmp_path / "runs" / "a" / "seeds.json").read_text())
    assert rec["seeds"] == [0, 1] and rec["delta_m"]["n"] == 2 and rec["delta_m"]["ci_low"] is not None
    assert set(rec["verdicts"]) == {"y", "z"} and rec["references"]["0"]["cache"] == "stored"
    assert rec["delta_m_metrics"] == {"y": ["accuracy", "roc_auc"], "z": ["mae", "rmse"]}
    assert rec["metrics"]["z"]["mae"]["paired"]["n"] == 2
    for s in (0, 1):
        sub = json.loads((tmp_path / "runs" / "a" / f"seed-{s}" / "summary.json").read_text())
        assert sub["seed"] == s and sub["delta_m_metrics"]["z"] == ["mae", "rmse"]
    assert first.runs[0].summary["mtl"]["test"] != first.runs[1].summary["mtl"]["test"]

    # only the multi-task method changes: the references come from the cache, nothing retrains
    other = cfg.model_copy(deep=True)
    other.training.weighting = {"name": "dwa"}
    second = run_seeds(other, [0, 1], out_dir=tmp_path / "runs" / "b", cache_dir=cache, report=False)
    assert len(count_baselines) == 2
    assert second.record["references"]["1"]["cache"] == "hit"
    sub = json.loads((tmp_path / "runs" / "b" / "seed-1" / "summary.json").read_text())
    assert sub["baselines"]["z"]["test"] == first.runs[1].summary["baselines"]["z"]["test"]
    assert sub["delta_m"] is not None and sub["references_from_cache"]

    # the budget changes: the references depend on it, so they train again
    longer = cfg.model_copy(deep=True)
    longer.training.epochs = 3
    run_seeds(longer, [0], out_dir=tmp_path / "runs" / "c", cache_dir=cache, report=False)
    assert len(count_baselines) == 3


def test_cli_seeds_writes_report_and_table(config, tmp_path):
    out = tmp_path / "runs" / "cli"
    res = runner.invoke(get_app(), ["train", str(config), "--out", str(out), "--seeds", "2", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "Over 2 seeds [0, 1]" in res.output and "Δm (primary tasks)" in res.output
    page = (out / "report.html").read_text()
    assert page.index("Evidence over seeds") < page.index("<footer")
    assert (out / "seed-1" / "report.html").exists()
    assert (tmp_path / "runs" / ".references").is_dir()  # the default cache, beside the run


@pytest.mark.parametrize("n", ["0", "-2"])
def test_bad_seed_count_is_a_clear_error(config, tmp_path, n):
    res = runner.invoke(get_app(), ["train", str(config), "--out", str(tmp_path / "x"), "--seeds", n])
    assert res.exit_code == 2
    assert "number of seeds (--seeds) must be a positive integer" in res.output
    assert not (tmp_path / "x").exists()


def test_bad_seed_lists(config, tmp_path):
    cfg = load_config(config)
    for bad, match in (([], "at least one"), ([1, 1], "duplicates"), ([-1], "non-negative"), ("01", "list")):
        with pytest.raises(ValueError, match=match):
            run_seeds(cfg, bad, out_dir=tmp_path / "x")
    text = config.read_text() + "seeds: [0, 0]\n"
    config.write_text(text)
    with pytest.raises(ValueError, match="duplicate seed"):
        load_config(config)
