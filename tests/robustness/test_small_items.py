"""The smaller items of issue 20 (item 13): temporary files left by a kill are cleaned up;
every file of a run folder has the same, ordinary mode (safetensors files were 0600, the rest
0644); ``mtlkit evaluate RUN`` verifies the run first (it printed ``summary.json`` and exited 0
with truncated weights or no ``model.json``); ``predict IN --out IN`` no longer overwrites its
input."""

from __future__ import annotations

import os

import pytest
import yaml
from _robust import tiny_frame
from typer.testing import CliRunner

from mtlkit.cli import get_app


@pytest.fixture(autouse=True)
def _no_report(monkeypatch):
    monkeypatch.setattr("mtlkit.run.execute.write_report_safely", lambda run_dir, say: None)


def _cli(*args):
    return CliRunner().invoke(get_app(), [*map(str, args)])


@pytest.fixture
def finished(tmp_path):
    tiny_frame(60).to_csv(tmp_path / "d.csv", index=False)
    cfg = {"name": "s", "data": {"path": str(tmp_path / "d.csv")},
           "tasks": [{"name": "y", "kind": "multiclass", "num_classes": 3}, {"name": "z", "kind": "regression"}],
           "model": {"trunk": {"name": "mlp", "hidden": [4]}}, "training": {"epochs": 1}, "baselines": True}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    res = _cli("train", tmp_path / "c.yaml", "--out", tmp_path / "run", "--no-progress")
    assert res.exit_code == 0, res.output
    return tmp_path


def test_resume_removes_the_temporary_files_a_kill_left(finished):
    run = finished / "run"
    ours = [run / "checkpoints" / "mtl" / ".ckpt-000000001.safetensors.k3j4h5g6.tmp",
            run / ".report.html.a1b2c3d4.tmp", run / ".summary.json.zz9x8c7v.tmp",
            run / "baselines" / "y" / ".model.safetensors.abcdefgh.tmp"]
    users = [run / "notes.txt", run / ".my-draft.q1w2e3r4.tmp"]  # not ours: a user's files stay
    for f in ours + users:
        f.write_bytes(b"partial")
    res = _cli("train", "--resume", run, "--no-progress")
    assert res.exit_code == 0, res.output
    assert [f for f in ours if f.exists()] == []
    assert all(f.read_bytes() == b"partial" for f in users)


def test_every_file_of_a_run_has_the_ordinary_mode(finished):
    umask = os.umask(0)
    os.umask(umask)
    modes = {p.relative_to(finished / "run").as_posix(): oct(p.stat().st_mode & 0o777)
             for p in (finished / "run").rglob("*") if p.is_file()}
    assert any(name.endswith(".safetensors") for name in modes)
    assert set(modes.values()) == {oct(0o666 & ~umask)}, modes


@pytest.mark.parametrize("damage", ["truncated-weights", "model-json-missing", "weights-missing"])
def test_evaluate_without_data_verifies_the_run_first(finished, damage):
    run = finished / "run"
    if damage == "truncated-weights":
        data = (run / "model.safetensors").read_bytes()
        (run / "model.safetensors").write_bytes(data[: len(data) // 2])
    elif damage == "model-json-missing":
        (run / "model.json").unlink()
    else:
        (run / "model.safetensors").unlink()
    res = _cli("evaluate", run)
    assert res.exit_code == 2, res.output
    assert res.output.startswith("Error: ") and "model." in res.output


def test_evaluate_without_data_shows_a_good_run(finished):
    res = _cli("evaluate", finished / "run")
    assert res.exit_code == 0 and "accuracy" in res.output


@pytest.mark.parametrize("same", ["same-path", "other-spelling", "hard-link"])
def test_predict_refuses_to_write_over_its_input(finished, monkeypatch, same):
    monkeypatch.chdir(finished)
    tiny_frame(5).to_csv(finished / "in.csv", index=False)
    before = (finished / "in.csv").read_bytes()
    out = {"same-path": "in.csv", "other-spelling": "./run/../in.csv"}.get(same)
    if same == "hard-link":
        os.link(finished / "in.csv", finished / "link.csv")
        out = "link.csv"
    res = _cli("predict", "run", "in.csv", "--out", out)
    assert res.exit_code == 2 and "is the input file" in res.output, res.output
    assert (finished / "in.csv").read_bytes() == before
    assert _cli("predict", "run", "in.csv", "--out", "p.csv").exit_code == 0  # elsewhere: fine
