"""TensorBoard and MLflow round trips through the real libraries, and a tracking location
that cannot be written refused before anything trains."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from mtlkit.cli import get_app
from mtlkit.config import load_config
from mtlkit.run import prepare_from_config, run
from mtlkit.tracking import TrackingError, check_tracking

runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_report(monkeypatch):
    monkeypatch.setattr("mtlkit.run.execute.write_report_safely", lambda run_dir, say: None)


@pytest.fixture
def config(tmp_path):
    r = np.random.default_rng(0)
    df = pd.DataFrame(r.normal(size=(100, 3)), columns=["a", "b", "c"])
    df["y"] = (df["a"] > 0).astype(int)
    df["z"] = df["b"] - df["c"]
    df.to_csv(tmp_path / "d.csv", index=False)
    cfg = {"name": "tr", "data": {"path": str(tmp_path / "d.csv")},
           "tasks": [{"name": "y", "kind": "binary"}, {"name": "z", "kind": "regression"}],
           "model": {"trunk": {"name": "mlp", "hidden": [8]}},
           "training": {"epochs": 2, "batch_size": 32, "monitor_conflicts": True}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    return tmp_path / "c.yaml"


def test_tensorboard_round_trip(config, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = load_config(config, [f"tracking.tensorboard={tmp_path / 'tb'}"])
    res = run(cfg, prepare_from_config(cfg), out_dir=tmp_path / "run", progress=False)
    (logdir,) = list((tmp_path / "tb").iterdir())
    acc = EventAccumulator(str(logdir))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert {"train_loss/y", "train_loss/z", "weights/y", "val/z/mae", "conflicts/mean_cosine"} <= set(tags)
    assert [e.step for e in acc.Scalars("train_loss/y")] == [1, 2]  # epochs count from 1
    assert acc.Scalars("summary/delta_m")[0].value == pytest.approx(res.summary["delta_m"], rel=1e-5)
    assert "config" in "".join(acc.Tags()["tensors"])  # the config as text


def test_mlflow_round_trip(config, tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'ml' / 'mlflow.db'}"
    cfg = load_config(config, [f"tracking.mlflow={uri}", "tracking.experiment=study"])
    res = run(cfg, prepare_from_config(cfg), out_dir=tmp_path / "run", progress=False)
    client = MlflowClient(tracking_uri=uri)
    (r,) = client.search_runs([client.get_experiment_by_name("study").experiment_id])
    assert r.info.status == "FINISHED" and r.info.run_name == "tr-seed-0"
    assert r.data.params["training.epochs"] == "2"
    history = client.get_metric_history(r.info.run_id, "train_loss/y")
    assert [m.step for m in history] == [1, 2]
    assert "conflicts/mean_cosine" in r.data.metrics and "weights/z" in r.data.metrics
    assert r.data.metrics["summary/delta_m"] == pytest.approx(res.summary["delta_m"])
    path = client.download_artifacts(r.info.run_id, "summary.json", str(tmp_path / "dl"))
    assert json.loads(Path(path).read_text())["delta_m"] == pytest.approx(res.summary["delta_m"])


def test_unwritable_tracking_location_fails_before_training(config, tmp_path):
    pytest.importorskip("tensorboard")
    blocker = tmp_path / "a-file"  # a folder cannot be made under a file, not even by root
    blocker.write_text("x")
    res = runner.invoke(get_app(), ["train", str(config), "--out", str(tmp_path / "run"), "--no-progress",
                                    "--set", f"tracking.tensorboard={blocker / 'tb'}"])
    assert res.exit_code == 2, res.output
    assert "cannot be written" in res.output and "Nothing was trained" in res.output
    assert not (tmp_path / "run").exists()
    cfg = load_config(config, [f"tracking.mlflow=sqlite:///{blocker / 'db' / 'm.db'}"])
    import importlib.util

    # without mlflow (it is in the `tracking` extra, not `dev`) the check says to install it
    want = "MLflow store" if importlib.util.find_spec("mlflow") else "needs the package 'mlflow'"
    with pytest.raises(TrackingError, match=want):
        check_tracking(cfg.tracking)
