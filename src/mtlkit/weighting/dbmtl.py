"""DB-MTL: dual balancing of loss scales and gradient magnitudes (Lin et al. 2023)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from mtlkit._checks import check_float
from mtlkit._registry import WEIGHTINGS
from mtlkit.weighting._base import (
    StepContext,
    Weighting,
    WeightingResult,
    present_of,
)


def dbmtl_update(grads: Tensor, ema: Tensor, step: int, beta: float, beta_sigma: float
                 ) -> tuple[Tensor, Tensor, Tensor]:
    """One gradient-magnitude balancing step of DB-MTL (Algorithm 1 of the paper).

    ``grads`` (K, P): this step's gradients of log(L_k + ε) w.r.t. the shared parameters;
    ``ema`` (K, P): the running averages (zeros before the first step); ``step`` ≥ 1.
    Returns ``(new_ema, alpha, direction)`` with

    * new_ema_k = β_t·ema_k + (1 − β_t)·grads_k,  β_t = β / step^{β_σ};
    * alpha_k = max_i ‖new_ema_i‖ / ‖new_ema_k‖  (every task rescaled to the largest norm);
    * direction = Σ_k alpha_k·new_ema_k, the update of the shared parameters.
    """
    beta_t = beta / float(step) ** beta_sigma
    new = beta_t * ema + (1.0 - beta_t) * grads
    norms = new.norm(dim=1)
    alpha = norms.max() / (norms + 1e-8)
    return new, alpha, (alpha[:, None] * new).sum(0)


@WEIGHTINGS.register()
class DBMTL(Weighting):
    """Dual-balancing MTL: log-transformed losses, and task gradients rescaled to the
    largest norm.

    Lin, Jiang, Ye, Zhang, Chen, Chen, Liu, Tsang & Kwok, "Dual-Balancing for Multi-Task
    Learning", 2023 (https://arxiv.org/abs/2308.12029), Algorithm 1:

    * loss-scale balancing: every task loss becomes log(L_k + ε);
    * gradient-magnitude balancing: g_k = ∇_θ log(L_k + ε) for the shared parameters θ
      (from ``ctx.grad_fn``), an exponential moving average ĝ_k ← β_t ĝ_k + (1 − β_t) g_k
      with β_t = β / t^{β_σ} (ĝ starts at 0, t counts steps from 1), and θ descends
      Σ_k (max_i ‖ĝ_i‖ / ‖ĝ_k‖)·ĝ_k;
    * task-specific parameters descend ∇ log(L_k + ε) of their own task.

    Both halves are exact: the objective is Σ_k log(L_k + ε) plus a term linear in θ whose
    value is 0 and whose gradient turns the shared parameters' gradient into the balanced
    direction above. So ∂objective/∂L_k = 1/(L_k + ε) are the reported weights; the
    gradient-magnitude scales of the last step are in ``alpha_``. Since the balancing acts on
    gradients itself, DBMTL cannot be combined with a gradient-space aggregator
    (``aggregator_compatible = False``). Absent tasks are left out of the step; their average
    is kept.

    Args:
        beta: β ∈ [0, 1), the EMA factor (LibMTL's default 0.9).
        beta_sigma: β_σ ≥ 0, decay of β_t with the step (LibMTL's default 0).
        eps: ε > 0 in log(L + ε).

    >>> import torch
    >>> theta = torch.tensor([1.0, 1.0], requires_grad=True)
    >>> from mtlkit.jacobian import jacobian
    >>> losses = torch.stack([(theta[0] - 3) ** 2, 100 * (theta[1] + 1) ** 2])
    >>> w = DBMTL(); w.setup(["a", "b"])
    >>> res = w(losses, StepContext(shared_parameters=[theta], grad_fn=jacobian))
    >>> res.objective.backward(); theta.grad  # both tasks' gradients at the same norm
    tensor([-0.1000,  0.1000])
    """

    paper = "Lin et al. 2023, Dual-Balancing for Multi-Task Learning (arXiv:2308.12029)"
    stateful = True
    needs_gradients = True
    gradients_at = "shared_parameters"
    aggregator_compatible = False

    def __init__(self, *, beta: float = 0.9, beta_sigma: float = 0.0, eps: float = 1e-8) -> None:
        super().__init__()
        self.beta = check_float("DBMTL", "beta", beta, low=0.0, high=1.0, high_open=True)
        self.beta_sigma = check_float("DBMTL", "beta_sigma", beta_sigma, low=0.0)
        self.eps = check_float("DBMTL", "eps", eps, low=0.0, low_open=True)
        self.register_buffer("grad_average", torch.zeros(0, 0))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.alpha_: Tensor | None = None

    def setup(self, task_names: Sequence[str], task_sizes: Mapping[str, int] | None = None) -> None:
        super().setup(task_names, task_sizes)
        self.grad_average = torch.zeros(len(self.task_names), 0)
        self.steps = torch.zeros((), dtype=torch.long)

    def forward(self, losses: Tensor, ctx: StepContext) -> WeightingResult:
        shared = [t for t in ctx.shared_parameters if t.requires_grad]
        if ctx.grad_fn is None or not shared:
            raise ValueError("DBMTL needs ctx.grad_fn and ctx.shared_parameters; the Trainer gives "
                             "them for models with shared parameters.")
        k = losses.shape[0]
        p = present_of(losses, ctx)
        logs = torch.log(losses + self.eps)
        zero = torch.zeros_like(losses)
        base = torch.where(p, logs, zero).sum()
        idx = p.nonzero()[:, 0]
        grads = ctx.grad_fn([logs[i] for i in idx.tolist()], shared).detach()
        n_params = grads.shape[1]
        if self.grad_average.shape != (k, n_params):
            self.grad_average = torch.zeros(k, n_params, dtype=grads.dtype, device=grads.device)
        self.steps = self.steps + 1
        ema, alpha, direction = dbmtl_update(grads, self.grad_average[idx], int(self.steps),
                                             self.beta, self.beta_sigma)
        average = self.grad_average.clone()
        average[idx] = ema
        self.grad_average = average
        full_alpha = torch.zeros(k, dtype=alpha.dtype, device=alpha.device)
        full_alpha[idx] = alpha
        self.alpha_ = full_alpha
        # gradient of `base` w.r.t. θ is Σ_k g_k; the linear term adds (direction − Σ_k g_k)
        correction = direction - grads.sum(0)
        linear = torch.zeros((), dtype=losses.dtype, device=losses.device)
        offset = 0
        for t in shared:
            n = t.numel()
            linear = linear + (correction[offset:offset + n].view_as(t).to(t.dtype) * t).sum()
            offset += n
        objective = base + (linear - linear.detach())
        weights = torch.where(p, 1.0 / (losses.detach() + self.eps), zero)
        return WeightingResult(objective, weights.detach())
