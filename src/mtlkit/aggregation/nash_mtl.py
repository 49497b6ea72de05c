"""Nash-MTL: the Nash bargaining solution between the tasks."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mtlkit._checks import check_choice, check_float, check_int
from mtlkit._registry import AGGREGATORS
from mtlkit.aggregation._base import GramianWeightedAggregator
from mtlkit.aggregation._solvers import (
    canonical_order,
    eigenvalue_floor,
    min_norm_weights,
    row_normalized,
    scipy_optimize,
    to_numpy,
)

SOLVERS = ("newton", "ccp")


@AGGREGATORS.register()
class NashMTL(GramianWeightedAggregator):
    """Multi-task learning as a bargaining game: the update ``d = Σ α_i g_i`` whose weights
    solve ``G α = 1/α`` (element-wise), i.e. ``α_i ⟨g_i, d⟩ = 1`` for every task.

    Navon, Shamsian, Achituve, Maron, Kawaguchi, Chechik & Fetaya, "Multi-Task Learning as
    a Bargaining Game", ICML 2022. The Nash bargaining solution maximises Σ log ⟨g_i, d⟩ in
    the unit ball; its properties: every task improves (⟨g_i, d⟩ = 1/α_i > 0, so the flag
    ``non_conflicting`` holds), the update is invariant to the scale of each task's
    gradient, and ‖d‖ = √K whatever the gradients' scale — which is why the authors clip
    the shared gradient norm (``max_norm=1``; use the trainer's ``clip_grad_norm``).

    The system is solved for unit gradients (``α̂_i = ‖g_i‖ α_i`` solves it for the
    row-normalised Gramian, whose diagonal is 1): the scale invariance then holds exactly and
    rows of any norms are equally well conditioned. Solvers (both solve the same problem):

    * ``"newton"`` (default, no dependency): α̂ is the unique minimiser of the strictly convex
      ``Ψ(α) = ½ αᵀĜα − Σ log α_i`` (∇Ψ = Ĝα − 1/α). Ψ is self-concordant, so damped Newton
      steps of length 1/(1 + λ) (λ the Newton decrement) stay positive and decrease Ψ, and
      full steps converge quadratically once λ < 1/4 — no line search, which stalled on
      round-off near the solution of strongly conflicting tasks.
    * ``"ccp"``: the paper's sequence of convex problems (concave-convex procedure):
      ``min_α Σ_i β_i(α) + ∇φ(α_τ)ᵀ(α − α_τ)`` subject to ``φ_i(α) = log α_i + log β_i(α)
      ≥ 0``, with β_i(α) = ⟨g_i, Jᵀα⟩ and φ = Σ φ_i, each solved by SciPy's SLSQP (the
      authors use cvxpy/ECOS). Needs ``pip install mtlkit[solvers]``.

    Converged when ``max_i |α_i ⟨g_i, d⟩ − 1| ≤ tolerance`` or, when the sums ``α_i (Gα)_i``
    cannot be computed that accurately (strongly conflicting tasks, whose terms cancel), within
    their round-off (64 eps times the sum of the absolute terms). The ``"ccp"`` solution is
    polished by Newton steps on the same system; a solver that does not converge hands over
    to the next one, all solving the same system: Newton → exact coordinate descent on Ψ (each
    step solves ``Ĝ_ii α_i² + b_i α_i = 1``; slow but monotone) → Newton again from there. The solution is unique, so the result does not
    depend on the starting point or on the order of the tasks (the system is solved in a
    canonical row order).

    Warm start: from the previous solution of the same tasks, keyed by task index when the
    caller says which tasks the rows are (``tasks=``, as the trainer does; state for resume in
    :meth:`state_dict`); a call without ``tasks`` starts cold and leaves the state alone.

    Rows with a zero gradient get weight 0 and are left out of the bargaining (their utility
    is 0 whatever d). **Fallback**: the system has no solution when 0 lies in the convex hull
    of the (other) gradients — they are Pareto-stationary, Ψ is unbounded below — which is
    detected beforehand (the min-norm point of the hull of the unit gradients is below the
    Gramian's precision, √(100 eps)); then, or if every solver failed, that step uses MGDA's
    min-norm weights (exact, non-conflicting, 0 at Pareto-stationarity; never equal weights),
    a ``RuntimeWarning`` says which of the two happened and why, and :attr:`fallbacks_` counts
    the steps that fell back (kept in :meth:`state_dict`; the run summary reports it).

    Args:
        solver: ``"newton"`` (default) or ``"ccp"``.
        max_iterations: Newton steps or convex problems per call (default 100 / 20).
        tolerance: convergence when max_i |α_i ⟨g_i, d⟩ − 1| ≤ tolerance (default 1e-9 for
            ``"newton"``, 1e-6 for ``"ccp"``), or within the round-off of that residual.

    >>> import torch
    >>> NashMTL()(torch.tensor([[2.0, 0.0], [0.0, 0.5]]))  # α = (1/2, 2): d·g_i = 1/α_i
    tensor([1., 1.])
    """

    paper = ("Navon, Shamsian, Achituve, Maron, Kawaguchi, Chechik & Fetaya 2022, Multi-Task Learning as a "
             "Bargaining Game (ICML), Nash-MTL")
    stateful = True
    non_conflicting = True
    permutation_invariant = True

    def __init__(self, *, solver: str = "newton", max_iterations: int | None = None,
                 tolerance: float | None = None) -> None:
        self.solver = check_choice("NashMTL", "solver", solver, options=SOLVERS)
        self.max_iterations = check_int("NashMTL", "max_iterations", max_iterations, low=1, none_ok=True)
        self.tolerance = check_float("NashMTL", "tolerance", tolerance, low=0.0, low_open=True, none_ok=True)
        if solver == "ccp":
            _import_minimize()
        self._alpha: dict[int, float] = {}
        #: number of steps that fell back to MGDA's weights (see the class docstring)
        self.fallbacks_ = 0

    def weights(self, gramian: Tensor, tasks: Sequence[int] | None = None) -> Tensor:
        g = to_numpy(gramian)
        k = g.shape[0]
        out = np.zeros(k)
        gh, n = row_normalized(g)
        live = np.flatnonzero(n > 0.0)
        if live.size:
            alpha, why = self._solve(gh[np.ix_(live, live)], None if tasks is None else [tasks[int(i)] for i in live],
                                     eigenvalue_floor(gramian.dtype))
            if alpha is None:
                self.fallbacks_ += 1
                warnings.warn(f"NashMTL: {why}; this step uses MGDA's min-norm weights instead (fallback "
                              f"{self.fallbacks_} of this aggregator, counted in its 'fallbacks_').",
                              RuntimeWarning, stacklevel=2)
                out = min_norm_weights(g)
            else:
                out[live] = alpha / n[live]
        return torch.as_tensor(out, dtype=gramian.dtype, device=gramian.device)

    def _solve(self, gh: np.ndarray, ids: list[int] | None, floor: float) -> tuple[np.ndarray | None, str]:
        """α̂ for the unit rows of ``gh``, or ``(None, why)``."""
        k = gh.shape[0]
        # 0 can be in the hull of unit vectors only if some pair conflicts
        gap = 1.0
        if (gh < 0.0).any():
            w = min_norm_weights(gh)
            gap = math.sqrt(max(float(w @ gh @ w), 0.0))
        if gap <= math.sqrt(floor):
            return None, (f"0 lies in the convex hull of the task gradients (the min-norm point of the hull of "
                          f"their unit vectors has norm {gap:.1e}, within the Gramian's precision): they are "
                          f"Pareto-stationary, so the bargaining problem has no solution")
        perm = canonical_order(gh)
        gc = gh[np.ix_(perm, perm)]
        start = np.ones(k)
        if ids is not None:
            start = np.array([self._alpha.get(ids[i], 1.0) for i in perm], dtype=np.float64)
            start = np.where(np.isfinite(start) & (start > 0.0), start, 1.0)
        tol = self.tolerance if self.tolerance is not None else (1e-9 if self.solver == "newton" else 1e-6)
        attempts: list[str] = []
        a = start
        newton_steps = (self.max_iterations or 100) if self.solver == "newton" else 100
        if self.solver == "ccp":
            a, _, why = _ccp(gc, a, self.max_iterations or 20, tol)
            attempts.append(why)
            a = np.where(np.isfinite(a) & (a > 0.0), a, 1.0)
        # Newton from there: the default solver, or the polish of the ccp solution to round-off
        a, ok, why = _newton(gc, a, newton_steps, tol)
        attempts.append(why)
        if not ok:
            a, ok, why = _coordinate_descent(gc, start, tol)
            attempts.append(why)
            if ok:
                a, ok, why = _newton(gc, a, newton_steps, tol)
                attempts.append(why)
        if not ok:
            return None, "no solver converged (" + "; ".join(x for x in attempts if x) + ")"
        alpha = np.empty(k)
        alpha[perm] = a
        if ids is not None:
            self._alpha.update(zip(ids, alpha.tolist()))
        return alpha, ""

    @property
    def alpha_(self) -> dict[int, float]:
        """The last solution per task index, for unit gradients (α̂_i = ‖g_i‖ α_i: invariant to
        the scale of each task's gradient); recorded for calls given ``tasks=``."""
        return dict(self._alpha)

    def reset(self) -> None:
        self._alpha = {}
        self.fallbacks_ = 0

    def state_dict(self) -> dict[str, Any]:
        return {"alpha": {str(t): a for t, a in self._alpha.items()}, "fallbacks": self.fallbacks_}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state and "alpha" in state:
            self._alpha = {int(t): float(a) for t, a in state["alpha"].items()}
        if state and "fallbacks" in state:
            self.fallbacks_ = int(state["fallbacks"])


_EPS = float(np.finfo(np.float64).eps)


def _excess(g: np.ndarray, a: np.ndarray) -> tuple[float, float]:
    """``(max_i |α_i (Gα)_i − 1|, max_i of that over its round-off)``: the residual, and how
    many times the round-off of the sums (64 eps times their absolute terms) it is."""
    r = np.abs(a * (g @ a) - 1.0)
    noise = 64.0 * _EPS * np.abs(a) * (np.abs(g) @ np.abs(a))
    return float(r.max()), float(np.max(r / noise))


def _converged(g: np.ndarray, a: np.ndarray, tol: float) -> bool:
    """``|α_i (Gα)_i − 1| ≤ tol``, or within the round-off of that sum (scale-aware)."""
    r, rel = _excess(g, a)
    return r <= tol or rel <= 1.0


def _newton(g: np.ndarray, a: np.ndarray, max_iter: int, tol: float) -> tuple[np.ndarray, bool, str]:
    """Minimise the self-concordant Ψ(α) = ½ αᵀGα − Σ log α over α > 0 by damped Newton
    steps (Nesterov & Nemirovskii): step 1/(1 + λ) while the decrement λ ≥ 1/4, then full
    steps. Within ``tol`` it goes on to round-off (one or two quadratic steps, so that the
    result does not depend on the start), stopping when a step no longer halves the
    residual."""
    a = np.asarray(a, dtype=np.float64).copy()
    last = math.inf
    for _ in range(max_iter):
        r, rel = _excess(g, a)
        if rel <= 1.0 or (r <= tol and r > 0.5 * last):
            return a, True, ""
        last = r
        grad = g @ a - 1.0 / a
        hess = g + np.diag(1.0 / (a * a))
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            return a, False, "the Newton system became singular"
        lam2 = float(grad @ step)
        if not np.isfinite(lam2):
            return a, False, "the Newton step is not finite"
        lam = math.sqrt(max(lam2, 0.0))
        t = 1.0 if lam < 0.25 else 1.0 / (1.0 + lam)
        new = a - t * step
        while not (new > 0.0).all() and t > 1e-12:  # round-off guard; the theory keeps α > 0
            t *= 0.5
            new = a - t * step
        if not (new > 0.0).all() or not np.all(np.isfinite(new)):
            return a, False, "the Newton iterate left α > 0"
        a = new
    if _converged(g, a, tol):
        return a, True, ""
    return a, False, f"Newton did not converge in {max_iter} steps"


def _coordinate_descent(g: np.ndarray, a: np.ndarray, tol: float,
                        max_sweeps: int = 20_000) -> tuple[np.ndarray, bool, str]:
    """Exact coordinate minimisation of Ψ: α_i ← the positive root of G_ii α² + b_i α − 1 with
    b_i = Σ_{j≠i} G_ij α_j. Monotone and always positive; linear convergence."""
    a = np.asarray(a, dtype=np.float64).copy()
    k = a.shape[0]
    for _ in range(max_sweeps):
        for i in range(k):
            b = float(g[i] @ a) - g[i, i] * a[i]
            r = math.sqrt(b * b + 4.0 * g[i, i])
            a[i] = 2.0 / (b + r) if b >= 0.0 else (r - b) / (2.0 * g[i, i])
        if _converged(g, a, max(tol, 1e-6)):
            return a, True, ""
    return a, False, f"coordinate descent did not converge in {max_sweeps} sweeps"


def _import_minimize() -> Any:
    return scipy_optimize("NashMTL(solver='ccp') (or use the default solver='newton')").minimize


def _ccp(g: np.ndarray, a: np.ndarray, max_iter: int, tol: float) -> tuple[np.ndarray, bool, str]:
    """The paper's sequence of convex problems, each solved by SLSQP."""
    minimize = _import_minimize()
    k = g.shape[0]
    ones_g = g.sum(axis=0)
    a = a.astype(np.float64).copy()
    cons = {"type": "ineq", "fun": lambda x: x * (g @ x) - 1.0,
            "jac": lambda x: np.diag(g @ x) + x[:, None] * g}
    for _ in range(max_iter):
        if _converged(g, a, tol):
            return a, True, ""
        ga = g @ a
        if (ga <= 0).any():
            return a, False, "the convex-concave procedure reached a point where some task's utility is not positive"
        lin = 1.0 / a + g @ (1.0 / ga)  # ∇φ at the previous point
        c = ones_g + lin
        res = minimize(lambda x, c=c: float(c @ x), a, jac=lambda x, c=c: c, method="SLSQP",
                       bounds=[(1e-12, None)] * k, constraints=[cons],
                       options={"maxiter": 200, "ftol": 1e-12})
        x = np.asarray(res.x, dtype=np.float64)
        if not np.all(np.isfinite(x)) or (x <= 0).any():
            return a, False, f"SLSQP failed on a convex sub-problem ({res.message})"
        if float(np.max(np.abs(x - a))) <= 1e-12 * float(np.max(np.abs(a))):
            a = x
            break
        a = x
    if _converged(g, a, tol):
        return a, True, ""
    return a, False, f"the convex-concave procedure did not reach tolerance {tol:g} in {max_iter} problems"
