"""The global batch norm of ``DistributedTrainer(sync_batch_norm=...)``: its maths against
PyTorch's batch norm (one rank: the sums over ranks are the local sums), its default, and
the refusal where a backward pass cannot hold a collective (vmapped Jacobians, GREAT's second
differentiation). The two-process equivalence is in ``test_equivalence.py`` (cases ``bn_*``)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from mtlkit.config import ConfigError, parse_config
from mtlkit.training.distributed import DistributedTrainer, _GlobalBatchNorm, batch_norm_layers

from . import _harness as h


class _OneRank:
    """A comm of one rank: the sum over ranks is the tensor itself."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def all_reduce_(self, tensor: torch.Tensor, what: str) -> torch.Tensor:
        self.calls.append(what)
        return tensor


@pytest.mark.parametrize("make,shape", [(lambda: nn.BatchNorm1d(3), (7, 3)),
                                        (lambda: nn.BatchNorm1d(3), (5, 3, 4)),
                                        (lambda: nn.BatchNorm2d(2), (4, 2, 3, 3)),
                                        (lambda: nn.BatchNorm1d(3, momentum=None), (6, 3)),
                                        (lambda: nn.BatchNorm1d(3, affine=False), (6, 3))])
def test_global_batch_norm_of_one_rank_is_pytorch_batch_norm(make, shape):
    torch.manual_seed(0)
    ref = make()
    if ref.affine:
        with torch.no_grad():
            ref.weight.uniform_(0.5, 1.5)
            ref.bias.uniform_(-1, 1)
    mine = copy.deepcopy(ref)
    comm = _OneRank()
    forward = _GlobalBatchNorm(mine, comm)  # type: ignore[arg-type]
    for _step in range(3):
        x = (torch.randn(*shape) * 2 + 1).requires_grad_()
        x2 = x.detach().clone().requires_grad_()
        w = torch.randn(*shape)
        (ref(x) * w).sum().backward()
        (forward(x2) * w).sum().backward()
        torch.testing.assert_close(x2.grad, x.grad, rtol=1e-5, atol=1e-5)
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            torch.testing.assert_close(getattr(mine, name), getattr(ref, name), rtol=1e-6, atol=1e-6)
    if ref.affine:
        torch.testing.assert_close(mine.weight.grad, ref.weight.grad, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(mine.bias.grad, ref.bias.grad, rtol=1e-5, atol=1e-5)
    assert comm.calls.count("batch-norm statistics") == 3 and comm.calls.count("batch-norm gradients") == 3
    mine.eval()
    ref.eval()
    x = torch.randn(*shape)
    torch.testing.assert_close(forward(x), ref(x))  # evaluation: the running statistics
    assert comm.calls.count("batch-norm statistics") == 3


def test_one_value_per_channel_is_refused():
    forward = _GlobalBatchNorm(nn.BatchNorm1d(3), _OneRank())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"more than 1 value per channel.*batch_size"):
        forward(torch.randn(1, 3))


def test_batch_norm_layers():
    model = h.make_model(batch_norm=True)
    assert [type(m).__name__ for m in batch_norm_layers(model)] == ["BatchNorm1d", "BatchNorm1d"]
    assert batch_norm_layers(h.make_model()) == []


def test_default_is_on_except_where_a_backward_pass_cannot_hold_a_collective():
    from mtlkit.aggregation import MGDA, PCGrad
    from mtlkit.weighting import GREAT, GradNorm

    bn = h.make_model(batch_norm=True)
    assert DistributedTrainer(bn, h.TASKS).sync_batch_norm
    assert DistributedTrainer(bn, h.TASKS, aggregator=MGDA(), level="representation").sync_batch_norm
    assert DistributedTrainer(bn, h.TASKS, aggregator=PCGrad()).sync_batch_norm  # the loop engine
    assert DistributedTrainer(bn, h.TASKS, weighting=GradNorm()).sync_batch_norm
    assert not DistributedTrainer(bn, h.TASKS, aggregator=PCGrad(), jacobian_engine="batched").sync_batch_norm
    assert not DistributedTrainer(bn, h.TASKS, weighting=GREAT()).sync_batch_norm
    assert not DistributedTrainer(h.make_model(), h.TASKS).sync_batch_norm  # no batch norm
    # representation level: the per-task gradients stop at the representation, any engine
    assert DistributedTrainer(bn, h.TASKS, aggregator=MGDA(), level="representation",
                              jacobian_engine="batched").sync_batch_norm
    with pytest.raises(ValueError, match=r"'batched' Jacobian engine vmaps.*jacobian_engine='loop'"):
        DistributedTrainer(bn, h.TASKS, aggregator=PCGrad(), jacobian_engine="batched", sync_batch_norm=True)
    with pytest.raises(ValueError, match=r"weighting GREAT differentiates"):
        DistributedTrainer(bn, h.TASKS, weighting=GREAT(), sync_batch_norm=True)
    with pytest.raises(ValueError, match="bool or None"):
        DistributedTrainer(bn, h.TASKS, sync_batch_norm="yes")


def test_config_key():
    base = {"data": {"dataset": "yeast"}, "training": {"aggregator": {"name": "pcgrad"}, "sync_batch_norm": True}}
    assert parse_config(base).training.sync_batch_norm is True
    assert parse_config({"data": {"dataset": "yeast"}}).training.sync_batch_norm is None
    base["training"]["sync_batch_norm"] = "sometimes"
    with pytest.raises(ConfigError, match="sync_batch_norm"):
        parse_config(base)
