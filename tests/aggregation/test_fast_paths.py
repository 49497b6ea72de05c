"""The faster code paths of the gradient-space step give the same update as the plain ones.

Each fast path (grouped Gramian, Gramian skipped when the weights do not read it, direction
handed to ``.grad`` without a copy, vectorised PCGrad/GradVac surgery, compiled NNLS,
GradDrop's fused passes) is checked against a straightforward reference written here.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

import mtlkit.aggregation._solvers as solvers
import mtlkit.aggregation.graddrop as graddrop_module
from mtlkit import HardSharing, Task, Trainer, from_arrays
from mtlkit._registry import AGGREGATORS
from mtlkit.aggregation import GradDrop, GradVac, PCGrad
from mtlkit.aggregation._base import gramian
from mtlkit.aggregation._rng import SeededGenerator
from mtlkit.architectures.backbones import mlp
from mtlkit.jacobian import assign_grads, jacobian, representation_jacobian

from ._properties import conflicting, random_matrix


# --------------------------------------------------------------------------- Gramian
@pytest.mark.parametrize("k", range(1, 15))
def test_grouped_gramian_equals_the_product(k):
    j = torch.randn(k, 300, generator=torch.Generator().manual_seed(k), dtype=torch.float64)
    torch.testing.assert_close(gramian(j), j @ j.T, rtol=1e-12, atol=1e-12)
    strided = torch.randn(300, k, dtype=torch.float64).T  # a non-contiguous Jacobian
    torch.testing.assert_close(gramian(strided), strided @ strided.T, rtol=1e-12, atol=1e-12)
    assert gramian(j.float()).dtype == torch.float32


# --------------------------------------------------------------------------- Gramian skipped
@pytest.mark.parametrize("name", [n for n in AGGREGATORS.names() if AGGREGATORS.get(n).gramian_based])
def test_weights_that_do_not_read_the_gramian_need_none(name):
    agg = AGGREGATORS.build(name)
    j = random_matrix(5, 8)
    if agg.reads_gramian:
        return
    torch.testing.assert_close(agg.weights_of(j), agg.weights_from(torch.zeros(5, 5, dtype=j.dtype)))
    torch.testing.assert_close(agg.weights_of(j), agg.weights_from(j @ j.T))


# --------------------------------------------------------------------------- no-copy .grad
def test_assign_grads_without_copy_hands_the_vector_over():
    a = torch.zeros(2, 3, requires_grad=True)
    b = torch.zeros(4, requires_grad=True)
    v = torch.arange(10.0)
    assign_grads([a, b], v, copy=False)
    assert a.grad.untyped_storage().data_ptr() == v.untyped_storage().data_ptr()
    torch.testing.assert_close(a.grad, v[:6].view(2, 3))
    torch.testing.assert_close(b.grad, v[6:])
    expected = 2 * v[6:]
    assign_grads([a, b], v.clone(), copy=False)  # existing gradients are added to in place
    torch.testing.assert_close(b.grad, expected)
    c = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    assign_grads([c], torch.ones(3), copy=False)  # a dtype conversion copies
    assert c.grad.dtype == torch.float64


# --------------------------------------------------------------------------- the trainer's step
def _six_task_setup(name: str, level: str):
    tasks = [Task(f"t{i}", "regression") for i in range(6)]
    r = np.random.default_rng(0)
    x = r.normal(size=(16, 5)).astype("float32")
    labels = {t.name: r.normal(size=16) + i for i, t in enumerate(tasks)}
    data = from_arrays(x, labels, tasks)
    torch.manual_seed(0)
    model = HardSharing(mlp(5, (7, 6)), tasks)
    trainer = Trainer(model, tasks, aggregator=AGGREGATORS.build(name), level=level, batch_size=16,
                      progress=False, seed=0)
    trainer.setup(data)
    trainer._agg_weights_sum = torch.zeros(6, dtype=torch.float64)
    trainer._agg_weights_n = torch.zeros(6)
    return trainer, tasks, next(iter(trainer._batches(data, 0)))


def _reference_grads(trainer, tasks, batch, ref_agg, level):
    """The update written out plainly: J, then the aggregator on it (Gramian-based: weights of
    ``J @ J.T``), the direction copied into ``.grad``; heads get the gradient of Σ_k L_k."""
    model = trainer.model
    x, ys, ms = batch
    rep = model.encode(x)
    out = model.decode(rep)
    losses = [t.compute_loss(out[t.name], ys[t.name], ms[t.name]) for t in tasks]
    shared = list(model.shared_parameters())

    def direction(j):
        if ref_agg.gramian_based:
            return ref_agg.weights_from(j @ j.T, tasks=list(range(len(tasks)))) @ j
        return ref_agg(j, tasks=list(range(len(tasks))))

    if level == "parameters":
        d = direction(jacobian(losses, shared))
        ends = np.cumsum([0] + [p.numel() for p in shared])
        grads = [d[a:b].view_as(p).clone() for a, b, p in zip(ends[:-1], ends[1:], shared)]
    else:
        d = direction(representation_jacobian(losses, rep))
        grads = list(torch.autograd.grad(rep, shared, grad_outputs=d.view_as(rep), retain_graph=True))
    ids = {id(p) for p in shared}
    heads = [p for p in model.parameters() if id(p) not in ids]
    head_grads = torch.autograd.grad(sum(losses), heads)
    return dict(zip([id(p) for p in shared + heads], grads + list(head_grads)))


@pytest.mark.parametrize("level", ["parameters", "representation"])
@pytest.mark.parametrize("name", AGGREGATORS.names())
def test_trainer_step_gives_the_plain_update(name, level):
    trainer, tasks, batch = _six_task_setup(name, level)
    ref = _reference_grads(trainer, tasks, batch, AGGREGATORS.build(name), level)
    seen: dict[int, torch.Tensor] = {}

    def capture() -> None:  # instead of the optimiser step: keep the gradients it would use
        seen.update({id(p): p.grad.clone() for p in trainer.model.parameters() if p.grad is not None})

    trainer.optimizer.step = capture  # type: ignore[method-assign]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="NashMTL", category=RuntimeWarning)
        trainer.train_step(batch)
    assert set(seen) == set(ref)
    for key, g in ref.items():
        torch.testing.assert_close(seen[key], g, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- PCGrad / GradVac
def _pcgrad_reference(g: np.ndarray, orders: np.ndarray) -> np.ndarray:
    k = g.shape[0]
    coef = np.eye(k)
    diag = np.diag(g)
    for i in range(k):
        for j in orders[i]:
            if j == i or diag[j] <= 0.0:
                continue
            dot = float(coef[i] @ g[:, j])
            if dot < 0.0:
                coef[i, j] -= dot / diag[j]
    return coef.sum(axis=0)


def _gradvac_reference(g: np.ndarray, orders: np.ndarray, targets: np.ndarray, beta: float) -> np.ndarray:
    k = g.shape[0]
    coef = np.eye(k)
    norms = np.sqrt(np.clip(np.diag(g), 0.0, None))
    for i in range(k):
        gci = g[:, i].copy()
        for j in orders[i]:
            if j == i or norms[j] <= 0.0:
                continue
            ni = math.sqrt(max(float(coef[i] @ gci), 0.0))
            phi = min(max(float(gci[j]) / (ni * norms[j]) if ni > 0.0 else 0.0, -1.0), 1.0)
            target = float(targets[i, j])
            if phi < target:
                root_t = max(math.sqrt(max(1.0 - target * target, 0.0)), 1e-12)
                step = ni * (target * math.sqrt(max(1.0 - phi * phi, 0.0)) - phi * root_t) / (norms[j] * root_t)
                coef[i, j] += step
                gci += step * g[:, j]
            targets[i, j] = (1.0 - beta) * target + beta * phi
    return coef.sum(axis=0)


@pytest.mark.parametrize("k", [2, 3, 7, 12])
@pytest.mark.parametrize("seed", range(3))
def test_vectorised_surgery_equals_the_task_by_task_loops(k, seed):
    j = conflicting(k=k, p=k + 5, seed=seed)
    g = (j @ j.T).numpy()
    gn = g / (np.trace(g) / k)
    orders = SeededGenerator(seed).orders(k)
    w = PCGrad(seed=seed).weights(torch.as_tensor(g)).numpy()
    np.testing.assert_allclose(w, _pcgrad_reference(gn, orders), rtol=1e-12, atol=1e-12)
    agg, targets = GradVac(beta=0.3, seed=seed), np.zeros((k, k))
    gen = SeededGenerator(seed)
    for _ in range(3):  # the targets carry over
        w = agg.weights(torch.as_tensor(g)).numpy()
        ref = _gradvac_reference(gn, gen.orders(k), targets, 0.3)
        np.testing.assert_allclose(w, ref, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(agg.targets_, targets, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------- compiled NNLS
def test_min_norm_scipy_path_equals_own_solver(monkeypatch):
    pytest.importorskip("scipy")
    rng = np.random.default_rng(4)
    for k in (3, 6, 24):
        j = rng.normal(size=(k, 30)) + 0.5 * rng.normal(size=(1, 30))
        j[1] = -0.7 * j[0]
        g = j @ j.T
        fast = solvers.min_norm_weights(g)
        with monkeypatch.context() as m:
            m.setattr(solvers, "SCIPY_NNLS_MIN_K", 10**9)
            own = solvers.min_norm_weights(g)
        # the min-norm point is unique (the weights may not be): compare J^T w
        np.testing.assert_allclose(j.T @ fast, j.T @ own, atol=1e-9)
        assert abs(fast.sum() - 1.0) < 1e-12 and (fast >= 0).all()


# --------------------------------------------------------------------------- GradDrop
def _graddrop_reference(j: torch.Tensor, u: torch.Tensor, leak: torch.Tensor) -> torch.Tensor:
    """The paper's formula term by term (the former implementation)."""
    eps = torch.finfo(j.dtype).eps
    u = u.clamp(eps, 1.0 - eps)
    pos = j.clamp(min=0).sum(dim=0)
    neg = j.sum(dim=0) - pos
    purity = 0.5 * (1.0 + (pos + neg) / (pos - neg).clamp_min(torch.finfo(j.dtype).tiny))
    pick = (purity > u).to(j.dtype)
    keep = 1.0 - leak
    kept_pos = (keep * j.clamp(min=0)).sum(dim=0)
    kept_neg = (keep * j).sum(dim=0) - kept_pos
    return (leak * j).sum(dim=0) + pick * kept_pos + (1.0 - pick) * kept_neg


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("leak", [0.0, [0.5, 0.0, 1.0, 0.25]])
@pytest.mark.parametrize("block", [None, 7])
def test_graddrop_equals_the_formula(monkeypatch, dtype, leak, block):
    if block is not None:  # several column blocks (and a ragged last one)
        monkeypatch.setattr(graddrop_module, "_BLOCK_ELEMENTS", 0)
        monkeypatch.setattr(graddrop_module, "_MIN_BLOCK", block)
    j = conflicting(k=4, p=50, seed=1, dtype=dtype)
    j[:, :5] = 0.0  # Σ|g| = 0 columns
    j[1, 5:10] = -j[0, 5:10]  # purity exactly ½
    agg = GradDrop(leak=leak, seed=3)
    d = agg(j)
    u = torch.rand(50, generator=SeededGenerator(3).generator, dtype=dtype)
    lk = torch.full((4, 1), leak, dtype=dtype) if isinstance(leak, float) else torch.tensor(leak, dtype=dtype)[:, None]
    ref = _graddrop_reference(j, u, lk)
    assert torch.equal(d, ref)
