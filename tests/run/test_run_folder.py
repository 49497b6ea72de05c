"""The run folder never deletes what it did not write: a folder that is not a run of ours is
refused; an earlier run of ours is refused, or with --overwrite moved aside (never deleted)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from mtlkit import Task, fit
from mtlkit.cli import get_app
from mtlkit.config import parse_config
from mtlkit.run import RunFolder

TASKS = [Task("y", "binary"), Task("z", "regression")]


@pytest.fixture(autouse=True)
def _no_report(monkeypatch):
    monkeypatch.setattr("mtlkit.run.execute.write_report_safely", lambda run_dir, say: None)


def _frame(n: int = 120) -> pd.DataFrame:
    r = np.random.default_rng(0)
    df = pd.DataFrame(r.normal(size=(n, 3)), columns=["a", "b", "c"])
    df["y"] = (df["a"] > 0).astype(int)
    df["z"] = df["b"] - df["c"]
    return df


def _cfg() -> object:
    return parse_config({"data": {"in_memory": True}, "tasks": [t.to_dict() for t in TASKS]})


def _fill_with_user_files(folder):
    folder.mkdir()
    (folder / "metrics.jsonl").write_text("my own records\n")
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints" / "weights.pt").write_bytes(b"my own checkpoint")
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _files(folder):
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_folder_that_is_not_ours_is_refused_and_untouched(tmp_path):
    out = tmp_path / "mine"
    before = _fill_with_user_files(out)
    for overwrite in (False, True):
        with pytest.raises(FileExistsError, match=r"not empty and holds no mtlkit run.*'checkpoints'"):
            fit(_frame(), TASKS, epochs=1, baselines=False, out_dir=out, overwrite=overwrite)
        assert _files(out) == before


@pytest.mark.parametrize("flags", [[], ["--overwrite"]], ids=["plain", "overwrite"])
def test_cli_refuses_a_folder_that_is_not_ours_before_loading_data(tmp_path, flags):
    """Issue 20, item 3: `mtlkit train cfg.yaml --out P` on a folder holding checkpoints/ and
    metrics.jsonl deleted them (shutil.rmtree(run_dir / "checkpoints"))."""
    out = tmp_path / "mine"
    before = _fill_with_user_files(out)
    _frame().to_csv(tmp_path / "d.csv", index=False)
    cfg = {"data": {"path": str(tmp_path / "d.csv")}, "tasks": [t.to_dict() for t in TASKS],
           "training": {"epochs": 1}, "baselines": False}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    res = CliRunner().invoke(get_app(), ["train", str(tmp_path / "c.yaml"), "--out", str(out), *flags,
                                         "--no-progress"])
    assert res.exit_code == 2 and "holds no mtlkit run" in res.output
    assert _files(out) == before


def test_overwrite_moves_the_earlier_run_aside(tmp_path):
    out = tmp_path / "run"
    fit(_frame(), TASKS, epochs=2, baselines=True, out_dir=out)
    (out / "notes.txt").write_text("the user's notes")  # not ours: stays where it is
    earlier = _files(out)
    fit(_frame(), TASKS, epochs=1, baselines=False, out_dir=out, overwrite=True, seed=1)
    aside = list((out / "replaced").iterdir())
    assert len(aside) == 1
    moved = _files(aside[0])
    for name, content in earlier.items():  # every file of the earlier run is kept, unchanged
        if str(name) != "notes.txt":
            assert moved[name] == content, name
    assert (out / "notes.txt").read_text() == "the user's notes"
    assert not (out / "baselines").exists()  # the new run has none: the earlier ones moved
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1  # the new run's records only
    assert json.loads((out / "summary.json").read_text())["seed"] == 1


def test_an_unfinished_run_needs_resume_or_overwrite(tmp_path):
    out = tmp_path / "run"
    RunFolder(out).start(_cfg(), overwrite=False)  # a run that crashed before its first epoch
    with pytest.raises(FileExistsError, match=r"holds an unfinished run; continue it with --resume"):
        RunFolder(out).check_new(overwrite=False)
    RunFolder(out).check_new(overwrite=True)


def test_a_file_as_run_folder_is_refused(tmp_path):
    (tmp_path / "f").write_text("a file")
    with pytest.raises(FileExistsError, match="is a file, not a folder"):
        RunFolder(tmp_path / "f").check_new(overwrite=True)
    assert (tmp_path / "f").read_text() == "a file"


def test_a_folder_holding_only_replaced_runs_takes_a_new_run(tmp_path):
    out = tmp_path / "run"
    (out / "replaced" / "20250101-000000").mkdir(parents=True)
    (out / "replaced" / "20250101-000000" / "metrics.jsonl").write_text("{}\n")
    RunFolder(out).start(_cfg(), overwrite=False)
    assert (out / "config.yaml").exists()
    assert (out / "replaced" / "20250101-000000" / "metrics.jsonl").read_text() == "{}\n"
