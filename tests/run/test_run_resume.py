"""Defect 4: ``mtlkit train --resume DIR`` reads the run's own config.yaml (``--set`` applies
on top of it), and more ``training.epochs`` extend a finished run (the multi-task model and
the baselines), recorded in the summary and in config.yaml."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from mtlkit.cli import get_app

runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_report(monkeypatch):
    monkeypatch.setattr("mtlkit.run.execute.write_report_safely", lambda run_dir, say: None)


@pytest.fixture
def config(tmp_path):
    r = np.random.default_rng(0)
    df = pd.DataFrame(r.normal(size=(160, 4)), columns=["a", "b", "c", "d"])
    df["y"] = (df["a"] + df["b"] > 0).astype(int)
    df["z"] = df["c"] - 2 * df["d"]
    df.to_csv(tmp_path / "d.csv", index=False)
    cfg = {"name": "ext", "seed": 2, "data": {"path": str(tmp_path / "d.csv")},
           "tasks": [{"name": "y", "kind": "binary"}, {"name": "z", "kind": "regression"}],
           "model": {"trunk": {"name": "mlp", "hidden": [8]}},
           "training": {"epochs": 8, "batch_size": 32}, "baselines": True}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    return tmp_path / "c.yaml"


def _train(*args):
    res = runner.invoke(get_app(), ["train", *[str(a) for a in args], "--no-progress"])
    return res


def _epochs(path):
    return [json.loads(line)["epoch"] for line in path.read_text().splitlines()]


def _results(run):
    s = json.loads((run / "summary.json").read_text())
    return s["mtl"]["test"], {k: v["test"] for k, v in s["baselines"].items()}


def test_resume_extends_a_finished_run_to_more_epochs(config, tmp_path):
    run = tmp_path / "run"
    first = _train(config, "--out", run, "--set", "training.epochs=2")
    assert first.exit_code == 0, first.output
    res = _train("--resume", run, "--set", "training.epochs=4")  # no CONFIG: the run's own
    assert res.exit_code == 0, res.output
    assert "Resumed the multi-task model" in res.output and "training.epochs 2 -> 4" in res.output
    s = json.loads((run / "summary.json").read_text())
    assert s["mtl"]["epochs_run"] == 4
    assert _epochs(run / "metrics.jsonl") == [1, 2, 3, 4]
    for task in ("y", "z"):
        assert _epochs(run / "baselines" / task / "metrics.jsonl") == [1, 2, 3, 4]
    assert yaml.safe_load((run / "config.yaml").read_text())["training"]["epochs"] == 4
    [entry] = s["resumed"]
    assert entry["from_epoch"] == 2 and entry["to_epochs"] == 4
    assert entry["changed"] == {"training.epochs": [2, 4]} and entry["forced"] is False
    # the same as training 4 epochs at once
    ref = tmp_path / "ref"
    assert _train(config, "--out", ref, "--set", "training.epochs=4").exit_code == 0
    assert _results(run) == _results(ref)


def test_a_run_started_with_set_resumes_without_repeating_it(config, tmp_path):
    run = tmp_path / "run"
    assert _train(config, "--out", run, "--no-baselines", "--set", "training.epochs=1",
                  "--set", "training.optimizer.lr=0.01").exit_code == 0
    before = json.loads((run / "summary.json").read_text())
    res = _train("--resume", run)
    assert res.exit_code == 0, res.output
    assert "Resumed the multi-task model" in res.output
    after = json.loads((run / "summary.json").read_text())
    assert after["mtl"]["test"] == before["mtl"]["test"] and "resumed" not in after


def test_resume_refuses_other_changes_and_fewer_epochs(config, tmp_path):
    run = tmp_path / "run"
    assert _train(config, "--out", run, "--no-baselines", "--set", "training.epochs=2").exit_code == 0
    res = _train("--resume", run, "--set", "training.optimizer.lr=0.1")
    assert res.exit_code == 2 and "training.optimizer.lr" in res.output and "--force" in res.output
    res = _train("--resume", run, "--set", "training.epochs=1")
    assert res.exit_code == 2 and "training.epochs may only grow" in res.output
    # a CONFIG that differs from the run's (here: 8 epochs, baselines on) follows the same rule
    res = _train(config, "--resume", run)
    assert res.exit_code == 2 and "baselines" in res.output
    assert yaml.safe_load((run / "config.yaml").read_text())["training"]["epochs"] == 2


def test_resume_without_config_needs_a_run(tmp_path):
    res = _train("--resume", tmp_path / "none")
    assert res.exit_code == 2 and "Nothing to resume" in res.output
    res = _train()
    assert res.exit_code == 2 and "CONFIG" in res.output
