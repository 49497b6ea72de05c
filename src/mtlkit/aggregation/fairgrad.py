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
from mtlkit.aggregation._solvers import min_norm_weights, normalized, to_numpy

#: rows whose squared norm is below this fraction of the largest are numerically zero
_ZERO_ROW = 1e-12
#: the min-norm point of the hull below this squared norm (Gramian scaled to mean diagonal 1):
#: the gradients are Pareto-stationary and the weights do not exist
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

    The system is solved exactly, on the Gramian: its solution is the unique minimiser of
    the strictly convex ``Ψ(w) = ½ wᵀGw − Σ_i φ(w_i)`` over w > 0 (φ' = w^{−1/α}: φ = log w
    for α = 1, w^{1−1/α}/(1−1/α) otherwise), found by damped Newton steps until
    ``max_i |w_i^{1/α} (Gw)_i − 1| ≤ 1e-10`` (relative to the round-off of (Gw)_i). The
    authors' code solves the same system with SciPy's bounded least squares, stopped at its
    default tolerances.

    Choices where the paper is silent: a row with a zero gradient (squared norm below 1e-12
    of the largest) has no positive solution of its equation; it gets weight 0 and is left
    out, as in Nash-MTL. When the other gradients are Pareto-stationary (0 lies in their
    convex hull, e.g. two opposite gradients) the system has no positive solution either
    (Ψ is unbounded below); that step then uses MGDA's min-norm weights (exact; a zero
    update at exact stationarity), with a ``RuntimeWarning`` that says so. The result is
    not rescaled (‖d‖ depends on the gradients' scale as ``s^{(1−α)/(1+α)}``; the authors
    clip the update's norm — use the trainer's ``clip_grad_norm``).

    Args:
        alpha: the fairness parameter α > 0 (default 1.0, the authors' default; they use
            values from 0.5 to 10 in their experiments).

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
        w = fairgrad_weights(to_numpy(gramian), self.alpha)
        return torch.as_tensor(w, dtype=gramian.dtype, device=gramian.device)


def fairgrad_weights(g: np.ndarray, alpha: float) -> np.ndarray:
    """The FairGrad weights for the Gramian ``g`` (float64); see :class:`FairGrad`."""
    k = g.shape[0]
    gn, s = normalized(g)
    out = np.zeros(k)
    if s == 0.0:
        return out
    diag = np.diag(gn)
    live = diag > _ZERO_ROW * float(np.max(diag))
    sub = gn[np.ix_(live, live)]
    mgda = min_norm_weights(sub)
    if float(mgda @ sub @ mgda) <= _STATIONARY:
        why = "the task gradients are Pareto-stationary (0 is in their convex hull)"
        v = None
    else:
        v, why = _solve(sub, alpha)
    if v is None:
        warnings.warn(f"FairGrad: {why}, so (Gw)_i = w_i^(-1/α) has no positive solution; this step "
                      f"uses the MGDA min-norm weights instead.", RuntimeWarning, stacklevel=3)
        out[live] = mgda
        return out
    # the solution for G = s·Gn is v scaled by s^(−α/(1+α)): s t Gn v = t^(−1/α) v^(−1/α)
    out[live] = v * math.exp(-alpha / (1.0 + alpha) * math.log(s))
    return out


def _solve(g: np.ndarray, alpha: float, *, max_iter: int = 200, tol: float = 1e-10) -> tuple[np.ndarray | None, str]:
    """Minimise Ψ(w) = ½ wᵀGw − Σ φ(w_i) (φ' = w^{−1/α}) over w > 0 by damped Newton steps.

    Returns ``(w, "")``, or ``(None, reason)`` when the iterates diverge (no solution) or
    stall far from it."""
    p = 1.0 / alpha
    eps = float(np.finfo(np.float64).eps)
    absg = np.abs(g)

    def phi(x: np.ndarray) -> np.ndarray:
        return np.log(x) if alpha == 1.0 else x ** (1.0 - p) / (1.0 - p)

    def psi(x: np.ndarray) -> float:
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            val = 0.5 * float(x @ g @ x) - float(phi(x).sum())
        return val if math.isfinite(val) else math.inf

    def residual(x: np.ndarray) -> tuple[float, np.ndarray]:
        gx = g @ x
        xp = x ** p
        noise = 64.0 * eps * (absg @ x) * xp  # round-off of x_i^{1/α} (Gx)_i
        return float(np.max(np.abs(xp * gx - 1.0) - noise)), gx

    # the solution for orthogonal gradients: G_ii w_i = w_i^{−1/α}
    w = np.diag(g) ** (-alpha / (1.0 + alpha))
    for _ in range(max_iter):
        r, gw = residual(w)
        if r <= tol:
            return w, ""
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            wmp = w ** (-p)
            grad = gw - wmp
            hess = g + np.diag(p * wmp / w)
        if not (np.all(np.isfinite(grad)) and np.all(np.isfinite(hess))):
            return None, "the Newton iterates left the range of floating point"
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            return None, "the Newton system became singular"
        dec = float(grad @ step)
        t = 1.0
        up = step > 0
        if up.any():  # stay in w > 0
            t = min(1.0, 0.99 * float(np.min(w[up] / step[up])))
        f0 = psi(w)
        while t > 1e-12 and not psi(w - t * step) <= f0 - 0.25 * t * dec:
            t *= 0.5
        if t <= 1e-12:
            # no decrease measurable in Ψ: the iterate is as good as round-off allows
            # unless the residual says otherwise
            break
        w = w - t * step
        if float(np.max(w)) > 1e12:
            return None, "the weights diverge (the task gradients are Pareto-stationary or nearly so)"
    r, _ = residual(w)
    if r <= 1e-6:
        return w, ""
    return None, f"the Newton solver stopped at a residual of {r:.1e}"
