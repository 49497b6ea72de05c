"""Inverse-size weighting: each task weighted inversely to its number of labelled samples."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from mtlkit._registry import WEIGHTINGS
from mtlkit.weighting._base import StepContext, Weighting, WeightingResult, masked


@WEIGHTINGS.register()
class InverseSize(Weighting):
    """Weights λ_k ∝ 1/n_k, normalised so that Σ_k λ_k = K.

    ``n_k`` is the number of labelled training samples of task k (the trainer passes the
    counts to :meth:`setup`; ``ctx.task_sizes`` is used when setup had none). A task with
    ten times more labels thus gets a tenth of the weight, so that it does not dominate the
    shared parameters. There is no single paper: it is the inverse of the
    "examples-proportional" mixing used when tasks have very different data sizes (e.g.
    Raffel et al. 2020, "Exploring the Limits of Transfer Learning with a Unified
    Text-to-Text Transformer", JMLR, §3.5.2), applied as loss weights.

    >>> import torch
    >>> w = InverseSize(); w.setup(["a", "b"], {"a": 100, "b": 300})
    >>> w(torch.tensor([1.0, 1.0]), StepContext()).weights
    tensor([1.5000, 0.5000])
    """

    paper = "Inverse task-size loss weights (inverse of examples-proportional mixing)"

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("_lam", torch.zeros(0), persistent=False)

    def setup(self, task_names: Sequence[str], task_sizes: Mapping[str, int] | None = None) -> None:
        super().setup(task_names, task_sizes)
        self._lam = torch.zeros(0)
        if task_sizes is not None:
            self._lam = self._weights_from(task_sizes)

    def _weights_from(self, sizes: Mapping[str, int]) -> Tensor:
        names = getattr(self, "task_names", None) or list(sizes)
        missing = [t for t in names if t not in sizes]
        if missing:
            raise ValueError(f"InverseSize needs the labelled-sample count of every task; "
                             f"missing {missing}.")
        n = torch.tensor([float(sizes[t]) for t in names], dtype=torch.float64)
        if bool((n <= 0).any()):
            bad = {t: sizes[t] for t in names if sizes[t] <= 0}
            raise ValueError(f"InverseSize needs at least one labelled sample per task. Got {bad}.")
        inv = 1.0 / n
        return (len(names) * inv / inv.sum()).float()

    def forward(self, losses: Tensor, ctx: StepContext) -> WeightingResult:
        if self._lam.numel() == 0:
            if ctx.task_sizes is None:
                raise ValueError("InverseSize needs task sizes: call setup(task_names, task_sizes) "
                                 "or give ctx.task_sizes (the Trainer does this from the training data).")
            self._lam = self._weights_from(ctx.task_sizes)
        w = masked(self._lam.to(losses), ctx.present)
        return WeightingResult((w * losses).sum(), w.detach())
