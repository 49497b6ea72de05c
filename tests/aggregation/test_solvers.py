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


def test_dual_cone_scipy_path_equals_own_solver(monkeypatch):
    import mtlkit.aggregation._solvers as solvers

    rng = np.random.default_rng(3)
    j = rng.normal(size=(24, 40)) + 0.3 * rng.normal(size=(1, 40))
    j[1] = -0.7 * j[0]
    g = j @ j.T
    assert g.shape[0] >= solvers.SCIPY_NNLS_MIN_K
    fast = dual_cone_weights(g)  # SciPy's compiled NNLS
    monkeypatch.setattr(solvers, "SCIPY_NNLS_MIN_K", 10**9)
    own = dual_cone_weights(g)
    np.testing.assert_allclose(fast, own, atol=1e-8)
    assert (g @ own.T >= -1e-9 * np.abs(g).max()).all()  # every projection is in the dual cone


def test_blocked_gramian_equals_the_product():
    import torch

    from mtlkit.aggregation._base import gramian

    j = torch.randn(6, 70000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(gramian(j), j @ j.T, rtol=1e-12, atol=1e-9)
    small = j[:, :100]
    torch.testing.assert_close(gramian(small), small @ small.T)
