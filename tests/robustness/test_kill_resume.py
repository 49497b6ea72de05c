"""A run killed with SIGKILL mid-training and resumed ends with the same summary metrics,
bit for bit, as a run never interrupted (Equal, a stateful weighting, a stateful aggregator)."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from mtlkit._registry import AGGREGATORS, WEIGHTINGS

CASES = [
    ("equal", None, None),
    ("dwa", {"name": "dwa"}, None),
    ("gradvac", None, {"name": "gradvac"}),
]


def _config(tmp_path, weighting, aggregator):
    r = np.random.default_rng(0)
    n = 1200
    df = pd.DataFrame(r.normal(size=(n, 6)), columns=[f"f{i}" for i in range(6)])
    df["a"] = (df["f0"] + df["f1"] > 0).astype(int)
    df["b"] = df["f0"] - 2 * df["f2"] + r.normal(0, 0.1, n)
    df.loc[::5, "b"] = np.nan
    df.to_csv(tmp_path / "d.csv", index=False)
    training = {"epochs": 4, "batch_size": 16, "checkpoint_every": 7, "optimizer": {"lr": 0.003},
                "monitor_conflicts": True}
    if weighting:
        training["weighting"] = weighting
    if aggregator:
        training["aggregator"] = aggregator
    cfg = {"name": "k", "seed": 3, "data": {"path": str(tmp_path / "d.csv")},
           "tasks": [{"name": "a", "kind": "binary"}, {"name": "b", "kind": "regression"}],
           "model": {"trunk": {"name": "mlp", "hidden": [32, 16], "dropout": 0.1}},
           "training": training, "baselines": True}
    path = tmp_path / "cfg.yaml"
    import yaml

    path.write_text(yaml.safe_dump(cfg))
    return path


def _cmd(*args):
    return [sys.executable, "-m", "mtlkit", "train", *args, "--no-progress", "--threads", "1"]


def _metrics(run_dir):
    s = json.loads((run_dir / "summary.json").read_text())
    return s["mtl"]["test"], {k: v["test"] for k, v in s["baselines"].items()}, s["delta_m"]


@pytest.mark.slow
@pytest.mark.parametrize("name,weighting,aggregator", CASES, ids=[c[0] for c in CASES])
def test_sigkill_then_resume_is_bitwise_identical(tmp_path, name, weighting, aggregator):
    if weighting and weighting["name"] not in WEIGHTINGS:
        pytest.skip(f"weighting {weighting['name']} not available")
    if aggregator and aggregator["name"] not in AGGREGATORS:
        pytest.skip(f"aggregator {aggregator['name']} not available")
    cfg = _config(tmp_path, weighting, aggregator)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ref = tmp_path / "ref"
    subprocess.run(_cmd(str(cfg), "--out", str(ref)), check=True, env=env, capture_output=True)

    run = tmp_path / "run"
    proc = subprocess.Popen(_cmd(str(cfg), "--out", str(run)), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manifest = run / "checkpoints" / "mtl" / "manifest.json"
    deadline = time.time() + 120
    killed_at = None
    while time.time() < deadline and proc.poll() is None:
        if manifest.exists():
            try:
                steps = [c["step"] for c in json.loads(manifest.read_text())["checkpoints"]]
            except (json.JSONDecodeError, KeyError):
                steps = []
            if steps and max(steps) >= 30:  # somewhere in the second epoch, mid-epoch
                proc.send_signal(signal.SIGKILL)
                killed_at = max(steps)
                break
        time.sleep(0.02)
    proc.wait()
    assert killed_at is not None, "the run finished before it could be killed"
    assert not (run / "summary.json").exists()
    res = subprocess.run(_cmd(str(cfg), "--resume", str(run)), env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "Resumed the multi-task model" in res.stdout
    assert _metrics(run) == _metrics(ref)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2, 3, 4]


def test_resume_with_different_config_is_refused(tmp_path):
    cfg = _config(tmp_path, None, None)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = tmp_path / "run"
    subprocess.run(_cmd(str(cfg), "--out", str(run), "--no-baselines", "--set", "training.epochs=1"),
                   check=True, env=env, capture_output=True)
    res = subprocess.run(_cmd(str(cfg), "--resume", str(run), "--set", "training.epochs=2",
                              "--set", "training.optimizer.lr=0.1"), env=env, capture_output=True, text=True)
    assert res.returncode == 2
    assert "training.epochs" in res.stderr and "training.optimizer.lr" in res.stderr
    assert "--force" in res.stderr
