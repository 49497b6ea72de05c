"""Static weighting: user-chosen λ per task (Keras' ``loss_weights``)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from mtlkit._registry import WEIGHTINGS
from mtlkit.weighting._base import StepContext, Weighting, WeightingResult, masked


@WEIGHTINGS.register()
class Static(Weighting):
    """Weighted sum Σ λ_k L_k with fixed λ.

    Args:
        weights: ``{task: λ}``; tasks not named keep λ = 1 (or the ``Task.weight`` the trainer
            passes in when ``weights`` is None).

    >>> import torch
    >>> w = Static(weights={"a": 1.0, "b": 0.1}); w.setup(["a", "b"])
    >>> w(torch.tensor([2.0, 10.0]), StepContext()).objective
    tensor(3.)
    """

    paper = "Static loss weights (e.g. Keras loss_weights)"

    def __init__(self, *, weights: Mapping[str, float] | None = None) -> None:
        super().__init__()
        if weights is not None and not isinstance(weights, Mapping):
            raise TypeError(f"The 'weights' parameter of Static must be a mapping {{task: λ}}. "
                            f"Got {type(weights).__name__}: {weights!r}.")
        self.weights = dict(weights or {})
        for k, v in self.weights.items():
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(
                    f"The 'weights' parameter of Static must map task names to finite "
                    f"non-negative floats. Got {k!r}: {v!r}."
                )
        self.register_buffer("_lam", torch.ones(0), persistent=False)

    def setup(self, task_names: Sequence[str], task_sizes: Mapping[str, int] | None = None) -> None:
        super().setup(task_names, task_sizes)
        unknown = set(self.weights) - set(task_names)
        if unknown:
            raise ValueError(
                f"Static weights name unknown task(s) {sorted(unknown)}; tasks are {list(task_names)}."
            )
        self._lam = torch.tensor([float(self.weights.get(t, 1.0)) for t in task_names])

    def forward(self, losses: Tensor, ctx: StepContext) -> WeightingResult:
        lam = self._lam.to(losses) if self._lam.numel() else torch.ones_like(losses)
        w = masked(lam, ctx.present)
        return WeightingResult((w * losses).sum(), w.detach())
