"""Aggregators that consume the Jacobian's rows one at a time (``Aggregator.row_stream``):
the same direction, random draws and state as one call on the whole matrix, and the trainer
never forms the K×P Jacobian for them."""

from __future__ import annotations

import itertools

import pytest
import torch

from mtlkit import HardSharing, Task, Trainer
from mtlkit.aggregation import GradDrop
from mtlkit.architectures.backbones import mlp
from mtlkit.jacobian import jacobian_rows


def _stream(agg, j, tasks=None):
    stream = agg.row_stream(j.shape[0], j[0], tasks=tasks)
    cut = [0, 7, 1000, j.shape[1]]  # pieces, as autograd gives them per parameter
    for i in range(j.shape[0]):
        stream.add(i, [(a, j[i, a:b].clone()) for a, b in itertools.pairwise(cut) if i != 1 or a != 7])
    return stream.finish()


@pytest.mark.parametrize("leak", [0.0, [0.0, 0.5, 1.0, 0.25, 0.0]])
def test_graddrop_stream_equals_the_matrix_call(leak):
    g = torch.Generator().manual_seed(0)
    for k in (1, 2, 5):
        j = torch.randn(k, 3000, generator=g)
        j[:, :100] = 0.0  # columns with no mass: P = 1/2
        if k > 1:
            j[1, 7:1000] = 0.0  # a piece autograd does not give (an unused parameter): zeros
        a, b = GradDrop(leak=leak, seed=3), GradDrop(leak=leak, seed=3)
        tasks = [4, 0, 2, 1, 3][:k]
        for _ in range(2):  # the second call: the generators advanced alike
            torch.testing.assert_close(_stream(a, j, tasks), b(j, tasks=tasks), rtol=1e-6, atol=1e-6)
        assert torch.equal(a._rng.state(), b._rng.state())


def test_jacobian_rows_are_the_jacobians_rows():
    from mtlkit.jacobian import jacobian

    w, v, u = torch.randn(4, requires_grad=True), torch.randn(3, requires_grad=True), torch.randn(2, requires_grad=True)
    losses = [(w * 2).sum() + (v ** 2).sum(), (w ** 3).sum(), torch.tensor(1.0), (u * v[:2]).sum()]
    seeds = [torch.tensor(float(i + 1)) for i in range(4)]
    j = jacobian(losses, [w, v, u], grad_outputs=seeds)
    for want, pieces in zip(j, jacobian_rows(losses, [w, v, u], grad_outputs=seeds)):
        got = torch.zeros(9)
        for offset, g in pieces:
            got[offset:offset + g.numel()] = g
        torch.testing.assert_close(got, want)


def test_with_a_block_size_the_trainer_streams_graddrop_and_trains_as_with_the_matrix():
    tasks = [Task(f"t{i}", "regression") for i in range(4)]

    def trainer(**kw):
        torch.manual_seed(0)
        return Trainer(HardSharing(mlp(8, (16,)), tasks), tasks, aggregator=GradDrop(leak=[0.0, 0.3, 0.0, 1.0]),
                       optimizer="sgd", lr=0.05, momentum=0.0, batch_size=32, progress=False, **kw)

    g = torch.Generator().manual_seed(1)
    batches = [(torch.randn(32, 8, generator=g), {t.name: torch.randn(32, 1, generator=g) for t in tasks},
                {t.name: torch.rand(32, 1, generator=g) > 0.3 for t in tasks}) for _ in range(3)]
    streamed = trainer(jacobian_block_size=100)
    for b in batches:
        streamed.train_step(b)
    assert streamed.plan.workspace is None  # no K×P Jacobian was formed
    matrix = trainer()
    for b in batches:
        matrix.train_step(b)
    assert matrix.plan.workspace is not None
    for (name, a), (_, b) in zip(streamed.model.state_dict().items(), matrix.model.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


def test_moco_stream_equals_the_matrix_call_bit_for_bit():
    from mtlkit.aggregation import MoCo

    g = torch.Generator().manual_seed(0)
    a, b = MoCo(gamma=0.3, rho=0.01), MoCo(gamma=0.3, rho=0.01)
    task_lists = [[0, 1, 2], [0, 1, 2], [2, 0], [0, 1, 2, 3], [0, 1, 2, 3], [1]]
    for tasks in task_lists:
        j = torch.randn(len(tasks), 2000, generator=g)
        if len(tasks) > 1:
            j[1, 7:1000] = 0.0  # a piece the stream does not get (zeros)
        torch.testing.assert_close(_stream(a, j, tasks), b(j, tasks=tasks), rtol=0, atol=0)
        assert a.lambda_ == b.lambda_
        assert all(torch.equal(a.tracked_[t], b.tracked_[t]) for t in b.tracked_)


def test_moco_stream_leaves_the_state_alone_on_a_non_finite_row():
    from mtlkit.aggregation import MoCo

    a = MoCo()
    j = torch.randn(2, 1500)
    _stream(a, j, [0, 1])
    before = a.tracked_
    bad = torch.randn(2, 1500)
    bad[0, 3] = float("nan")
    assert not torch.isfinite(_stream(a, bad, [0, 1])).all()
    assert all(torch.equal(before[t], a.tracked_[t]) for t in before)


def test_moco_streams_by_default_and_trains_bit_for_bit_as_with_the_matrix(monkeypatch):
    from mtlkit.aggregation import MoCo

    tasks = [Task(f"t{i}", "regression") for i in range(3)]

    def trainer(**kw):
        torch.manual_seed(0)
        return Trainer(HardSharing(mlp(8, (16,)), tasks), tasks, aggregator=MoCo(gamma=0.2), optimizer="sgd",
                       lr=0.05, momentum=0.0, batch_size=32, progress=False, **kw)

    g = torch.Generator().manual_seed(2)
    batches = [(torch.randn(32, 8, generator=g), {t.name: torch.randn(32, 1, generator=g) for t in tasks},
                {t.name: torch.rand(32, 1, generator=g) > (0.99 if i == 1 else 0.3) for t in tasks})
               for i in range(4)]
    streamed, blocked, matrix = trainer(), trainer(jacobian_block_size=50), trainer()
    for b in batches:
        streamed.train_step(b)
        blocked.train_step(b)
        with monkeypatch.context() as m:
            m.setattr(MoCo, "prefers_row_stream", False)
            matrix.train_step(b)
    assert blocked.plan.workspace is None
    assert blocked.aggregator.lambda_ == matrix.aggregator.lambda_
    assert streamed.plan.workspace is None and matrix.plan.workspace is not None
    assert streamed.aggregator.lambda_ == matrix.aggregator.lambda_
    for (name, a), (_, b) in zip(streamed.model.state_dict().items(), matrix.model.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
