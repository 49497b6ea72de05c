"""The Jacobian engines: every engine equals the loop floor; zero rows/columns where unused."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mtlkit import HardSharing, Task
from mtlkit.architectures.backbones import lenet, mlp
from mtlkit.jacobian import (
    ENGINES,
    assign_grads,
    jacobian,
    jacobian_via_representation,
    representation_jacobian,
    task_gradients,
)


def _mlp_case(k: int = 3, dtype=torch.float64):
    torch.manual_seed(0)
    tasks = [Task(f"t{i}", "regression", dim=2) for i in range(k)]
    model = HardSharing(mlp(6, (8, 5)), tasks).to(dtype)
    x = torch.randn(7, 6, dtype=dtype)
    rep = model.encode(x)
    out = model.decode(rep)
    losses = [((out[t.name] - i) ** 2).mean() for i, t in enumerate(tasks)]
    return model, rep, losses


def _lenet_case():
    torch.manual_seed(1)
    tasks = [Task("a", "multiclass", num_classes=3), Task("b", "multiclass", num_classes=4)]
    model = HardSharing(lenet(1, (20, 20), channels=(2, 3), hidden=6), tasks).double()
    x = torch.randn(4, 1, 20, 20, dtype=torch.float64)
    rep = model.encode(x)
    out = model.decode(rep)
    losses = [F.cross_entropy(out["a"], torch.tensor([0, 1, 2, 0])),
              F.cross_entropy(out["b"], torch.tensor([3, 1, 2, 0]))]
    return model, rep, losses


@pytest.mark.parametrize("case", [_mlp_case, _lenet_case])
@pytest.mark.parametrize("chunk_size", [None, 1, 2])
def test_every_engine_equals_the_loop(case, chunk_size):
    model, rep, losses = case()
    shared = list(model.shared_parameters())
    ref = jacobian(losses, shared, engine="loop")
    assert ref.shape == (len(losses), sum(p.numel() for p in shared))
    for engine in ENGINES:
        j = jacobian(losses, shared, engine=engine, chunk_size=chunk_size, representation=rep)
        torch.testing.assert_close(j, ref, rtol=0, atol=1e-6)
    torch.testing.assert_close(jacobian_via_representation(losses, rep, shared, chunk_size), ref,
                               rtol=0, atol=1e-6)


def test_loop_equals_autograd_per_task():
    model, _rep, losses = _mlp_case()
    shared = list(model.shared_parameters())
    j = jacobian(losses, shared)
    for k, loss in enumerate(losses):
        g = torch.autograd.grad(loss, shared, retain_graph=True)
        torch.testing.assert_close(j[k], torch.cat([x.reshape(-1) for x in g]))


def test_stacked_losses_are_accepted():
    model, rep, losses = _mlp_case()
    shared = list(model.shared_parameters())
    torch.testing.assert_close(jacobian(torch.stack(losses), shared, engine="batched"),
                               jacobian(losses, shared), rtol=0, atol=1e-6)


@pytest.mark.parametrize("engine", ENGINES)
def test_zero_rows_and_columns_where_unused(engine):
    w_used = torch.tensor([1.0, 2.0], requires_grad=True)
    w_unused = torch.tensor([3.0, 4.0, 5.0], requires_grad=True)
    rep = 2 * w_used
    losses = [(rep ** 2).sum(), torch.tensor(0.5), rep.sum()]  # the middle loss has no graph
    j = jacobian(losses, [w_used, w_unused], engine=engine, representation=rep)
    expected = torch.tensor([[8.0, 16.0, 0, 0, 0], [0, 0, 0, 0, 0], [2.0, 2.0, 0, 0, 0]])
    torch.testing.assert_close(j, expected)


def test_no_loss_requires_grad_gives_zeros():
    w = torch.ones(3, requires_grad=True)
    for engine in ("loop", "batched"):
        assert torch.equal(jacobian([torch.tensor(1.0), torch.tensor(2.0)], [w], engine=engine),
                           torch.zeros(2, 3))


def test_representation_jacobian():
    _model, rep, losses = _mlp_case()
    j = representation_jacobian(losses, rep)
    assert j.shape == (3, rep.numel())
    g = torch.autograd.grad(losses[1], rep, retain_graph=True)[0]
    torch.testing.assert_close(j[1], g.reshape(-1))


def test_graph_is_retained_for_the_trainer():
    model, rep, losses = _mlp_case()
    shared = list(model.shared_parameters())
    for engine in ENGINES:
        jacobian(losses, shared, engine=engine, representation=rep)
    sum(losses).backward()  # still possible
    assert all(p.grad is not None for p in shared)


def test_bad_arguments():
    model, rep, losses = _mlp_case()
    shared = list(model.shared_parameters())
    with pytest.raises(ValueError, match="'engine'"):
        jacobian(losses, shared, engine="fast")
    with pytest.raises(ValueError, match="'chunk_size'"):
        jacobian(losses, shared, engine="batched", chunk_size=0)
    with pytest.raises(ValueError, match="representation"):
        jacobian(losses, shared, engine="two-stage")


def test_task_gradients_are_differentiable():
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    g = task_gradients([(x ** 3).sum(), x.sum()], x, create_graph=True)
    torch.testing.assert_close(g, torch.tensor([[3.0, 12.0], [1.0, 1.0]]))
    (second,) = torch.autograd.grad(g[0].sum(), x)
    torch.testing.assert_close(second, torch.tensor([6.0, 12.0]))  # d/dx 3x² = 6x


def test_assign_grads():
    a, b = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(1, 2))
    assign_grads([a, b], torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assign_grads([a, b], torch.tensor([1.0, 1.0, 1.0, 1.0]))
    torch.testing.assert_close(a.grad, torch.tensor([2.0, 3.0]))
    torch.testing.assert_close(b.grad, torch.tensor([[4.0, 5.0]]))
    with pytest.raises(ValueError, match="does not match"):
        assign_grads([a], torch.ones(3))


@pytest.mark.parametrize("n_wrt", [1, 2])
def test_loop_engine_frees_each_rows_gradients_before_the_next_backward_pass(monkeypatch, n_wrt):
    """Peak memory: the Jacobian plus one row, not two (a row's gradients still referenced
    while the next row's backward pass allocates its own)."""
    import weakref

    from mtlkit import jacobian as jac_module

    wrt = [torch.randn(50, requires_grad=True) for _ in range(n_wrt)]
    losses = [sum((w * (i + 1)).pow(2).sum() for w in wrt) for i in range(4)]
    returned: list[weakref.ref] = []
    alive_during_backward: list[int] = []
    real_grad = torch.autograd.grad

    def grad(*args, **kwargs):
        out = real_grad(*args, **kwargs)
        returned.extend(weakref.ref(g) for g in out if g is not None)
        return out

    def hook(g):
        alive_during_backward.append(sum(r() is not None for r in returned))
        return g

    for w in wrt:
        w.register_hook(hook)
    monkeypatch.setattr(jac_module.torch.autograd, "grad", grad)
    j = jac_module.jacobian(losses, wrt, engine="loop")
    assert j.shape == (4, 50 * n_wrt)
    assert len(alive_during_backward) == 4 * n_wrt and max(alive_during_backward) == 0
