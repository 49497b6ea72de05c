"""Reusable assertions and matrix families for the aggregator property suite.

Each property is stated once here and run over every registered aggregator and every family
of Jacobians, so a new method is tested by registering it.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable

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
    """Call quietly: NashMTL's documented fallback warns on Pareto-stationary inputs."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="NashMTL", category=RuntimeWarning)
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


def duplicated_rows(seed: int = 0, dtype=torch.float64) -> Tensor:
    j = random_matrix(3, 6, seed, dtype)
    return torch.cat([j, j[:1]])


def opposite_rows(dtype=torch.float64) -> Tensor:
    return torch.tensor([[1.0, 2.0, -1.0], [-1.0, -2.0, 1.0], [0.5, 0.0, 1.0]], dtype=dtype)


FAMILIES: dict[str, Callable[[], Tensor]] = {
    "random": lambda: random_matrix(),
    "conflicting": lambda: conflicting(),
    "low_rank": lambda: low_rank(),
    "k_gt_p": lambda: more_tasks_than_params(),
    "zero_row": lambda: with_zero_row(),
    "duplicated": lambda: duplicated_rows(),
    "opposite": lambda: opposite_rows(),
    "zero": lambda: torch.zeros(3, 5, dtype=torch.float64),
    "tiny": lambda: 1e-12 * conflicting(),
    "huge": lambda: 1e12 * conflicting(),
    "tiny_f32": lambda: 1e-12 * conflicting(dtype=torch.float32),
    "huge_f32": lambda: 1e12 * conflicting(dtype=torch.float32),
}


# --------------------------------------------------------------------------- assertions
def assert_shape_dtype_device(agg: Aggregator, j: Tensor) -> None:
    d = run(agg, j)
    assert d.shape == (j.shape[1],), f"{agg}: shape {tuple(d.shape)} for a {tuple(j.shape)} Jacobian"
    assert d.dtype == j.dtype, f"{agg}: dtype {d.dtype} for a {j.dtype} Jacobian"
    assert d.device == j.device
    if isinstance(agg, GramianWeightedAggregator):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="NashMTL", category=RuntimeWarning)
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


def constructor_params(name: str) -> list[str]:
    sig = inspect.signature(AGGREGATORS.get(name).__init__)
    return [p.name for p in sig.parameters.values() if p.kind is p.KEYWORD_ONLY]


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
