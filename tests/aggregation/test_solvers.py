"""The exact K×K solvers against brute force / SciPy references."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mtlkit.aggregation._solvers import dual_cone_weights, min_norm_weights, nnls
from mtlkit.aggregation.cagrad import solve_dual

scipy_optimize = pytest.importorskip("scipy.optimize")


def _problems(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    for t in range(n):
        k = int(rng.integers(2, 8))
        p = int(rng.integers(1, 10))
        j = rng.normal(size=(k, p))
        if t % 3 == 0:
            j[1] = -0.9 * j[0]
        if t % 5 == 0:
            j = j[:, :1] @ rng.normal(size=(1, p))  # rank one
        yield j


def _simplex_min(f, k):
    best = math.inf
    cons = {"type": "eq", "fun": lambda x: x.sum() - 1}
    for x0 in [np.full(k, 1 / k), *np.eye(k)[:2]]:
        res = scipy_optimize.minimize(f, x0, bounds=[(0, 1)] * k, constraints=cons, method="SLSQP",
                                      options={"ftol": 1e-15, "maxiter": 1000})
        best = min(best, float(res.fun))
    return best


def test_nnls_matches_scipy():
    rng = np.random.default_rng(0)
    for t in range(150):
        m, n = int(rng.integers(1, 12)), int(rng.integers(1, 12))
        a = rng.normal(size=(m, n))
        if t % 3 == 0:
            a[:, : n // 2] = a[:, :1]
        b = rng.normal(size=m)
        x = nnls(a, b)
        ref, _ = scipy_optimize.nnls(a, b)
        assert (x >= 0).all()
        assert np.linalg.norm(a @ x - b) <= np.linalg.norm(a @ ref - b) + 1e-10


def test_min_norm_weights_are_optimal():
    for j in _problems(30):
        g = j @ j.T
        w = min_norm_weights(g)
        assert abs(w.sum() - 1) < 1e-12 and (w >= 0).all()
        assert w @ g @ w <= _simplex_min(lambda x, g=g: x @ g @ x, len(w)) + 1e-9 * np.trace(g)


def test_dual_cone_projection_is_the_projection():
    for j in _problems(12, seed=1):
        g = j @ j.T
        v = dual_cone_weights(g)
        for i in range(len(g)):
            proj = j.T @ v[i]
            assert (j @ proj >= -1e-9 * np.abs(g).max()).all()  # in the cone
            cons = {"type": "ineq", "fun": lambda x, j=j: j @ x}
            res = scipy_optimize.minimize(lambda x, i=i, j=j: np.sum((x - j[i]) ** 2), j[i] * 0 + 1e-3,
                                          constraints=cons, method="SLSQP",
                                          options={"ftol": 1e-15, "maxiter": 1000})
            assert np.sum((proj - j[i]) ** 2) <= res.fun + 1e-7 * (1 + np.abs(g).max())


@pytest.mark.parametrize("c", [0.2, 0.5, 0.9, 1.5])
def test_cagrad_dual_is_optimal(c):
    for j in _problems(12, seed=2):
        g = j @ j.T
        k = len(g)
        b = np.full(k, 1 / k)
        g0 = math.sqrt(max(b @ g @ b, 0))

        def f(x, g=g, b=b, g0=g0):
            return x @ g @ b + c * g0 * math.sqrt(max(x @ g @ x, 0))

        w, _ratio = solve_dual(g, c)
        assert f(w) <= _simplex_min(f, k) + 1e-7 * max(np.trace(g), 1e-300)


def _rank_deficient_jacobian():
    """24 tasks, rows 0 and 1 opposite (j1 = -0.7 j0): a singular Gramian, where the weights of
    a projection are not unique (any multiple of 0.7 e0 + e1 can be added) but the projection is."""
    rng = np.random.default_rng(3)
    j = rng.normal(size=(24, 40)) + 0.3 * rng.normal(size=(1, 40))
    j[1] = -0.7 * j[0]
    return j


def _assert_same_projections(v1, v2, j):
    """Two solutions of the dual-cone projections agree on what is unique: each projection
    ``Jᵀ v_i`` (the direction) and its squared norm ``v_iᵀ G v_i`` (the objective); both are
    feasible (``v_i ≥ e_i``, in the dual cone). Not the weights themselves: on a singular
    Gramian they are not unique, and SciPy's NNLS and ours may pick different ones (SciPy
    1.17.1 did, on 4 of these 576 weights, on one machine)."""
    g = j @ j.T
    scale = float(np.abs(g).max())
    np.testing.assert_allclose(v1 @ j, v2 @ j, rtol=0, atol=1e-9 * np.sqrt(scale))
    o1, o2 = (np.einsum("ik,kl,il->i", v, g, v) for v in (v1, v2))
    np.testing.assert_allclose(o1, o2, rtol=1e-9, atol=1e-12 * scale)
    for v in (v1, v2):
        assert (v - np.eye(len(v)) >= -1e-12).all()  # v_i >= e_i
        assert (g @ v.T >= -1e-9 * scale).all()  # every projection is in the dual cone


def test_dual_cone_scipy_path_equals_own_solver(monkeypatch):
    import mtlkit.aggregation._solvers as solvers

    j = _rank_deficient_jacobian()
    g = j @ j.T
    assert g.shape[0] >= solvers.SCIPY_NNLS_MIN_K
    fast = dual_cone_weights(g)  # SciPy's compiled NNLS
    monkeypatch.setattr(solvers, "SCIPY_NNLS_MIN_K", 10**9)
    own = dual_cone_weights(g)
    _assert_same_projections(fast, own, j)


def test_scipy_comparison_accepts_another_optimum(monkeypatch):
    """What a SciPy that returns another of the equally good NNLS solutions (a multiple of the
    Gramian's null vector added) gives: other weights, the same projections. The comparison
    above passes; comparing the weights, as it used to, fails (issue 20: a fresh machine's
    ``make test`` was red by this alone)."""
    import scipy.optimize

    import mtlkit.aggregation._solvers as solvers

    j = _rank_deficient_jacobian()
    g = j @ j.T
    monkeypatch.setattr(solvers, "SCIPY_NNLS_MIN_K", 10**9)
    own = dual_cone_weights(g)
    monkeypatch.undo()
    real = scipy.optimize.nnls

    def another_optimum(a, b, *args, **kwargs):
        x, rnorm = real(a, b, *args, **kwargs)
        null = np.abs(np.linalg.svd(a)[2][-1])  # the null direction of the rows 0 and 1, >= 0
        return x + 0.05 * null, rnorm

    monkeypatch.setattr(scipy.optimize, "nnls", another_optimum)
    other = dual_cone_weights(g)
    assert not np.allclose(other, own, atol=1e-8)  # the weights differ ...
    _assert_same_projections(other, own, j)  # ... the solution does not


def test_blocked_gramian_equals_the_product():
    import torch

    from mtlkit.aggregation._base import gramian

    j = torch.randn(6, 70000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(gramian(j), j @ j.T, rtol=1e-12, atol=1e-9)
    small = j[:, :100]
    torch.testing.assert_close(gramian(small), small @ small.T)


def test_min_norm_point_is_optimal_for_every_row_whatever_the_scales():
    # the min-norm point d* satisfies ⟨g_i, d*⟩ ≥ ‖d*‖² for every row (its optimality), which
    # makes it non-conflicting; rows from 1e-15 to 1e15 must each get it to round-off
    rng = np.random.default_rng(7)
    for t in range(40):
        k = 2 + t % 5
        j = rng.normal(size=(k, 6)) * 10.0 ** rng.uniform(-15, 15, size=(k, 1))
        if t % 3 == 0:
            j[1] = -0.8 * j[0] * 10.0 ** rng.uniform(-3, 3) + 0.3 * j[1]
        w = min_norm_weights(j @ j.T)
        assert abs(w.sum() - 1) < 1e-12 and (w >= 0).all()
        d = w @ j
        norms = np.linalg.norm(j, axis=1)
        # relative to each row and to the size of the terms d is summed from (near-stationary
        # draws have ‖d‖ far below it: d is then round-off of a cancellation)
        slack = (j @ d - float(d @ d)) / (norms * float(w @ norms))
        assert (slack >= -1e-12).all(), slack


def test_min_norm_weights_with_a_zero_row_are_exactly_zero_direction():
    j = np.array([[1.0, 2.0], [0.0, 0.0], [-3.0, 1.0], [0.0, 0.0]])
    np.testing.assert_array_equal(min_norm_weights(j @ j.T), [0.0, 0.5, 0.0, 0.5])


def test_two_row_closed_forms_equal_the_general_solvers():
    rng = np.random.default_rng(8)
    for _ in range(30):
        j = rng.normal(size=(2, 4)) * 10.0 ** rng.uniform(-3, 3, size=(2, 1))
        j[1] -= 1.5 * rng.uniform() * j[0]
        g = j @ j.T
        w = min_norm_weights(g)
        v = dual_cone_weights(g)
        # the general path: the same problems as three rows, the third a copy of the first
        # scaled by 1e-3 (its constraint is the same; the min-norm point is unchanged when the
        # copy has a larger norm, so compare on the cone projection and on the min-norm value)
        g3 = np.block([[g, g[:, :1] * 1e-3], [g[:1, :] * 1e-3, g[:1, :1] * 1e-6]])
        v3 = dual_cone_weights(g3)
        for i in range(2):
            np.testing.assert_allclose(j.T @ v[i], np.vstack([j, 1e-3 * j[:1]]).T @ v3[i], atol=1e-10)
        brute = min(np.linalg.norm(t * j[0] + (1 - t) * j[1]) for t in np.linspace(0, 1, 20001))
        assert np.linalg.norm(w @ j) <= brute + 1e-9 * np.abs(j).max()


def test_the_eigenvalue_floor_changes_nothing_where_the_gramian_is_resolved():
    rng = np.random.default_rng(9)
    for t in range(10):
        k = 3 + t % 4
        j = rng.normal(size=(k, k + 3))
        j[1] = -0.9 * j[0] + 0.2 * j[1]
        g = j @ j.T
        np.testing.assert_allclose(dual_cone_weights(g), dual_cone_weights(g, floor=0.0), rtol=1e-10, atol=1e-12)


def test_canonical_order_is_equivariant():
    from mtlkit.aggregation._solvers import canonical_order

    rng = np.random.default_rng(10)
    j = rng.normal(size=(6, 4))
    g = j @ j.T
    perm = rng.permutation(6)
    a = g[np.ix_(canonical_order(g), canonical_order(g))]
    gp = g[np.ix_(perm, perm)]
    np.testing.assert_array_equal(gp[np.ix_(canonical_order(gp), canonical_order(gp))], a)
