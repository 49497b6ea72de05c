"""Mean: the average of the task gradients (equal weighting, the reference)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from mtlkit._registry import AGGREGATORS
from mtlkit.aggregation._base import GramianWeightedAggregator, _check_jacobian


@AGGREGATORS.register()
class Mean(GramianWeightedAggregator):
    """Average of the rows of the Jacobian: ``d = (1/K) Σ_i g_i``.

    The reference every other method is compared with; it never forms the Gramian.

    >>> import torch
    >>> Mean()(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    tensor([0.5000, 0.5000])
    """

    paper = "Equal weighting of task gradients (reference)"
    permutation_invariant = True
    reads_gramian = False

    def weights(self, gramian: Tensor) -> Tensor:
        k = gramian.shape[0]
        return torch.full((k,), 1.0 / k, dtype=gramian.dtype, device=gramian.device)

    def weights_of(self, jacobian: Tensor, *, losses: Tensor | Sequence[float] | None = None,
                   tasks: Sequence[int] | None = None) -> Tensor:
        _check_jacobian(self, jacobian)
        k = jacobian.shape[0]
        return torch.full((k,), 1.0 / k, dtype=jacobian.dtype, device=jacobian.device)

    def aggregate(self, jacobian: Tensor, *, losses: Tensor | None = None,
                  tasks: Sequence[int] | None = None) -> Tensor:
        return jacobian.mean(dim=0)
