"""TrimmedMean: the coordinate-wise mean without the extreme values."""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor

from mtlkit._checks import check_int
from mtlkit._registry import AGGREGATORS
from mtlkit.aggregation._base import Aggregator


@AGGREGATORS.register()
class TrimmedMean(Aggregator):
    """Coordinate-wise trimmed mean: in every coordinate, drop the ``trim_number`` largest
    and the ``trim_number`` smallest of the K task values and average the rest.

    Yin, Chen, Ramchandran & Bartlett, "Byzantine-Robust Distributed Learning: Towards
    Optimal Statistical Rates", ICML 2018 (https://arxiv.org/abs/1803.01498), as TorchJD
    defines it (a number of values trimmed at each end rather than the paper's fraction β):

        d_p = (1 / (K − 2b)) Σ_{i = b+1}^{K−b} g_(i),p,   g_(1),p ≤ … ≤ g_(K),p sorted.

    Not a weighting of the Gramian (the kept rows differ per coordinate), so no weights are
    logged; it works at both levels. Independent of the order of the tasks; linear in the
    gradients' scale; one task gives its gradient.

    Choice: TorchJD refuses fewer than ``2·trim_number + 1`` rows; here (a step where some
    tasks are absent must still work) at most ⌊(K − 1)/2⌋ values are trimmed at each end,
    so at least one remains (two tasks: their mean).

    Speed: the K values of every coordinate are ordered by Batcher's odd–even merge sorting
    network (K fixed per step, O(K log² K) compare–exchanges, each one elementwise min/max
    of two rows over all P coordinates) instead of ``torch.sort`` along the task dimension,
    which sorts P short columns one by one. The rows kept are the same values in the same
    order, averaged by the same ``mean``: the result equals the sort's exactly (NaN counts as
    the largest value, as in ``torch.sort``; only the sign of a zero may differ).

    Args:
        trim_number: b ≥ 0, the values dropped at each end of every coordinate (default 1;
            0 is the mean).

    >>> import torch
    >>> TrimmedMean()(torch.tensor([[1.0, -5.0], [2.0, 0.0], [30.0, 1.0]]))
    tensor([2., 0.])
    """

    paper = ("Yin, Chen, Ramchandran & Bartlett 2018, Byzantine-Robust Distributed Learning: Towards Optimal "
             "Statistical Rates (ICML; arXiv:1803.01498), coordinate-wise trimmed mean as in TorchJD")
    permutation_invariant = True
    equals_mean_for_one_task = True

    def __init__(self, *, trim_number: int = 1) -> None:
        self.trim_number = check_int("TrimmedMean", "trim_number", trim_number, low=0)

    def direction(self, jacobian: Tensor) -> Tensor:
        k = jacobian.shape[0]
        b = min(self.trim_number, (k - 1) // 2)
        if b == 0:
            return jacobian.mean(dim=0)
        # NaN sorts last in torch.sort; here it is ordered as +inf and a coordinate whose
        # kept values would hold one (more than b NaNs) gives NaN, as the sort's mean does.
        # On CPU a NaN-free Jacobian (its column sums are NaN-free) skips that bookkeeping;
        # elsewhere it is always done (no host synchronisation).
        nan_count = None
        if jacobian.device.type != "cpu" or bool(torch.isnan(jacobian.sum(dim=0)).any()):
            nan_count = torch.isnan(jacobian).sum(dim=0, dtype=torch.int32)
            jacobian = torch.nan_to_num(jacobian, nan=float("inf"), posinf=float("inf"),
                                        neginf=float("-inf"))
        out = torch.stack(_sorted_rows(jacobian)[b:k - b]).mean(dim=0)
        return out if nan_count is None else out.masked_fill(nan_count > b, float("nan"))


def _sorted_rows(x: Tensor) -> list[Tensor]:
    """The rows of x sorted coordinate-wise (ascending), by the network of :func:`_network`."""
    k = x.shape[0]
    rows = [r.clone() for r in x.unbind(0)] if k > 1 else list(x.unbind(0))
    if torch.is_grad_enabled() and x.requires_grad:
        for i, j in _network(k):
            rows[i], rows[j] = torch.minimum(rows[i], rows[j]), torch.maximum(rows[i], rows[j])
        return rows
    buf = torch.empty_like(x[0])
    for i, j in _network(k):  # rows[i], rows[j] <- min, max without allocating
        torch.minimum(rows[i], rows[j], out=buf)
        torch.maximum(rows[i], rows[j], out=rows[j])
        rows[i], buf = buf, rows[i]
    return rows


@lru_cache(maxsize=64)
def _network(k: int) -> tuple[tuple[int, int], ...]:
    """Compare–exchange pairs (i < j) of Batcher's odd–even merge sort for k values (Knuth,
    TAOCP vol. 3, §5.3.4): the network of the next power of two, without the pairs that
    touch a position >= k (those hold +inf, never moved)."""
    n = 1
    while n < k:
        n *= 2
    pairs = []
    p = 1
    while p < n:
        step = p
        while step >= 1:
            for j in range(step % p, n - step, 2 * step):
                for i in range(min(step, n - j - step)):
                    a, b = i + j, i + j + step
                    if a // (2 * p) == b // (2 * p) and b < k:
                        pairs.append((a, b))
            step //= 2
        p *= 2
    return tuple(pairs)
