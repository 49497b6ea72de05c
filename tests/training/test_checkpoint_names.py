"""Issue 20, item 2: with keep_checkpoints=1 a mid-epoch and an epoch-end checkpoint at the same
step used to share a name, so a kill between rewriting the weights and updating the manifest
left "No usable checkpoint". A checkpoint is never overwritten in place."""

from __future__ import annotations

import pytest
import torch

from mtlkit.training import checkpoint as ck


class _Kill(BaseException):
    """Stands for SIGKILL: nothing after it runs (the manager's clean-up included)."""


def test_a_kill_while_rewriting_the_same_step_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    m = ck.CheckpointManager(tmp_path, keep=1)
    m.save({"w": torch.ones(3)}, step=10, epoch=1)
    real = ck.atomic_write

    def dying(path, writer):
        if str(path).endswith(ck.MANIFEST):  # the new weights are on disk, the manifest not yet
            raise _Kill
        return real(path, writer)

    monkeypatch.setattr(ck, "atomic_write", dying)
    monkeypatch.setattr(ck.Path, "unlink", lambda *a, **k: None)  # a killed process cleans nothing
    with pytest.raises(_Kill):
        m.save({"w": torch.zeros(3)}, step=10, epoch=1)
    monkeypatch.undo()
    state, entry = ck.CheckpointManager(tmp_path, keep=1).latest()
    assert torch.equal(state["w"], torch.ones(3)) and entry["name"] == "ckpt-000000010"


def test_same_step_saves_get_distinct_names_in_age_order(tmp_path):
    m = ck.CheckpointManager(tmp_path, keep=3)
    for v in (1.0, 2.0, 3.0):
        m.save({"w": torch.full((2,), v)}, step=5, epoch=0)
    names = [e["name"] for e in m.manifest()["checkpoints"]]
    assert names == ["ckpt-000000005", "ckpt-000000005-001", "ckpt-000000005-002"] == sorted(names)
    assert float(m.latest()[0]["w"][0]) == 3.0
