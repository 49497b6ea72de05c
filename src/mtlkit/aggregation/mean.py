"""Mean: the average of the task gradients (equal weighting, the reference)."""

from __future__ import annotations

import torch
from torch import Tensor

from mtlkit._registry import AGGREGATORS
from mtlkit.aggregation._base import GramianWeightedAggregator


@AGGREGATORS.register()
class Mean(GramianWeightedAggregator):
    """Average of the rows of the Jacobian: ``d = (1/K) Σ_i g_i``.

    The reference every other method is compared with; its weights do not read the Gramian
    (``reads_gramian = False``), so it is never formed, and in the trainer (one process, the
    parameter level) the Jacobian is not formed either: the direction (1/K) Σ_i ∇(w_i L_i)
    is the gradient of (1/K) Σ_i w_i L_i, one backward pass instead of K (the same step up to
    the rounding of the sum; ``mtlkit.training.step``).

    >>> import torch
    >>> Mean()(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    tensor([0.5000, 0.5000])
    """

    paper = "Equal weighting of task gradients (reference)"
    permutation_invariant = True
    linear_under_scaling = True
    strongly_stationary = True  # d = Jᵀ1/K = 0 means Jᵀ1 = 0
    equals_mean_for_one_task = True
    reads_gramian = False

    def weights(self, gramian: Tensor) -> Tensor:
        k = gramian.shape[0]
        return torch.full((k,), 1.0 / k, dtype=gramian.dtype, device=gramian.device)
