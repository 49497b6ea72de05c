"""Equal weighting: the plain sum of task losses (each task's static λ is applied by the
trainer's ``Static`` default only when configured)."""

from __future__ import annotations

import torch
from torch import Tensor

from mtlkit._registry import WEIGHTINGS
from mtlkit.weighting._base import StepContext, Weighting, WeightingResult, masked


@WEIGHTINGS.register()
class Equal(Weighting):
    """Sum of the task losses, every weight 1 (the reference).

    >>> import torch
    >>> Equal()(torch.tensor([1.0, 2.0]), StepContext()).objective
    tensor(3.)
    """

    paper = "Equal weighting (baseline)"

    def forward(self, losses: Tensor, ctx: StepContext) -> WeightingResult:
        w = masked(torch.ones_like(losses), ctx.present)
        return WeightingResult((w * losses).sum(), w.detach())
