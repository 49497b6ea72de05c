"""A run records a fingerprint of its data, and resume refuses changed data unless
``--allow-data-change`` (issue 20, item 9). Before: after the CSV's labels were inverted and
half its rows removed, ``--resume`` continued from the last checkpoint without a word."""

from __future__ import annotations

import json

import pytest
import yaml
from _robust import tiny_frame
from typer.testing import CliRunner

from mtlkit.cli import get_app


@pytest.fixture(autouse=True)
def _no_report(monkeypatch):
    monkeypatch.setattr("mtlkit.run.execute.write_report_safely", lambda run_dir, say: None)


@pytest.fixture
def trained(tmp_path):
    df = tiny_frame(80)
    df["b"] = (df["f1"] > 0).astype(int)
    df.to_csv(tmp_path / "d.csv", index=False)
    cfg = {"name": "fp", "data": {"path": str(tmp_path / "d.csv")},
           "tasks": [{"name": "b", "kind": "binary"}, {"name": "z", "kind": "regression"}],
           "model": {"trunk": {"name": "mlp", "hidden": [4]}}, "training": {"epochs": 1}, "baselines": False}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    res = _cli("train", tmp_path / "c.yaml", "--out", tmp_path / "run")
    assert res.exit_code == 0, res.output
    return tmp_path


def _cli(*args):
    return CliRunner().invoke(get_app(), [*map(str, args), "--no-progress"])


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _tamper(folder, how):
    import pandas as pd

    df = pd.read_csv(folder / "d.csv")
    if how == "labels-inverted-half-the-rows-removed":
        df["b"] = 1 - df["b"]
        df = df.iloc[: len(df) // 2]
    elif how == "labels-inverted":
        df["b"] = 1 - df["b"]
    elif how == "one-feature-value":
        df.loc[3, "f2"] += 1.0
    df.to_csv(folder / "d.csv", index=False)


def test_the_run_records_its_data(trained):
    record = json.loads((trained / "run" / "run.json").read_text())["data"]
    assert record["source"] == f"file:{trained / 'd.csv'}"
    assert record["sizes"] == {"train": 48, "val": 20, "test": 12}
    assert len(record["labels_sha256"]) == 64 and len(record["file_sha256"]) == 64
    assert record["file_bytes"] == (trained / "d.csv").stat().st_size


@pytest.mark.parametrize("how", ["labels-inverted-half-the-rows-removed", "labels-inverted", "one-feature-value"])
def test_resume_on_changed_data_is_refused(trained, how):
    run = trained / "run"
    _tamper(trained, how)
    before = _files(run)
    res = _cli("train", "--resume", run)
    assert res.exit_code == 2, res.output
    assert "The data differs from the data the run" in res.output and "--allow-data-change" in res.output
    assert _files(run) == before


def test_allow_data_change_warns_and_records(trained):
    run = trained / "run"
    _tamper(trained, "labels-inverted-half-the-rows-removed")
    res = _cli("train", "--resume", run, "--allow-data-change")
    assert res.exit_code == 0, res.output
    record = json.loads((run / "run.json").read_text())
    (change,) = record["data_changes"]
    assert any("split sizes" in d for d in change["differences"]) and "labels differ" in " ".join(change["differences"])
    assert record["data"]["sizes"]["train"] == 24 and change["previous"]["sizes"]["train"] == 48
    summary = json.loads((run / "summary.json").read_text())
    assert any("data that differs" in w["message"] for w in summary["warnings"])


def test_resume_on_the_same_data_is_silent(trained):
    res = _cli("train", "--resume", trained / "run")
    assert res.exit_code == 0, res.output
    assert "data_changes" not in json.loads((trained / "run" / "run.json").read_text())
