"""Geometric Loss Strategy (Chennupati et al. 2019)."""

from __future__ import annotations

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


@WEIGHTINGS.register()
class GLS(Weighting):
    """The geometric mean of the task losses: (Π_k L_k)^{1/K}.

    Chennupati, Sistu, Yogamani & Rawashdeh, "MultiNet++: Multi-Stream Feature Aggregation
    and Geometric Loss Strategy for Multi-Task Learning", CVPR Workshops 2019
    (https://arxiv.org/abs/1904.08492), eq. 2. The geometric mean is invariant to a
    rescaling of any one loss up to a constant factor, so no task dominates by scale. Its
    weights are ∂objective/∂L_k = objective / (K·L_k): a task's weight is inversely
    proportional to its loss. The product runs over the K tasks present in the batch,
    computed as exp(mean log L) for stability; losses are clamped at ``eps`` (a task at or
    below ``eps`` gets weight 0 and leaves the objective's gradient).

    Args:
        eps: lower clamp of the losses (> 0).

    >>> import torch
    >>> r = GLS()(torch.tensor([1.0, 4.0]), StepContext())
    >>> r.objective, r.weights
    (tensor(2.), tensor([1.0000, 0.2500]))
    """

    paper = ("Chennupati, Sistu, Yogamani & Rawashdeh 2019, MultiNet++: Multi-Stream Feature "
             "Aggregation and Geometric Loss Strategy for Multi-Task Learning (CVPR Workshops)")

    def __init__(self, *, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = check_float("GLS", "eps", eps, low=0.0, low_open=True)

    def forward(self, losses: Tensor, ctx: StepContext) -> WeightingResult:
        p = present_of(losses, ctx)
        n = p.sum().clamp_min(1).to(losses.dtype)
        logs = torch.where(p, torch.log(losses.clamp_min(self.eps)), torch.zeros_like(losses))
        objective = torch.exp(logs.sum() / n)
        live = p & (losses.detach() > self.eps)
        w = torch.where(live, objective.detach() / (n * losses.detach().clamp_min(self.eps)),
                        torch.zeros_like(losses))
        return WeightingResult(objective, w.detach())
