"""GradVac: pull the cosine similarity of every task pair up to its running average."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mtlkit._checks import check_float, check_int
from mtlkit._registry import AGGREGATORS
from mtlkit.aggregation._base import GramianWeightedAggregator
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
    linear_under_scaling = True  # cosines are scale-free; each step scales with c_i
    strongly_stationary = True  # every step adds a non-negative multiple: weights ≥ 1
    equals_mean_for_one_task = True

    def __init__(self, *, beta: float = 0.01, seed: int = 0) -> None:
        self.beta = check_float("GradVac", "beta", beta, low=0.0, high=1.0)
        self.seed = check_int("GradVac", "seed", seed, low=0)
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
            rows = np.arange(k)
            task = np.asarray(ids)
            gc = gn.T.copy()  # row i = G c_i: inner products of g_i' with every row
            live = (orders != rows[:, None]) & (norms[orders] > 0.0)
            # the K surgeries are independent (each pair (i, j) and its target is visited once
            # per call), so step t performs the t-th visit of every task at once
            with np.errstate(divide="ignore", invalid="ignore"):
                for t in range(k):
                    self._visit(t, rows[live[:, t]], orders, coef, gc, gn, norms, task)
        return torch.as_tensor(coef.sum(axis=0), dtype=gramian.dtype, device=gramian.device)

    def _visit(self, t: int, ii: np.ndarray, orders: np.ndarray, coef: np.ndarray, gc: np.ndarray,
               gn: np.ndarray, norms: np.ndarray, task: np.ndarray) -> None:
        """The t-th visit of every task i in ``ii``: j = orders[i, t]; lift ⟨g_i', g_j⟩ to the
        target where it is below, update the target (``coef`` and ``gc`` in place)."""
        jj = orders[ii, t]
        ni = np.sqrt(np.maximum(np.einsum("ij,ij->i", coef[ii], gc[ii]), 0.0))  # ‖g_i'‖
        phi = np.clip(np.where(ni > 0.0, gc[ii, jj] / (ni * norms[jj]), 0.0), -1.0, 1.0)
        ti, tj = task[ii], task[jj]
        target = self._targets[ti, tj]
        up = phi < target
        if up.any():
            iu, ju, tu, pu = ii[up], jj[up], target[up], phi[up]
            root_t = np.maximum(np.sqrt(np.maximum(1.0 - tu * tu, 0.0)), 1e-12)
            step = ni[up] * (tu * np.sqrt(np.maximum(1.0 - pu * pu, 0.0)) - pu * root_t) / (
                norms[ju] * root_t)
            coef[iu, ju] += step
            gc[iu] += step[:, None] * gn[ju]  # gn is symmetric: row j = G e_j
        self._targets[ti, tj] = (1.0 - self.beta) * target + self.beta * phi

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
