"""CAGrad: conflict-averse gradient descent."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from mtlkit._checks import check_choice, check_float
from mtlkit._registry import AGGREGATORS
from mtlkit.aggregation._base import GramianWeightedAggregator
from mtlkit.aggregation._solvers import (
    DualCone,
    eigenvalue_floor,
    min_norm_weights,
    normalized,
    row_normalized,
    to_numpy,
)

RESCALES = ("none", "1+c^2", "1+c")


@AGGREGATORS.register()
class CAGrad(GramianWeightedAggregator):
    """Conflict-averse gradient descent: within a ball around the average gradient g₀, the
    direction that maximises the worst task's improvement.

    Liu, Liu, Jin, Stone & Liu, "Conflict-Averse Gradient Descent for Multi-task Learning",
    NeurIPS 2021. With g₀ = (1/K) Σ g_i and g_w = Σ w_i g_i, the dual problem is
    ``min_{w ∈ simplex} ⟨g_w, g₀⟩ + c‖g₀‖ ‖g_w‖`` and the update is
    ``d = g₀ + c‖g₀‖ g_w / ‖g_w‖``, divided by 1, 1 + c² or 1 + c (``rescale``; the
    authors' code defaults to 1 + c²). c = 0 gives the average gradient.

    Solved on the Gramian to machine precision, without a general-purpose solver: at the
    optimum w also minimises ``⟨g_w, g₀⟩ + (λ/2)‖g_w‖²`` with ``λ = c‖g₀‖/‖g_w‖`` — the
    minimum-norm point of the hull of the shifted gradients ``g_i + g₀/λ`` — so a
    one-dimensional root search on λ (safeguarded regula falsi) over exact min-norm solves
    finds it.

    The degenerate case. When the optimum of the dual has g_w = 0 — 0 lies in the convex hull
    of the gradients and the ball reaches their dual cone ``C = {x : ⟨g_i, x⟩ ≥ 0 ∀i}``,
    i.e. dist(g₀, C) ≤ c‖g₀‖, which always holds for c ≥ 1 since d = 0 is then in the ball —
    the paper's formula is 0/0 (the authors' code adds 1e-8 to ‖g_w‖ and returns a direction
    set by that constant, which can conflict; returning g₀ conflicts too). The primal problem
    is still well defined: its optimal value max_d min_i ⟨g_i, d⟩ is 0 (0 in the hull bounds
    it above; the ball meets C), and its solutions are the points of the ball that conflict
    with no task, ``B ∩ C``. Of these, CAGrad returns the one closest to g₀ — the update it
    would take if it could, moved as little as needed to conflict with no task: the projection
    π_C(g₀) (inside the ball, since 0 ∈ C and ‖π_C(g₀) − g₀‖ ≤ ‖g₀‖ ≤ c‖g₀‖ for c ≥ 1;
    and for c < 1 because B ∩ C is not empty). It is a weighting of the rows with weights
    ≥ 1/K, so it is 0 only when the tasks are strongly stationary — d = 0, the other natural
    choice, would stop at every Pareto-stationary point (as MGDA does). Then the rescaling.

    Args:
        c: radius of the ball, relative to ‖g₀‖: a non-negative float (default 0.5).
        rescale: ``"1+c^2"`` (default), ``"1+c"`` or ``"none"``: the divisor of the update.

    >>> import torch
    >>> CAGrad(c=0.5, rescale="none")(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    tensor([0.7500, 0.7500])
    """

    paper = "Liu, Liu, Jin, Stone & Liu 2021, Conflict-Averse Gradient Descent for Multi-task Learning (NeurIPS), CAGrad"
    permutation_invariant = True
    strongly_stationary = True  # weights ≥ 1/K in every case (see above)

    @property
    def equals_mean_for_one_task(self) -> bool:  # type: ignore[override]
        """One task: d = (1 + c) g / divisor — the gradient for c = 0 or ``rescale="1+c"``."""
        return self.c == 0.0 or self.rescale == "1+c"

    def __init__(self, *, c: float = 0.5, rescale: str = "1+c^2") -> None:
        self.c = check_float("CAGrad", "c", c, low=0.0)
        check_choice("CAGrad", "rescale", rescale, options=RESCALES)
        self.rescale = rescale

    def weights(self, gramian: Tensor) -> Tensor:
        w = cagrad_weights(to_numpy(gramian), self.c, floor=eigenvalue_floor(gramian.dtype))
        divisor = {"none": 1.0, "1+c^2": 1.0 + self.c ** 2, "1+c": 1.0 + self.c}[self.rescale]
        return torch.as_tensor(w / divisor, dtype=gramian.dtype, device=gramian.device)


def cagrad_weights(g: np.ndarray, c: float, *, floor: float | None = None) -> np.ndarray:
    """Weights of the (un-rescaled) CAGrad update ``d = Jᵀ weights`` for the Gramian ``g``:
    ``1/K + (c‖g₀‖/‖g_w‖) w`` at the optimum ``w`` of the dual, or, where that optimum has
    ``g_w = 0`` (c > 0), the weights of the projection of g₀ onto the dual cone of the rows
    (see :class:`CAGrad`; ``floor``: :func:`~mtlkit.aggregation._solvers.eigenvalue_floor`)."""
    b = np.full(g.shape[0], 1.0 / g.shape[0])
    w, ratio = solve_dual(g, c)
    if ratio == 0.0 and c > 0.0:
        return projection_weights(g, b, eigenvalue_floor() if floor is None else floor)
    return b + ratio * w


def projection_weights(g: np.ndarray, b: np.ndarray, floor: float) -> np.ndarray:
    """``v ≥ b`` with ``Jᵀv = π_C(Jᵀb)``, the projection of the combination ``Jᵀb`` (``b ≥ 0``)
    onto the dual cone ``C = {x : J x ≥ 0}``, from the Gramian ``g`` (zero rows keep ``b``)."""
    gh, n = row_normalized(g)
    live = np.flatnonzero(n > 0.0)
    v = b.astype(np.float64).copy()
    if live.size:
        mu = DualCone(gh[np.ix_(live, live)], floor).project(n[live] * b[live])
        v[live] += mu / n[live]
    return v


def solve_dual(g: np.ndarray, c: float, *, max_iter: int = 100) -> tuple[np.ndarray, float]:
    """``(w, c‖g₀‖/‖g_w‖)`` at the optimum of CAGrad's dual problem (ratio 0 when g_w = 0 there:
    then ``w`` is the min-norm point of the hull, a dual optimum, and the update is not given
    by the paper's formula — see :func:`cagrad_weights`)."""
    k = g.shape[0]
    b = np.full(k, 1.0 / k)
    gn, s = normalized(g)
    if s == 0.0 or c == 0.0:
        return b, 0.0
    h = gn @ b
    g0sq = float(b @ h)
    if g0sq <= 1e-30:
        return b, 0.0
    rho = c * math.sqrt(g0sq)

    last = np.ones(k, dtype=bool)

    def solve(mu: float) -> tuple[float, np.ndarray]:
        nonlocal last
        q = gn + mu * (h[:, None] + h[None, :]) + (mu * mu * g0sq)
        w = min_norm_weights(q, support=last)
        last = w > 0
        return math.sqrt(max(float(w @ gn @ w), 0.0)) - rho * mu, w

    # h(μ) = ‖g_w(μ)‖ − ρμ is positive at 0⁺ unless g_w = 0 is optimal, and negative at `hi`.
    # Near 0 the sign of h is lost in round-off (‖g_w‖ is a difference of O(1) terms), so the
    # bracket's left end is found by stepping down from `hi` until h is clearly positive.
    hi = 2.0 * math.sqrt(float(np.max(np.diag(gn)))) / rho
    f_hi, w = solve(hi)
    noise = 1e-6
    f_lo, w_lo = solve(0.0)
    lo = 0.0
    if f_lo <= noise:
        mu, found = hi, False
        for _ in range(40):
            mu *= 0.25
            f, w_mu = solve(mu)
            if f > noise:
                lo, f_lo, w_lo, found = mu, f, w_mu, True
                break
            if f < 0.0:
                hi, f_hi, w = mu, f, w_mu
        if not found:
            return w_lo, 0.0
    if f_hi < 0.0:
        side = 0
        for _ in range(max_iter):
            mu = (lo * f_hi - hi * f_lo) / (f_hi - f_lo)
            f, w = solve(mu)
            if abs(f) <= 1e-13 * max(1.0, rho * mu) or hi - lo <= 1e-15 * hi:
                break
            if f > 0:
                lo, f_lo = mu, f
                if side == 1:
                    f_hi *= 0.5
                side = 1
            else:
                hi, f_hi = mu, f
                if side == -1:
                    f_lo *= 0.5
                side = -1
    norm_w = math.sqrt(max(float(w @ gn @ w), 0.0))
    if norm_w <= 0.0:
        return w, 0.0
    return w, rho / norm_w
