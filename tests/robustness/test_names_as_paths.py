"""Task and run names are never used raw as path components (issue 20, item 4): a task named
``/abs/path/other_run`` wrote its baseline into another run; ``name: /abs/path`` without
``--out`` wrote outside ``runs/``. Such names are refused (config, CLI and Python API) before
anything is written, and nothing outside the run folder changes."""

from __future__ import annotations

import pytest
import yaml
from _robust import tiny_frame
from typer.testing import CliRunner

from mtlkit import Task, fit
from mtlkit.cli import get_app
from mtlkit.config import ConfigError, parse_config
from mtlkit.run import RunFolder, RunFolderError

BAD = ["/abs/path/other_run", "../other_run", "a/b", "..", ".", "a\\b", ""]


@pytest.fixture(autouse=True)
def _no_report(monkeypatch):
    monkeypatch.setattr("mtlkit.run.execute.write_report_safely", lambda run_dir, say: None)


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("name", BAD)
def test_config_refuses_a_task_name_that_is_a_path(name):
    with pytest.raises(ConfigError, match=r"tasks\.0\.name.*(path|empty)"):
        parse_config({"data": {"path": "d.csv"}, "tasks": [{"name": name, "kind": "regression"}]})


@pytest.mark.parametrize("name", BAD)
def test_config_refuses_a_run_name_that_is_a_path(name):
    with pytest.raises(ConfigError, match=r"name.*(path|empty)"):
        parse_config({"name": name, "data": {"path": "d.csv"}, "tasks": [{"name": "y", "kind": "regression"}]})


def test_a_task_named_like_another_run_does_not_touch_it(tmp_path):
    """The attack of the issue: the baseline of task ``<victim>`` would overwrite the victim's
    model.safetensors and metrics.jsonl."""
    df = tiny_frame(60)
    victim = tmp_path / "victim"
    fit(df, [Task("y", "multiclass", num_classes=3), Task("z", "regression")], epochs=1, baselines=False,
        out_dir=victim)
    before = _files(victim)
    evil = df.rename(columns={"z": str(victim)})
    with pytest.raises((ConfigError, RunFolderError), match=r"task name .* path separator"):
        fit(evil, [Task("y", "multiclass", num_classes=3), Task(str(victim), "regression")], epochs=1,
            out_dir=tmp_path / "attacker")
    assert _files(victim) == before
    assert not (tmp_path / "attacker").exists()


def test_cli_run_name_cannot_leave_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tiny_frame(60).to_csv("d.csv", index=False)
    outside = tmp_path / "outside"
    cfg = {"name": str(outside), "data": {"path": "d.csv"},
           "tasks": [{"name": "y", "kind": "multiclass", "num_classes": 3}], "training": {"epochs": 1},
           "baselines": False}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    res = CliRunner().invoke(get_app(), ["train", "c.yaml", "--no-progress"])
    assert res.exit_code == 2 and "name" in res.output and "path separator" in res.output, res.output
    assert not outside.exists()


def test_run_folder_refuses_path_names():
    f = RunFolder("somewhere")
    for name in BAD:
        with pytest.raises(RunFolderError, match="folder name"):
            f.baseline(name)
        with pytest.raises(RunFolderError, match="folder name"):
            f.checkpoint_dir(name)
    assert f.baseline("y").path.as_posix() == "somewhere/baselines/y"
