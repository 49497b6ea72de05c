"""Dynamic Weight Average (Liu, Johns & Davison 2019)."""

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
)


def dwa_weights(previous: Tensor, before_previous: Tensor, temperature: float) -> Tensor:
    """λ_k = K·exp(r_k/T) / Σ_i exp(r_i/T) with r_k = L_k(t−1) / L_k(t−2) (eq. 3 of the paper).

    A ratio that is undefined (a loss of 0 or non-finite in either epoch, e.g. a task with
    no labelled sample in an epoch) is taken as 1, i.e. "no change".
    """
    ok = torch.isfinite(previous) & torch.isfinite(before_previous) & (before_previous > 0) & (previous >= 0)
    r = torch.where(ok, previous / torch.where(ok, before_previous, torch.ones_like(before_previous)),
                    torch.ones_like(previous))
    return previous.shape[0] * torch.softmax(r / temperature, dim=0)


@WEIGHTINGS.register()
class DWA(Weighting):
    """Weights from the rate of change of each task's epoch-mean loss.

    Liu, Johns & Davison, "End-to-End Multi-Task Learning with Attention", CVPR 2019
    (https://arxiv.org/abs/1803.10704), eq. 3::

        r_k(t−1) = L_k(t−1) / L_k(t−2),   λ_k(t) = K·exp(r_k(t−1)/T) / Σ_i exp(r_i(t−1)/T)

    with L_k the mean training loss of task k over an epoch (the trainer's
    :meth:`on_epoch_end`), so a task whose loss falls more slowly gets more weight. As in
    the paper, λ_k = 1 during the first two epochs (no two-epoch history yet). The last two
    epoch means are the state (in ``state_dict()``). Weights are constant within an epoch.

    Args:
        temperature: T > 0; larger T makes the weights more uniform (paper: 2).

    >>> import torch
    >>> w = DWA(temperature=2.0); w.setup(["a", "b"])
    >>> w.on_epoch_end(0, torch.tensor([1.0, 1.0])); w.on_epoch_end(1, torch.tensor([0.5, 1.0]))
    >>> w(torch.tensor([0.4, 0.9]), StepContext()).weights  # task b stalls: more weight
    tensor([0.8756, 1.1244])
    """

    paper = "Liu, Johns & Davison 2019, End-to-End Multi-Task Learning with Attention (CVPR)"
    stateful = True

    def __init__(self, *, temperature: float = 2.0) -> None:
        super().__init__()
        self.temperature = check_float("DWA", "temperature", temperature, low=0.0, low_open=True)
        # rows: mean losses of the epoch before last, of the last epoch
        self.register_buffer("loss_history", torch.zeros(0, 2))
        self.register_buffer("epochs_seen", torch.zeros((), dtype=torch.long))

    def setup(self, task_names: Sequence[str], task_sizes: Mapping[str, int] | None = None) -> None:
        super().setup(task_names, task_sizes)
        self.loss_history = torch.full((2, len(self.task_names)), math.nan)
        self.epochs_seen = torch.zeros((), dtype=torch.long)

    def _weights(self, k: int) -> Tensor:
        if int(self.epochs_seen) < 2 or self.loss_history.shape[-1] != k:
            return torch.ones(k)
        return dwa_weights(self.loss_history[1], self.loss_history[0], self.temperature)

    def forward(self, losses: Tensor, ctx: StepContext) -> WeightingResult:
        w = masked(self._weights(losses.shape[0]).to(losses), ctx.present)
        return WeightingResult((w * losses).sum(), w.detach())

    def on_epoch_end(self, epoch: int, mean_losses: Tensor) -> None:
        m = mean_losses.detach().to(torch.float32).cpu().reshape(-1)
        if self.loss_history.shape != (2, m.shape[0]):
            self.loss_history = torch.full((2, m.shape[0]), math.nan)
        self.loss_history = torch.stack([self.loss_history[1], m.to(self.loss_history.device)])
        self.epochs_seen = self.epochs_seen + 1
