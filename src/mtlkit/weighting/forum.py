"""FORUM: a first-order multi-gradient method for multi-objective bilevel optimisation
(Ye et al. 2024), as LibMTL runs it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from mtlkit._checks import check_float, check_int
from mtlkit._registry import WEIGHTINGS
from mtlkit.aggregation._solvers import min_norm_weights, scipy_optimize
from mtlkit.weighting._base import StepContext, Weighting, WeightingResult, present_of
from mtlkit.weighting._bilevel import (
    bilevel_context,
    flat_gradient,
    masked_softmax,
    softmax_jacobian,
    task_jacobian,
    validation_present,
)
from mtlkit.weighting._optim import AdamState

#: LibMTL's guard: the inner loop stops when the weighted training loss exceeds this
#: ("caused by too large inner_lr and inner_step")
INNER_LOSS_LIMIT = 1e5


def forum_qp(gram: np.ndarray, pi: np.ndarray, c: float) -> np.ndarray:
    """The (m+1) weights of FORUM's subproblem, as LibMTL states it (for cvxpy)::

        min_w  wᵀ G w − c·w_m    s.t.  Σ_{t<m} w_t = 1,  w ≥ 0,  w_m ≥ Σ_{t<m} π_t w_t

    with G the Gramian of [ĝ_1 … ĝ_m, ∇q] (the unit upper-level gradients and the gradient of
    the lower-level value-function gap q). A small convex QP: SciPy's SLSQP on the problem
    scaled to O(1) entries, then the KKT system of the active set it finds is solved exactly
    (and kept when it is primal and dual feasible), so the answer is exact up to round-off
    whenever SLSQP identifies the active set. When ∇q = 0 (G's last row and column are 0) the
    problem is unbounded in w_m; the λ block is then the min-norm point of the ĝ_t and
    w_m = max(πᵀλ, 0).

    >>> import numpy as np
    >>> forum_qp(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]), np.zeros(2), 0.0).round(6)
    array([0.5, 0.5, 0. ])
    """
    m = pi.shape[0]
    n = m + 1
    g = 0.5 * (gram + gram.T)
    if not g[m, m] > 0.0:
        # ∇q = 0: w_m no longer enters the quadratic and the problem is unbounded in it; the
        # λ block is then the min-norm point of the ĝ_t (LibMTL's cvxpy would fail here)
        lam = min_norm_weights(g[:m, :m])
        return np.append(lam, max(float(pi @ lam), 0.0))
    scale = max(float(np.abs(g).max(initial=0.0)), abs(c), 1e-300)
    gs, cs = g / scale, c / scale
    # inequality rows a_i·w ≥ 0: the bounds w_i ≥ 0, then w_m − πᵀ w_<m ≥ 0
    ineq = np.vstack([np.eye(n), np.append(-pi, 1.0)])
    eq = np.append(np.ones(m), 0.0)

    def fun(w: np.ndarray) -> float:
        return float(w @ gs @ w - cs * w[m])

    def jac(w: np.ndarray) -> np.ndarray:
        out = 2.0 * gs @ w
        out[m] -= cs
        return out

    x0 = np.append(np.full(m, 1.0 / m), max(float(pi.mean()), 0.0) + 1.0)
    so = scipy_optimize("FORUM")
    res = so.minimize(fun, x0, jac=jac, method="SLSQP",
                      constraints=[{"type": "eq", "fun": lambda w: np.array([eq @ w - 1.0]),
                                    "jac": lambda w: eq[None, :]},
                                   {"type": "ineq", "fun": lambda w: ineq[n:] @ w, "jac": lambda w: ineq[n:]}],
                      bounds=[(0.0, None)] * n, options={"ftol": 1e-15, "maxiter": 1000})
    w = np.asarray(res.x, dtype=np.float64)
    polished = _kkt_polish(gs, cs, ineq, eq, w)
    w = polished if polished is not None else w
    w = np.clip(w, 0.0, None)
    total = float(w[:m].sum())
    w[:m] = w[:m] / total if total > 0 else np.full(m, 1.0 / m)
    return w


def _kkt_polish(g: np.ndarray, c: float, ineq: np.ndarray, eq: np.ndarray, w: np.ndarray) -> np.ndarray | None:
    """The exact solution of the equality-constrained QP on the active set of ``w``, when it
    satisfies every KKT condition; None otherwise."""
    n = g.shape[0]
    tol = 1e-9
    active = np.flatnonzero(ineq @ w <= tol * max(1.0, float(np.abs(w).max())))
    a = np.vstack([eq[None, :], ineq[active]])
    b = np.zeros(a.shape[0])
    b[0] = 1.0
    rhs = np.zeros(n)
    rhs[n - 1] = c
    # stationarity 2Gw − c e_m = Aᵀ μ (μ_0 free: the equality; the others ≥ 0)
    kkt = np.block([[2.0 * g, -a.T], [a, np.zeros((a.shape[0], a.shape[0]))]])
    sol = np.linalg.lstsq(kkt, np.concatenate([rhs, b]), rcond=None)[0]
    x, mu = sol[:n], sol[n:]
    residual = kkt @ sol - np.concatenate([rhs, b])
    ok = (float(np.abs(residual).max(initial=0.0)) <= 1e-9
          and bool((ineq @ x >= -1e-9).all()) and bool((mu[1:] >= -1e-9).all()))
    return x if ok else None


@WEIGHTINGS.register()
class FORUM(Weighting):
    """Model and task logits moved together along one multi-gradient direction of the
    validation losses, under a constraint that keeps the weighted training loss near its
    minimum (a value-function reformulation of the bilevel problem).

    Ye, Lin, Zhang, Zhang, Chen, Chen & Kwok, "A First-Order Multi-Gradient Algorithm for
    Multi-Objective Bi-Level Optimization", ECAI 2024 (arXiv:2401.09257), as LibMTL implements
    it (``Trainer.bacth_forward_FORUM``, by the paper's authors). The lower level is
    f(α, ω) = Σ_k softmax(α)_k ℓ_k(ω) on the training batch (ℓ_k as the trainer passes them,
    with the task priors; ω all the model's trainable parameters); the upper-level objectives
    are the validation losses F_t(ω). Each step:

    1. ω^T: ``inner_step`` SGD steps (learning rate ``inner_lr``) on f(α, ·) from ω;
    2. ∇q, the gradient in (α, ω) of the gap q = f(α, ω) − f(α, ω^T) (ω^T held fixed):
       (J_softmax(α)ᵀ(ℓ(ω) − ℓ(ω^T)), ∇_ω f(α, ω));
    3. ĝ_t = ∇_ω F_t / ‖∇_ω F_t‖ (0 in the α block), π_t = φ − ⟨∇q, ĝ_t⟩/(‖∇q‖² + 1e-8);
    4. w solves :func:`forum_qp` with c = φ(‖∇q‖² + 1e-8); λ ← λ + (epoch + 1)^{−3/4}(w_{<m} − λ)
       (an average across steps, λ starting at 0);
    5. ν = max(Σ_t λ_t π_t, 0) and the direction is d = Σ_t λ_t ĝ_t + ν ∇q: α takes one Adam
       step along its block (learning rate ``outer_lr``), ω descends its block through the
       trainer's optimiser.

    The objective handed to the trainer is ν·f(α, ω) plus a term linear in ω, of value 0,
    whose gradient is Σ_t λ_t ĝ_t: so the model's gradient is exactly d's ω block (the way
    :class:`~mtlkit.weighting.DBMTL` hands over its balanced gradient), and the reported
    weights are ∂objective/∂ℓ_k = ν·softmax(α)_k. Since it sets the model's gradient itself,
    FORUM cannot be combined with a gradient-space aggregator.

    **The trainer must give the training losses at other parameter values** for step 1–2
    (``ctx.training_losses(params)``, the analogue of ``ctx.validation_losses`` on the step's
    training batch; read from the context attribute or from ``ctx.extra["training_losses"]``).
    Without it FORUM stops with an error that says so. They are multiplied by the task priors
    (``Task.weight``) so that f is the objective the trainer passes.

    Differences from LibMTL: LibMTL's two half-size training batches are here the step's
    training batch (lower level) and the validation batch the trainer draws (upper level);
    the QP is solved by SLSQP plus an exact KKT polish instead of cvxpy; a task without labels
    in the validation batch is left out of the upper level (LibMTL would divide by a zero
    norm) and keeps its λ; a task absent from the training batch leaves the softmax.

    Args:
        inner_lr: learning rate of the inner SGD steps (LibMTL: 0.1).
        outer_lr: learning rate of α's Adam (LibMTL: 1e-3).
        inner_step: T ≥ 1, SGD steps of the inner loop (LibMTL: 5).
        phi: φ > 0, the required decrease of q relative to ‖∇q‖² (LibMTL: 0.1).

    >>> import torch
    >>> from torch import nn
    >>> lin = nn.Linear(1, 1, bias=False); _ = nn.init.zeros_(lin.weight)
    >>> loss_fn = lambda p: torch.stack([(p["weight"][0, 0] - 1) ** 2, (p["weight"][0, 0] + 1) ** 2])
    >>> t = lin.weight[0, 0]
    >>> losses = torch.stack([(t - 1) ** 2, (t + 1) ** 2])
    >>> ctx = StepContext(model=lin, validation_losses=loss_fn, extra={"training_losses": loss_fn})
    >>> w = FORUM(); w.setup(["a", "b"])
    >>> w(losses, ctx).weights  # ω = 0 minimises f: q = 0, ν = max(Σλπ, 0) = φ
    tensor([0.0500, 0.0500])
    """

    paper = ("Ye, Lin, Zhang, Zhang, Chen, Chen & Kwok 2024, A First-Order Multi-Gradient Algorithm "
             "for Multi-Objective Bi-Level Optimization (ECAI)")
    stateful = True
    needs_validation_batch = True
    aggregator_compatible = False

    def __init__(self, *, inner_lr: float = 0.1, outer_lr: float = 1e-3, inner_step: int = 5,
                 phi: float = 0.1) -> None:
        super().__init__()
        self.inner_lr = check_float("FORUM", "inner_lr", inner_lr, low=0.0, low_open=True)
        self.outer_lr = check_float("FORUM", "outer_lr", outer_lr, low=0.0, low_open=True)
        self.inner_step = check_int("FORUM", "inner_step", inner_step, low=1)
        self.phi = check_float("FORUM", "phi", phi, low=0.0, low_open=True)
        self.optim = AdamState(lr=self.outer_lr)
        self.register_buffer("logits", torch.zeros(0))
        self.register_buffer("lambda_average", torch.zeros(0))
        self.nu_: float | None = None

    def setup(self, task_names: Sequence[str], task_sizes: Mapping[str, int] | None = None) -> None:
        super().setup(task_names, task_sizes)
        self._reset(len(self.task_names), self.logits)

    def _reset(self, k: int, like: Tensor) -> None:
        self.logits = torch.full((k,), 1.0 / max(k, 1), dtype=like.dtype, device=like.device)
        self.lambda_average = torch.zeros(k, dtype=like.dtype, device=like.device)
        self.optim.reset(k, self.logits)

    def _prior(self, k: int, like: Tensor) -> Tensor:
        specs = getattr(self, "task_specs", None)
        if specs and len(specs) == k:
            return torch.tensor([float(t.weight) if getattr(t, "weight", None) is not None else 1.0
                                 for t in specs], dtype=like.dtype, device=like.device)
        return torch.ones(k, dtype=like.dtype, device=like.device)

    def forward(self, losses: Tensor, ctx: StepContext) -> WeightingResult:
        bl = bilevel_context("FORUM", ctx)
        if bl.training_losses is None:
            raise ValueError("FORUM runs an inner loop on the training batch: it needs "
                             "ctx.training_losses(params) (the training-batch analogue of "
                             "ctx.validation_losses), which this trainer does not give.")
        k = losses.shape[0]
        if self.logits.numel() != k:
            self._reset(k, losses.detach())
        p = present_of(losses, ctx)
        zero = torch.zeros_like(losses)
        if not bool(p.any()):
            return WeightingResult((losses * 0.0).sum(), zero)
        jac = task_jacobian(losses, p, bl.params)
        w = masked_softmax(self.logits.to(jac), p.to(jac.device))
        js = softmax_jacobian(w)
        prior = self._prior(k, jac)
        theta = bl.flat()
        ell = torch.where(p.to(jac.device), losses.detach().to(jac), torch.zeros_like(w))
        # 1. the inner loop on f(α, ·)
        omega = theta
        for _ in range(self.inner_step):
            leaves = bl.as_params(omega, requires_grad=True)
            f = (w * prior * bl.training_losses(leaves)).sum()
            if float(f.detach()) > INNER_LOSS_LIMIT:
                break
            omega = omega - self.inner_lr * flat_gradient(f, list(leaves.values()))
        with torch.no_grad():
            ell_t = prior * bl.training_losses(bl.as_params(omega)).detach().to(jac)
        ell_t = torch.where(p.to(jac.device), ell_t, torch.zeros_like(ell_t))
        # 2. ∇q in the α block and the ω block
        gq_alpha = js @ (ell - ell_t)
        gq_omega = w @ jac
        gq_sq = float(gq_alpha @ gq_alpha + gq_omega @ gq_omega)
        # 3. unit upper-level gradients (the tasks with validation labels)
        _, val_jac = bl.validation_gradients(theta)
        upper = validation_present(ctx, getattr(self, "task_names", None), k).to(val_jac.device)
        norms = val_jac.norm(dim=1)
        upper = upper & (norms > 0)
        idx = upper.nonzero()[:, 0]
        unit = val_jac[idx] / norms[idx, None]
        lam = self.lambda_average.to(jac).clone()
        nu = 0.0
        direction_omega = torch.zeros_like(theta)
        if idx.numel() > 0:
            inner = unit @ gq_omega
            pi = self.phi - inner / (gq_sq + 1e-8)
            gram = torch.zeros(idx.numel() + 1, idx.numel() + 1, dtype=torch.float64)
            gram[:-1, :-1] = (unit @ unit.T).double().cpu()
            gram[:-1, -1] = gram[-1, :-1] = inner.double().cpu()
            gram[-1, -1] = gq_sq
            qp = forum_qp(gram.numpy(), pi.double().cpu().numpy(), self.phi * (gq_sq + 1e-8))
            rate = 1.0 / float(ctx.epoch + 1) ** 0.75
            sol = torch.as_tensor(qp[:-1], dtype=lam.dtype, device=lam.device)
            lam[idx] = lam[idx] + rate * (sol - lam[idx])
            nu = max(float(lam[idx] @ pi), 0.0)
            direction_omega = lam[idx] @ unit
        self.lambda_average = lam.to(self.lambda_average)
        self.nu_ = nu
        # 5. α's Adam step along ν·∇_α q; the model's gradient through the objective
        self.logits = self.optim.step(self.logits.clone(), (nu * gq_alpha).to(self.logits),
                                      p.to(self.logits.device))
        coef = torch.where(p, (nu * w).to(losses), zero)
        objective = (coef * losses).sum()
        linear = torch.zeros((), dtype=losses.dtype, device=losses.device)
        offset = 0
        for param in bl.params:
            n = param.numel()
            linear = linear + (direction_omega[offset:offset + n].view_as(param).to(param.dtype) * param).sum()
            offset += n
        objective = objective + (linear - linear.detach())
        return WeightingResult(objective, coef.detach())
