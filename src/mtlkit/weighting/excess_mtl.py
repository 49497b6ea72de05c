"""ExcessMTL: task weights from estimated excess risks (He et al. 2024)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from mtlkit._checks import check_float, check_int
from mtlkit._registry import WEIGHTINGS
from mtlkit.weighting._base import (
    StepContext,
    Weighting,
    WeightingResult,
    present_of,
)


def excess_risk_estimates(grads: Tensor, grad_sq_sum: Tensor, eps: float) -> Tensor:
    """The excess risks of the paper's second-order estimate (eqs. 6–7), with the diagonal
    Hessian approximated as in AdaGrad: ``e_k = Σ_j g_kj² / sqrt(G_kj + ε)`` where ``grads``
    (K, P) are this step's task gradients g_k and ``grad_sq_sum`` (K, P) the running sums G_k
    of their squares, this step included (the official code's arithmetic; the paper's ½ is
    left out as in that code: it cancels in the ratio to the baseline).

    >>> import torch
    >>> g = torch.tensor([[3.0, 4.0], [1.0, 2.0]])
    >>> excess_risk_estimates(g, g ** 2, 0.0)  # with one step G = g²: Σ|g_j|
    tensor([7., 3.])
    """
    return (grads.pow(2) / torch.sqrt(grad_sq_sum + eps)).sum(dim=1)


def excess_mtl_update(log_weights: Tensor, ratios: Tensor, step_size: float) -> Tensor:
    """One exponentiated-gradient step of the task weights (eq. 9), renormalised to sum K:
    ``w_k ∝ w_k · exp(η · r_k)`` with r_k the excess risk over its baseline. Works on
    log-weights, so large η·r cannot overflow.

    >>> import torch
    >>> excess_mtl_update(torch.zeros(2), torch.tensor([1.0, 0.0]), 1.0)  # 2·(e, 1)/(e + 1)
    tensor([1.4621, 0.5379])
    """
    k = log_weights.shape[0]
    return k * torch.softmax(log_weights + step_size * ratios, dim=0)


@WEIGHTINGS.register()
class ExcessMTL(Weighting):
    """Task weights raised multiplicatively by each task's estimated distance to convergence.

    He, Zhou, Zhang, Yun, Xu, Zeng, Chilimbi & Zhao, "Robust Multi-Task Learning with Excess
    Risks", ICML 2024 (https://arxiv.org/abs/2402.02009), as in the official code
    (github.com/yifei-he/ExcessMTL, also LibMTL's ``ExcessMTL``). Each step:

    1. g_k = ∇_θ L_k for the shared parameters θ (``ctx.grad_fn``), G_k ← G_k + g_k²
       (element-wise, summed over the steps: AdaGrad's diagonal estimate of the Hessian);
    2. excess risk e_k = Σ_j g_kj² / sqrt(G_kj + ε) (:func:`excess_risk_estimates`, the
       Taylor estimate ½ gᵀH⁻¹g with H ≈ diag(√G));
    3. scale normalisation: r_k = e_k / e_k⁰, with e_k⁰ the task's mean estimate over its
       first ``baseline_steps`` steps (during which its weight is not updated);
    4. w_k ← K · w_k exp(η r_k) / Σ_i w_i exp(η r_i) (:func:`excess_mtl_update`, the
       paper's exponentiated gradient with η = ``robust_step_size``), and the model descends
       Σ_k w_k L_k with the new weights.

    A task far from convergence (large excess risk) gains weight; a noisy task whose loss
    stays high but whose gradient vanishes does not, which is the point of the method.
    Weights sum to K (as the official code; the paper's simplex is the same up to that
    factor) and start at 1. A task absent from a batch keeps its G, its baseline and its
    log-weight (it takes no part in the update: r = 0) and gets weight 0 in the objective.
    The task priors λ_k·L_k the trainer passes cancel in r_k. All the state (w, G, the
    baselines) is in ``state_dict()``.

    Args:
        robust_step_size: η > 0 of the weight update (the official code's
            ``robust_step_size``, default 1e-2; its README example uses 1).
        baseline_steps: steps whose mean excess risk is each task's baseline (the official
            code: 1, the first step; the paper's appendix C.1 averages over the first epochs).
        eps: ε > 0 in sqrt(G + ε) (official code: 1e-7).

    >>> import torch
    >>> theta = torch.tensor([1.0, 1.0], requires_grad=True)
    >>> from mtlkit.jacobian import jacobian
    >>> ctx = StepContext(shared_parameters=[theta], grad_fn=jacobian)
    >>> w = ExcessMTL(robust_step_size=1.0); w.setup(["a", "b"])
    >>> w(torch.stack([theta[0] ** 2, theta[1] ** 2]), ctx).weights  # first step: baseline
    tensor([1., 1.])
    >>> w(torch.stack([theta[0] ** 2, 0.5 * theta[1] ** 2]), ctx).weights  # r = (4/√8, 1/√5)/2
    tensor([1.2371, 0.7629])
    """

    paper = ("He, Zhou, Zhang, Yun, Xu, Zeng, Chilimbi & Zhao 2024, Robust Multi-Task Learning "
             "with Excess Risks (ICML)")
    stateful = True
    needs_gradients = True
    gradients_at = "shared_parameters"

    def __init__(self, *, robust_step_size: float = 1e-2, baseline_steps: int = 1, eps: float = 1e-7) -> None:
        super().__init__()
        self.robust_step_size = check_float("ExcessMTL", "robust_step_size", robust_step_size,
                                            low=0.0, low_open=True)
        self.baseline_steps = check_int("ExcessMTL", "baseline_steps", baseline_steps, low=1)
        self.eps = check_float("ExcessMTL", "eps", eps, low=0.0, low_open=True)
        self.register_buffer("loss_weights", torch.zeros(0))
        self.register_buffer("grad_sq_sum", torch.zeros(0, 0))
        self.register_buffer("baseline_sum", torch.zeros(0))
        self.register_buffer("baseline_count", torch.zeros(0))

    def setup(self, task_names: Sequence[str], task_sizes: Mapping[str, int] | None = None) -> None:
        super().setup(task_names, task_sizes)
        self._reset(len(self.task_names), self.loss_weights)

    def _reset(self, k: int, like: Tensor) -> None:
        self.loss_weights = torch.ones(k, dtype=like.dtype, device=like.device)
        self.grad_sq_sum = torch.zeros(k, 0, dtype=like.dtype, device=like.device)
        self.baseline_sum = torch.zeros(k, dtype=like.dtype, device=like.device)
        self.baseline_count = torch.zeros(k, dtype=like.dtype, device=like.device)

    @property
    def baseline(self) -> Tensor:
        """e⁰: each task's baseline excess risk (NaN while it has none)."""
        return torch.where(self.baseline_count > 0, self.baseline_sum / self.baseline_count.clamp_min(1),
                           torch.full_like(self.baseline_sum, float("nan")))

    def forward(self, losses: Tensor, ctx: StepContext) -> WeightingResult:
        shared = [t for t in ctx.shared_parameters if t.requires_grad]
        if ctx.grad_fn is None or not shared:
            raise ValueError("ExcessMTL needs ctx.grad_fn and ctx.shared_parameters; the Trainer gives "
                             "them for models with shared parameters.")
        k = losses.shape[0]
        if self.loss_weights.numel() != k:
            self._reset(k, losses.detach())
        p = present_of(losses, ctx)
        idx = p.nonzero()[:, 0]
        zero = torch.zeros_like(losses)
        if idx.numel() == 0:
            return WeightingResult((losses * 0.0).sum(), zero)
        grads = ctx.grad_fn([losses[i] for i in idx.tolist()], shared).detach().to(self.loss_weights)
        if self.grad_sq_sum.shape != (k, grads.shape[1]):
            self.grad_sq_sum = torch.zeros(k, grads.shape[1], dtype=grads.dtype, device=grads.device)
        sq = self.grad_sq_sum.clone()
        sq[idx] = sq[idx] + grads.pow(2)
        self.grad_sq_sum = sq
        excess = excess_risk_estimates(grads, sq[idx], self.eps)
        in_baseline = self.baseline_count[idx] < self.baseline_steps
        b_sum, b_count = self.baseline_sum.clone(), self.baseline_count.clone()
        b_sum[idx] = torch.where(in_baseline, b_sum[idx] + excess, b_sum[idx])
        b_count[idx] = torch.where(in_baseline, b_count[idx] + 1, b_count[idx])
        self.baseline_sum, self.baseline_count = b_sum, b_count
        updating = ~in_baseline
        if bool(updating.any()):
            base = b_sum[idx] / b_count[idx].clamp_min(1)
            ok = updating & (base > 0)
            ratio = torch.where(ok, excess / torch.where(ok, base, torch.ones_like(base)), torch.zeros_like(base))
            ratios = torch.zeros_like(self.loss_weights)
            ratios[idx] = ratio
            self.loss_weights = excess_mtl_update(torch.log(self.loss_weights), ratios, self.robust_step_size)
        w = torch.where(p, self.loss_weights.to(losses), zero)
        return WeightingResult((w * losses).sum(), w.detach())
