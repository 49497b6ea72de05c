"""IMTL-L: the loss-balance half of Impartial Multi-Task Learning (Liu et al. 2021)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from mtlkit._registry import WEIGHTINGS
from mtlkit.weighting._base import StepContext, Weighting, WeightingResult, present_of


@WEIGHTINGS.register()
class IMTLL(Weighting):
    """Learned loss scales: objective Σ_k (e^{s_k}·L_k − s_k).

    Liu, Li, Kuang, Xue, Chen, Yang, Liao & Zhang, "Towards Impartial Multi-task Learning",
    ICLR 2021 (https://openreview.net/forum?id=IMPnRXEWpvr), §3.2 (IMTL-L). Minimising over
    s_k gives e^{s_k} = 1/L_k, so every scaled loss e^{s_k}L_k is driven towards 1: tasks
    are balanced in loss scale. The s_k are ``nn.Parameter`` (initialised to 0) and join the
    trainer's optimiser. Reported weights are ∂objective/∂L_k = e^{s_k}. Tasks absent from a
    batch contribute neither term. (The gradient half, IMTL-G, is a gradient-space
    aggregator.)

    >>> import torch
    >>> w = IMTLL(); w.setup(["a", "b"])
    >>> w(torch.tensor([2.0, 0.5]), StepContext()).objective
    tensor(2.5000, grad_fn=<SumBackward0>)
    """

    paper = "Liu et al. 2021, Towards Impartial Multi-task Learning (ICLR), IMTL-L"
    stateful = True

    def __init__(self) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(0))

    def setup(self, task_names: Sequence[str], task_sizes: Mapping[str, int] | None = None) -> None:
        super().setup(task_names, task_sizes)
        if self.log_scale.numel() != len(self.task_names):
            self.log_scale.data = torch.zeros(len(self.task_names), device=self.log_scale.device)

    def forward(self, losses: Tensor, ctx: StepContext) -> WeightingResult:
        k = losses.shape[0]
        if self.log_scale.numel() != k:
            self.setup(getattr(self, "task_names", None) or [str(i) for i in range(k)])
        p = present_of(losses, ctx)
        s = self.log_scale.to(losses)
        w = torch.exp(s)
        zero = torch.zeros_like(losses)
        terms = torch.where(p, w * losses - s, zero)
        return WeightingResult(terms.sum(), torch.where(p, w, zero).detach())
