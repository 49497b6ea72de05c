"""Compiled (numba) kernels of the level-wise tree builder: the optional accelerator.

This module imports numba at the top and is only imported by
:mod:`mtlkit.classic._tree_builder` when numba is installed (``pip install mtlkit[fast]``)
and ``MTLKIT_NUMBA`` is not ``0``. Every function is ``@numba.njit(cache=True,
nogil=True)``: compiled once per machine (cached on disk next to this file) and run without
the GIL, so the trees of a forest grown in threads (``n_jobs``) run in parallel.

The kernels do, per (node, feature), what the numpy code does per level with whole-array
operations, and replicate its floating-point operations in the same order, so both paths
grow the same trees bit for bit:

* :func:`draw_features` — the ``max_features`` non-constant features of every active node
  with the smallest priorities (the priorities are drawn in Python, by the same
  ``rng.random_sample((A, p))`` call as the numpy path, so the random stream is the same);
* :func:`search_level` — the best split of every active node among its selected features:
  the node's samples sorted by each selected feature's precomputed rank, cumulative
  statistics, the split proxy of both sides (:func:`_proxy_pair`, the scalar form of
  ``_Layout.proxy``), first position on ties within a feature, lowest feature index on ties
  between features; two-valued features by the sums of the node's rows at the low value;
* :func:`split_children` — the children's samples and, with integer statistics, their sums.

Orders that matter for non-integer statistics (regression targets, fractional weights) are
kept: the cumulative sums run over the same (feature, node) segments in the same blocks as
the numpy path, restarted at a segment by subtracting the previous segment's total, and the
sums of the low-value rows add the node's rows in sample order from zero (as scipy's sparse
product). With integer statistics (classification with bootstrap counts) every sum is exact.
``math.log2`` (entropy) is the C library's, as numpy's ``log2`` on this platform (checked by
the equality tests). No ``fastmath``: the compiler must not reorder or fuse operations.
"""

from __future__ import annotations

import math

import numba
import numpy as np

FEATURE_THRESHOLD = 1e-7  # must equal _tree_builder.FEATURE_THRESHOLD
_TINY = 1e-300
_jit = numba.njit(cache=True, nogil=True)
# numba-level inlining: no call (and no argument tuple handling) per position
_jit_inline = numba.njit(cache=True, nogil=True, inline="always")


@_jit
def _xlog2x(v):
    return v * math.log2(max(v, _TINY))


@_jit
def _group_term(v, g, prox, out):
    """``out`` plus the proxy terms of statistics group ``g`` for one side ``v`` (Q,):
    ``_Layout.proxy`` for one position, in the same order of operations.

    ``prox`` = (gini, n_floor, groups (G, 6) [cnt, c0, c1, r0, r1, single], task ranges
    (G, 2) into ``tasks`` (T, 2) [first row, end row], task coefficients, ``row_a2`` (Q,)
    −2·a_t of each class row, ``row_ar`` (Q,) a_t of each regression row).
    """
    gini, n_floor, groups, g_tasks, tasks, t_a, row_a2, row_ar = prox
    cnt, c0, c1, r0, r1 = groups[g, 0], groups[g, 1], groups[g, 2], groups[g, 3], groups[g, 4]
    n = v[cnt]
    acc = 0.0
    if gini and groups[g, 5] == 1 and c1 > c0:
        # Σ_r −2 a_r (n − c_r) c_r, rows in order (as the numpy path's explicit loop)
        acc = ((n - v[c0]) * v[c0]) * row_a2[c0]
        for r in range(c0 + 1, c1):
            acc += ((n - v[r]) * v[r]) * row_a2[r]
    elif c1 > c0:
        for t in range(g_tasks[g, 0], g_tasks[g, 1]):
            a = t_a[t]
            first, end = tasks[t, 0], tasks[t, 1]
            s = v[first]
            for r in range(first + 1, end):
                s += v[r]
            last = n - s
            for r in range(first, end + 1):
                x = last if r == end else v[r]
                if gini:
                    acc += (x * x) * a
                else:
                    out += a * _xlog2x(x)
            if not gini:
                out -= a * _xlog2x(n)
    for r in range(r0, r1):
        acc += (v[r] * v[r]) * row_ar[r]
    return out + acc / (n if n > n_floor else np.inf)


@_jit_inline
def _proxy_pair(left, right, prox):
    """Proxy of a split: proxy(left) + proxy(right), each side as ``_Layout.proxy``.

    The binary-Gini groups (the common case: every task a binary classification task) run
    both sides in one loop (two independent chains of the same operations)."""
    gini, n_floor, groups, g_tasks, tasks, t_a, row_a2, row_ar = prox
    out_l = 0.0
    out_r = 0.0
    for g in range(groups.shape[0]):
        cnt, c0, c1, r0, r1 = groups[g, 0], groups[g, 1], groups[g, 2], groups[g, 3], groups[g, 4]
        if gini and groups[g, 5] == 1 and c1 > c0 and r1 == r0:
            nl = left[cnt]
            nr = right[cnt]
            acc_l = ((nl - left[c0]) * left[c0]) * row_a2[c0]
            acc_r = ((nr - right[c0]) * right[c0]) * row_a2[c0]
            for r in range(c0 + 1, c1):
                acc_l += ((nl - left[r]) * left[r]) * row_a2[r]
                acc_r += ((nr - right[r]) * right[r]) * row_a2[r]
            out_l += acc_l / (nl if nl > n_floor else np.inf)
            out_r += acc_r / (nr if nr > n_floor else np.inf)
        else:
            out_l = _group_term(left, g, prox, out_l)
            out_r = _group_term(right, g, prox, out_r)
    return out_l + out_r


@_jit
def _node_n_low(members, s0, length, at_low, b):
    k = 0
    for i in range(s0, s0 + length):
        if at_low[members[i], b]:
            k += 1
    return k


@_jit
def _non_constant(f, members, s0, length, XTc, cont_pos, bin_pos, max_run, at_low):
    """Whether feature ``f`` takes more than one value on the node (as the numpy draw)."""
    b = bin_pos[f]
    if b >= 0:
        nl = _node_n_low(members, s0, length, at_low, b)
        return 0 < nl < length
    c = cont_pos[f]
    if c < 0:
        return False  # constant on the whole training set
    if length > max_run[c]:
        return True
    lo = XTc[c, members[s0]]
    hi = lo
    for i in range(s0 + 1, s0 + length):
        x = XTc[c, members[i]]
        lo = min(lo, x)
        hi = max(hi, x)
    # the numpy path adds the threshold in float32 (float32 array + Python float)
    return np.float64(hi) > np.float64(lo + np.float32(FEATURE_THRESHOLD))


@_jit
def draw_features(prio, max_features, members, seg_start, seg_len, XTc, cont_pos, bin_pos,
                  max_run, at_low):  # fmt: skip
    """(A, p) bool: per node, its ``max_features`` non-constant features of smallest
    priority ``prio[a]`` (all of them when fewer), as ``_tree_builder._draw_features``."""
    A, p = prio.shape
    selected = np.zeros((A, p), dtype=np.bool_)
    tmp = np.empty(p)
    scan_limit = 4 * max_features + 8  # then one sort of the remaining priorities
    for a in range(A):
        s0, length = seg_start[a], seg_len[a]
        need = max_features
        tmp[:] = prio[a]
        picked = 0
        while need > 0 and picked < p and picked < scan_limit:
            f = 0
            best = np.inf
            for j in range(p):
                if tmp[j] < best:
                    best = tmp[j]
                    f = j
            tmp[f] = np.inf
            picked += 1
            if _non_constant(f, members, s0, length, XTc, cont_pos, bin_pos, max_run, at_low):
                selected[a, f] = True
                need -= 1
        if need > 0 and picked < p:  # the rest in priority order (taken ones are inf)
            rest = np.arange(p)
            _sort_by_key(rest, tmp, p)
            for f in rest[: p - picked]:
                if need == 0:
                    break
                if _non_constant(f, members, s0, length, XTc, cont_pos, bin_pos, max_run, at_low):
                    selected[a, f] = True
                    need -= 1
    return selected


@_jit
def _sift_down(idx, key, root, end):
    while 2 * root + 1 < end:
        child = 2 * root + 1
        if child + 1 < end and key[child + 1] > key[child]:
            child += 1
        if not key[child] > key[root]:
            return
        key[root], key[child] = key[child], key[root]
        idx[root], idx[child] = idx[child], idx[root]
        root = child


@_jit
def _sort_by_key(idx, key, length):
    """Sort ``idx[:length]`` by ``key[:length]`` (distinct keys, so any sort gives the
    same order), in place: insertion sort for short runs, else heapsort (a hand-written
    sort compiles much faster than ``np.argsort``)."""
    if length <= 24:
        for i in range(1, length):
            k, v = key[i], idx[i]
            j = i - 1
            while j >= 0 and key[j] > k:
                key[j + 1] = key[j]
                idx[j + 1] = idx[j]
                j -= 1
            key[j + 1] = k
            idx[j + 1] = v
        return
    for root in range(length // 2 - 1, -1, -1):
        _sift_down(idx, key, root, length)
    for end in range(length - 1, 0, -1):
        key[0], key[end] = key[end], key[0]
        idx[0], idx[end] = idx[end], idx[0]
        _sift_down(idx, key, 0, end)


@_jit
def search_level(ST, node_tot, members, seg_start, seg_len, selected, cont_ids, bin_ids, XTc,
                 rank, at_low, bin_thr, min_samples_leaf, block_rows, prox):  # fmt: skip
    """Best (proxy, feature, threshold) of every active node; proxy −inf = no valid split.

    ``ST`` (n, Q) float64 split statistics per sample, ``node_tot`` (A, Q) their node totals,
    ``members`` the samples grouped by node (``seg_start``, ``seg_len``), ``selected`` (A, p)
    the features searched at each node. ``block_rows``: continuous features per block of the
    numpy search (the cumulative sums restart at each block).
    """
    Q = ST.shape[1]
    A = seg_len.shape[0]
    best_val = np.full(A, -np.inf)
    best_feat = np.full(A, -1, dtype=np.int64)
    best_thr = np.zeros(A)
    if A == 0:
        return best_val, best_feat, best_thr
    width = seg_len.max()
    samp = np.empty(width, dtype=np.int64)
    key = np.empty(width, dtype=np.int64)
    xs = np.empty(width)
    C = np.zeros(Q)
    prev = np.zeros(Q)
    side = np.empty(Q)
    fresh = True
    # one group of binary Gini rows (every task binary, one labelling pattern): the rows
    # are 0 .. cnt0 - 1, then the count
    gini, n_floor, groups, a2 = prox[0], prox[1], prox[2], prox[6]
    g0 = groups[0]
    binary_gini = gini and groups.shape[0] == 1 and g0[5] == 1 and g0[1] == 0 and g0[2] == g0[0] > 0
    binary_gini = binary_gini and g0[3] == g0[4] and g0[0] == Q - 1
    cnt0 = g0[0]
    for j in range(cont_ids.shape[0]):
        if j % block_rows == 0:
            fresh = True
        f = cont_ids[j]
        for a in range(A):
            if not selected[a, f]:
                continue
            s0, length = seg_start[a], seg_len[a]
            for i in range(length):
                samp[i] = members[s0 + i]
                key[i] = rank[j, samp[i]]
            _sort_by_key(samp, key, length)
            for i in range(length):
                xs[i] = np.float64(XTc[j, samp[i]])
            tot = node_tot[a]
            seg_best = -np.inf
            seg_pos = -1
            s = samp[0]
            for q in range(Q):  # restart: the cumulative sum minus the previous node total
                C[q] = ST[s, q] if fresh else C[q] + (ST[s, q] - prev[q])
            for i in range(length):
                s = samp[i]
                if i > 0:
                    for q in range(Q):
                        C[q] += ST[s, q]
                n_left = i + 1
                if n_left < min_samples_leaf or length - n_left < min_samples_leaf:
                    continue
                if not xs[i + 1] > xs[i] + FEATURE_THRESHOLD:
                    continue
                if binary_gini:  # _proxy_pair written out for its most common case
                    nl = C[cnt0]
                    nr = tot[cnt0] - nl
                    cl = C[0]
                    cr = tot[0] - cl
                    acc_l = ((nl - cl) * cl) * a2[0]
                    acc_r = ((nr - cr) * cr) * a2[0]
                    for r in range(1, cnt0):
                        cl = C[r]
                        cr = tot[r] - cl
                        acc_l += ((nl - cl) * cl) * a2[r]
                        acc_r += ((nr - cr) * cr) * a2[r]
                    val = (0.0 + acc_l / (nl if nl > n_floor else np.inf)) + (
                        0.0 + acc_r / (nr if nr > n_floor else np.inf)
                    )
                else:
                    for q in range(Q):
                        side[q] = tot[q] - C[q]
                    val = _proxy_pair(C, side, prox)
                if val > seg_best:
                    seg_best = val
                    seg_pos = i
            fresh = False
            for q in range(Q):
                prev[q] = node_tot[a, q]
            if seg_pos >= 0 and seg_best > best_val[a]:
                lo = xs[seg_pos]
                hi = xs[seg_pos + 1]
                thr = lo / 2.0 + hi / 2.0
                if thr == hi or not np.isfinite(thr):
                    thr = lo
                best_val[a] = seg_best
                best_feat[a] = f
                best_thr[a] = thr
    _search_binary(ST, node_tot, members, seg_start, seg_len, selected, bin_ids, at_low,
                   bin_thr, min_samples_leaf, prox, best_val, best_feat, best_thr)  # fmt: skip
    return best_val, best_feat, best_thr


@_jit
def _search_binary(ST, node_tot, members, seg_start, seg_len, selected, bin_ids, at_low,
                   bin_thr, min_samples_leaf, prox, best_val, best_feat, best_thr):  # fmt: skip
    """Two-valued features: merged into the best split of every node (in place), taken
    when strictly better, or equal with a lower feature index."""
    Q = ST.shape[1]
    low = np.empty(Q)
    side = np.empty(Q)
    for a in range(seg_len.shape[0]):
        s0, length = seg_start[a], seg_len[a]
        b_val = -np.inf
        b_loc = -1
        for b in range(bin_ids.shape[0]):
            if not selected[a, bin_ids[b]]:
                continue
            n_low = _node_n_low(members, s0, length, at_low, b)
            if n_low < min_samples_leaf or length - n_low < min_samples_leaf:
                continue
            low[:] = 0.0
            for i in range(s0, s0 + length):
                s = members[i]
                if at_low[s, b]:
                    for q in range(Q):
                        low[q] += ST[s, q]
            for q in range(Q):
                side[q] = node_tot[a, q] - low[q]
            val = _proxy_pair(low, side, prox)
            if val > b_val:
                b_val = val
                b_loc = b
        if b_loc < 0 or not np.isfinite(b_val):
            continue
        f = bin_ids[b_loc]
        if b_val > best_val[a] or (b_val == best_val[a] and f < best_feat[a]):
            best_val[a] = b_val
            best_feat[a] = f
            best_thr[a] = bin_thr[b_loc]


@_jit
def split_children(members, seg_start, seg_len, do_split, best_feat, best_thr, XT, node_stats,
                   act_stats, with_stats):  # fmt: skip
    """The children of the split nodes: their samples grouped by child (left then right of
    every split node, in node order, each in sample order), their sizes and, when
    ``with_stats`` (integer-valued statistics: every order of summation is exact), their
    sums of ``node_stats`` (the left child's by addition, the right one's as parent − left).
    """
    A = seg_len.shape[0]
    n_split = 0
    total = 0
    for a in range(A):
        if do_split[a]:
            n_split += 1
            total += seg_len[a]
    Qn = node_stats.shape[1]
    by_child = np.empty(total, dtype=members.dtype)
    child_len = np.zeros(2 * n_split, dtype=np.int64)
    cstats = np.zeros((2 * n_split if with_stats else 0, Qn))
    pos = 0
    k = 0
    for a in range(A):
        if not do_split[a]:
            continue
        f, thr = best_feat[a], best_thr[a]
        s0, length = seg_start[a], seg_len[a]
        nl = 0
        for i in range(s0, s0 + length):
            s = members[i]
            if not np.float64(XT[f, s]) > thr:
                by_child[pos + nl] = s
                nl += 1
                if with_stats:
                    for q in range(Qn):
                        cstats[2 * k, q] += node_stats[s, q]
        nr = nl
        for i in range(s0, s0 + length):
            s = members[i]
            if np.float64(XT[f, s]) > thr:
                by_child[pos + nr] = s
                nr += 1
        if with_stats:
            for q in range(Qn):
                cstats[2 * k + 1, q] = act_stats[a, q] - cstats[2 * k, q]
        child_len[2 * k] = nl
        child_len[2 * k + 1] = length - nl
        pos += length
        k += 1
    return by_child, child_len, cstats
