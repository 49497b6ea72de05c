"""MoDo: MGDA's weights updated by one projected gradient step per iteration."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mtlkit._checks import check_float
from mtlkit._registry import AGGREGATORS
from mtlkit.aggregation._base import GramianWeightedAggregator
from mtlkit.aggregation._simplex import project_to_simplex, task_ids
from mtlkit.aggregation._solvers import to_numpy


@AGGREGATORS.register()
class MoDo(GramianWeightedAggregator):
    """Multi-objective gradient with double sampling: the weights λ on the simplex take one
    projected gradient step on MGDA's objective ½‖Jᵀλ‖² (plus ρ/2 ‖λ‖²) per iteration, and
    the update is ``d = Jᵀλ``.

    Chen, Fernando, Ying & Chen, "Three-Way Trade-Off in Multi-Objective Learning:
    Optimization, Generalization and Conflict-Avoidance", NeurIPS 2023
    (https://arxiv.org/abs/2305.20057), Algorithm 1:

        λ_{t+1} = Π_Δ(λ_t − γ (J₁J₂ᵀ + ρI) λ_t),    d_t = J₃ᵀ λ_{t+1},

    with J₁, J₂, J₃ the Jacobians of three independent mini-batches and Π_Δ the Euclidean
    projection onto the simplex (exact, by sorting). λ starts at 1/K. γ = 0 keeps the static
    weighting 1/K (the mean gradient); a large γ drives λ towards MGDA's min-norm weights.

    Choices: the trainer gives one Jacobian per step, so J₁ = J₂ = J₃ = J (the same batch
    three times; the paper's unbiasedness argument needs independent batches, its
    update rule is otherwise unchanged) and the update is a weighting of the Gramian
    ``G = JJᵀ``: it works at representation level and with a Gramian summed over
    processes. γ acts on the raw Gramian, as in the paper and the authors' code, so its
    useful range depends on the gradients' scale. The weights are kept per task index
    (``tasks=``, as the trainer passes): a step without some task leaves its weight alone,
    and a task seen for the first time starts at 1/K before the projection.

    Args:
        gamma: γ ≥ 0, the step size of the weights (default 1e-3, the authors' default).
        rho: ρ ≥ 0, the ℓ2 regularisation of the weights (default 0.1, the authors' default).

    >>> import torch
    >>> MoDo(gamma=0.5, rho=0.0).weights_of(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
    tensor([0.8750, 0.1250])
    """

    paper = ("Chen, Fernando, Ying & Chen 2023, Three-Way Trade-Off in Multi-Objective Learning: Optimization, "
             "Generalization and Conflict-Avoidance (NeurIPS; arXiv:2305.20057), MoDo")
    stateful = True
    permutation_invariant = True
    equals_mean_for_one_task = True

    def __init__(self, *, gamma: float = 1e-3, rho: float = 0.1) -> None:
        self.gamma = check_float("MoDo", "gamma", gamma, low=0.0)
        self.rho = check_float("MoDo", "rho", rho, low=0.0)
        self._lambda: dict[int, float] = {}

    def weights(self, gramian: Tensor, tasks: Sequence[int] | None = None) -> Tensor:
        g = to_numpy(gramian)
        k = g.shape[0]
        ids = task_ids(k, tasks)
        lam = np.array([self._lambda.get(t, 1.0 / k) for t in ids])
        with np.errstate(over="ignore", invalid="ignore"):
            step = lam - self.gamma * (g @ lam + self.rho * lam)
        if not np.all(np.isfinite(step)):
            # a non-finite Gramian (the trainer then skips the step): the state is left alone
            return torch.as_tensor(project_to_simplex(lam), dtype=gramian.dtype, device=gramian.device)
        new = project_to_simplex(step)
        self._lambda.update(zip(ids, new.tolist()))
        return torch.as_tensor(new, dtype=gramian.dtype, device=gramian.device)

    @property
    def lambda_(self) -> dict[int, float]:
        """The current weights λ, per task index."""
        return dict(self._lambda)

    def reset(self) -> None:
        self._lambda = {}

    def state_dict(self) -> dict[str, Any]:
        return {"lambda": {str(t): v for t, v in self._lambda.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state and "lambda" in state:
            self._lambda = {int(t): float(v) for t, v in state["lambda"].items()}
