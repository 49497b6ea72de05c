"""Compiled (numba) kernel of :class:`~mtlkit.aggregation.TrimmedMean` for one value trimmed
at each end: the optional accelerator (``pip install mtlkit[fast]``).

This module imports numba at the top and is only imported by
:mod:`mtlkit.aggregation.trimmed_mean` when numba is installed and ``MTLKIT_NUMBA`` is not
``0``. The function is ``@numba.njit(cache=True, nogil=True)``: compiled once per machine
and dtype (cached on disk) and run without the GIL, so column ranges run in threads.

:func:`trimmed_mean_one` does, per column, the floating-point operations of the torch
stream (``_streamed_mean`` with b = 1) in the same order, so both give the same bits: the
largest and smallest of rows 0 and 1, then for every further row v the kept value
``min(max(v, low), high)`` (torch's ``clamp(v, low, high)``; low <= high) added to the sum
in task order, the first kept value assigned rather than added to 0, then
``high = max(high, v)``, ``low = min(low, v)``; finally the sum divided by K − 2 in the
Jacobian's dtype. The torch stream makes 4 passes over its state per row (one per
elementwise operation); here the state of a block of columns stays in cache and each value
of the Jacobian is read once, two rows per pass (about 4× faster at K = 40 on the benchmark
CPU: ``benchmarks/peers.py --math-only --methods trimmed_mean``). No ``fastmath``: the
compiler must not reorder the sum or fuse operations.

NaN is not handled here: the kernel also sums every value of a column (``total``) and reports
whether any column's total is NaN (a NaN, or +inf and −inf, in that column); the caller then
takes the torch route, which orders NaN as the largest value (as ``torch.sort``).
"""

from __future__ import annotations

import numba
import numpy as np

#: columns per block (4 state rows of this many values stay in L1/L2)
BLOCK = 16384


@numba.njit(cache=True, nogil=True, error_model="numpy")
def trimmed_mean_one(x, out, start, stop):  # pragma: no cover - compiled; run through TrimmedMean
    """``out[start:stop]`` <- the mean of each of those columns of ``x`` (K×P, K >= 3,
    C-contiguous; ``out`` (P,)) without its largest and its smallest value. Returns True
    when one of them holds a NaN (or both infinities): ``out`` is then not its trimmed mean."""
    k = x.shape[0]
    state = np.empty((4, BLOCK), x.dtype)
    high, low, acc, total = state[0], state[1], state[2], state[3]
    div = x.dtype.type(k - 2)
    bad = False
    for c0 in range(start, stop, BLOCK):
        n = min(BLOCK, stop - c0)
        r0, r1, r2 = x[0, c0:c0 + n], x[1, c0:c0 + n], x[2, c0:c0 + n]
        for j in range(n):
            a, b, v = r0[j], r1[j], r2[j]
            lo, hi = min(a, b), max(a, b)
            acc[j] = min(max(v, lo), hi)
            low[j], high[j] = min(v, lo), max(v, hi)
            total[j] = a + b + v
        r = 3
        while r + 1 < k:  # two rows per pass over the state, in task order
            ra, rb = x[r, c0:c0 + n], x[r + 1, c0:c0 + n]
            for j in range(n):
                v, w = ra[j], rb[j]
                lo, hi, s = low[j], high[j], acc[j]
                s += min(max(v, lo), hi)
                lo, hi = min(v, lo), max(v, hi)
                s += min(max(w, lo), hi)
                acc[j] = s
                low[j], high[j] = min(w, lo), max(w, hi)
                total[j] = total[j] + v + w
            r += 2
        if r < k:
            rc = x[r, c0:c0 + n]
            for j in range(n):
                v, lo, hi = rc[j], low[j], high[j]
                acc[j] += min(max(v, lo), hi)
                low[j], high[j] = min(v, lo), max(v, hi)
                total[j] += v
        o = out[c0:c0 + n]
        for j in range(n):
            o[j] = acc[j] / div
            bad |= total[j] != total[j]
    return bad
