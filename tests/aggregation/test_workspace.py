"""An aggregator that declares ``keeps_jacobian = False`` gets every step's Jacobian in the
trainer's reused K×P workspace: the two that are not weightings of the Gramian and read the
matrix (MoCo on its matrix path, TrimmedMean, GradDrop) train exactly as with a fresh Jacobian
every step (GradDrop with jacobian_block_size, and MoCo by default, consume the rows one at a
time and form no Jacobian: tests/aggregation/test_row_stream.py). A method that declares
``fresh_direction`` returns a tensor that nothing else holds: the trainer makes it the gradient
without a copy."""

from __future__ import annotations

import pytest
import torch

from mtlkit import HardSharing, Trainer
from mtlkit._registry import AGGREGATORS
from mtlkit.architectures.backbones import mlp


def _trainer(tasks, name):
    torch.manual_seed(0)
    tr = Trainer(HardSharing(mlp(10, (16,)), tasks), tasks, aggregator=AGGREGATORS.build(name), optimizer="sgd",
                 lr=0.1, batch_size=64, progress=False)
    tr.setup()
    return tr


def test_which_aggregators_may_share_the_workspace():
    for name in AGGREGATORS.names():
        cls = AGGREGATORS.get(name)
        if cls.gramian_based or name in ("graddrop", "moco", "trimmed_mean"):
            assert not cls.keeps_jacobian, name


@pytest.mark.parametrize("name", ["moco", "trimmed_mean", "graddrop"])
def test_reused_workspace_steps_equal_fresh_ones(two_task_data, name, monkeypatch):
    from mtlkit.aggregation import MoCo

    monkeypatch.setattr(MoCo, "prefers_row_stream", False)  # MoCo's matrix path (e.g. under torchrun)
    data, tasks = two_task_data
    batches = [data.batch(torch.arange(i, i + 64)) for i in range(0, 256, 64)]
    reused, fresh = _trainer(tasks, name), _trainer(tasks, name)
    reused.train_step(batches[0])
    ws = reused.plan.workspace
    assert ws is not None and tuple(ws.shape) == (2, sum(p.numel() for p in reused.shared))
    fresh.train_step(batches[0])
    for b in batches[1:]:
        reused.train_step(b)
        fresh.plan.workspace = None  # a new Jacobian every step
        fresh.train_step(b)
    assert reused.plan.workspace is ws
    for key, value in reused.model.state_dict().items():
        torch.testing.assert_close(value, fresh.model.state_dict()[key], rtol=0, atol=0)


def _fresh_names():
    return [n for n in AGGREGATORS.names() if AGGREGATORS.get(n).fresh_direction]


def test_which_aggregators_declare_a_fresh_direction():
    assert {"graddrop", "trimmed_mean"} <= set(_fresh_names())


@pytest.mark.parametrize("name", _fresh_names())
@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_a_fresh_direction_shares_memory_with_nothing(name, k):
    """Neither with the Jacobian (the trainer's workspace, overwritten next step) nor with a
    buffer the method reuses: a second call leaves the first direction as it was."""
    agg = AGGREGATORS.build(name)
    gen = torch.Generator().manual_seed(k)
    j1 = torch.randn(k, 3000, generator=gen)
    d1 = agg(j1)
    kept = d1.clone()
    j2 = torch.randn(k, 3000, generator=gen)
    d2 = agg(j2)
    storages = {t.untyped_storage().data_ptr() for t in (j1, j2, d2)}
    assert d1.untyped_storage().data_ptr() not in storages
    j1.fill_(7.0)
    torch.testing.assert_close(d1, kept, rtol=0, atol=0)


def test_the_trainer_hands_a_fresh_direction_over_without_a_copy(two_task_data, monkeypatch):
    from mtlkit.aggregation import TrimmedMean

    data, tasks = two_task_data
    tr = _trainer(tasks, "trimmed_mean")
    seen = []
    orig = TrimmedMean.direction

    def spy(self, jacobian):
        seen.append(orig(self, jacobian))
        return seen[-1]

    monkeypatch.setattr(TrimmedMean, "direction", spy)
    tr.train_step(data.batch(torch.arange(64)))
    assert len(seen) == 1
    base = seen[0].untyped_storage().data_ptr()
    assert tr.shared and all(p.grad is not None and p.grad.untyped_storage().data_ptr() == base
                             for p in tr.shared)
