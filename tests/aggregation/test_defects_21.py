"""Issue 21: the four defects of the existing aggregators, each checked against its paper's
definition (these tests failed before the fixes).

1. CAGrad where the optimum of the dual has g_w = 0 (always so for c ≥ 1 when 0 is in the
   convex hull of the gradients): the update conflicted with a task.
2. Nash-MTL fell back to MGDA on ordinary 2-task Gramians (a stalled line search) and the
   fallback was neither counted nor explained; the result depended on the row order.
3. GradDrop raised on a Jacobian that requires grad.
4. UPGrad changed under row permutation on nearly weakly-stationary matrices.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from mtlkit.aggregation import MGDA, CAGrad, GradDrop, NashMTL, UPGrad
from mtlkit.aggregation.cagrad import cagrad_weights

from ._properties import nearly_weakly_stationary

scipy_optimize = pytest.importorskip("scipy.optimize")

J_ISSUE = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.5, 1.0]], dtype=torch.float64)


# --------------------------------------------------------------------------- 1. CAGrad
def _cagrad_primal_value(j: np.ndarray, c: float) -> float:
    """max_d min_i ⟨g_i, d⟩ subject to ‖d − g₀‖ ≤ c‖g₀‖ (the paper's eq. 4), by SLSQP."""
    g0 = j.mean(axis=0)
    rho = c * float(np.linalg.norm(g0))
    best = -math.inf
    for start in (g0, np.zeros_like(g0), g0 * (1 - c)):
        x0 = np.concatenate([start, [float(np.min(j @ start))]])
        cons = [{"type": "ineq", "fun": lambda x: j @ x[:-1] - x[-1]},
                {"type": "ineq", "fun": lambda x: rho ** 2 - float(np.sum((x[:-1] - g0) ** 2))}]
        res = scipy_optimize.minimize(lambda x: -x[-1], x0, constraints=cons, method="SLSQP",
                                      options={"ftol": 1e-14, "maxiter": 1000})
        best = max(best, -float(res.fun))
    return best


@pytest.mark.parametrize("c", [0.5, 1.0, 1.5, 4.0])
@pytest.mark.parametrize("rescale", ["none", "1+c^2", "1+c"])
def test_cagrad_never_conflicts_when_zero_is_in_the_hull(c, rescale):
    # 0 = (g1 + g2)/2 is in the hull. g₀ = (1/6, 1/3), ‖g₀‖ = √5/6; the dual cone of the rows
    # is C = {x : x₁ = 0, x₂ ≥ 0} and dist(g₀, C) = 1/6 ≤ c‖g₀‖ for c ≥ 1/√5, so max_d min_i
    # ⟨g_i, d⟩ = 0 and every d ∈ C in the ball is optimal. CAGrad returns the one closest to
    # g₀: π_C(g₀) = (0, 1/3), then divided by the rescale factor.
    d = CAGrad(c=c, rescale=rescale)(J_ISSUE)
    divisor = {"none": 1.0, "1+c^2": 1.0 + c * c, "1+c": 1.0 + c}[rescale]
    torch.testing.assert_close(d, torch.tensor([0.0, 1.0 / 3.0], dtype=torch.float64) / divisor,
                               rtol=0, atol=1e-12)
    assert (J_ISSUE @ d >= -1e-12).all(), (J_ISSUE @ d).tolist()


@pytest.mark.parametrize("c", [0.3, 0.7, 1.0, 2.0])
def test_cagrad_attains_the_primal_optimum_on_weakly_stationary_jacobians(c):
    rng = np.random.default_rng(21)
    for t in range(8):
        k, p = 3 + t % 3, 2 + t % 4
        j = rng.normal(size=(k, p))
        j[0] = -(rng.uniform(0.2, 1.0, size=k - 2) @ j[1:k - 1])  # 0 is in the hull
        w = cagrad_weights(j @ j.T, c)
        d = w @ j
        g0 = j.mean(axis=0)
        rho = c * float(np.linalg.norm(g0))
        assert float(np.linalg.norm(d - g0)) <= rho * (1 + 1e-9) + 1e-12  # inside the ball
        assert float(np.min(j @ d)) >= _cagrad_primal_value(j, c) - 1e-6 * float(np.abs(j).max()) ** 2


def test_cagrad_hand_worked_is_unchanged_off_the_degenerate_case():
    # the 120° example (0 not in the hull): d = (1 + c) g₀ as before
    r3 = math.sqrt(3.0)
    j = torch.tensor([[1.0, 0.0], [-0.5, r3 / 2]], dtype=torch.float64)
    for c in (0.5, 1.0, 2.0):
        torch.testing.assert_close(CAGrad(c=c, rescale="none")(j), (1 + c) * j.mean(0), rtol=0, atol=1e-10)


# --------------------------------------------------------------------------- 2. Nash-MTL
def _two_task_gramians(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        cos = -0.9 + 0.05 * rng.uniform(-1, 1)
        r = math.exp(rng.uniform(-3, 3))
        yield torch.tensor([[1.0, cos * r], [cos * r, r * r]], dtype=torch.float64)


def test_nash_mtl_converges_on_ordinary_conflicting_two_task_gramians():
    agg = NashMTL()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback, no warning
        for g in _two_task_gramians(1143):
            a = agg.weights_from(g).numpy()
            gn = g.numpy()
            assert (a > 0).all()
            np.testing.assert_allclose(a * (gn @ a), 1.0, rtol=0, atol=1e-10)
    assert agg.fallbacks_ == 0


def test_nash_mtl_is_independent_of_task_order_and_warm_start():
    rng = np.random.default_rng(4)
    agg = NashMTL()
    for t in range(30):
        k = 2 + t % 4
        j = torch.as_tensor(rng.normal(size=(k, 6)), dtype=torch.float64)
        j[1] = -0.95 * j[0] + 0.1 * j[1]  # strongly conflicting
        perm = torch.as_tensor(rng.permutation(k))
        d = agg(j, tasks=list(range(k)))
        # the same instance (warm-started from the previous call), rows in another order,
        # with and without the task indices
        torch.testing.assert_close(agg(j[perm], tasks=perm.tolist()), d, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(agg(j[perm]), d, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(NashMTL()(j[perm]), d, rtol=1e-10, atol=1e-12)
    assert agg.fallbacks_ == 0


def test_nash_mtl_warm_start_is_keyed_by_task_not_row():
    j = torch.tensor([[2.0, 0.0], [0.0, 0.5]], dtype=torch.float64)
    agg = NashMTL()
    agg(j, tasks=[7, 3])
    assert set(agg.alpha_) == {3, 7}
    a7, a3 = agg.alpha_[7], agg.alpha_[3]
    agg(j.flip(0), tasks=[3, 7])  # same tasks, rows swapped: same per-task solution
    assert agg.alpha_[7] == pytest.approx(a7, rel=1e-12) and agg.alpha_[3] == pytest.approx(a3, rel=1e-12)


def test_nash_mtl_fallback_is_counted_and_explained():
    j = torch.tensor([[1.0, 1.0], [-1.0, -1.0], [0.0, 1.0]], dtype=torch.float64)  # Pareto-stationary
    agg = NashMTL()
    assert agg.fallbacks_ == 0
    with pytest.warns(RuntimeWarning, match=r"NashMTL.*convex hull.*MGDA"):
        d = agg(j)
    torch.testing.assert_close(d, MGDA()(j))
    assert agg.fallbacks_ == 1
    with pytest.warns(RuntimeWarning, match="NashMTL"):
        agg(j)
    assert agg.fallbacks_ == 2
    assert agg.state_dict()["fallbacks"] == 2
    other = NashMTL()
    other.load_state_dict(agg.state_dict())
    assert other.fallbacks_ == 2
    agg.reset()
    assert agg.fallbacks_ == 0


# --------------------------------------------------------------------------- 3. GradDrop
@pytest.mark.parametrize("leak", [0.0, 0.3, [1.0, 0.0, 0.5]])
def test_graddrop_works_on_a_jacobian_that_requires_grad(leak):
    base = torch.randn(3, 40, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    j = base.clone().requires_grad_(True)
    d = GradDrop(leak=leak, seed=5)(j)
    assert d.requires_grad
    # the same value as without autograd (same seed, same draws)
    torch.testing.assert_close(d.detach(), GradDrop(leak=leak, seed=5)(base), rtol=0, atol=0)
    # d = Σ_i (ℓ_i + (1 − ℓ_i) M_i) g_i: the gradient of Σ d w.r.t. J is the masked leak, the
    # mask being a constant (the paper's "gradient sign dropout")
    d.sum().backward()
    assert j.grad is not None
    lk = torch.as_tensor(leak, dtype=torch.float64).reshape(-1, 1) if isinstance(leak, list) else leak
    mask = (j.grad - lk) / (1 - torch.as_tensor(lk, dtype=torch.float64) + 1e-300)
    kept = mask.round()
    assert set(kept.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close((lk + (1 - torch.as_tensor(lk, dtype=torch.float64)) * kept) * base,
                               j.grad * base, rtol=0, atol=1e-12)
    torch.testing.assert_close(((lk + (1 - torch.as_tensor(lk, dtype=torch.float64)) * kept) * base).sum(0),
                               d.detach(), rtol=0, atol=1e-12)


def test_graddrop_in_a_graph_under_no_grad_is_unchanged():
    j = torch.randn(2, 10, dtype=torch.float32, requires_grad=True)
    with torch.no_grad():
        d = GradDrop(seed=1)(j)
    torch.testing.assert_close(d, GradDrop(seed=1)(j.detach()), rtol=0, atol=0)


# --------------------------------------------------------------------------- 4. UPGrad
@pytest.mark.parametrize("seed", range(12))
def test_upgrad_is_order_independent_on_nearly_weakly_stationary_matrices(seed):
    j = nearly_weakly_stationary(seed)
    d = UPGrad()(j)
    scale = max(float(d.abs().max()), float(j.abs().max()))
    g = torch.Generator().manual_seed(seed)
    for _ in range(4):
        perm = torch.randperm(j.shape[0], generator=g)
        torch.testing.assert_close(UPGrad()(j[perm]) / scale, d / scale, rtol=0, atol=1e-7)
    # each projection onto the dual cone is non-expansive: ‖d‖ ≤ mean ‖g_i‖
    assert float(d.norm()) <= float(j.norm(dim=1).mean()) * (1 + 1e-6)


def _projection_reference(j: np.ndarray) -> np.ndarray:
    """UPGrad from the Jacobian itself: each row projected on {x : J x ≥ 0} by NNLS on Jᵀ
    (QR-based, no Gramian: accurate where the Gramian is ill-conditioned)."""
    out = [j[i] + j.T @ scipy_optimize.nnls(-j.T, j[i], maxiter=10_000)[0] for i in range(len(j))]
    return np.mean(out, axis=0)


@pytest.mark.parametrize("eps", [1e-2, 1e-3, 1e-4, 1e-5, 1e-6])
def test_upgrad_stays_exact_near_weak_stationarity(eps):
    # measured: 2.5e-12, 1e-9, 5e-8, 2e-6, 4e-4 (the old solver: 3e-12, 9e-10, 2e-8, 6e-6, 4e-4)
    for seed in range(20):
        j = nearly_weakly_stationary(seed, eps=eps)
        ref = _projection_reference(j.numpy())
        d = UPGrad()(j).numpy()
        # the Gramian resolves the wedge's width eps² to machine precision: about
        # eps_machine / eps² relative
        tol = 1e-10 + 5e-15 / eps ** 2
        np.testing.assert_allclose(d, ref, rtol=0, atol=tol * float(np.abs(j.numpy()).max()))


@pytest.mark.parametrize("eps", [1e-4, 1e-6, 1e-7, 1e-8, 1e-10])
def test_upgrad_weights_are_permutation_equivariant_for_a_permuted_gramian(eps):
    # the same Gramian in another row order: the solve runs in a canonical order, so the
    # weights are exactly permuted, whatever the conditioning
    for seed in range(6):
        j = nearly_weakly_stationary(seed, eps=eps)
        g = j @ j.T
        w = UPGrad().weights_from(g)
        perm = torch.randperm(j.shape[0], generator=torch.Generator().manual_seed(seed))
        torch.testing.assert_close(UPGrad().weights_from(g[perm][:, perm]), w[perm], rtol=1e-12, atol=0)


@pytest.mark.parametrize("k", [5, 6, 8])
def test_upgrad_is_order_independent_with_the_grouped_gramian(k):
    # 5 ≤ K ≤ 12: the Gramian is assembled from 4-row blocks, so that of a permuted Jacobian
    # differs from the permuted Gramian by round-off; the floor keeps the result stable
    for seed in range(4):
        g = torch.Generator().manual_seed(seed)
        j = torch.randn(k, 3000, generator=g, dtype=torch.float64)
        j[-1] = -(0.5 + torch.rand(2, generator=g, dtype=torch.float64)) @ j[:2] + 1e-8 * torch.randn(
            3000, generator=g, dtype=torch.float64)
        d = UPGrad()(j)
        scale = max(float(d.abs().max()), float(j.abs().max()))
        perm = torch.randperm(k, generator=g)
        torch.testing.assert_close(UPGrad()(j[perm]) / scale, d / scale, rtol=0, atol=1e-7)
