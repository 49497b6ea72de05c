"""GradNorm (Chen et al. 2018): weights that equalise gradient norms at the last shared layer."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from mtlkit._checks import check_float
from mtlkit._registry import WEIGHTINGS
from mtlkit.weighting._base import (
    StepContext,
    Weighting,
    WeightingResult,
    masked,
    present_of,
)
from mtlkit.weighting._optim import AdamState


def gradnorm_weight_gradient(weights: Tensor, grad_norms: Tensor, loss_ratios: Tensor, alpha: float) -> Tensor:
    """∂L_grad/∂w of GradNorm's loss (eq. 2 of the paper), the target held constant.

    ``grad_norms`` are ‖∇_W L_i‖ at the last shared layer W (so G_i = w_i·‖∇_W L_i‖),
    ``loss_ratios`` the L̃_i = L_i(t)/L_i(0). With r_i = L̃_i / mean(L̃) and
    Ḡ = mean(G):  L_grad = Σ_i |G_i − Ḡ·r_i^α|,  so ∂L_grad/∂w_i = sign(G_i − Ḡ·r_i^α)·‖∇_W L_i‖.
    """
    g = weights * grad_norms
    target = g.mean() * (loss_ratios / loss_ratios.mean()) ** alpha
    return torch.sign(g - target) * grad_norms


@WEIGHTINGS.register()
class GradNorm(Weighting):
    """Learned weights w_k that make the weighted tasks' gradient norms at the last shared
    layer follow their relative inverse training rates.

    Chen, Badrinarayanan, Lee & Rabinovich, "GradNorm: Gradient Normalization for Adaptive
    Loss Balancing in Deep Multitask Networks", ICML 2018 (https://arxiv.org/abs/1711.02257).
    Each step (Algorithm 1):

    1. the network descends Σ_k w_k L_k with the current w (reported as the weights);
    2. G_k = ‖∇_W w_k L_k‖ at W = ``ctx.last_shared_parameters``, Ḡ = mean_k G_k,
       L̃_k = L_k(t)/L_k(0), r_k = L̃_k / mean(L̃);
    3. w descends L_grad = Σ_k |G_k − Ḡ·r_k^α| with the target Ḡ·r_k^α held constant, by
       its own Adam (learning rate ``lr``; its moments are in ``state_dict()``, the trainer's
       optimiser never sees w);
    4. w is clipped at 0 and renormalised to Σ_k w_k = K.

    L_k(0) is the loss of task k the first time it is present (normally step 0). Only the
    tasks present in the batch take part in Ḡ, r and the update. The per-task gradient
    norms come from ``ctx.grad_fn`` (the trainer fills it since ``needs_gradients``).

    Args:
        alpha: α ≥ 0, the asymmetry: how strongly slow tasks are pulled back (paper: 0.12
            to 3 depending on the problem; 1.5 for NYUv2).
        lr: learning rate of w's Adam (0.025, the common choice of reimplementations).

    >>> import torch
    >>> from torch import nn
    >>> from mtlkit.jacobian import jacobian
    >>> layer = nn.Linear(2, 1, bias=False); _ = nn.init.ones_(layer.weight)
    >>> x = layer(torch.tensor([[1.0, 2.0]]))[0, 0]
    >>> losses = torch.stack([x, 10 * x])
    >>> w = GradNorm(alpha=1.5); w.setup(["a", "b"])
    >>> ctx = StepContext(last_shared_parameters=[layer.weight], grad_fn=jacobian)
    >>> w(losses, ctx).weights, w.loss_weights  # used now; after one update
    (tensor([1., 1.]), tensor([1.0250, 0.9750]))
    """

    paper = ("Chen, Badrinarayanan, Lee & Rabinovich 2018, GradNorm: Gradient Normalization for "
             "Adaptive Loss Balancing in Deep Multitask Networks (ICML)")
    stateful = True
    needs_gradients = True
    gradients_at = "last_shared_parameters"

    def __init__(self, *, alpha: float = 1.5, lr: float = 0.025) -> None:
        super().__init__()
        self.alpha = check_float("GradNorm", "alpha", alpha, low=0.0)
        self.lr = check_float("GradNorm", "lr", lr, low=0.0, low_open=True)
        self.optim = AdamState(lr=self.lr)
        self.register_buffer("loss_weights", torch.zeros(0))
        self.register_buffer("initial_losses", torch.zeros(0))

    def setup(self, task_names: Sequence[str], task_sizes: Mapping[str, int] | None = None) -> None:
        super().setup(task_names, task_sizes)
        self._reset(len(self.task_names), self.loss_weights)

    def _reset(self, k: int, like: Tensor) -> None:
        self.loss_weights = torch.ones(k, dtype=like.dtype, device=like.device)
        self.initial_losses = torch.full((k,), math.nan, dtype=like.dtype, device=like.device)
        self.optim.reset(k, self.loss_weights)

    def forward(self, losses: Tensor, ctx: StepContext) -> WeightingResult:
        k = losses.shape[0]
        if self.loss_weights.numel() != k:
            self._reset(k, losses.detach())
        p = present_of(losses, ctx)
        w_now = masked(self.loss_weights.to(losses), p)
        objective = (w_now * losses).sum()
        if ctx.grad_fn is None or not list(ctx.last_shared_parameters):
            raise ValueError("GradNorm needs ctx.grad_fn and ctx.last_shared_parameters (the last "
                             "shared layer); the Trainer gives them for models with shared parameters.")
        detached = losses.detach().to(self.loss_weights)
        first = p & torch.isnan(self.initial_losses)
        self.initial_losses = torch.where(first, detached, self.initial_losses)
        idx = p.nonzero()[:, 0]
        jac = ctx.grad_fn([losses[i] for i in idx.tolist()], list(ctx.last_shared_parameters))
        norms = jac.detach().norm(dim=1).to(self.loss_weights)
        ratios = detached[idx] / self.initial_losses[idx].clamp_min(1e-12)
        grad = torch.zeros_like(self.loss_weights)
        grad[idx] = gradnorm_weight_gradient(self.loss_weights[idx], norms, ratios, self.alpha)
        new = self.optim.step(self.loss_weights.clone(), grad, p).clamp_min(0.0)
        total = new.sum()
        self.loss_weights = k * new / total if bool(total > 0) else torch.ones_like(new)
        return WeightingResult(objective, w_now.detach())
