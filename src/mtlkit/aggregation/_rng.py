"""Seeded random state shared by the randomized aggregators (PCGrad, GradVac, GradDrop)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


class SeededGenerator:
    """A CPU ``torch.Generator`` seeded from ``seed``, with reset and state for resume."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)

    def reset(self) -> None:
        self.generator.manual_seed(self.seed)

    def orders(self, k: int) -> np.ndarray:
        """(K, K) int array: row i is a uniformly random permutation of 0..K-1."""
        return torch.rand(k, k, generator=self.generator, dtype=torch.float64).argsort(dim=1).numpy()

    def state(self) -> torch.Tensor:
        return self.generator.get_state()

    def load(self, state: Any) -> None:
        self.generator.set_state(torch.as_tensor(state, dtype=torch.uint8))
