"""A full disk (ENOSPC) or an unwritable folder while writing a checkpoint or the model:
a clear error, the previous checkpoint / model intact, no temporary file left behind.

The failure is injected at each write of a save in turn — in the payload writer (the
safetensors writer stops half-way), at ``fsync`` (where a full disk usually surfaces with
delayed allocation) or at the final ``os.replace``."""

from __future__ import annotations

import errno
import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from _robust import TASKS, tiny_frame

from mtlkit import Task, Trainer, from_arrays, load_run
from mtlkit.architectures import build_model
from mtlkit.run import save_model
from mtlkit.training.checkpoint import CheckpointManager


class FailOnCall:
    """Wrap ``real``; the ``at``-th call raises ENOSPC (after ``before`` ran, if given)."""

    def __init__(self, real, at: int, before=None) -> None:
        self.real, self.at, self.before, self.calls = real, at, before, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.at:
            if self.before is not None:
                self.before(*args, **kwargs)
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.real(*args, **kwargs)


def _half_written(tensors, filename, metadata=None):
    Path(filename).write_bytes(b"\x00" * 100)  # some bytes made it before the disk filled


def inject(monkeypatch, where: str, at: int) -> FailOnCall:
    if where == "fsync":
        f = FailOnCall(os.fsync, at)
        monkeypatch.setattr(os, "fsync", f)
    elif where == "replace":
        f = FailOnCall(os.replace, at)
        monkeypatch.setattr(os, "replace", f)
    elif where == "writer":
        import safetensors.torch

        f = FailOnCall(safetensors.torch.save_file, at, before=_half_written)
        monkeypatch.setattr(safetensors.torch, "save_file", f)
    else:  # pragma: no cover
        raise ValueError(where)
    return f


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


# the writes of CheckpointManager.save, in order: tensors, JSON, manifest
CKPT_FAILURES = [("writer", 1), ("fsync", 1), ("fsync", 2), ("fsync", 3), ("replace", 1), ("replace", 2),
                 ("replace", 3)]
CKPT_IDS = [f"{w}{n}" for w, n in CKPT_FAILURES]


def two_checkpoints(directory: Path) -> CheckpointManager:
    mgr = CheckpointManager(directory, keep=2)
    for step in (1, 2):
        mgr.save({"w": torch.full((32,), float(step)), "step": step}, step=step, epoch=0)
    return mgr


# ---------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("where,at", CKPT_FAILURES, ids=CKPT_IDS)
def test_enospc_during_checkpoint_keeps_previous(tmp_path, monkeypatch, where, at):
    mgr = two_checkpoints(tmp_path)
    before = snapshot(tmp_path)
    f = inject(monkeypatch, where, at)
    with pytest.raises(OSError) as e:
        mgr.save({"w": torch.full((32,), 3.0), "step": 3}, step=3, epoch=0)
    monkeypatch.undo()
    assert f.calls >= at and e.value.errno == errno.ENOSPC
    assert not temp_files(tmp_path)
    for name, data in before.items():  # every earlier file is byte-for-byte intact
        assert (tmp_path / name).read_bytes() == data, name
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the previous checkpoint loads without any fallback
        state, entry = mgr.latest()
    assert entry["name"] == "ckpt-000000002" and state["step"] == 2
    # and the next save works once there is space again
    mgr.save({"w": torch.full((32,), 3.0), "step": 3}, step=3, epoch=0)
    assert mgr.latest()[1]["name"] == "ckpt-000000003"


_ORPHANS = ()  # was a "needs fix" xfail; fixed
ORPHAN_CASES = [pytest.param(w, n, marks=_ORPHANS) if (w, n) in
                {("fsync", 2), ("fsync", 3), ("replace", 2), ("replace", 3)} else (w, n)
                for w, n in CKPT_FAILURES]


@pytest.mark.parametrize("where,at", ORPHAN_CASES, ids=CKPT_IDS)
def test_enospc_during_checkpoint_leaves_folder_as_it_was(tmp_path, monkeypatch, where, at):
    mgr = two_checkpoints(tmp_path)
    before = snapshot(tmp_path)
    inject(monkeypatch, where, at)
    with pytest.raises(OSError):
        mgr.save({"w": torch.full((32,), 3.0), "step": 3}, step=3, epoch=0)
    monkeypatch.undo()
    assert sorted(snapshot(tmp_path)) == sorted(before)


@pytest.mark.parametrize("where,at", [("fsync", 1), ("fsync", 3), ("writer", 1)], ids=["tensors", "manifest", "writer"])
def test_enospc_error_names_the_file_and_the_cause(tmp_path, monkeypatch, where, at):
    mgr = two_checkpoints(tmp_path)
    inject(monkeypatch, where, at)
    with pytest.raises(OSError) as e:
        mgr.save({"w": torch.zeros(3), "step": 3}, step=3, epoch=0)
    msg = str(e.value)
    assert str(tmp_path) in msg
    assert "disk is full" in msg or "No space left" in msg


def test_checkpoint_folder_that_is_a_file_is_named(tmp_path):
    """An unwritable destination (here: the folder path is an existing file)."""
    (tmp_path / "ck").write_text("not a folder")
    mgr = CheckpointManager(tmp_path / "ck")
    with pytest.raises(OSError, match=r"ck"):
        mgr.save({"w": torch.zeros(2)}, step=1, epoch=0)
    assert (tmp_path / "ck").read_text() == "not a folder"


# ---------------------------------------------------------------------------- save_model
def _model(seed: int):
    torch.manual_seed(seed)
    return build_model({"name": "hard_sharing", "trunk": {"name": "mlp", "hidden": [4]}}, TASKS, (2,))


def _meta():
    return {"architecture": _model(0).config, "tasks": [t.to_dict() for t in TASKS], "input_shape": [2],
            "preprocessing": None, "features": ["f1", "f2"], "image_column": None, "source": "test"}


_PAIR = ()  # was a "needs fix" xfail; fixed
MODEL_FAILURES = [("writer", 1), ("fsync", 1), pytest.param("fsync", 2, marks=_PAIR), ("replace", 1)]


@pytest.mark.parametrize("where,at", MODEL_FAILURES, ids=["writer", "weights-fsync", "json-fsync", "replace"])
def test_enospc_during_save_model_keeps_previous_model(tmp_path, monkeypatch, where, at):
    save_model(tmp_path, _model(0), _meta())
    before = snapshot(tmp_path)
    inject(monkeypatch, where, at)
    with pytest.raises(OSError) as e:
        save_model(tmp_path, _model(1), {**_meta(), "source": "second"})
    monkeypatch.undo()
    assert e.value.errno == errno.ENOSPC
    assert not temp_files(tmp_path)
    assert snapshot(tmp_path) == before
    run = load_run(tmp_path)
    for k, v in _model(0).state_dict().items():
        assert torch.equal(run.model.state_dict()[k], v), k


def test_save_model_refuses_non_finite_weights_and_writes_nothing(tmp_path):
    save_model(tmp_path, _model(0), _meta())
    before = snapshot(tmp_path)
    bad = _model(1)
    with torch.no_grad():
        next(bad.parameters())[0, 0] = float("nan")
    with pytest.raises(RuntimeError, match=r"non-finite weights.*shared"):
        save_model(tmp_path, bad, _meta())
    assert snapshot(tmp_path) == before and not temp_files(tmp_path)
    empty = tmp_path / "fresh"
    with torch.no_grad():
        next(bad.parameters())[0, 0] = float("inf")
    with pytest.raises(RuntimeError, match="non-finite"):
        save_model(empty, bad, _meta())
    assert not empty.exists() or not any(empty.iterdir())


# ---------------------------------------------------------------------------- whole runs
def _trainer(ck: Path):
    r = np.random.default_rng(2)
    x = r.normal(size=(64, 3)).astype("float32")
    tasks = [Task("a", "binary"), Task("b", "regression")]
    data = from_arrays(x, {"a": (x[:, 0] > 0).astype(float), "b": x[:, 1]}, tasks)
    torch.manual_seed(0)
    model = build_model({"name": "hard_sharing", "trunk": {"name": "mlp", "hidden": [8]}}, tasks, (3,))
    return Trainer(model, tasks, epochs=2, batch_size=16, progress=False, checkpoint_dir=ck,
                   checkpoint_every=2), data


def test_trainer_stops_on_full_disk_and_resumes_exactly(tmp_path, monkeypatch):
    """The disk fills at the third checkpoint: fit stops with the OSError; once there is
    space again, resume continues from the second one and ends as the uninterrupted run."""
    ref, data = _trainer(tmp_path / "ref")
    ref.fit(data)

    tr, data = _trainer(tmp_path / "ck")
    saves = {"n": 0}
    real_save = CheckpointManager.save

    def save(self, state, *, step, epoch):
        saves["n"] += 1
        if saves["n"] == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(self, state, step=step, epoch=epoch)

    monkeypatch.setattr(CheckpointManager, "save", save)
    with pytest.raises(OSError):
        tr.fit(data)
    monkeypatch.undo()
    assert [e["step"] for e in tr.checkpoints.manifest()["checkpoints"]] == [2, 4]
    again, data = _trainer(tmp_path / "ck")
    again.fit(data, resume=True)
    assert again.resumed_from == "ckpt-000000004"
    for k, v in ref.model.state_dict().items():
        assert torch.equal(again.model.state_dict()[k], v), k


def test_cli_unwritable_run_folder_is_reported(tmp_path, monkeypatch, no_report):
    import yaml
    from typer.testing import CliRunner

    import mtlkit.run.folder
    from mtlkit.cli import get_app

    tiny_frame(60).to_csv(tmp_path / "d.csv", index=False)
    cfg = {"data": {"path": str(tmp_path / "d.csv")}, "tasks": [t.to_dict() for t in TASKS],
           "training": {"epochs": 1}, "baselines": False}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    monkeypatch.setattr(mtlkit.run.folder, "_writable", lambda p: False)
    res = CliRunner().invoke(get_app(), ["train", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "ro"),
                                         "--no-progress"])
    assert res.exit_code == 2
    assert "not writable" in res.output and str(tmp_path / "ro") in res.output


def test_cli_out_is_a_file_is_reported(tmp_path, no_report):
    import yaml
    from typer.testing import CliRunner

    from mtlkit.cli import get_app

    tiny_frame(60).to_csv(tmp_path / "d.csv", index=False)
    cfg = {"data": {"path": str(tmp_path / "d.csv")}, "tasks": [t.to_dict() for t in TASKS],
           "training": {"epochs": 1}, "baselines": False}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    (tmp_path / "out").write_text("a file")
    res = CliRunner().invoke(get_app(), ["train", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "out"),
                                         "--no-progress"])
    assert res.exit_code == 2
    assert "Error:" in res.output and str(tmp_path / "out") in res.output
    assert (tmp_path / "out").read_text() == "a file"


def test_metrics_jsonl_stays_parseable_after_failed_resume_truncation(tmp_path, monkeypatch):
    """Resuming rewrites metrics.jsonl atomically: a full disk at that moment keeps the old file."""
    tr, data = _trainer(tmp_path / "ck")
    tr.run_dir = tmp_path
    tr.fit(data)
    before = (tmp_path / "metrics.jsonl").read_bytes()
    again, data = _trainer(tmp_path / "ck")
    again.run_dir = tmp_path
    inject(monkeypatch, "fsync", 1)
    with pytest.raises(OSError):
        again.fit(data, resume=True)
    monkeypatch.undo()
    assert (tmp_path / "metrics.jsonl").read_bytes() == before
    assert [json.loads(x)["epoch"] for x in before.decode().splitlines()] == [1, 2]
    assert not temp_files(tmp_path)
