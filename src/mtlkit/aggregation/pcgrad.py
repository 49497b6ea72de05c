"""PCGrad: project each task gradient onto the normal plane of the ones it conflicts with."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from mtlkit._checks import check_int
from mtlkit._registry import AGGREGATORS
from mtlkit.aggregation._base import GramianWeightedAggregator
from mtlkit.aggregation._rng import SeededGenerator
from mtlkit.aggregation._solvers import normalized, to_numpy


@AGGREGATORS.register()
class PCGrad(GramianWeightedAggregator):
    """Projecting conflicting gradients ("gradient surgery").

    Yu, Kumar, Gupta, Levine, Hausman & Finn, "Gradient Surgery for Multi-Task Learning",
    NeurIPS 2020 (Algorithm 1). For every task i, start from g_i^PC = g_i and visit the
    other tasks j in a random order; whenever ⟨g_i^PC, g_j⟩ < 0, remove the conflicting
    component: g_i^PC ← g_i^PC − ⟨g_i^PC, g_j⟩ / ‖g_j‖² · g_j. The update is the *sum*
    ``d = Σ_i g_i^PC`` (as in the paper; so one task gives its gradient unchanged).

    Each g_i^PC is a combination of the original rows, so the whole method is a weighting
    of the Gramian: it runs on K×K numbers, whatever the number of parameters. A fresh
    random order is drawn for every task at every call from the aggregator's own
    ``torch.Generator`` seeded with ``seed`` (its state is in :meth:`state_dict`). With two
    tasks the order does not matter and ⟨g_i, d⟩ ≥ 0 for both; with more it is not
    guaranteed.

    Args:
        seed: seed of the generator of the random orders.

    >>> import torch
    >>> PCGrad()(torch.tensor([[1.0, 0.0], [-1.0, 1.0]]))
    tensor([0.5000, 1.5000])
    """

    paper = ("Yu, Kumar, Gupta, Levine, Hausman & Finn 2020, Gradient Surgery for Multi-Task Learning "
             "(NeurIPS), PCGrad")
    stateful = True
    randomized = True
    permutation_invariant = False
    linear_under_scaling = True  # g_i^PC of c_i g_i is c_i g_i^PC (given the same orders)
    strongly_stationary = True  # every weight is ≥ 1 (1 + the projection coefficients)
    equals_mean_for_one_task = True

    def __init__(self, *, seed: int = 0) -> None:
        self.seed = check_int("PCGrad", "seed", seed, low=0)
        self._rng = SeededGenerator(seed)

    def weights(self, gramian: Tensor) -> Tensor:
        g = to_numpy(gramian)
        k = g.shape[0]
        orders = self._rng.orders(k)
        gn, s = normalized(g)
        coef = np.eye(k)
        if s > 0.0:
            diag = np.diag(gn)
            rows = np.arange(k)
            live = (orders != rows[:, None]) & (diag[orders] > 0.0)
            # row i of `coef` is g_i^PC in the basis of the rows; the K surgeries are
            # independent, so step t performs the t-th projection of every task at once
            for t in range(k):
                js = orders[:, t]
                dots = np.einsum("ij,ij->i", coef, gn[js])  # ⟨g_i^PC, g_j⟩ (gn is symmetric)
                hit = live[:, t] & (dots < 0.0)
                jj = js[hit]
                coef[rows[hit], jj] -= dots[hit] / diag[jj]
        return torch.as_tensor(coef.sum(axis=0), dtype=gramian.dtype, device=gramian.device)

    def reset(self) -> None:
        self._rng.reset()

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self._rng.state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state and "generator" in state:
            self._rng.load(state["generator"])
