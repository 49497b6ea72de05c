"""CAGrad: conflict-averse gradient descent."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from mtlkit._checks import check_choice, check_float
from mtlkit._registry import AGGREGATORS
from mtlkit.aggregation._base import GramianWeightedAggregator
from mtlkit.aggregation._solvers import min_norm_weights, normalized, to_numpy

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
    finds it. When no direction with ‖g_w‖ > 0 does better than g_w = 0 (possible for
    c ≥ 1 when the tasks are Pareto-stationary), the update is g₀.

    Args:
        c: radius of the ball, relative to ‖g₀‖: a non-negative float (default 0.5).
        rescale: ``"1+c^2"`` (default), ``"1+c"`` or ``"none"``: the divisor of the update.

    >>> import torch
    >>> CAGrad(c=0.5, rescale="none")(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    tensor([0.7500, 0.7500])
    """

    paper = "Liu, Liu, Jin, Stone & Liu 2021, Conflict-Averse Gradient Descent for Multi-task Learning (NeurIPS), CAGrad"
    permutation_invariant = True

    def __init__(self, *, c: float = 0.5, rescale: str = "1+c^2") -> None:
        self.c = check_float("CAGrad", "c", c, low=0.0)
        check_choice("CAGrad", "rescale", rescale, options=RESCALES)
        self.rescale = rescale

    def weights(self, gramian: Tensor) -> Tensor:
        w = cagrad_weights(to_numpy(gramian), self.c)
        divisor = {"none": 1.0, "1+c^2": 1.0 + self.c ** 2, "1+c": 1.0 + self.c}[self.rescale]
        return torch.as_tensor(w / divisor, dtype=gramian.dtype, device=gramian.device)


def cagrad_weights(g: np.ndarray, c: float) -> np.ndarray:
    """Weights of the (un-rescaled) CAGrad update ``d = Jᵀ weights`` for the Gramian ``g``."""
    b = np.full(g.shape[0], 1.0 / g.shape[0])
    w, ratio = solve_dual(g, c)
    return b + ratio * w


def solve_dual(g: np.ndarray, c: float, *, max_iter: int = 100) -> tuple[np.ndarray, float]:
    """``(w, c‖g₀‖/‖g_w‖)`` at the optimum of CAGrad's dual problem (ratio 0 when g_w = 0)."""
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
