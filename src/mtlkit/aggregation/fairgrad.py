"""FairGrad: the update that allocates the decrease of the losses α-fairly among the tasks."""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from torch import Tensor

from mtlkit._checks import check_float
from mtlkit._registry import AGGREGATORS
from mtlkit.aggregation._base import GramianWeightedAggregator
from mtlkit.aggregation._solvers import (
    canonical_order,
    factor,
    min_norm_weights,
    row_normalized,
    to_numpy,
)

#: the min-norm point of the hull of the unit gradients below this squared norm: the gradients
#: are Pareto-stationary and the weights do not exist
_STATIONARY = 1e-20


@AGGREGATORS.register()
class FairGrad(GramianWeightedAggregator):
    """α-fair gradient aggregation: ``d = Σ w_i g_i`` with the weights solving
    ``(G w)_i = w_i^{−1/α}`` for every task i, i.e. ``⟨g_i, d⟩ = w_i^{−1/α}``.

    Ban & Ji, "Fair Resource Allocation in Multi-Task Learning", ICML 2024
    (https://arxiv.org/abs/2402.15638). The update maximises the α-fair utility of the
    tasks' loss decreases, ``Σ_i (g_iᵀd)^{1−α} / (1−α)`` (``Σ_i log g_iᵀd`` for α = 1) in a
    ball; its stationarity condition, with d = Σ w_i g_i, is the system above (the paper's
    ``GᵀG w = w^{−1/α}``, our G being their GᵀG). α = 1 is proportional fairness — the
    weights of Nash-MTL —; α → ∞ tends to max-min fairness (equal ⟨g_i, d⟩ for all tasks).
    Every task improves: ⟨g_i, d⟩ = w_i^{−1/α} > 0.

    The system is solved exactly, on the Gramian, as the maximisation of the strictly
    concave ``Σ_i U(⟨g_i, d⟩) − ½‖d‖²`` (U the α-fair utility, U' = u^{−α}; its optimum is
    d = Σ_i U'(⟨g_i, d⟩) g_i, so w_i = ⟨g_i, d⟩^{−α}) by damped Newton steps in the
    K-dimensional span of the gradients — a problem whose Hessian is never worse conditioned
    than the identity, unlike the system in w — until the residual is at the round-off of
    its terms (accepted at 1e-8 of ‖d‖ at worst). A task that is only just not in conflict
    at the optimum (⟨g_i, d⟩ at the round-off, which small α allows) is held at ⟨g_i, d⟩ = 0
    and its weight is the multiplier of that constraint. The authors' code solves the
    system in w with SciPy's bounded least squares, stopped at its default tolerances.

    Choices where the paper is silent: a zero gradient (exactly zero; a row 1e-30 times
    smaller than another is solved as accurately, on the unit rows) has no positive solution
    of its equation; it gets weight 0 and is left out, as in Nash-MTL. When the other
    gradients are Pareto-stationary (0 lies in their convex hull, e.g. two opposite
    gradients) the system has no positive solution either (the utility is unbounded); that
    step then uses the min-norm point of the hull of the unit gradients (MGDA with ``l2``
    normalisation: non-conflicting, zero at exact stationarity), with a ``RuntimeWarning``
    that says so. The result is not rescaled (‖d‖ grows with the gradients' scale as
    ``s^{(1−α)/(1+α)}``; the authors clip the update's norm — use the trainer's
    ``clip_grad_norm``).

    Args:
        alpha: the fairness parameter α > 0 (default 1.0, the authors' default; the paper
            tunes α per benchmark — their QM9 script uses 2.0).

    >>> import torch
    >>> FairGrad(alpha=1.0)(torch.tensor([[2.0, 0.0], [0.0, 0.5]]))  # w = (1/2, 2): w_i (Gw)_i = 1
    tensor([1., 1.])
    >>> FairGrad(alpha=2.0).weights_of(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))  # w_i = w_i^(-1/2)
    tensor([1., 1.])
    """

    paper = "Ban & Ji 2024, Fair Resource Allocation in Multi-Task Learning (ICML; arXiv:2402.15638), FairGrad"
    non_conflicting = True
    permutation_invariant = True

    def __init__(self, *, alpha: float = 1.0) -> None:
        self.alpha = check_float("FairGrad", "alpha", alpha, low=0.0, low_open=True)

    def weights(self, gramian: Tensor) -> Tensor:
        g = to_numpy(gramian)
        perm = canonical_order(g)  # solved in a canonical task order: the arithmetic, not only
        w = np.empty(g.shape[0])   # the mathematics, is independent of the order of the tasks
        w[perm] = fairgrad_weights(g[np.ix_(perm, perm)], self.alpha)
        return torch.as_tensor(w, dtype=gramian.dtype, device=gramian.device)


def fairgrad_weights(g: np.ndarray, alpha: float) -> np.ndarray:
    """The FairGrad weights for the Gramian ``g`` (float64); see :class:`FairGrad`.

    Solved on the unit rows ĝ_i = g_i/n_i (the row-normalised Gramian, unit diagonal), so
    rows of any relative size cost no accuracy: with û_i = ⟨ĝ_i, d⟩ the utility is
    ``Σ_i U(n_i û_i) = Σ_i c_i U(û_i) (+ const)``, c_i = n_i^{1−α}, and ``w_i = ŵ_i / n_i``
    with ŵ_i = c_i û_i^{−α}. The c_i are divided by their largest, κ, which scales the
    optimal ŵ by κ^{1/(1+α)}."""
    k = g.shape[0]
    out = np.zeros(k)
    gh, n = row_normalized(g)
    live = n > 0.0
    if not live.any():
        return out
    sub = gh[np.ix_(live, live)]
    nl = n[live]
    mgda = min_norm_weights(sub)
    if float(mgda @ sub @ mgda) <= _STATIONARY:
        why = ("the task gradients are Pareto-stationary (0 is in their convex hull), so (Gw)_i = "
               "w_i^(-1/α) has no positive solution")
        v = None
    else:
        log_c = (1.0 - alpha) * np.log(nl)
        log_kappa = float(np.max(log_c))
        with np.errstate(all="ignore"):  # non-finite values are detected where they matter
            v, why = _solve(sub, log_c - log_kappa, alpha, mgda)
        if v is not None and bool((sub @ v <= 0.0).any()):  # at the solution (Ĝŵ)_i = c_i ŵ_i^{-α} > 0
            v, why = None, ("the solved direction conflicts with a task at round-off level (the gradients are "
                            "nearly Pareto-stationary)")
    if v is None:
        warnings.warn(f"FairGrad: {why}; this step uses the MGDA min-norm weights instead.",
                      RuntimeWarning, stacklevel=3)
        out[live] = mgda / nl  # the min-norm point of the unit rows, as raw-row weights
        return out
    with np.errstate(divide="ignore", under="ignore"):
        out[live] = np.exp(np.log(v) + log_kappa / (1.0 + alpha) - np.log(nl))
    return out


def _solve(g: np.ndarray, log_c: np.ndarray, alpha: float, m: np.ndarray, *,
           max_iter: int = 100) -> tuple[np.ndarray | None, str]:
    """The weights ŵ on the unit rows with Gramian ``g`` (unit diagonal, not
    Pareto-stationary) and utility weights ``c = exp(log_c)`` (≤ 1; computed in logs, so a
    c_i below the range of floating point is 0, not 0·∞), given the rows' MGDA min-norm
    weights ``m``. Returns ``(ŵ, "")`` or ``(None, reason)``.

    Solved in the space of updates rather than of weights: with ``AᵀA = G`` (column a_i of
    A = ĝ_i in an orthonormal basis of the rows' span), d ↔ x and u_i = a_iᵀx, the weights
    solve ``x = Σ_i ŵ_i a_i`` with ŵ_i = c_i u_i^{−α}: the stationarity condition of the
    strictly concave ``f(x) = Σ_i c_i U(a_iᵀx) − ½‖x‖²`` (U the α-fair utility, U' = u^{−α}).
    f is 1-strongly concave (Hessian ``−(I + A diag(α c u^{−α−1}) Aᵀ)``), so
    ``‖x − x*‖ ≤ ‖∇f(x)‖``: the gradient certifies the direction. Damped Newton from the
    min-norm point (scaled so that every u_i ≥ 1; Armijo on f, then on ‖∇f‖ once f is flat
    to round-off) runs until ‖∇f‖ is at the round-off of its terms (1e-13 of Σ ŵ_i), or stops
    moving; the weights are accepted when ``‖Aŵ − x‖ ≤ 1e-8 ‖x‖``.

    When some task is only just not in conflict at the optimum (u_i* at the round-off of
    a_iᵀx — small α lets u_i → 0 cheaply), u_i^{−α} is noise and ∇f cannot get small. Those
    tasks (u_i ≤ 1e-9 ‖x‖) are then held at u_i = 0: Newton on the optimality system of that
    problem, whose multipliers (≥ 0) are their weights (:func:`_pinned`).
    """
    a = factor(g)
    x = a @ m
    xx = float(x @ x)
    if not xx > 0.0:
        return None, "the task gradients are Pareto-stationary (0 is in their convex hull)"
    x = x / xx  # u_i = a_iᵀx ≥ 1, by the optimality of the min-norm point

    def objective(x: np.ndarray) -> float:
        u = a.T @ x
        if not (u > 0.0).all():
            return -math.inf
        with np.errstate(over="ignore", divide="ignore", invalid="ignore", under="ignore"):
            if alpha == 1.0:
                util = float(np.exp(log_c) @ np.log(u))
            else:
                util = float(np.exp(log_c + (1.0 - alpha) * np.log(u)).sum()) / (1.0 - alpha)
            val = util - 0.5 * float(x @ x)
        return val if math.isfinite(val) else -math.inf

    def gradient(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """(u, ŵ, ∇f, the size of the terms summed in ∇f)"""
        u = a.T @ x
        with np.errstate(over="ignore", divide="ignore", invalid="ignore", under="ignore"):
            w = _weights(log_c, u, alpha)
            grad = a @ w - x
            scale = max(float(np.linalg.norm(x)), float(np.abs(w).sum()))
        return u, w, grad, scale

    for _ in range(max_iter):
        u, w, grad, scale = gradient(x)
        gnorm = float(np.linalg.norm(grad))
        if not (math.isfinite(gnorm) and math.isfinite(scale)):
            return None, "the Newton iterates left the range of floating point"
        if gnorm <= 1e-13 * scale:
            return w, ""
        with np.errstate(over="ignore", divide="ignore", invalid="ignore", under="ignore"):
            hess = np.eye(a.shape[0]) + (a * (alpha * w / u)) @ a.T
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            break  # a curvature α ŵ_i/u_i beyond floating point: some u_i is at round-off
        if not np.all(np.isfinite(step)):
            break
        du = a.T @ step
        t = 1.0
        down = du < 0.0
        if down.any():  # stay where every u_i > 0
            t = min(1.0, 0.99 * float(np.min(u[down] / -du[down])))
        dec = float(grad @ step)
        f0 = objective(x)
        if dec > 1e-10 * (abs(f0) + 1.0):
            # Armijo on f while its predicted gain is above its round-off
            while t > 1e-14 and not objective(x + t * step) >= f0 + 0.25 * t * dec:
                t *= 0.5
        else:
            # near the optimum f is flat to round-off: accept the step when ‖∇f‖ decreases
            while t > 1e-14 and not float(np.linalg.norm(gradient(x + t * step)[2])) < gnorm:
                t *= 0.5
        if t <= 1e-14 or t * float(np.linalg.norm(step)) <= 1e-15 * float(np.linalg.norm(x)):
            break  # no measurable progress left
        x = x + t * step
    u, w, grad, _ = gradient(x)
    xn = float(np.linalg.norm(x))
    rel = float(np.linalg.norm(grad)) / xn
    if rel <= 1e-8:
        return w, ""
    # tasks whose utility is down at the round-off of a_iᵀx: the optimum is, to working
    # precision, that of the same problem with u_i = 0 for them, and their weights are the
    # multipliers of those constraints
    noisy = u <= 1e-9 * xn
    pinned = _pinned(a, log_c, x, alpha, noisy) if noisy.any() else None
    if pinned is not None:
        return pinned, ""
    return None, f"the Newton solver stalled at a relative residual of {rel:.1e}"


def _weights(log_c: np.ndarray, u: np.ndarray, alpha: float) -> np.ndarray:
    """ŵ_i = c_i u_i^{−α}, in logs (0 where c_i = 0)."""
    with np.errstate(over="ignore", divide="ignore", invalid="ignore", under="ignore"):
        return np.exp(log_c - alpha * np.log(u))


def _pinned(a: np.ndarray, log_c: np.ndarray, x: np.ndarray, alpha: float, pin: np.ndarray, *,
            max_iter: int = 50) -> np.ndarray | None:
    """Newton on ``x = A_F ŵ_F + A_P μ`` (ŵ_i = c_i (a_iᵀx)^{−α}), ``A_Pᵀx = 0`` (F the free
    tasks, P = ``pin`` the pinned ones) from ``x``: the optimum of Σ_F c_i U(u_i) − ½‖x‖² with
    u_P = 0, whose multipliers μ ≥ 0 are the pinned tasks' weights. A free task whose u_i
    would reach 0 is pinned too. ``None`` unless it converges with μ ≥ 0."""
    k = a.shape[0]
    pin = pin.copy()
    for _ in range(max_iter):
        af, ap, cf = a[:, ~pin], a[:, pin], log_c[~pin]
        n_pin = int(pin.sum())
        u = af.T @ x
        if not (u > 0.0).all():
            return None
        wf = _weights(cf, u, alpha)
        kkt = np.zeros((k + n_pin, k + n_pin))
        with np.errstate(over="ignore", invalid="ignore"):
            kkt[:k, :k] = np.eye(k) + (af * (alpha * wf / u)) @ af.T
        if not np.all(np.isfinite(kkt)):
            return None
        kkt[:k, k:] = -ap
        kkt[k:, :k] = ap.T
        try:
            sol = np.linalg.solve(kkt, np.concatenate([af @ wf - x, -(ap.T @ x)]))
        except np.linalg.LinAlgError:
            return None
        dx, mu = sol[:k], sol[k:]
        du = af.T @ dx
        down = du < 0.0
        t = min(1.0, float(np.min(u[down] / -du[down]))) if down.any() else 1.0
        if t < 1.0:  # a free task reaches u_i = 0: pin it and solve again
            hit = np.flatnonzero(~pin)[int(np.argmin(np.where(down, u / np.where(down, -du, 1.0), np.inf)))]
            x = x + t * dx
            pin[hit] = True
            continue
        x = x + dx
        u = af.T @ x
        if not (u > 0.0).all():
            return None
        wf = _weights(cf, u, alpha)
        xn = float(np.linalg.norm(x))
        res = float(np.linalg.norm(af @ wf + ap @ mu - x))
        scale = max(xn, float(wf.sum() + np.abs(mu).sum()))
        # converged: to round-off, or Newton no longer moves x (the free ŵ_i of tiny u_i carry
        # the round-off of u_i); either way the direction must match x to 1e-8
        done = res <= 1e-12 * scale or float(np.linalg.norm(dx)) <= 1e-14 * xn
        if done and res <= 1e-8 * xn and float(np.max(np.abs(ap.T @ x))) <= 1e-12 * xn:
            if (mu < 0.0).any():
                return None
            w = np.empty(a.shape[1])
            w[~pin], w[pin] = wf, mu
            return w
    return None
