"""``--overwrite`` writes the new run beside the old one and swaps only on success; a full
disk is a clear error naming the file, with the previous run intact (issue 20, item 5).

Before: on a full disk ``--overwrite`` crashed with a raw ``SafetensorError: No space left on
device`` and had already replaced the old ``config.yaml`` and ``metrics.jsonl``; an overwrite
whose run then failed left a folder whose config pointed at the new data while the model and
summary were the old ones."""

from __future__ import annotations

import errno

import pytest
import yaml
from _robust import tiny_frame
from typer.testing import CliRunner

from mtlkit import load_run
from mtlkit.cli import get_app


@pytest.fixture(autouse=True)
def _no_report(monkeypatch):
    monkeypatch.setattr("mtlkit.run.execute.write_report_safely", lambda run_dir, say: None)


@pytest.fixture
def setup(tmp_path):
    """A finished run in ``run/`` and the config of a new run (another seed) for it."""
    tiny_frame(60).to_csv(tmp_path / "d.csv", index=False)
    cfg = {"name": "ow", "seed": 0, "data": {"path": str(tmp_path / "d.csv")},
           "tasks": [{"name": "y", "kind": "multiclass", "num_classes": 3}, {"name": "z", "kind": "regression"}],
           "model": {"trunk": {"name": "mlp", "hidden": [4]}}, "training": {"epochs": 1}, "baselines": True}
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(cfg))
    (tmp_path / "b.yaml").write_text(yaml.safe_dump({**cfg, "seed": 1, "baselines": False}))
    res = _cli("train", tmp_path / "a.yaml", "--out", tmp_path / "run")
    assert res.exit_code == 0, res.output
    return tmp_path


def _cli(*args):
    return CliRunner().invoke(get_app(), [*map(str, args), "--no-progress"])


def _files(root, skip=(".next", ".lock")):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and not set(p.relative_to(root).parts) & set(skip)}


def _full_disk_at_the_model(monkeypatch):
    """safetensors fails as it does on a full disk, when the multi-task model is saved."""
    import safetensors.torch
    from safetensors import SafetensorError

    real = safetensors.torch.save_file

    def save_file(tensors, filename, metadata=None):
        if ".model.safetensors." in str(filename) and "baselines" not in str(filename):
            raise SafetensorError("Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "
                                  "\"No space left on device\" }) (os error 28)")
        return real(tensors, filename, metadata)

    monkeypatch.setattr(safetensors.torch, "save_file", save_file)


def test_full_disk_during_overwrite_is_a_clear_error_and_keeps_the_old_run(setup, monkeypatch):
    run = setup / "run"
    before = _files(run)
    model_before = load_run(run).model.state_dict()
    _full_disk_at_the_model(monkeypatch)
    res = _cli("train", setup / "b.yaml", "--out", run, "--overwrite")
    assert res.exit_code == 2, res.output
    assert f"Cannot write '{run}/.next/model.safetensors': the disk is full" in res.output
    assert "SafetensorError" not in res.output
    assert _files(run) == before  # config, metrics, summary, weights, baselines: all the old run's
    assert all((load_run(run).model.state_dict()[k] == v).all() for k, v in model_before.items())
    assert "the earlier run in" in res.output and "is untouched" in res.output


def test_overwrite_that_fails_leaves_the_old_run_then_resume_finishes_it(setup, monkeypatch):
    run = setup / "run"
    before = _files(run)

    import mtlkit.run.execute as ex

    real = ex._summarise
    monkeypatch.setattr(ex, "_summarise", lambda *a: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
    res = _cli("train", setup / "b.yaml", "--out", run, "--overwrite")
    assert res.exit_code == 2
    assert _files(run) == before
    monkeypatch.setattr(ex, "_summarise", real)
    res = _cli("train", "--resume", run)  # continues the new run (beside the old one), then swaps
    assert res.exit_code == 0, res.output
    assert yaml.safe_load((run / "config.yaml").read_text())["seed"] == 1
    assert not (run / ".next").exists() and not (run / "baselines").exists()
    (aside,) = (run / "replaced").iterdir()
    assert _files(aside) == before  # the old run, whole, byte for byte


def test_overwrite_swaps_only_when_the_new_run_succeeded(setup, monkeypatch):
    """While the new run trains, the folder still holds the old run, whole."""
    run = setup / "run"
    before = _files(run)
    seen = {}

    import mtlkit.run.execute as ex

    real = ex._summarise

    def spy(job, final, search):
        seen["during"] = _files(run)
        seen["writes_to"] = job.folder.path
        return real(job, final, search)

    monkeypatch.setattr(ex, "_summarise", spy)
    res = _cli("train", setup / "b.yaml", "--out", run, "--overwrite")
    assert res.exit_code == 0, res.output
    assert seen["during"] == before and seen["writes_to"] == run / ".next"
    assert yaml.safe_load((run / "config.yaml").read_text())["seed"] == 1
    (aside,) = (run / "replaced").iterdir()
    assert _files(aside) == before
