"""An aggregator that declares ``keeps_jacobian = False`` gets every step's Jacobian in the
trainer's reused K×P workspace: the two that are not weightings of the Gramian and read the
matrix (MoCo on its matrix path, TrimmedMean) train exactly as with a fresh Jacobian every step
(GradDrop with jacobian_block_size, and MoCo by default, consume the rows one at a time and form no
Jacobian: tests/aggregation/test_row_stream.py)."""

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


@pytest.mark.parametrize("name", ["moco", "trimmed_mean"])
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
