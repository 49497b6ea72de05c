"""TrimmedMean: the coordinate-wise mean without the extreme values."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import torch
from torch import Tensor

from mtlkit._checks import check_int
from mtlkit._numba import optional_kernels
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

    Speed: on the trimmed values only. The rows are streamed once, in task order, through two
    short compare–exchange chains (elementwise min/max over the coordinates) that hold the b
    largest and the b smallest values seen so far; the value each new row pushes out of both
    chains is one of the kept values and is added to the sum. That is (4b + 1) elementwise
    operations per row, on blocks of columns that stay in cache, instead of ordering all K
    values (Batcher's network, 305 compare–exchanges of whole rows at K = 40), and no trimmed
    value is ever added (an outlier of 1e30 cannot absorb the kept ones). At K = 40, b = 1 on
    the benchmark CPU, 9 % of the K backward passes instead of 87 % (``docs/performance.md``,
    ``benchmarks/peers.py --math-only``). When the network needs fewer operations (b close
    to K / 2) it is used instead. Choice: the kept values are exactly those of the sort (ties
    included: a compare–exchange only permutes values), but they are summed in task order,
    not in sorted order, so the result equals the sort's up to the rounding of that sum (bit
    for bit whenever the sum is exact, e.g. integer-valued gradients). NaN
    counts as the largest value, as in ``torch.sort``. A Jacobian that requires grad goes
    through the network (autograd-safe operations).

    With numba installed (the ``fast`` extra; ``MTLKIT_NUMBA=0`` turns it off), b = 1 on a
    CPU runs a compiled kernel that makes the stream's operations in the same order, one
    column block at a time, reading each value of the Jacobian once
    (:mod:`mtlkit.aggregation._trimmed_kernel`): the same bits, about 4× faster at K = 40
    (6.5 ms instead of 26 ms for 40 × 558,592 on the benchmark CPU).

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
    keeps_jacobian = False  # reads the Jacobian during the call only
    fresh_direction = True  # every route returns a new P-vector

    def __init__(self, *, trim_number: int = 1) -> None:
        self.trim_number = check_int("TrimmedMean", "trim_number", trim_number, low=0)

    def warm_up(self) -> None:
        """Load (the first time on a machine: compile, about 1 s) the numba kernel for float32."""
        if self.trim_number >= 1:
            _compiled_mean_one(torch.zeros(3, 1))

    def direction(self, jacobian: Tensor) -> Tensor:
        k = jacobian.shape[0]
        b = min(self.trim_number, (k - 1) // 2)
        if b == 0:
            return jacobian.mean(dim=0)
        differentiable = torch.is_grad_enabled() and jacobian.requires_grad
        # an operation of the stream is on cached blocks: about half the cost of one of the network
        # (measured with benchmarks/peers.py --math on a CPU)
        streamed = not differentiable and _stream_cost(k, b) < 2 * _network_cost(k, b)
        mean = _streamed_mean if streamed else _network_mean
        if streamed and b == 1:
            out = _compiled_mean_one(jacobian)
            if out is not None:
                return out
        if jacobian.device.type == "cpu":
            # a NaN anywhere in a column makes that column's result NaN (min and max propagate
            # it): only then, after one host read, is the NaN bookkeeping below needed
            out = mean(jacobian, b)
            if not bool(torch.isnan(out).any()):
                return out
        # NaN sorts last in torch.sort; here it is ordered as +inf and a coordinate whose
        # kept values would hold one (more than b NaNs) gives NaN, as the sort's mean does.
        nan_count = torch.isnan(jacobian).sum(dim=0, dtype=torch.int32)
        x = torch.nan_to_num(jacobian, nan=float("inf"), posinf=float("inf"), neginf=float("-inf"))
        return mean(x, b).masked_fill(nan_count > b, float("nan"))


def _compiled_mean_one(x: Tensor) -> Tensor | None:
    """b = 1 through the numba kernel (:mod:`mtlkit.aggregation._trimmed_kernel`): the same
    bits as :func:`_streamed_mean`. None where it does not apply (numba not installed,
    ``MTLKIT_NUMBA=0``, not a contiguous float32/float64 CPU matrix) or where a column holds a
    NaN (the caller's NaN bookkeeping then decides). With several torch threads the columns
    are split between them (the kernel runs without the GIL; each column's operations are
    the same whatever the split, so the result is too)."""
    kernel = _kernel()
    if (kernel is None or x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64)
            or not x.is_contiguous() or x.shape[0] < 3):
        return None
    p = x.shape[1]
    out = torch.empty(p, dtype=x.dtype)
    xs, outs = x.detach().numpy(), out.numpy()  # under no_grad a Jacobian may still require grad
    parts = min(torch.get_num_threads(), p // _MIN_COLUMNS_PER_THREAD)
    if parts <= 1:
        bad = kernel(xs, outs, 0, p)
    else:
        cuts = [p * i // parts for i in range(parts + 1)]
        bad = any(_pool(parts).map(lambda i: kernel(xs, outs, cuts[i], cuts[i + 1]), range(parts)))
    return None if bad else out


#: the fewest columns a thread of :func:`_compiled_mean_one` is given (below, one thread)
_MIN_COLUMNS_PER_THREAD = 65536


@lru_cache(maxsize=4)
def _pool(workers: int) -> Any:
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mtlkit-trimmed-mean")


def _kernel() -> Any:
    """The numba kernel, or None: numba not installed, or ``MTLKIT_NUMBA`` is ``0`` (read at
    every call)."""
    kernels = optional_kernels("mtlkit.aggregation._trimmed_kernel")
    return None if kernels is None else kernels.trimmed_mean_one

#: columns per block of :func:`_streamed_mean` (its (2b + 2) scratch rows stay in cache)
_COLUMNS = 131072


def _stream_cost(k: int, b: int) -> int:
    """Elementwise operations (over all columns) of :func:`_streamed_mean`."""
    return 2 * len(_network(2 * b)) + (4 if b == 1 else 4 * b + 1) * (k - 2 * b)


def _network_cost(k: int, b: int) -> int:
    """Elementwise operations of the full sorting network and the mean of the kept rows."""
    return 2 * len(_network(k)) + k - 2 * b


def _network_mean(x: Tensor, b: int) -> Tensor:
    """The trimmed mean by ordering every column with the sorting network (autograd-safe)."""
    k = x.shape[0]
    return torch.stack(_sorted_rows(x)[b:k - b]).mean(dim=0)


def _streamed_mean(x: Tensor, b: int) -> Tensor:
    """Mean over the rows of the values of each column without its b largest and b smallest,
    for 1 <= b <= (K - 1) / 2 (see the class docstring, "Speed"). ``x`` is not modified."""
    k, p = x.shape
    c = min(_COLUMNS, p)
    top = x.new_empty(b, c)  # the b largest values seen, descending
    bottom = x.new_empty(b, c)  # the b smallest, ascending
    spare = x.new_empty(2, c)
    out = x.new_empty(p)
    for start in range(0, p, c):
        cols = x[:, start:start + c]
        n = cols.shape[1]
        first = _sorted_rows(cols[:2 * b])  # ascending, copies
        for i in range(b):
            top[i, :n].copy_(first[2 * b - 1 - i])
            bottom[i, :n].copy_(first[i])
        acc = out[start:start + n]
        bufs = (spare[0, :n], spare[1, :n])
        if b == 1:  # the chains are one value each: the value pushed out is clamp(row, low, high)
            _one_each_end(cols, top[0, :n], bottom[0, :n], acc, bufs[0])
            continue
        for r in range(2 * b, k):
            carry, free = cols[r], 0
            # the top chain lets out the smallest of top ∪ {row}, the bottom chain the largest
            # of bottom ∪ {that}: a kept value (each chain step is one compare–exchange)
            for chain, let_out, keep in ((top, torch.minimum, torch.maximum),
                                         (bottom, torch.maximum, torch.minimum)):
                for i in range(b):
                    t = chain[i, :n]
                    let_out(t, carry, out=bufs[free])
                    keep(t, carry, out=t)
                    carry, free = bufs[free], 1 - free
            if r == 2 * b:
                acc.copy_(carry)
            else:
                acc.add_(carry)
    return out.div_(k - 2 * b)


def _one_each_end(cols: Tensor, high: Tensor, low: Tensor, acc: Tensor, buf: Tensor) -> None:
    """:func:`_streamed_mean`'s chains for b = 1: ``high``/``low`` hold the largest and the
    smallest value of the rows seen (rows 0 and 1 on entry). A new row's value v pushes out
    min(high, v) from the top chain and then max(low, min(high, v)) = clamp(v, low, high) from
    the bottom one (low <= high), so the kept value is one clamp, and the chains move by one
    maximum and one minimum: 4 elementwise operations per row instead of 5 (the same values)."""
    for r in range(2, cols.shape[0]):
        row = cols[r]
        if r == 2:
            torch.clamp(row, low, high, out=acc)
        else:
            acc.add_(torch.clamp(row, low, high, out=buf))
        torch.maximum(high, row, out=high)
        torch.minimum(low, row, out=low)


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
