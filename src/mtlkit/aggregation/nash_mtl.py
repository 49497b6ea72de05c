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
from mtlkit.aggregation._solvers import min_norm_weights, normalized, scipy_optimize, to_numpy

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

    Solvers (both give the same α up to their tolerance):

    * ``"newton"`` (default, no dependency): α is the unique minimiser of the strictly convex
      ``Ψ(α) = ½ αᵀGα − Σ log α_i`` (∇Ψ = Gα − 1/α), found by damped Newton steps with a
      backtracking line search; quadratic convergence, a few K×K solves per step.
    * ``"ccp"``: the paper's sequence of convex problems (concave-convex procedure):
      ``min_α Σ_i β_i(α) + ∇φ(α_τ)ᵀ(α − α_τ)`` subject to ``φ_i(α) = log α_i + log β_i(α)
      ≥ 0``, with β_i(α) = ⟨g_i, Jᵀα⟩ and φ = Σ φ_i, each solved by SciPy's SLSQP (the
      authors use cvxpy/ECOS). Needs ``pip install mtlkit[solvers]``.

    Both are warm-started from the previous step's α of the same tasks (state for resume in
    :meth:`state_dict`, keyed by task index through ``tasks=``).

    Rows with a zero gradient get weight 0 and are left out of the bargaining (their utility
    is 0 whatever d). **Fallback**: when the system has no solution — the other gradients
    are Pareto-stationary (0 lies in their convex hull, e.g. two opposite gradients), so Ψ
    is unbounded — or the solver does not converge within ``max_iterations``, a
    ``RuntimeWarning`` says so and that step uses MGDA's min-norm weights (exact), which
    are non-conflicting and shrink to 0 at Pareto-stationarity; never equal weights.

    Args:
        solver: ``"newton"`` (default) or ``"ccp"``.
        max_iterations: Newton steps or convex problems per call (default 100 / 20).
        tolerance: convergence when max_i |α_i ⟨g_i, d⟩ − 1| ≤ tolerance (default 1e-9 for
            ``"newton"``, 1e-6 for ``"ccp"``).

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

    def weights(self, gramian: Tensor, tasks: Sequence[int] | None = None) -> Tensor:
        g = to_numpy(gramian)
        k = g.shape[0]
        ids = list(range(k)) if tasks is None else list(tasks)
        gn, s = normalized(g)
        out = np.zeros(k)
        if s == 0.0:
            return torch.as_tensor(out, dtype=gramian.dtype, device=gramian.device)
        live = np.diag(gn) > 1e-12 * float(np.max(np.diag(gn)))
        sub = gn[np.ix_(live, live)]
        live_ids = [t for t, ok in zip(ids, live) if ok]
        start = np.array([self._alpha.get(t, 0.0) for t in live_ids])
        if (start <= 0).any() or not np.all(np.isfinite(start)):
            start = 1.0 / np.sqrt(np.diag(sub))
        tol = self.tolerance if self.tolerance is not None else (1e-9 if self.solver == "newton" else 1e-6)
        if self.solver == "newton":
            alpha, ok, why = _newton(sub, start, self.max_iterations or 100, tol)
        else:
            alpha, ok, why = _ccp(sub, start, self.max_iterations or 20, tol)
        if ok:
            self._alpha.update(zip(live_ids, alpha.tolist()))
            out[live] = alpha / math.sqrt(s)
        else:
            warnings.warn(f"NashMTL: {why}; this step uses the MGDA min-norm weights instead "
                          f"(the documented fallback).", RuntimeWarning, stacklevel=2)
            out = min_norm_weights(gn)
        return torch.as_tensor(out, dtype=gramian.dtype, device=gramian.device)

    @property
    def alpha_(self) -> dict[int, float]:
        """The last solution, per task index, in units of the normalised Gramian."""
        return dict(self._alpha)

    def reset(self) -> None:
        self._alpha = {}

    def state_dict(self) -> dict[str, Any]:
        return {"alpha": {str(t): a for t, a in self._alpha.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state and "alpha" in state:
            self._alpha = {int(t): float(a) for t, a in state["alpha"].items()}


def _residual(g: np.ndarray, a: np.ndarray) -> float:
    return float(np.max(np.abs(a * (g @ a) - 1.0)))


def _newton(g: np.ndarray, a: np.ndarray, max_iter: int, tol: float) -> tuple[np.ndarray, bool, str]:
    """Minimise Ψ(α) = ½ αᵀGα − Σ log α over α > 0 by damped Newton steps."""

    def psi(x: np.ndarray) -> float:
        return 0.5 * float(x @ g @ x) - float(np.log(x).sum())

    a = a.astype(np.float64).copy()
    for _ in range(max_iter):
        ga = g @ a
        if float(np.max(np.abs(a * ga - 1.0))) <= tol:
            return a, True, ""
        grad = ga - 1.0 / a
        hess = g + np.diag(1.0 / (a * a))
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            return a, False, ("the Newton system became singular (α diverges: the task gradients "
                              "are Pareto-stationary, 0 is in their convex hull)")
        dec = float(grad @ step)
        if not np.isfinite(dec):
            return a, False, "the Newton step is not finite"
        t = 1.0
        up = step > 0
        if up.any():
            t = min(1.0, 0.99 * float(np.min(a[up] / step[up])))
        f0 = psi(a)
        while t > 1e-14 and not psi(a - t * step) <= f0 - 0.25 * t * dec:
            t *= 0.5
        a = a - t * step
        if not np.all(np.isfinite(a)) or float(np.max(a)) > 1e12:
            return a, False, ("the bargaining problem has no solution: the task gradients are "
                              "Pareto-stationary (0 is in their convex hull)")
    if _residual(g, a) <= tol:
        return a, True, ""
    return a, False, (f"the Newton solver did not converge in {max_iter} steps (the gradients are "
                      f"Pareto-stationary or nearly so)")


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
        if _residual(g, a) <= tol:
            return a, True, ""
        ga = g @ a
        if (ga <= 0).any():
            return a, False, "the bargaining problem has no feasible point (Pareto-stationary gradients)"
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
    if _residual(g, a) <= tol:
        return a, True, ""
    return a, False, f"the convex-concave procedure did not reach tolerance {tol:g} in {max_iter} problems"
