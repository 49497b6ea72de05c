"""Random Loss Weighting (Lin et al. 2021)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from mtlkit._registry import WEIGHTINGS
from mtlkit.weighting._base import StepContext, Weighting, WeightingResult, present_of


@WEIGHTINGS.register()
class RLW(Weighting):
    """Fresh random weights every step: λ = softmax(z), z ~ N(0, I_K).

    Lin, Ye, Zhang & Tsang, "Reasonable Effectiveness of Random Weighting: A Litmus Test
    for Multi-Task Learning", TMLR 2022 (arXiv:2111.10603, 2021), with the standard-normal
    distribution of its main experiments. As in the paper the weights sum to 1 (not K);
    tasks absent from the batch are left out of the softmax, so the present tasks' weights
    sum to 1. The K normals are drawn from ``ctx.generator`` (the trainer's seeded method
    generator, saved with its checkpoints); without one, from an own generator seeded with
    ``seed`` whose state is in ``state_dict()``. Same seed, same weights.

    Args:
        seed: seed of the fallback generator (used only when ``ctx.generator`` is None).

    >>> import torch
    >>> w = RLW(seed=0)
    >>> r = w(torch.tensor([1.0, 2.0, 3.0]), StepContext())
    >>> float(r.weights.sum())
    1.0
    """

    paper = ("Lin, Ye, Zhang & Tsang 2022, Reasonable Effectiveness of Random Weighting: "
             "A Litmus Test for Multi-Task Learning (TMLR)")
    stateful = True

    def __init__(self, *, seed: int = 0) -> None:
        super().__init__()
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"The 'seed' parameter of RLW must be a non-negative int. Got {seed!r}.")
        self.seed = seed
        self._generator = torch.Generator().manual_seed(seed)

    def forward(self, losses: Tensor, ctx: StepContext) -> WeightingResult:
        gen = ctx.generator if ctx.generator is not None else self._generator
        z = torch.randn(losses.shape[0], generator=gen, device=gen.device).to(losses)
        p = present_of(losses, ctx)
        w = torch.softmax(torch.where(p, z, torch.full_like(z, -torch.inf)), dim=0)
        w = torch.where(p, w, torch.zeros_like(w))
        return WeightingResult((w * losses).sum(), w.detach())

    def extra_state(self) -> dict[str, Any]:
        return {"generator": self._generator.get_state()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if "generator" in state:
            self._generator.set_state(state["generator"])
