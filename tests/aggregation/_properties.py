"""Reusable assertions and matrix families for the aggregator property suite.

Each property is stated once here and run over every registered aggregator and every family
of Jacobians, so a new method is tested by registering it. The properties a method claims
are its class-level flags (``non_conflicting``, ``permutation_invariant``,
``linear_under_scaling``, ``strongly_stationary``, ``equals_mean_for_one_task``, read on a
default instance); :func:`property_table` renders them as the table of
``docs/aggregation.md``, and the suite checks that table exactly: every ✓ holds on every
family, and every ✗ fails clearly on at least one.

Each check returns a *badness*: the measured defect over the round-off allowed for it (see
:func:`magnitude`). At most 1 means the property holds; at least :data:`CLEAR` means it
clearly fails (a counterexample, far beyond round-off).

Run ``python tests/aggregation/_properties.py`` to print the table, ``--write`` to put it in
``docs/aggregation.md``.
"""

from __future__ import annotations

import functools
import inspect
import math
import re
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from mtlkit._registry import AGGREGATORS
from mtlkit.aggregation import Aggregator, GramianWeightedAggregator


def names() -> list[str]:
    return AGGREGATORS.names()


def build(name: str, **params) -> Aggregator:
    """A fresh default instance (randomized methods get their default seed, so two builds
    draw the same numbers)."""
    return AGGREGATORS.get(name)(**params)


def run(agg: Aggregator, j: Tensor) -> Tensor:
    """Call quietly: documented fallbacks (NashMTL at Pareto-stationarity ...) warn, and the
    properties must hold for the fallback's result too."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return agg(j)


# --------------------------------------------------------------------------- families
def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_matrix(k: int = 4, p: int = 9, seed: int = 0, dtype=torch.float64) -> Tensor:
    return torch.randn(k, p, generator=_gen(seed), dtype=dtype)


def conflicting(k: int = 4, p: int = 9, seed: int = 0, dtype=torch.float64) -> Tensor:
    """Rows with a shared component and strong pairwise conflicts."""
    j = torch.randn(k, p, generator=_gen(seed), dtype=dtype)
    j[1] = -0.8 * j[0] + 0.3 * j[1]
    return j


def low_rank(k: int = 5, p: int = 9, rank: int = 2, seed: int = 0, dtype=torch.float64) -> Tensor:
    g = _gen(seed)
    return torch.randn(k, rank, generator=g, dtype=dtype) @ torch.randn(rank, p, generator=g, dtype=dtype)


def more_tasks_than_params(seed: int = 0, dtype=torch.float64) -> Tensor:
    return torch.randn(6, 3, generator=_gen(seed), dtype=dtype)


def with_zero_row(seed: int = 0, dtype=torch.float64) -> Tensor:
    j = random_matrix(4, 7, seed, dtype)
    j[2] = 0.0
    return j


def with_zero_rows(seed: int = 0, dtype=torch.float64) -> Tensor:
    """Two zero rows among five conflicting ones."""
    j = conflicting(5, 6, seed, dtype)
    j[[0, 3]] = 0.0
    return j


def duplicated_rows(seed: int = 0, dtype=torch.float64) -> Tensor:
    j = random_matrix(3, 6, seed, dtype)
    return torch.cat([j, j[:1]])


def opposite_rows(dtype=torch.float64) -> Tensor:
    return torch.tensor([[1.0, 2.0, -1.0], [-1.0, -2.0, 1.0], [0.5, 0.0, 1.0]], dtype=dtype)


def weakly_stationary_matrix(seed: int = 0, dtype=torch.float64) -> Tensor:
    """0 in the convex hull of the rows (the last is a negative combination of two others),
    but not strongly stationary: no combination with every weight positive vanishes."""
    j = random_matrix(4, 6, seed, torch.float64)
    j[3] = -(0.7 * j[0] + 0.4 * j[1])
    return j.to(dtype)


def strongly_stationary_matrix(seed: int = 0, dtype=torch.float64) -> Tensor:
    """``Jᵀw = 0`` with every ``w_i > 0``: the last row cancels a positive combination of all
    the others."""
    j = random_matrix(4, 6, seed, torch.float64)
    j[3] = -(0.5 * j[0] + 0.8 * j[1] + 0.3 * j[2])
    return j.to(dtype)


def nearly_weakly_stationary(seed: int = 0, *, eps: float = 1e-8, dtype=torch.float64) -> Tensor:
    """K ∈ {3, 4, 5} rows in P > K dimensions, the last one a negative combination of some of
    the others plus ``eps`` times a random vector: 0 is within ``eps`` of their convex hull (the
    dual cone of the rows is a thin wedge, UPGrad's dual weights grow like 1/eps)."""
    g = _gen(1000 + seed)
    k = 3 + seed % 3
    p = k + 1 + seed % 4
    j = torch.randn(k, p, generator=g, dtype=torch.float64)
    m = 1 + seed % (k - 1)
    w = 0.2 + torch.rand(m, generator=g, dtype=torch.float64)
    j[-1] = -(w @ j[:m]) + eps * torch.randn(p, generator=g, dtype=torch.float64)
    return j.to(dtype)


def row_scales(k: int = 5, seed: int = 0, low: float = -15.0, high: float = 15.0, dtype=torch.float64) -> Tensor:
    """Conflicting rows scaled by 10^low ... 10^high (1e-15 to 1e15 by default)."""
    scales = torch.logspace(low, high, k, dtype=torch.float64)
    return (scales[:, None] * conflicting(k, 7, seed, torch.float64)).to(dtype)


def disjoint_supports(dtype=torch.float64) -> Tensor:
    """Tasks touching disjoint parameters (one task none): orthogonal rows, weakly but not
    strongly stationary (the zero row); per coordinate most entries are 0."""
    return torch.tensor([[1.0, 0.5, 0.0, 0.0, 0.0], [0.0, 0.0, 2.0, 0.0, 0.0],
                         [0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, -1.0, 0.3]], dtype=dtype)


def unnormalisable(dtype=torch.float64) -> Tensor:
    """Four rows in 3 dimensions, far from strongly stationary, where IMTL-G's normaliser
    ``1ᵀ N⁻¹ Ĝ⁺ 1`` (N: the row norms, Ĝ: the Gramian of the unit rows) vanishes: its weights
    cannot sum to 1 (the paper's formula has a pole here). Found by bisection between two
    Jacobians of opposite normaliser."""
    return torch.tensor([[-0.32705483353823417, 0.08332487340920208, -0.10959882380342972],
                         [-0.3251146943123441, 0.22308816483492958, -1.442861804973394],
                         [-1.368988684421581, 0.4835685618606915, -2.2693334197547674],
                         [-0.508431888697634, 0.1485482803263152, -0.17583142901059332]], dtype=dtype)


def mixed_sign_cancelling(dtype=torch.float64) -> Tensor:
    """Five rows in R⁴ whose unit vectors satisfy 1.92 ĝ1 + ĝ2 + ĝ3 + ĝ4 − ½ ĝ5 = 0 (mixed signs:
    not strongly stationary), with norms chosen so that Σ_i ⟨g_i, Û⁺1⟩ = 0 (ConFIG's length
    vanishes there)."""
    import numpy as np

    u = np.random.default_rng(0).normal(size=(4, 4))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    g1 = -(u[0] + u[1] + u[2] - 0.5 * u[3])
    units = np.vstack([g1 / np.linalg.norm(g1), u])
    p1 = units @ np.linalg.pinv(units) @ np.ones(5)
    norms = np.ones(5)
    norms[0] = -(p1[1:].sum()) / p1[0]
    return torch.tensor(norms[:, None] * units, dtype=dtype)


def scaled_zero_row(scale: float, dtype=torch.float64) -> Tensor:
    """Four random rows, one of them zero, scaled: one step of a simplex method whose step is
    larger than the simplex sends the weights to the zero row's vertex (MoCo, MoDo)."""
    return scale * random_matrix(4, 7, dtype=dtype).index_fill(0, torch.tensor([2]), 0.0)


FAMILIES: dict[str, Callable[[], Tensor]] = {
    "random": lambda: random_matrix(),
    "conflicting": lambda: conflicting(),
    "low_rank": lambda: low_rank(),
    "k_gt_p": lambda: more_tasks_than_params(),
    "zero_row": lambda: with_zero_row(),
    "zero_rows": lambda: with_zero_rows(),
    "disjoint": lambda: disjoint_supports(),
    "duplicated": lambda: duplicated_rows(),
    "opposite": lambda: opposite_rows(),
    "weakly_stationary": lambda: weakly_stationary_matrix(),
    "strongly_stationary": lambda: strongly_stationary_matrix(),
    "nearly_stationary": lambda: nearly_weakly_stationary(0),
    "nearly_stationary_k5": lambda: nearly_weakly_stationary(2),
    "row_scales": lambda: row_scales(),
    "row_scales_f32": lambda: row_scales(dtype=torch.float32),
    "unnormalisable": lambda: unnormalisable(),
    "zero": lambda: torch.zeros(3, 5, dtype=torch.float64),
    "tiny": lambda: 1e-12 * conflicting(),
    "huge": lambda: 1e12 * conflicting(),
    "tiny_f32": lambda: 1e-12 * conflicting(dtype=torch.float32),
    "huge_f32": lambda: 1e12 * conflicting(dtype=torch.float32),
}

#: one-task Jacobians: a gradient at scales 1e-15 ... 1e15, in both dtypes
ONE_TASK: dict[str, Callable[[], Tensor]] = {
    f"{scale:g}_{str(dtype).removeprefix('torch.')}": (
        lambda scale=scale, dtype=dtype: (scale * torch.tensor([[0.3, -1.2, 2.0, 0.0, 0.7]],
                                                               dtype=torch.float64)).to(dtype))
    for scale in (1e-15, 1e-6, 1.0, 1e6, 1e15) for dtype in (torch.float64, torch.float32)
}


# --------------------------------------------------------------------------- round-off
#: a defect this many times its allowance is a clear failure (a counterexample)
CLEAR = 1e3


def rel_tol(dtype: torch.dtype) -> float:
    """Allowed relative defect for a computation in ``dtype``: 1e4 eps (2.2e-12 in float64,
    1.2e-3 in float32, whose Gramian carries about 1e-7 √P relative error)."""
    return 1e4 * float(torch.finfo(dtype).eps)


def magnitude(agg: Aggregator, j: Tensor) -> tuple[Tensor, float]:
    """``(d, m)``: the direction, and the size of the terms it is summed from — ``Σ_i |w_i|
    ‖g_i‖`` for a weighting of the rows (where large weights cancel, the round-off of d is
    that of its terms, not of d), else ``Σ_i ‖g_i‖`` — at least ‖d‖. Round-off in d, and in
    ⟨g_i, d⟩ relative to ‖g_i‖, is a multiple of eps·m."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = agg.aggregate(j)
    norms = j.double().norm(dim=1)
    m = float(out.weights.double().abs() @ norms) if out.weights is not None else float(norms.sum())
    return out.direction, max(m, float(out.direction.double().norm()))


def _ratio(defect: float, allowed: float) -> float:
    if defect <= 0.0:
        return 0.0
    return math.inf if allowed <= 0.0 else defect / allowed


# --------------------------------------------------------------------------- properties
def non_conflicting(name: str, j: Tensor) -> float:
    """⟨g_i, d⟩ ≥ 0 for every row (Quinton & Rey 2024, def. 1): badness = the worst
    −⟨g_i, d⟩ over ``rel_tol · ‖g_i‖ · magnitude`` (relative to each row, so a row 1e-30
    times smaller than another is held to the same standard)."""
    d, m = magnitude(build(name), j)
    jd = j.double()
    dots = jd @ d.double()
    allowed = rel_tol(j.dtype) * jd.norm(dim=1) * m
    return max((_ratio(float(-x), float(a)) for x, a in zip(dots, allowed)), default=0.0)


def permutation_invariant(name: str, j: Tensor, seed: int = 0) -> float:
    """The same direction for the rows in any order (fresh instances, so a randomized method
    draws the same numbers): badness over three random permutations."""
    d, m = magnitude(build(name), j)
    g = _gen(seed)
    worst = 0.0
    for _ in range(3):
        perm = torch.randperm(j.shape[0], generator=g)
        dp, mp = magnitude(build(name), j[perm])
        err = float((d.double() - dp.double()).abs().max())
        worst = max(worst, _ratio(err, rel_tol(j.dtype) * max(m, mp)))
    return worst


def linear_under_scaling(name: str, j: Tensor, seed: int = 0) -> float:
    """``c ↦ A(diag(c) J)`` is linear for ``c > 0`` (Quinton & Rey 2024, def. 2):
    ``A(diag(αc₁ + βc₂) J) = α A(diag(c₁) J) + β A(diag(c₂) J)`` for random c ∈ [0.1, 10]^K,
    α, β ∈ [0.5, 2]; three draws."""
    g = _gen(seed)
    k = j.shape[0]
    worst = 0.0
    for _ in range(3):
        c1, c2 = (10.0 ** (2 * torch.rand(k, generator=g, dtype=torch.float64) - 1) for _ in range(2))
        a, b = (float(0.5 + 1.5 * torch.rand((), generator=g, dtype=torch.float64)) for _ in range(2))

        def scaled(c: Tensor) -> Tensor:
            return (c[:, None] * j.double()).to(j.dtype)

        x, mx = magnitude(build(name), scaled(a * c1 + b * c2))
        x1, m1 = magnitude(build(name), scaled(c1))
        x2, m2 = magnitude(build(name), scaled(c2))
        err = float((x.double() - (a * x1.double() + b * x2.double())).abs().max())
        worst = max(worst, _ratio(err, rel_tol(j.dtype) * (mx + a * m1 + b * m2)))
    return worst


@functools.lru_cache(maxsize=256)
def _stationarity_gap(key: bytes, shape: tuple[int, int]) -> float:
    from scipy.optimize import nnls

    j = np.frombuffer(key, dtype=np.float64).reshape(shape)
    # min over w ≥ 1 of ‖Jᵀw‖ = ‖Jᵀ(1 + μ)‖, μ ≥ 0: 0 iff J is strongly stationary
    mu = nnls(j.T, -(j.T @ np.ones(shape[0])), maxiter=50 * shape[0] + 100)[0]
    return float(np.linalg.norm(j.T @ (1.0 + mu)))


def stationarity_gap(j: Tensor) -> float:
    """``min_{w ≥ 1} ‖Jᵀw‖`` relative to ``Σ ‖g_i‖``: 0 iff some combination of the rows with
    every weight positive vanishes (J strongly stationary); otherwise a scale-free distance."""
    jd = j.detach().double().cpu().numpy()
    total = float(np.linalg.norm(jd, axis=1).sum())
    if total == 0.0:
        return 0.0
    jn = np.ascontiguousarray(jd / total)
    return _stationarity_gap(jn.tobytes(), jn.shape)


#: a Jacobian whose stationarity gap is below this counts as (nearly) strongly stationary
STATIONARY_GAP = 1e-6
#: a method with the property returns at least this fraction of the gap
STATIONARY_FRACTION = 1e-6


def strongly_stationary(name: str, j: Tensor) -> float:
    """``A(J) = 0`` only if J is strongly stationary (``Jᵀw = 0`` for some w > 0), so a
    Jacobian with a positive gap (:func:`stationarity_gap`) gets a non-zero direction:
    badness = ``STATIONARY_FRACTION · gap · Σ‖g_i‖ / ‖A(J)‖`` (0 for a (nearly) strongly
    stationary J, where the property asks nothing)."""
    gap = stationarity_gap(j)
    if gap <= STATIONARY_GAP:
        return 0.0
    d = run(build(name), j)
    size = float(d.double().norm())
    return _ratio(STATIONARY_FRACTION * gap * float(j.double().norm(dim=1).sum()), size)


def equals_mean_for_one_task(name: str, j: Tensor) -> float:
    """With one task (``j`` is 1×P) the result is its gradient."""
    d = run(build(name), j)
    err = float((d.double() - j[0].double()).abs().max())
    return _ratio(err, rel_tol(j.dtype) * float(j.double().norm()))


#: for strong stationarity also the Jacobians where a method's direction vanishes although
#: they are not strongly stationary (its direction is round-off there, so no other property
#: is judged on them)
STATIONARITY_FAMILIES: dict[str, Callable[[], Tensor]] = {
    **FAMILIES,
    "zero_row_x10": lambda: scaled_zero_row(10.0),
    "zero_row_x100": lambda: scaled_zero_row(100.0),
    "mixed_sign_cancelling": lambda: mixed_sign_cancelling(),
}


@dataclass(frozen=True)
class Property:
    flag: str  #: the class-level flag that claims it
    title: str  #: column of the docs table
    check: Callable[[str, Tensor], float]
    families: dict[str, Callable[[], Tensor]]


PROPERTIES: dict[str, Property] = {p.flag: p for p in (
    Property("non_conflicting", "non-conflicting", non_conflicting, FAMILIES),
    Property("permutation_invariant", "permutation-invariant", permutation_invariant, FAMILIES),
    Property("linear_under_scaling", "linear under scaling", linear_under_scaling, FAMILIES),
    Property("strongly_stationary", "strongly stationary", strongly_stationary, STATIONARITY_FAMILIES),
    Property("equals_mean_for_one_task", "Mean for one task", equals_mean_for_one_task, ONE_TASK),
)}


def claims(name: str) -> dict[str, bool]:
    """The properties a default instance of the method claims (its flags)."""
    agg = build(name)
    return {flag: bool(getattr(agg, flag)) for flag in PROPERTIES}


# --------------------------------------------------------------------------- docs table
DOCS = Path(__file__).resolve().parents[2] / "docs" / "aggregation.md"
BEGIN = "<!-- property table: generated by tests/aggregation/_properties.py, checked by test_properties.py -->"
END = "<!-- end of property table -->"


def property_table() -> str:
    """The markdown table of the flags of every registered aggregator (default instance)."""
    head = "| key | class | " + " | ".join(p.title for p in PROPERTIES.values()) + " |"
    rule = "|---|---|" + "---|" * len(PROPERTIES)
    rows = []
    for name in names():
        c = claims(name)
        cells = " | ".join("✓" if c[flag] else "✗" for flag in PROPERTIES)
        rows.append(f"| `{name}` | `{AGGREGATORS.get(name).__name__}` | {cells} |")
    return "\n".join([head, rule, *rows])


def documented_table(text: str | None = None) -> str:
    """The table between the markers in docs/aggregation.md."""
    text = DOCS.read_text(encoding="utf-8") if text is None else text
    match = re.search(re.escape(BEGIN) + r"\n(.*?)\n" + re.escape(END), text, flags=re.S)
    return match.group(1).strip() if match else ""


def write_table() -> None:
    text = DOCS.read_text(encoding="utf-8")
    block = f"{BEGIN}\n{property_table()}\n{END}"
    if BEGIN in text:
        text = re.sub(re.escape(BEGIN) + r".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    DOCS.write_text(text, encoding="utf-8")


# --------------------------------------------------------------------------- assertions
def assert_shape_dtype_device(agg: Aggregator, j: Tensor) -> None:
    d = run(agg, j)
    assert d.shape == (j.shape[1],), f"{agg}: shape {tuple(d.shape)} for a {tuple(j.shape)} Jacobian"
    assert d.dtype == j.dtype, f"{agg}: dtype {d.dtype} for a {j.dtype} Jacobian"
    assert d.device == j.device
    if isinstance(agg, GramianWeightedAggregator):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            w = agg.weights_of(j)
        assert w.shape == (j.shape[0],) and w.dtype == j.dtype and w.device == j.device


def assert_finite(agg: Aggregator, j: Tensor) -> None:
    d = run(agg, j)
    assert torch.isfinite(d).all(), f"{agg} gave a non-finite direction: {d}"


def assert_positive_multiple(d: Tensor, g: Tensor, tol: float = 1e-8) -> None:
    """``d = s g`` for some s > 0."""
    s = float(d @ g) / float(g @ g)
    assert s > 0, f"not a positive multiple: d={d}, g={g}"
    torch.testing.assert_close(d, s * g, atol=tol * float(g.norm()) * max(s, 1.0), rtol=0)


def assert_non_conflicting(j: Tensor, d: Tensor, tol: float = 1e-9) -> None:
    """⟨g_i, d⟩ ≥ −tol ‖g_i‖ max(‖d‖, max_j ‖g_j‖) for every row i (round-off allowance
    relative to the problem's scale, so a zero direction at Pareto-stationarity passes)."""
    dots = j @ d
    bound = -tol * j.norm(dim=1) * max(float(d.norm()), float(j.norm(dim=1).max()), 1e-300)
    assert (dots >= bound).all(), f"conflicting direction: ⟨g_i, d⟩ = {dots.tolist()}"


def assert_permutation_invariant(name: str, j: Tensor, seed: int = 0) -> None:
    perm = torch.randperm(j.shape[0], generator=_gen(seed))
    d1 = run(build(name), j)
    d2 = run(build(name), j[perm])
    scale = max(float(d1.abs().max()), float(j.abs().max()), 1e-300)
    torch.testing.assert_close(d1 / scale, d2 / scale, atol=1e-7, rtol=0)


def assert_property(name: str, flag: str, family: str, j: Tensor) -> None:
    """The claimed property ``flag`` holds for the method on ``j`` (badness ≤ 1)."""
    badness = PROPERTIES[flag].check(name, j)
    assert badness <= 1.0, (f"{AGGREGATORS.get(name).__name__} claims {flag} but breaks it on the "
                            f"'{family}' family: {badness:.3g} times the round-off allowance")


def constructor_params(name: str) -> list[str]:
    sig = inspect.signature(AGGREGATORS.get(name).__init__)
    return [p.name for p in sig.parameters.values() if p.kind is p.KEYWORD_ONLY]


if __name__ == "__main__":
    if "--write" in sys.argv[1:]:
        write_table()
        print(f"wrote the property table to {DOCS}")
    else:
        print(property_table())
