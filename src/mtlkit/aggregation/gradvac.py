"""GradVac: pull the cosine similarity of every task pair up to its running average."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mtlkit._registry import AGGREGATORS
from mtlkit.aggregation._base import GramianWeightedAggregator, check_real, check_seed
from mtlkit.aggregation._rng import SeededGenerator
from mtlkit.aggregation._solvers import normalized, to_numpy


@AGGREGATORS.register()
class GradVac(GramianWeightedAggregator):
    """Gradient Vaccine: adaptive, similarity-targeting gradient surgery.

    Wang, Tsvetkov, Firat & Cao, "Gradient Vaccine: Investigating and Improving Multi-task
    Optimization in Massively Multilingual Models", ICLR 2021 (Algorithm 1). For each pair
    (i, j) the aggregator keeps φ̂_ij, an exponential moving average (rate ``beta``) of the
    observed cosine similarity φ_ij = cos(g_i', g_j). For every task i (others visited in a
    random order), when φ_ij < φ̂_ij the gradient is moved towards g_j just enough to reach
    the target:

        g_i' ← g_i' + ‖g_i'‖ (φ̂_ij √(1−φ_ij²) − φ_ij √(1−φ̂_ij²)) / (‖g_j‖ √(1−φ̂_ij²)) · g_j

    then φ̂_ij ← (1−β) φ̂_ij + β φ_ij. The update is ``d = Σ_i g_i'``. The targets start at 0,
    so early steps act like PCGrad (a negative similarity is lifted to 0).

    Choices: the paper applies the rule per parameter group at several granularities; here
    the Jacobian's rows are whole vectors (whole-model granularity at parameter level, the
    whole representation at representation level). The state is keyed by task index (pass
    ``tasks=``, as the trainer does), so a step without some task leaves its targets alone.

    Args:
        beta: EMA rate β ∈ [0, 1] of the similarity targets (the paper uses 1e-2).
        seed: seed of the generator of the random visiting orders.

    >>> import torch
    >>> GradVac()(torch.tensor([[1.0, 0.0], [-1.0, 1.0]]))
    tensor([0.5000, 1.5000])
    """

    paper = ("Wang, Tsvetkov, Firat & Cao 2021, Gradient Vaccine: Investigating and Improving Multi-task "
             "Optimization in Massively Multilingual Models (ICLR), GradVac")
    stateful = True
    randomized = True
    permutation_invariant = False

    def __init__(self, *, beta: float = 0.01, seed: int = 0) -> None:
        self.beta = check_real("GradVac", "beta", beta, low=0.0, high=1.0, what="a float in [0, 1]")
        self.seed = check_seed("GradVac", seed)
        self._rng = SeededGenerator(seed)
        self._targets = np.zeros((0, 0))

    def weights(self, gramian: Tensor, tasks: Sequence[int] | None = None) -> Tensor:
        g = to_numpy(gramian)
        k = g.shape[0]
        ids = list(range(k)) if tasks is None else list(tasks)
        self._grow(max(ids) + 1)
        orders = self._rng.orders(k)
        gn, s = normalized(g)
        coef = np.eye(k)
        if s > 0.0:
            norms = np.sqrt(np.clip(np.diag(gn), 0.0, None))
            for i in range(k):
                ci = coef[i]
                gci = gn[:, i].copy()  # G c_i: inner products of g_i' with every row
                for j in orders[i]:
                    if j == i or norms[j] <= 0.0:
                        continue
                    ni = math.sqrt(max(float(ci @ gci), 0.0))
                    phi = float(gci[j]) / (ni * norms[j]) if ni > 0.0 else 0.0
                    phi = min(max(phi, -1.0), 1.0)
                    target = float(self._targets[ids[i], ids[j]])
                    if phi < target:
                        root_t = max(math.sqrt(max(1.0 - target * target, 0.0)), 1e-12)
                        step = ni * (target * math.sqrt(max(1.0 - phi * phi, 0.0)) - phi * root_t) / (
                            norms[j] * root_t)
                        ci[j] += step
                        gci += step * gn[:, j]
                    self._targets[ids[i], ids[j]] = (1.0 - self.beta) * target + self.beta * phi
        return torch.as_tensor(coef.sum(axis=0), dtype=gramian.dtype, device=gramian.device)

    def _grow(self, n: int) -> None:
        if self._targets.shape[0] < n:
            t = np.zeros((n, n))
            m = self._targets.shape[0]
            t[:m, :m] = self._targets
            self._targets = t

    @property
    def targets_(self) -> np.ndarray:
        """The current φ̂ matrix (task index × task index)."""
        return self._targets.copy()

    def reset(self) -> None:
        self._rng.reset()
        self._targets = np.zeros((0, 0))

    def state_dict(self) -> dict[str, Any]:
        return {"targets": torch.tensor(self._targets), "generator": self._rng.state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            return
        if "targets" in state:
            self._targets = torch.as_tensor(state["targets"], dtype=torch.float64).numpy().copy()
        if "generator" in state:
            self._rng.load(state["generator"])
