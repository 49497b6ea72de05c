"""The gradient-space methods of issue 21: FairGrad, ConFIG, MoCo, SDMGrad, MoDo, DualProj,
Krum and TrimmedMean. Each is checked against its defining property or a value worked out by
hand from the paper's formula; the registry's conformance suite (test_properties.py and the
others iterating AGGREGATORS) covers the shared contract.

Running example (as in test_hand_worked.py): two unit vectors at 120°, g1 = (1, 0),
g2 = (−1/2, √3/2), G = [[1, −½], [−½, 1]].
"""

from __future__ import annotations

import doctest
import importlib
import itertools
import math
import warnings

import numpy as np
import pytest
import torch

from mtlkit._registry import AGGREGATORS
from mtlkit.aggregation import (
    MGDA,
    ConFIG,
    DualProj,
    FairGrad,
    Krum,
    MoCo,
    MoDo,
    SDMGrad,
    TrimmedMean,
)
from mtlkit.aggregation._simplex import project_to_simplex

from ._properties import assert_non_conflicting, conflicting, low_rank, random_matrix

R3 = math.sqrt(3.0)
J120 = torch.tensor([[1.0, 0.0], [-0.5, R3 / 2]], dtype=torch.float64)
NEW = ["fairgrad", "config", "moco", "sdmgrad", "modo", "dualproj", "krum", "trimmed_mean"]


def close(a, b, tol=1e-10):
    torch.testing.assert_close(a, torch.as_tensor(b, dtype=a.dtype), rtol=0, atol=tol)


def rel_close(a, b, tol):
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    assert float((a - b).norm()) <= tol * max(float(b.norm()), 1e-300), f"{a} vs {b}"


# --------------------------------------------------------------------------- registry
def test_the_methods_are_registered_under_their_file_stems():
    assert set(NEW) <= set(AGGREGATORS.names())
    names = {"fairgrad": "FairGrad", "config": "ConFIG", "moco": "MoCo", "sdmgrad": "SDMGrad",
             "modo": "MoDo", "dualproj": "DualProj", "krum": "Krum", "trimmed_mean": "TrimmedMean"}
    for key, cls in names.items():
        assert AGGREGATORS.get(key).__name__ == cls
        assert "arXiv:" in AGGREGATORS.get(key).paper


def test_capability_flags():
    assert FairGrad.non_conflicting and DualProj.non_conflicting
    assert not (ConFIG.non_conflicting or SDMGrad.non_conflicting or MoCo.non_conflicting)
    assert MoCo.stateful and MoDo.stateful
    assert not any(c.stateful for c in (FairGrad, ConFIG, SDMGrad, DualProj, Krum, TrimmedMean))
    assert not any(c.randomized or c.needs_losses for c in (FairGrad, ConFIG, MoCo, SDMGrad, MoDo, DualProj,
                                                             Krum, TrimmedMean))
    # Gramian-based (representation level, distributed Gramian) except the two that are not
    assert all(c.gramian_based for c in (FairGrad, ConFIG, SDMGrad, MoDo, DualProj, Krum))
    assert not MoCo.gramian_based and not TrimmedMean.gramian_based


@pytest.mark.parametrize("module", ["_simplex", "fairgrad", "config", "dualproj", "sdmgrad", "krum",
                                    "trimmed_mean", "modo", "moco"])
def test_docstring_examples_run(module):
    result = doctest.testmod(importlib.import_module(f"mtlkit.aggregation.{module}"))
    assert result.attempted > 0 and result.failed == 0


# --------------------------------------------------------------------------- parameters
@pytest.mark.parametrize(("cls", "kwargs", "message"), [
    (FairGrad, {"alpha": -1.0}, "The 'alpha' parameter of FairGrad must be a positive float. Got -1.0."),
    (FairGrad, {"alpha": 0.0}, "The 'alpha' parameter of FairGrad must be a positive float. Got 0.0."),
    (SDMGrad, {"lmbd": -0.5}, "The 'lmbd' parameter of SDMGrad must be a non-negative float. Got -0.5."),
    (SDMGrad, {"lmbd": float("nan")}, "The 'lmbd' parameter of SDMGrad must be a non-negative float. Got nan."),
    (MoCo, {"beta": 0.0}, "The 'beta' parameter of MoCo must be a float in (0, 1]. Got 0.0."),
    (MoCo, {"beta": 1.5}, "The 'beta' parameter of MoCo must be a float in (0, 1]. Got 1.5."),
    (MoCo, {"gamma": -0.1}, "The 'gamma' parameter of MoCo must be a non-negative float. Got -0.1."),
    (MoCo, {"rho": "x"}, "The 'rho' parameter of MoCo must be a non-negative float. Got 'x'."),
    (MoCo, {"beta_sigma": -1}, "The 'beta_sigma' parameter of MoCo must be a non-negative float. Got -1."),
    (MoCo, {"gamma_sigma": True}, "The 'gamma_sigma' parameter of MoCo must be a non-negative float. Got True."),
    (MoDo, {"gamma": -1.0}, "The 'gamma' parameter of MoDo must be a non-negative float. Got -1.0."),
    (MoDo, {"rho": float("inf")}, "The 'rho' parameter of MoDo must be a non-negative float. Got inf."),
    (Krum, {"n_byzantine": -1}, "The 'n_byzantine' parameter of Krum must be a non-negative integer. Got -1."),
    (Krum, {"n_selected": 0}, "The 'n_selected' parameter of Krum must be a positive integer. Got 0."),
    (Krum, {"n_selected": 1.0}, "The 'n_selected' parameter of Krum must be a positive integer. Got 1.0."),
    (Krum, {"distance": "l1"}, "The 'distance' parameter of Krum must be one of 'squared', 'euclidean'. Got 'l1'."),
    (TrimmedMean, {"trim_number": 1.5},
     "The 'trim_number' parameter of TrimmedMean must be a non-negative integer. Got 1.5."),
    (TrimmedMean, {"trim_number": -1},
     "The 'trim_number' parameter of TrimmedMean must be a non-negative integer. Got -1."),
])
def test_bad_parameters_are_rejected_with_a_clear_message(cls, kwargs, message):
    with pytest.raises(ValueError) as info:
        cls(**kwargs)
    assert str(info.value) == message


def test_parameters_are_keyword_only():
    for cls in (FairGrad, SDMGrad, MoCo, MoDo, Krum, TrimmedMean):
        with pytest.raises(TypeError):
            cls(1)


# --------------------------------------------------------------------------- unclaimed flags
def _stationarity_gap(j: torch.Tensor) -> float:
    """min_{w ≥ 1} ‖Jᵀw‖ / Σ‖g_i‖: 0 iff J is strongly stationary (Jᵀw = 0 for some w > 0)."""
    nnls = pytest.importorskip("scipy.optimize").nnls
    jd = j.double().numpy()
    mu = nnls(jd.T, -(jd.T @ np.ones(jd.shape[0])))[0]
    return float(np.linalg.norm(jd.T @ (1.0 + mu))) / float(np.linalg.norm(jd, axis=1).sum())


def _config_zero_direction() -> torch.Tensor:
    """Five rows in R⁴ whose unit vectors satisfy 1.92 ĝ1 + ĝ2 + ĝ3 + ĝ4 − ½ ĝ5 = 0 (mixed
    signs: not strongly stationary), with norms chosen so that Σ_i ⟨g_i, g_u⟩ = 0."""
    u = np.random.default_rng(0).normal(size=(4, 4))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    g1 = -(u[0] + u[1] + u[2] - 0.5 * u[3])
    units = np.vstack([g1 / np.linalg.norm(g1), u])
    p1 = units @ np.linalg.pinv(units) @ np.ones(5)  # the projection of 1 on the range of Û
    assert p1[0] < 0
    norms = np.ones(5)
    norms[0] = -(p1[1:].sum()) / p1[0]  # Σ_i n_i (P1)_i = 0: the length of d is 0
    return torch.tensor(norms[:, None] * units)


@pytest.mark.parametrize(("agg", "j"), [
    (MoCo(), lambda: 10.0 * random_matrix(4, 7).index_fill(0, torch.tensor([2]), 0.0)),
    (MoDo(), lambda: 100.0 * random_matrix(4, 7).index_fill(0, torch.tensor([2]), 0.0)),
    (TrimmedMean(), lambda: torch.tensor([[1.0, 2.0], [0.0, 0.0], [-1.0, -3.0]], dtype=torch.float64)),
    (ConFIG(), _config_zero_direction),
], ids=["moco", "modo", "trimmed_mean", "config"])
def test_strong_stationarity_is_rightly_unclaimed(agg, j):
    # a zero direction for a Jacobian that is not strongly stationary. MoCo/MoDo: one step of
    # γ(G + ρI) larger than the simplex sends λ to the zero row's vertex; TrimmedMean: the
    # median of each coordinate is the zero row's; ConFIG: the length Σ⟨g_i, g_u⟩ vanishes.
    jac = j()
    assert _stationarity_gap(jac) > 1e-2
    d = agg(jac)
    assert float(d.norm()) <= 1e-12 * float(jac.norm(dim=1).sum())
    assert not type(agg).strongly_stationary


# --------------------------------------------------------------------------- FairGrad
@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0, 5.0])
@pytest.mark.parametrize("seed", range(3))
def test_fairgrad_weights_solve_the_alpha_fair_system(alpha, seed):
    # (G w)_i = w_i^{−1/α}, i.e. w^{1/α} ⊙ Gw = 1 (α = 1: w ⊙ Gw = 1, Nash-MTL's system)
    j = conflicting(k=4, p=10, seed=seed)
    w = FairGrad(alpha=alpha).weights_of(j)
    g = j @ j.T
    assert (w > 0).all()
    close(w ** (1 / alpha) * (g @ w), torch.ones(4, dtype=torch.float64), tol=1e-9)
    # every task improves by exactly w_i^{−1/α}
    close(j @ FairGrad(alpha=alpha)(j), w ** (-1 / alpha), tol=1e-9 * float((w ** (-1 / alpha)).max()))


def test_fairgrad_120_by_hand():
    # symmetric: w1 = w2 = w and (Gw)_i = w − w/2 = w/2 = w^{−1/α}, so w = 2^{α/(1+α)}.
    # α = 1: w = √2, d = √2 (g1 + g2) = (√2/2, √6/2).
    close(FairGrad(alpha=1.0).weights_of(J120), [math.sqrt(2.0)] * 2)
    close(FairGrad(alpha=1.0)(J120), [math.sqrt(2.0) / 2, math.sqrt(6.0) / 2])
    close(FairGrad(alpha=2.0).weights_of(J120), [2 ** (2 / 3)] * 2)


def test_fairgrad_orthogonal_by_hand():
    # G = diag(4, 1/4), α = 2: 4 w1 = w1^{−1/2} → w1 = 4^{−2/3}; w2/4 = w2^{−1/2} → w2 = 4^{2/3}
    j = torch.tensor([[2.0, 0.0], [0.0, 0.5]], dtype=torch.float64)
    close(FairGrad(alpha=2.0).weights_of(j), [4 ** (-2 / 3), 4 ** (2 / 3)])


@pytest.mark.parametrize("alpha", [0.5, 1.0, 3.0])
def test_fairgrad_scales_as_the_paper_says(alpha):
    # (G w)_i = w_i^{−1/α} with G → c²G gives w → c^{−2α/(1+α)} w, so d → c^{(1−α)/(1+α)} d
    j = conflicting(k=3, p=6, seed=2)
    c = 10.0
    rel_close(FairGrad(alpha=alpha)(c * j), c ** ((1 - alpha) / (1 + alpha)) * FairGrad(alpha=alpha)(j), 1e-9)


def test_fairgrad_large_alpha_tends_to_equal_improvements():
    # α → ∞: w^{−1/α} → 1, so ⟨g_i, d⟩ → 1 for every task (max-min fairness)
    j = conflicting(k=3, p=6, seed=4)
    improvements = j @ FairGrad(alpha=1e4)(j)
    close(improvements, torch.ones(3, dtype=torch.float64), tol=2e-3)


def test_fairgrad_zero_row_gets_weight_zero():
    j = conflicting(k=3, p=6, seed=1)
    with_zero = torch.cat([j[:1], torch.zeros(1, 6, dtype=j.dtype), j[1:]])
    w = FairGrad().weights_of(with_zero)
    assert w[1] == 0
    close(w[[0, 2, 3]], FairGrad().weights_of(j), tol=1e-12)


def test_fairgrad_falls_back_to_mgda_at_pareto_stationarity():
    j = torch.tensor([[1.0, 2.0], [-1.0, -2.0], [0.0, 0.0]], dtype=torch.float64)
    with pytest.warns(RuntimeWarning, match="FairGrad: the task gradients are Pareto-stationary"):
        d = FairGrad()(j)
    close(d, [0.0, 0.0])


def _fairgrad_reference(j: np.ndarray, alpha: float):
    """The optimum of Σ_i U(⟨g_i, d⟩) − ½‖d‖² (U' = u^{−α}) in 60-digit arithmetic, by Newton
    in d from the min-norm point; returns d."""
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 60
    k, p = j.shape
    jm = mp.matrix(j.tolist())
    a = mp.mpf(alpha)
    w0 = MGDA().weights_of(torch.as_tensor(j)).numpy()
    d = mp.matrix((j.T @ w0).tolist())
    d = d / (d.T * d)[0]

    def f(x):
        u = jm * x
        if min(u) <= 0:
            return -mp.inf
        total = sum(mp.log(v) for v in u) if alpha == 1 else sum(v ** (1 - a) for v in u) / (1 - a)
        return total - (x.T * x)[0] / 2

    for _ in range(200):
        u = jm * d
        w = mp.matrix([v ** (-a) for v in u])
        grad = jm.T * w - d
        if mp.norm(grad) < mp.mpf(10) ** -50:
            break
        hess = mp.eye(p) + jm.T * mp.diag([a * w[i] / u[i] for i in range(k)]) * jm
        step = mp.lu_solve(hess, grad)
        t = mp.mpf(1)
        du = jm * step
        for i in range(k):
            if du[i] < 0:
                t = min(t, mp.mpf("0.99") * u[i] / -du[i])
        f0, dec = f(d), (grad.T * step)[0]
        while f(d + t * step) < f0 + t * dec / 4:
            t /= 2
        d = d + t * step
    return np.array([float(v) for v in d])


@pytest.mark.parametrize(("alpha", "cosine"), [(1.0, -0.5), (2.0, -0.99), (0.5, -0.9999), (0.1, -0.999)])
def test_fairgrad_is_exact_against_a_high_precision_solution(alpha, cosine):
    # two nearly opposite tasks of unequal norms and a third one: the hard case of solvers in w
    rng = np.random.default_rng(7)
    j = rng.normal(size=(3, 5))
    u0 = j[0] / np.linalg.norm(j[0])
    ortho = j[1] - (j[1] @ u0) * u0
    j[1] = 3.0 * (cosine * u0 + math.sqrt(1 - cosine ** 2) * ortho / np.linalg.norm(ortho))
    d = FairGrad(alpha=alpha)(torch.as_tensor(j)).numpy()
    ref = _fairgrad_reference(j, alpha)
    assert np.linalg.norm(d - ref) <= 1e-8 * np.linalg.norm(ref), (d, ref)


# --------------------------------------------------------------------------- ConFIG
def _config_reference(j: torch.Tensor) -> torch.Tensor:
    """The paper's Eq. 2 on the Jacobian itself (torch.linalg.pinv on the unit rows)."""
    units = torch.nan_to_num(j / j.norm(dim=1, keepdim=True), 0.0)
    g_u = torch.linalg.pinv(units) @ torch.ones(j.shape[0], dtype=j.dtype)
    unit = g_u / g_u.norm()
    return (j @ unit).sum() * unit


@pytest.mark.parametrize("seed", range(4))
def test_config_has_equal_positive_cosine_with_every_gradient(seed):
    j = conflicting(k=4, p=9, seed=seed)
    d = ConFIG()(j)
    cos = (j @ d) / (j.norm(dim=1) * d.norm())
    assert (cos > 0).all()
    close(cos, cos[0].repeat(4), tol=1e-12)
    # its length is the sum of the gradients' projections on its direction
    close(d.norm(), float((j @ (d / d.norm())).sum()), tol=1e-12)


@pytest.mark.parametrize("make", [lambda: conflicting(k=4, p=9, seed=3), lambda: random_matrix(3, 5, seed=1),
                                  lambda: low_rank(k=5, p=9, rank=2, seed=2),
                                  lambda: torch.randn(6, 3, generator=torch.Generator().manual_seed(5),
                                                      dtype=torch.float64)],
                         ids=["conflicting", "random", "low_rank", "k_gt_p"])
def test_config_equals_the_papers_formula_on_the_jacobian(make):
    j = make()
    rel_close(ConFIG()(j), _config_reference(j), 1e-8)


def test_config_by_hand():
    # 120°, equal norms: x = Û⁺1 solves ⟨ĝ1, x⟩ = ⟨ĝ2, x⟩ = 1 → x = (1, √3), unit (½, √3/2);
    # length ⟨g1, ·⟩ + ⟨g2, ·⟩ = ½ + ½ = 1: d = (½, √3/2) = g1 + g2
    close(ConFIG()(J120), [0.5, R3 / 2])
    # unequal norms: the direction depends only on the unit gradients, the length on the raw
    j = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    close(ConFIG()(j), [1.5, 1.5])


def test_config_ignores_a_zero_gradient_and_scales_linearly():
    j = conflicting(k=3, p=6, seed=8)
    with_zero = torch.cat([j, torch.zeros(1, 6, dtype=j.dtype)])
    rel_close(ConFIG()(with_zero), ConFIG()(j), 1e-12)
    rel_close(ConFIG()(7.0 * j), 7.0 * ConFIG()(j), 1e-12)


# --------------------------------------------------------------------------- SDMGrad
@pytest.mark.parametrize("seed", range(4))
def test_sdmgrad_with_lambda_zero_is_mgda(seed):
    j = conflicting(k=2 + seed, p=7, seed=seed)
    rel_close(SDMGrad(lmbd=0.0)(j), MGDA()(j), 1e-10)


@pytest.mark.parametrize("seed", range(3))
def test_sdmgrad_with_large_lambda_tends_to_the_mean(seed):
    # d − g₀ = (g_w* − g₀)/(1 + λ) with g_w* in the hull: ‖d − g₀‖ ≤ max_i ‖g_i − g₀‖/(1 + λ)
    j = conflicting(k=4, p=7, seed=seed)
    mean = j.mean(dim=0)
    spread = float((j - mean).norm(dim=1).max())
    for lmbd in (1e2, 1e4, 1e6):
        assert float((SDMGrad(lmbd=lmbd)(j) - mean).norm()) <= spread / (1 + lmbd) * (1 + 1e-9)


def test_sdmgrad_by_hand():
    # g1 = (2, 0), g2 = (0, 1), λ = 1: g0 = (1, ½); shifted rows (3, ½), (1, 3/2);
    # ‖w(3, ½) + (1−w)(1, 3/2)‖² = (1+2w)² + (3/2−w)² is increasing on [0, 1] (derivative
    # 10w + 1 > 0), so w* = (0, 1) and d = (g2 + g0)/2 = (½, ¾); weights ((0,1) + (½,½))/2.
    j = torch.tensor([[2.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    close(SDMGrad(lmbd=1.0)(j), [0.5, 0.75])
    close(SDMGrad(lmbd=1.0).weights_of(j), [0.25, 0.75])


def test_sdmgrad_minimises_its_objective_over_the_simplex():
    # brute force on a grid of the 3-simplex: no point does better than w*
    j = conflicting(k=3, p=5, seed=6)
    lmbd = 0.7
    g0 = j.mean(dim=0)
    weights = SDMGrad(lmbd=lmbd).weights_of(j)
    w_star = (1 + lmbd) * weights - lmbd / 3

    def objective(w):
        return 0.5 * float((w @ j + lmbd * g0).norm() ** 2)

    assert (w_star >= -1e-12).all() and abs(float(w_star.sum()) - 1) < 1e-12
    best = objective(w_star)
    n = 60
    for a, b in itertools.product(range(n + 1), repeat=2):
        if a + b <= n:
            w = torch.tensor([a / n, b / n, (n - a - b) / n], dtype=torch.float64)
            assert objective(w) >= best - 1e-12


# --------------------------------------------------------------------------- DualProj
def test_dualproj_by_hand():
    # ḡ = (−½, ½) conflicts with g1 = (1, 0); its projection on C = {x1 ≥ 0, −2x1 + x2 ≥ 0}
    # is (0, ½) = 1·g1 + ½·g2: weights (1, ½) ≥ (½, ½)
    j = torch.tensor([[1.0, 0.0], [-2.0, 1.0]], dtype=torch.float64)
    close(DualProj()(j), [0.0, 0.5])
    close(DualProj().weights_of(j), [1.0, 0.5])


def test_dualproj_keeps_a_mean_that_conflicts_with_nothing():
    j = torch.tensor([[1.0, 0.2, 0.0], [0.5, 1.0, 0.1], [0.3, 0.0, 1.0]], dtype=torch.float64)
    assert torch.equal(DualProj().weights_of(j), torch.full((3,), 1 / 3, dtype=j.dtype))
    close(DualProj()(j), j.mean(dim=0), tol=1e-15)


@pytest.mark.parametrize("seed", range(8))
def test_dualproj_is_the_projection_of_the_mean_onto_the_dual_cone(seed):
    # KKT of min ‖x − ḡ‖² s.t. Jx ≥ 0 (sufficient: the problem is convex): with d = Jᵀv,
    # d − ḡ = Jᵀμ for μ = v − 1/K ≥ 0, Jd ≥ 0, μ_i (Jd)_i = 0
    k = 2 + seed % 5
    j = conflicting(k=k, p=6, seed=seed) if seed % 2 else low_rank(k=k, p=6, rank=2, seed=seed)
    v = DualProj().weights_of(j)
    d = DualProj()(j)
    mu = v - 1.0 / k
    scale = float(j.norm(dim=1).max()) ** 2
    assert (mu >= -1e-12).all()
    assert_non_conflicting(j, d)
    assert float((mu * (j @ d)).abs().max()) <= 1e-9 * scale * max(float(mu.abs().max()), 1.0)
    rel_close(d - j.mean(dim=0), mu @ j, 1e-9)


# --------------------------------------------------------------------------- Krum
def _krum_reference(j: torch.Tensor, f: int, m: int, squared: bool) -> torch.Tensor:
    """Blanchard et al.'s definition, row by row (K ≥ f + 3)."""
    k = j.shape[0]
    scores = []
    for i in range(k):
        dists = sorted(float((j[i] - j[r]).norm()) ** (2 if squared else 1) for r in range(k) if r != i)
        scores.append(sum(dists[:k - f - 2]))
    chosen = sorted(range(k), key=lambda i: scores[i])[:m]
    return j[chosen].mean(dim=0)


@pytest.mark.parametrize("squared", [True, False])
@pytest.mark.parametrize(("f", "m"), [(0, 1), (1, 1), (2, 1), (1, 3), (0, 4)])
@pytest.mark.parametrize("seed", range(3))
def test_krum_picks_the_rows_closest_to_their_neighbours(seed, f, m, squared):
    j = random_matrix(7, 5, seed=seed)
    j[seed] += 4.0  # an outlier
    agg = Krum(n_byzantine=f, n_selected=m, distance="squared" if squared else "euclidean")
    close(agg(j), _krum_reference(j, f, m, squared), tol=1e-12)


def test_krum_leaves_the_outlier_out():
    j = torch.tensor([[1.0, 0.0], [1.1, 0.0], [1.0, 0.2], [-9.0, 5.0]], dtype=torch.float64)
    # 2 neighbours each, squared distances: 0.01 + 0.04, 0.01 + 0.05, 0.04 + 0.05, ~2e2
    close(Krum()(j), [1.0, 0.0])
    close(Krum(n_selected=3).weights_of(j), [1 / 3, 1 / 3, 1 / 3, 0.0])


def test_krum_ties_share_the_selection():
    j = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    close(Krum()(j), [0.5, 0.5])  # two tasks always tie
    square = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]], dtype=torch.float64)
    close(Krum().weights_of(square), [0.25] * 4)  # all four tie
    close(Krum(n_byzantine=3)(j[:1]), [1.0, 0.0])  # one task: its gradient, whatever f


def test_krum_squared_and_euclidean_can_disagree():
    # points on a line, f = 2 → 2 neighbours each. Row 0 (at 0): neighbours at 1 and 3,
    # Σd = 4, Σd² = 10; row 3 (at 10): neighbours at 2 and 2.1, Σd = 4.1, Σd² = 8.41; the
    # others score more either way. The paper (squared) picks row 3, TorchJD (distances) row 0.
    j = torch.tensor([[0.0], [1.0], [-3.0], [10.0], [8.0], [12.1]], dtype=torch.float64)
    close(Krum(n_byzantine=2)(j), [10.0])
    close(Krum(n_byzantine=2, distance="euclidean")(j), [0.0])
    for squared in (True, False):
        agg = Krum(n_byzantine=2, distance="squared" if squared else "euclidean")
        close(agg(j), _krum_reference(j, 2, 1, squared))


# --------------------------------------------------------------------------- TrimmedMean
@pytest.mark.parametrize("b", [0, 1, 2, 3])
def test_trimmed_mean_drops_the_extremes_per_coordinate(b):
    j = random_matrix(7, 6, seed=b)
    expected = torch.stack([torch.tensor(sorted(j[:, c].tolist())[b:7 - b], dtype=j.dtype).mean()
                            for c in range(6)])
    close(TrimmedMean(trim_number=b)(j), expected, tol=1e-14)


def test_trimmed_mean_by_hand_and_with_few_tasks():
    j = torch.tensor([[1.0, -5.0], [2.0, 0.0], [30.0, 1.0]], dtype=torch.float64)
    close(TrimmedMean()(j), [2.0, 0.0])  # the medians
    close(TrimmedMean(trim_number=5)(j), [2.0, 0.0])  # at most ⌊(K−1)/2⌋ = 1 trimmed per end
    close(TrimmedMean(trim_number=1)(j[:2]), j[:2].mean(dim=0))  # two tasks: the mean
    close(TrimmedMean(trim_number=0)(j), j.mean(dim=0))


# --------------------------------------------------------------------------- MoDo
def test_modo_two_steps_by_hand():
    # G = diag(1, 4), γ = ½, ρ = 0. λ₀ = (½, ½): λ₀ − ½Gλ₀ = (¼, −½) → Π = (7/8, 1/8);
    # λ₁ − ½Gλ₁ = (7/16, −1/8) → Π: θ = (7/16 − 1/8 − 1)/2 = −11/32 → (25/32, 7/32)
    j = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    modo = MoDo(gamma=0.5, rho=0.0)
    close(modo.weights_of(j), [7 / 8, 1 / 8])
    close(modo(j), [25 / 32, 7 / 16])
    assert modo.lambda_ == pytest.approx({0: 25 / 32, 1: 7 / 32})


def test_modo_with_rho_by_hand():
    # ρ = 1: λ₀ − ½(G + I)λ₀ = (½ − ½, ½ − 5/4) = (0, −¾) → Π = (7/8, 1/8)
    j = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    close(MoDo(gamma=0.5, rho=1.0).weights_of(j), [7 / 8, 1 / 8])


def test_modo_gamma_zero_is_the_mean():
    j = conflicting(k=3, p=5)
    modo = MoDo(gamma=0.0)
    for _ in range(3):
        close(modo(j), j.mean(dim=0))


def test_modo_repeated_on_one_jacobian_converges_to_mgda():
    # projected gradient descent on ½‖Jᵀλ‖² over the simplex: its limit is MGDA's min-norm point
    j = conflicting(k=3, p=6, seed=3)
    g = j @ j.T
    modo = MoDo(gamma=1.0 / float(torch.linalg.eigvalsh(g).max()), rho=0.0)
    for _ in range(3000):
        d = modo(j)
    rel_close(d, MGDA()(j), 1e-8)


def test_modo_keeps_the_weight_of_an_absent_task():
    modo = MoDo(gamma=0.1)
    modo(conflicting(k=3, p=5, seed=1), tasks=[0, 1, 2])
    before = modo.lambda_
    modo(conflicting(k=2, p=5, seed=2), tasks=[0, 2])
    assert modo.lambda_[1] == before[1]
    assert modo.lambda_[0] + modo.lambda_[2] == pytest.approx(1.0)


# --------------------------------------------------------------------------- MoCo
def _moco_reference(jacobians, beta, gamma, rho, beta_sigma, gamma_sigma):
    """Algorithm 1 of the paper, written plainly (y starts at the first gradient)."""
    y, lam, out = None, None, []
    for step, j in enumerate(jacobians, start=1):
        b = beta * step ** -beta_sigma
        c = gamma * step ** -gamma_sigma
        y = j.clone() if y is None else y - b * (y - j)
        k = j.shape[0]
        lam = torch.full((k,), 1.0 / k, dtype=torch.float64) if lam is None else lam
        step_ = (lam - c * ((y @ y.T) @ lam + rho * lam)).numpy()
        lam = torch.as_tensor(project_to_simplex(step_))
        out.append(lam @ y)
    return out


def test_moco_follows_the_papers_updates():
    jacobians = [conflicting(k=3, p=6, seed=s) for s in range(6)]
    params = {"beta": 0.3, "gamma": 0.05, "rho": 0.1, "beta_sigma": 0.5, "gamma_sigma": 0.25}
    moco = MoCo(**params)
    got = [moco(j) for j in jacobians]
    for a, b in zip(got, _moco_reference(jacobians, **params)):
        close(a, b, tol=1e-12)


def test_moco_tracks_the_gradients():
    j1, j2 = conflicting(k=2, p=4, seed=1), conflicting(k=2, p=4, seed=2)
    moco = MoCo(beta=0.5, beta_sigma=1.0)
    moco(j1)
    close(torch.stack([moco.tracked_[0], moco.tracked_[1]]), j1, tol=0.0)
    moco(j2)  # β₂ = 0.5 / 2
    close(torch.stack([moco.tracked_[0], moco.tracked_[1]]), j1 + 0.25 * (j2 - j1), tol=1e-15)


def test_moco_without_tracking_is_modo():
    # β = 1 (y = the current gradient) and constant γ: the same update as MoDo with one batch
    moco = MoCo(beta=1.0, gamma=0.2, rho=0.05, beta_sigma=0.0, gamma_sigma=0.0)
    modo = MoDo(gamma=0.2, rho=0.05)
    for s in range(5):
        j = conflicting(k=4, p=6, seed=s)
        close(moco(j), modo(j), tol=1e-12)


def test_moco_keeps_the_state_of_an_absent_task_and_restarts_on_a_new_size():
    moco = MoCo()
    j = conflicting(k=3, p=5, seed=1)
    moco(j, tasks=[0, 1, 2])
    y1 = moco.tracked_[1]
    moco(conflicting(k=2, p=5, seed=2), tasks=[0, 2])
    close(moco.tracked_[1], y1, tol=0.0)
    wider = conflicting(k=3, p=7, seed=3)  # e.g. another batch size at representation level
    moco(wider, tasks=[0, 1, 2])
    close(moco.tracked_[1], wider[1], tol=0.0)


def test_moco_leaves_its_state_alone_on_a_non_finite_jacobian():
    moco = MoCo()
    moco(conflicting(k=2, p=4, seed=1))
    state = moco.state_dict()
    bad = conflicting(k=2, p=4, seed=2)
    bad[0, 1] = float("nan")
    assert not torch.isfinite(moco(bad)).all()
    after = moco.state_dict()
    assert after["step"] == state["step"] and after["lambda"] == state["lambda"]
    for t in state["y"]:
        assert torch.equal(after["y"][t], state["y"][t])


def test_modo_leaves_its_state_alone_on_a_non_finite_gramian():
    modo = MoDo(gamma=0.1)
    modo(conflicting(k=2, p=4, seed=1))
    before = modo.lambda_
    bad = conflicting(k=2, p=4, seed=2)
    bad[0, 1] = float("inf")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        modo(bad)
    assert modo.lambda_ == before


# --------------------------------------------------------------------------- simplex projection
@pytest.mark.parametrize("seed", range(5))
def test_simplex_projection_is_the_euclidean_projection(seed):
    rng = np.random.default_rng(seed)
    v = rng.normal(size=5) * 3
    x = project_to_simplex(v)
    assert (x >= 0).all() and abs(x.sum() - 1) < 1e-12
    # optimality: ⟨v − x, y − x⟩ ≤ 0 for every vertex y of the simplex
    for i in range(5):
        e = np.eye(5)[i]
        assert (v - x) @ (e - x) <= 1e-12
    assert project_to_simplex(np.array([1e30, -1e30])).tolist() == [1.0, 0.0]
