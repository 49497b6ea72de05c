"""Level-wise, vectorised growth of a multi-task decision tree (numpy; numba optional).

The split criterion (see :mod:`mtlkit.classic.tree`): a split of node ``v`` into ``L`` and
``R`` scores

    score = Σ_t w_t · [n_t(v) I_t(v) − n_t(L) I_t(L) − n_t(R) I_t(R)] / (N_t I_t(root))

where ``n_t(·)`` is the (weighted) number of samples of the node that are labelled for task
``t``, ``I_t`` its impurity on those samples (Gini or entropy for a classification task,
variance for a regression task), ``N_t`` and ``I_t(root)`` the same at the root and ``w_t``
the task weight. ``n_t(v) I_t(v)`` does not depend on the split, so the best split maximises
a *proxy* that, for every task, is a sum of one simple term per child:

* Gini:     Σ_k c_k² / n          (c_k: weighted count of class k among labelled samples)
* entropy:  Σ_k c_k log2 c_k − n log2 n
* variance: s² / n                (s: weighted sum of the centred targets)

Those are functions of cumulative sums, so for every feature the samples of every node are
kept sorted by that feature, the per-sample statistics are gathered in that order and one
``cumsum`` gives the left statistics of *every* threshold of *every* node at once; the right
statistics are node total minus left. The tree grows one depth level per iteration: all
nodes of a level are searched together, so the Python overhead is per level, not per node.
Each feature is sorted once, at the root; children inherit sorted orders by a stable
partition (a radix sort on the child index, no re-sorting). Two-valued features (one-hot
columns) need no order: their left child is the node's samples at the low value, so their
statistics for all nodes and features are one sparse-by-dense product per level.

Compiled path (optional accelerator): with numba installed, and unless the environment
variable ``MTLKIT_NUMBA`` is ``0`` at fit time, the per-level feature draws, split search and
children partition run in the kernels of :mod:`mtlkit.classic._kernels` (a loop per node and
feature, each node's samples sorted by the drawn features' ranks), while this module keeps
the level loop, the random draws (the same ``rng`` calls, so the same stream), the node
summaries and the records. Both paths grow the same trees bit for bit: the kernels follow the
numpy path's order of floating-point operations (see that module), and the numpy proxy sums
its task terms in row order (not through a BLAS product, whose rounding could depend on
memory layout).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse

from mtlkit._numba import optional_kernels

EPSILON = np.finfo(np.float64).eps
FEATURE_THRESHOLD = 1e-7  # as scikit-learn: values closer than this are not separated
_TINY = 1e-300
_BLOCK_ELEMENTS = 1 << 22  # bound on (positions x statistics) held at once


@dataclass
class TreeArrays:
    """The fitted structure (node ids in breadth-first order; node 0 is the root).

    ``feature[i] == -2`` marks a leaf (as in scikit-learn). ``value[t]`` holds, for task ``t``, class fractions
    ``(n_nodes, n_classes)`` for a classification task or means ``(n_nodes,)`` for a
    regression task, over the labelled samples of the node (a node without any labelled
    sample of task ``t`` inherits its parent's value). ``impurity`` and
    ``weighted_n_labelled`` are per node and task; ``improvement`` is the split score above.
    """

    children_left: np.ndarray
    children_right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    n_node_samples: np.ndarray
    weighted_n_labelled: np.ndarray
    impurity: np.ndarray
    improvement: np.ndarray
    depth: np.ndarray
    value: list[np.ndarray] = field(default_factory=list)

    @property
    def node_count(self) -> int:
        return len(self.feature)

    @property
    def max_depth(self) -> int:
        return int(self.depth.max()) if len(self.depth) else 0

    @property
    def n_leaves(self) -> int:
        return int(np.sum(self.feature < 0))

    def apply(self, X: np.ndarray) -> np.ndarray:
        """Leaf id of every row of ``X`` (float32, validated by the caller)."""
        node = np.zeros(X.shape[0], dtype=np.intp)
        idx = np.arange(X.shape[0])
        while True:
            f = self.feature[node[idx]]
            inner = f >= 0
            if not inner.any():
                return node
            idx, f = idx[inner], f[inner]
            cur = node[idx]
            left = X[idx, f] <= self.threshold[cur]
            node[idx] = np.where(left, self.children_left[cur], self.children_right[cur])


# --------------------------------------------------------------------------- statistics
class _Layout:
    """Per-sample statistics: ``node_stats`` (values and impurities of a node) and
    ``split_stats`` (what the split proxy needs), with the column bookkeeping."""

    def __init__(self, Y, kinds, n_classes, sample_weight, criterion):
        n, n_tasks = Y.shape
        self.kinds = kinds
        self.n_classes = n_classes
        self.criterion = criterion
        self._scratch: dict[str, np.ndarray] = {}
        lab = ~np.isnan(Y)
        wl = sample_weight[:, None] * lab
        cols = []
        self.slices: list[slice] = []  # columns of each task in node_stats
        self.means = np.zeros(n_tasks)
        start = 0
        for t in range(n_tasks):
            if kinds[t] == "classification":
                c = n_classes[t]
                enc = np.where(lab[:, t], Y[:, t], 0).astype(np.intp)
                onehot = np.zeros((n, c))
                onehot[np.arange(n), enc] = wl[:, t]
                cols.append(onehot)
                width = c
            else:
                tot = np.sum(wl[:, t])
                mu = np.sum(wl[:, t] * np.where(lab[:, t], Y[:, t], 0.0)) / tot if tot > 0 else 0.0
                self.means[t] = mu
                yc = np.where(lab[:, t], Y[:, t] - mu, 0.0)
                cols.append(np.column_stack([wl[:, t] * yc, wl[:, t] * yc * yc]))
                width = 2
            cols.append(wl[:, t : t + 1])
            self.slices.append(slice(start, start + width + 1))  # last column: count
            start += width + 1
        self.node_stats = np.hstack(cols)
        self.n_tasks = n_tasks
        self._lab = lab
        self._wl = wl
        # every task a classification task with the same number of classes (e.g. all binary):
        # the node summaries are computed for all tasks at once
        same = all(k == "classification" for k in kinds) and len(set(n_classes)) == 1
        self._classes_of_all = int(n_classes[0]) if same and n_tasks else 0

    def scratch(self, name: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """A work array kept between the levels of one tree (uninitialised contents).

        Reusing the large per-level arrays avoids a fresh allocation, and the page faults
        of touching new memory, for every temporary of every level (about a third of the
        search time otherwise). One layout belongs to one tree, so threads never share it.
        """
        size = math.prod(shape)
        buf = self._scratch.get(name)
        if buf is None or buf.size < size or buf.dtype != dtype:
            buf = np.empty(size, dtype=dtype)
            self._scratch[name] = buf
        return buf[:size].reshape(shape)

    # ------------------------------------------------------------ node summaries
    def summarize(self, stats: np.ndarray):
        """stats (k, Qn) -> n_lab (k,T), impurity (k,T), n*impurity (k,T), values."""
        if self._classes_of_all:
            return self._summarize_classes(stats)
        k = stats.shape[0]
        n_lab = np.empty((k, self.n_tasks))
        imp = np.zeros((k, self.n_tasks))
        values = []
        for t in range(self.n_tasks):
            s = stats[:, self.slices[t]]
            cnt = s[:, -1]
            n_lab[:, t] = cnt
            has = cnt > 0
            safe = np.where(has, cnt, 1.0)
            if self.kinds[t] == "classification":
                frac = s[:, :-1] / safe[:, None]
                if self.criterion == "gini":
                    imp[:, t] = 1.0 - np.sum(frac * frac, axis=1)
                else:
                    imp[:, t] = -np.sum(frac * np.log2(np.maximum(frac, _TINY)), axis=1)
                frac[~has] = np.nan
                values.append(frac)
            else:
                m1 = s[:, 0] / safe
                imp[:, t] = s[:, 1] / safe - m1 * m1
                val = np.where(has, m1 + self.means[t], np.nan)
                values.append(val)
            imp[~has, t] = 0.0
        return n_lab, imp, n_lab * imp, values

    def _summarize_classes(self, stats: np.ndarray):
        """:meth:`summarize` when every task is a classification task with C classes: the
        columns are (T, C + 1) blocks, handled as one array (no loop over the tasks)."""
        k, c = stats.shape[0], self._classes_of_all
        s = stats.reshape(k, self.n_tasks, c + 1)
        n_lab = s[:, :, -1].astype(np.float64)
        has = n_lab > 0
        frac = s[:, :, :-1] / np.where(has, n_lab, 1.0)[:, :, None]
        if self.criterion == "gini":
            imp = 1.0 - np.sum(frac * frac, axis=2)
        else:
            imp = -np.sum(frac * np.log2(np.maximum(frac, _TINY)), axis=2)
        frac[~has] = np.nan
        imp[~has] = 0.0
        return n_lab, imp, n_lab * imp, [frac[:, t] for t in range(self.n_tasks)]

    # ------------------------------------------------------------ split statistics
    def prepare_split(self, coef: np.ndarray) -> None:
        """Build ``split_stats`` (Q, n) for the tasks with a positive coefficient a_t.

        Rows are grouped by "count pattern" (which samples are labelled, with what weight;
        usually one pattern for all tasks). Within a group: the class rows (the first C−1
        classes of each classification task; the last one is count − Σ others), then the
        regression rows (centred targets), then the count row.
        """
        used = [t for t in range(self.n_tasks) if coef[t] > 0]
        groups: dict[bytes, list[int]] = {}
        for t in used:
            groups.setdefault(self._wl[:, t].tobytes(), []).append(t)
        rows: list[np.ndarray] = []
        cols: list[int] = []  # the column of node_stats that each row of split_stats is
        self.groups: list[dict[str, Any]] = []
        for tasks in groups.values():
            g: dict[str, Any] = {}
            cls = [t for t in tasks if self.kinds[t] == "classification"]
            reg = [t for t in tasks if self.kinds[t] != "classification"]
            g["c0"] = len(rows)
            starts, a_row = [], []
            for t in cls:
                s = self.node_stats[:, self.slices[t]]
                starts.append(len(rows) - g["c0"])
                for k in range(self.n_classes[t] - 1):
                    rows.append(s[:, k])
                    cols.append(self.slices[t].start + k)
                    a_row.append(coef[t])
            g["c1"] = len(rows)
            g["cstarts"] = np.asarray(starts, dtype=np.intp)
            g["single"] = all(self.n_classes[t] == 2 for t in cls)
            g["a_crow"] = np.asarray(a_row, dtype=float)
            g["a_crow2"] = -2.0 * g["a_crow"]
            g["a_ctask"] = np.asarray([coef[t] for t in cls], dtype=float)
            g["r0"] = len(rows)
            for t in reg:
                rows.append(self.node_stats[:, self.slices[t]][:, 0])
                cols.append(self.slices[t].start)
            g["r1"] = len(rows)
            g["a_r"] = np.asarray([coef[t] for t in reg], dtype=float)
            g["cnt"] = len(rows)
            rows.append(self._wl[:, tasks[0]])
            cols += [self.slices[tasks[0]].stop - 1]
            self.groups.append(g)
        self.has_split_stats = bool(used)
        self.sum_dtype: type[np.floating[Any]] = np.float64
        self.exact = False
        if not used:
            self.split_stats = np.zeros((0, self._wl.shape[0]))
            return
        stats = np.vstack(rows)
        integral = all(self.kinds[t] == "classification" for t in used) and np.all(
            stats == np.round(stats)
        )
        n_max = float(self._wl.sum())
        positive = self._wl[self._wl > 0]
        self.n_floor = 0.5 * float(positive.min()) if len(positive) else 0.5
        if integral and n_max < 2**31 - 1:
            stats = stats.astype(np.int32)  # exact counts; int cumsum is fast
        # exact integer sums: node totals of split_stats are columns of the (exact) node
        # sums of node_stats, and a right child's sums are its parent's minus the left's
        self.split_cols = np.asarray(cols, dtype=np.intp)
        self.exact = (
            stats.dtype.kind == "i"
            and bool(np.all(self.node_stats == np.round(self.node_stats)))
            and float(np.abs(self.node_stats).sum(axis=0).max(initial=0.0)) < 2.0**53
        )
        # dtype of the sparse sums of the two-valued features: float32 is exact for counts
        self.sum_dtype = np.float32 if integral and n_max < 2**24 else np.float64
        self.split_stats = stats

    def kernel_proxy(self) -> tuple[Any, ...]:
        """The split proxy's parameters as flat arrays, for ``_kernels._proxy``."""
        Q = self.split_stats.shape[0]
        groups = np.zeros((len(self.groups), 6), dtype=np.int64)
        g_tasks = np.zeros((len(self.groups), 2), dtype=np.int64)
        tasks: list[tuple[int, int]] = []
        t_a: list[float] = []
        row_a2, row_ar = np.zeros(Q), np.zeros(Q)
        for i, g in enumerate(self.groups):
            groups[i] = (g["cnt"], g["c0"], g["c1"], g["r0"], g["r1"], int(g["single"]))
            bounds = [*g["cstarts"].tolist(), g["c1"] - g["c0"]]
            g_tasks[i] = (len(tasks), len(tasks) + len(g["a_ctask"]))
            for t, a in enumerate(g["a_ctask"]):
                tasks.append((g["c0"] + bounds[t], g["c0"] + bounds[t + 1]))
                t_a.append(float(a))
            row_a2[g["c0"] : g["c1"]] = g["a_crow2"]
            row_ar[g["r0"] : g["r1"]] = g["a_r"]
        return (
            self.criterion == "gini",
            float(self.n_floor),
            groups,
            g_tasks,
            np.asarray(tasks, dtype=np.int64).reshape(-1, 2),
            np.asarray(t_a, dtype=np.float64),
            row_a2,
            row_ar,
        )

    def proxy(self, S: np.ndarray) -> np.ndarray:
        """Proxy of one side of every candidate split, from its statistics S (Q, M).

        Terms that are constant over the splits of a node are dropped: for a binary task
        c0² + c1² = n² − 2 c0 c1 and n_L + n_R is the node's count, so its Gini term is
        −2 a_t c0 c1 / n (exact integer products when the counts are integers). The loops
        run over the few statistics rows; every operation is on a whole row of M positions.
        """
        M = S.shape[1]
        out = np.zeros(M)
        ftmp = self.scratch("proxy_tmp", (M,), np.float64)
        acc = self.scratch("proxy_acc", (M,), np.float64)  # terms divided by n at the end
        n_eff = self.scratch("proxy_n", (M,), np.float64)
        gini = self.criterion == "gini"
        for g in self.groups:
            n = S[g["cnt"]]
            # a side without labelled samples contributes 0 (its float sums may hold
            # rounding residue, which must not be divided by ~0)
            np.copyto(n_eff, n)
            n_eff[n <= self.n_floor] = np.inf
            rows = range(g["c0"], g["c1"])
            if gini and g["single"] and len(rows):
                # Σ_i −2 a_i c0_i c1_i for all rows at once (exact integer products)
                block = S[g["c0"] : g["c1"]]
                # (in float64: integer products are exact while below 2**53)
                prod = self.scratch("proxy_prod", block.shape, np.float64)
                np.subtract(n, block, out=prod, dtype=np.float64)
                prod *= block
                # Σ_r in row order (not a BLAS product: its rounding may depend on the
                # memory layout; this order is the one the compiled kernel follows)
                a2 = g["a_crow2"]
                np.multiply(prod[0], a2[0], out=acc)
                for r in range(1, len(a2)):
                    np.multiply(prod[r], a2[r], out=ftmp)
                    acc += ftmp
            elif len(rows):
                acc.fill(0.0)
                bounds = [*g["cstarts"].tolist(), len(rows)]
                for t, a in enumerate(g["a_ctask"]):
                    task_rows = [S[g["c0"] + k] for k in range(bounds[t], bounds[t + 1])]
                    last = n - np.sum(task_rows, axis=0)
                    for row in [*task_rows, last]:
                        if gini:  # (float64 products: no int32 overflow)
                            np.multiply(row, row, out=ftmp, dtype=np.float64)
                            ftmp *= a
                            acc += ftmp
                        else:
                            out += a * _xlog2x(row)
                    if not gini:
                        out -= a * _xlog2x(n)
            else:
                acc.fill(0.0)
            for i, a in zip(range(g["r0"], g["r1"]), g["a_r"], strict=True):
                np.multiply(S[i], S[i], out=ftmp, dtype=np.float64)
                ftmp *= a
                acc += ftmp
            acc /= n_eff
            out += acc
        return out


def _xlog2x(v: np.ndarray) -> np.ndarray:
    v = v.astype(np.float64, copy=False)
    return v * np.log2(np.maximum(v, _TINY))


# --------------------------------------------------------------------------- growth
@dataclass
class FeatureInfo:
    """What the search needs to know about the features of X (float32, n x p).

    Two-valued features (one-hot columns ...) are scored by per-node sums of the rows at
    their low value, without sorted orders (``bin_ids``, ``at_low``, ``bin_thr``); the other
    varying features (``cont_ids``) are sorted once: ``rank[j, i]`` is the position of sample
    ``i`` in the stable sort of feature ``cont_ids[j]`` (ties keep the sample order), below
    ``n_rank``; ``order`` (the sorted sample ids) is derived from it when a tree searches all
    features. ``max_run[j]``: the most samples whose sorted values are chained by gaps of at
    most ``FEATURE_THRESHOLD``; a node with more samples is never constant in that feature
    (its samples span two runs, separated by a larger gap). Constant features are never
    split.
    """

    XT: np.ndarray
    XTc: np.ndarray
    cont_ids: np.ndarray
    bin_ids: np.ndarray
    at_low: np.ndarray
    bin_thr: np.ndarray
    rank: np.ndarray
    n_rank: int
    max_run: np.ndarray
    _order: np.ndarray | None = None

    @classmethod
    def build(cls, X: np.ndarray) -> FeatureInfo:
        XT = np.ascontiguousarray(X.T)
        lo, hi = XT.min(axis=1), XT.max(axis=1)
        varies = hi > lo.astype(np.float64) + FEATURE_THRESHOLD
        two = np.all((lo[:, None] == XT) | (hi[:, None] == XT), axis=1)
        bin_ids = np.flatnonzero(varies & two)
        cont_ids = np.flatnonzero(varies & ~two)
        XTc = XT[cont_ids]
        at_low = np.ascontiguousarray((XT[bin_ids] == lo[bin_ids, None]).T)  # (n, n_binary)
        mid = lo[bin_ids] / 2.0 + hi[bin_ids] / 2.0  # as scikit-learn: midpoint in float64
        bin_thr = np.where(mid == hi[bin_ids], lo[bin_ids], mid).astype(np.float64)
        order = np.argsort(XTc, axis=1, kind="stable").astype(np.int32)
        n = XT.shape[1]
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.arange(n, dtype=np.int32)[None, :], axis=1)
        xs = np.take_along_axis(XTc, order, axis=1)
        # same comparison (float32 + threshold) as the constancy check of a node
        tie = xs[:, 1:].astype(np.float64) <= xs[:, :-1] + FEATURE_THRESHOLD
        max_run = np.ones(len(cont_ids), dtype=np.intp)
        for j, row in enumerate(tie):
            breaks = np.flatnonzero(np.r_[True, ~row, True])
            max_run[j] = int(np.diff(breaks).max())
        return cls(XT, XTc, cont_ids, bin_ids, at_low, bin_thr, rank, n, max_run, order)

    @property
    def kernel_ids(self) -> tuple[np.ndarray, ...]:
        """int64 (cont_ids, bin_ids, cont_pos, bin_pos, max_run) for the compiled kernels
        (``*_pos[f]``: the feature's index among the continuous / two-valued ones, or -1)."""
        p = self.XT.shape[0]
        cont_pos = np.full(p, -1, dtype=np.int64)
        cont_pos[self.cont_ids] = np.arange(len(self.cont_ids))
        bin_pos = np.full(p, -1, dtype=np.int64)
        bin_pos[self.bin_ids] = np.arange(len(self.bin_ids))
        as64 = [np.asarray(a, dtype=np.int64) for a in (self.cont_ids, self.bin_ids)]
        return (*as64, cont_pos, bin_pos, np.asarray(self.max_run, dtype=np.int64))

    @property
    def order(self) -> np.ndarray:
        """(n_cont, n) sample ids sorted by each varying non-binary feature (stable)."""
        if self._order is None:
            # ranks are distinct within a row, so any sort gives the stable order
            self._order = np.argsort(self.rank, axis=1).astype(np.int32)
        return self._order

    def subset(self, keep: np.ndarray) -> FeatureInfo:
        """The same for the rows ``keep`` (bool mask): ranks taken, nothing re-sorted.

        The ranks of the kept rows keep their relative order (they are no longer
        contiguous, ``n_rank`` stays). A two-valued feature stays at most two-valued on a
        subset; a feature with more values may become two-valued there, and is still
        searched correctly by the sorted path.
        """
        if keep.all():
            return self
        rows = np.flatnonzero(keep)
        return FeatureInfo(
            np.ascontiguousarray(self.XT[:, rows]),
            np.ascontiguousarray(self.XTc[:, rows]),
            self.cont_ids,
            self.bin_ids,
            self.at_low[rows],
            self.bin_thr,
            np.ascontiguousarray(self.rank[:, rows]),
            self.n_rank,
            self.max_run,  # runs of a subset lie within the runs of the whole
        )


def _draw_features(rng, max_features, seg_len, seg_start, members, info, n_low):
    """The features searched at every active node: ``max_features`` of the node's
    non-constant features, drawn uniformly without replacement (as scikit-learn, constant
    features do not count); all of them when fewer are non-constant.

    One uniform priority per (node, feature) is drawn at once (``rng.random_sample((A, p))``)
    and a node takes its non-constant features of smallest priority. Whether a feature is
    constant in a node is only checked for the features in priority order until enough are
    found, so a level costs O(max_features x rows), not O(p x rows).
    """
    A, p = len(seg_len), info.XT.shape[0]
    prio = rng.random_sample((A, p))
    width0 = min(p, max(max_features, 1))
    if width0 < p // 4:  # the first columns in priority order (distinct priorities)
        first_cols = np.argpartition(prio, width0 - 1, axis=1)[:, :width0]
        by_prio = np.take_along_axis(
            first_cols, np.argsort(np.take_along_axis(prio, first_cols, axis=1), axis=1), axis=1
        )
    else:
        by_prio = np.argsort(prio, axis=1)
    cont_pos = np.full(p, -1, dtype=np.intp)
    cont_pos[info.cont_ids] = np.arange(len(info.cont_ids))
    bin_pos = np.full(p, -1, dtype=np.intp)
    bin_pos[info.bin_ids] = np.arange(len(info.bin_ids))
    selected = np.zeros((A, p), dtype=bool)
    need = np.full(A, max_features, dtype=np.intp)
    col = 0
    while col < p:
        nodes = np.flatnonzero(need > 0)
        if not len(nodes):
            break
        width = min(p - col, max(max_features, 1))
        if by_prio.shape[1] < col + width:  # a node needs more than the first columns
            by_prio = np.argsort(prio, axis=1)
        cand = by_prio[nodes, col : col + width]  # (k, width) feature ids
        node_of = np.repeat(nodes, width)
        feat = cand.ravel()
        nonconst = np.zeros(len(feat), dtype=bool)
        is_bin = bin_pos[feat] >= 0
        if is_bin.any():
            nl = n_low[node_of[is_bin], bin_pos[feat[is_bin]]]
            nonconst[is_bin] = (nl > 0) & (nl < seg_len[node_of[is_bin]])
        is_cont = np.flatnonzero(cont_pos[feat] >= 0)
        if len(is_cont):  # more samples than the longest run of ties: not constant
            wide = seg_len[node_of[is_cont]] > info.max_run[cont_pos[feat[is_cont]]]
            nonconst[is_cont[wide]] = True
            is_cont = is_cont[~wide]
        if len(is_cont):
            nd, cp = node_of[is_cont], cont_pos[feat[is_cont]]
            lens = seg_len[nd]
            starts = np.cumsum(lens) - lens
            flat = np.repeat(seg_start[nd] - starts, lens) + np.arange(int(lens.sum()))
            vals = info.XTc.ravel()[np.repeat(cp * info.XTc.shape[1], lens) + members[flat]]
            first = np.minimum.reduceat(vals, starts)
            last = np.maximum.reduceat(vals, starts).astype(np.float64)
            nonconst[is_cont] = last > first + FEATURE_THRESHOLD
        nonconst = nonconst.reshape(len(nodes), width)
        take = nonconst & (np.cumsum(nonconst, axis=1) <= need[nodes, None])
        selected[np.repeat(nodes, width)[take.ravel()], cand[take]] = True
        need[nodes] -= take.sum(axis=1)
        col += width
    return selected


def _compiled_kernels() -> Any:
    """The numba kernels (:mod:`mtlkit.classic._kernels`), or None: numba not installed,
    or the environment variable ``MTLKIT_NUMBA`` is ``0`` (read at every fit)."""
    return optional_kernels("mtlkit.classic._kernels")


def build_tree(
    X: np.ndarray,
    Y: np.ndarray,
    kinds: list[str],
    n_classes: list[int],
    *,
    sample_weight: np.ndarray | None,
    task_weights: np.ndarray,
    criterion: str,
    max_depth: int | None,
    min_samples_split: int,
    min_samples_leaf: int,
    max_features: int,
    rng: np.random.RandomState,
    features: FeatureInfo | None = None,
) -> TreeArrays:
    """Grow a tree on float32 ``X`` (n, p) and encoded targets ``Y`` (n, T), NaN = missing.

    ``features``: the :class:`FeatureInfo` of ``X`` when the caller has it (a forest builds
    it once and takes row subsets), else it is built here.
    """
    n, p = X.shape
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=float)
    layout = _Layout(Y, kinds, n_classes, w, criterion)
    info = FeatureInfo.build(X) if features is None else features
    XT = info.XT

    root_stats = layout.node_stats.sum(axis=0, keepdims=True)
    n_lab0, imp0, nI0, val0 = layout.summarize(root_stats)
    denom = n_lab0[0] * imp0[0]
    coef = np.where(imp0[0] > EPSILON, task_weights / np.where(denom > 0, denom, 1.0), 0.0)
    layout.prepare_split(coef)

    # per-level records, concatenated at the end
    rec_parent, rec_depth, rec_rows = [np.array([-1])], [np.array([0])], [np.array([n])]
    rec_nlab, rec_imp = [n_lab0], [imp0]
    rec_val = [[v] for v in val0]
    split_ids, split_feat, split_thr, split_impr, split_left = [], [], [], [], []
    n_nodes = 1

    def splittable(depth, rows, imp):
        ok = (rows >= min_samples_split) & (rows >= 2 * min_samples_leaf)
        ok &= ~np.all((imp <= EPSILON) | (coef <= 0), axis=1)  # pure in every scored task
        if max_depth is not None:
            ok &= depth < max_depth
        return ok & layout.has_split_stats

    act = np.flatnonzero(splittable(np.array([0]), np.array([n]), imp0))
    sampled = max_features < p
    kern = _compiled_kernels() if len(act) else None
    if kern is not None:  # (proxy parameters, float64 statistics, feature ids)
        S64 = np.ascontiguousarray(layout.split_stats.T, dtype=np.float64)  # (n, Q)
        prox = (layout.kernel_proxy(), S64, info.kernel_ids)
    by_rank = sampled or kern is not None  # search each node's samples sorted by rank
    if len(act):
        # the last row of `order` lists the samples grouped by node (no feature order).
        # Searching all features: each feature sorted once, children inherit the order by
        # a stable partition. Drawing features: only the drawn ones are sorted, per node,
        # by their precomputed ranks (`_search`), so `order` is that last row alone.
        members0 = np.arange(n, dtype=np.int32)[None, :]
        order = members0 if by_rank else np.vstack([info.order, members0])
        act_ids = np.array([0])
        seg_len = np.array([n])
        act_nI = nI0
        act_val, act_prev = val0, np.array([0])
        act_stats = root_stats
    depth = 0
    while len(act):
        A = len(act_ids)
        seg_start = np.cumsum(seg_len) - seg_len
        pos_node = np.repeat(np.arange(A), seg_len) if kern is None else None

        members = order[-1]
        S = layout.split_stats
        if layout.exact and kern is not None:  # (A, Q) for the kernels, float64 (exact)
            node_tot = act_stats.take(layout.split_cols, axis=1)  # C order: one compilation
        elif layout.exact:  # (Q, A) totals of the split statistics per node
            node_tot = act_stats[:, layout.split_cols].T.astype(S.dtype)
        else:
            cum0 = np.cumsum(np.take(S, members, axis=1), axis=1, dtype=S.dtype)
            ends = cum0[:, seg_start + seg_len - 1]
            node_tot = ends.copy()
            node_tot[:, 1:] -= ends[:, :-1]
            if kern is not None:
                node_tot = np.ascontiguousarray(node_tot.T, dtype=np.float64)
        if kern is not None:
            best_val, best_feat, best_thr = _compiled_search(
                kern, prox, layout, info, rng, sampled, max_features, members, seg_start,
                seg_len, node_tot, min_samples_leaf,
            )  # fmt: skip
        else:
            best_val, best_feat, best_thr = _numpy_search(
                layout, info, rng, sampled, max_features, order, members, seg_start, seg_len,
                pos_node, node_tot, min_samples_leaf,
            )  # fmt: skip
        do_split = np.isfinite(best_val)
        if not do_split.any():
            break
        s_ids = np.flatnonzero(do_split)  # local index of split nodes
        f_node, t_node = best_feat[s_ids], best_thr[s_ids]
        n_child = 2 * len(s_ids)
        if kern is not None:
            by_child, child_len, cstats = kern.split_children(
                members, seg_start, seg_len, do_split, best_feat, best_thr, XT,
                layout.node_stats, np.ascontiguousarray(act_stats), layout.exact,
            )  # fmt: skip
            if not layout.exact:
                child_start = np.cumsum(child_len) - child_len
                cstats = np.add.reduceat(layout.node_stats[by_child], child_start, axis=0)
        else:
            samples0, child0, by_child, child_len, cstats = _numpy_children(
                layout, XT, members, pos_node, do_split, best_feat, best_thr, act_stats
            )
        c_nlab, c_imp, c_nI, c_val = layout.summarize(cstats)
        parent_local = np.repeat(s_ids, 2)
        missing = c_nlab <= 0
        for tm in np.flatnonzero(missing.any(axis=0)):  # no label: inherit the parent's value
            miss = missing[:, tm]
            c_val[tm][miss] = act_val[tm][act_prev[parent_local[miss]]]
        parent_ids = act_ids[s_ids]
        child_ids = n_nodes + np.arange(n_child)
        n_nodes += n_child
        impr = ((act_nI[s_ids] - c_nI[0::2] - c_nI[1::2]) * coef).sum(axis=1)
        split_ids.append(parent_ids)
        split_feat.append(f_node)
        split_thr.append(t_node)
        split_impr.append(impr)
        split_left.append(child_ids[0::2])
        rec_parent.append(np.repeat(parent_ids, 2))
        rec_depth.append(np.full(n_child, depth + 1))
        rec_rows.append(child_len)
        rec_nlab.append(c_nlab)
        rec_imp.append(c_imp)
        for t in range(layout.n_tasks):
            rec_val[t].append(c_val[t])

        # ---- the children that are split at the next level
        depth += 1
        nxt = splittable(np.full(n_child, depth), child_len, c_imp)
        act = np.flatnonzero(nxt)
        if not len(act):
            break
        if by_rank:  # the samples of the active children, grouped by child in order
            order = by_child[np.repeat(nxt, child_len)][None, :]
        else:
            # stable partition of every feature's order: sort each row by the sample's next
            # active node (radix sort on small ints); other samples sort last and are cut off
            n_act = len(act)
            key_dtype = np.int16 if n_act < 32767 else np.int32
            rank = np.full(n_child, n_act, dtype=key_dtype)
            rank[act] = np.arange(n_act)
            key_of = np.full(n, n_act, dtype=key_dtype)
            key_of[samples0] = rank[child0]
            idx = np.argsort(key_of[order], axis=1, kind="stable")
            m_new = int(child_len[act].sum())
            order = np.take_along_axis(order, idx[:, :m_new], axis=1)
        act_ids = child_ids[act]
        act_stats = cstats[act]
        seg_len = child_len[act]
        act_nI = c_nI[act]
        act_val, act_prev = c_val, act  # (values of the active nodes: act_val[t][act_prev])

    feature = np.full(n_nodes, -2, dtype=np.intp)  # -2 = leaf, as scikit-learn
    threshold = np.full(n_nodes, -2.0)
    improvement = np.zeros(n_nodes)
    left = np.full(n_nodes, -1, dtype=np.intp)
    right = np.full(n_nodes, -1, dtype=np.intp)
    if split_ids:
        ids = np.concatenate(split_ids)
        feature[ids] = np.concatenate(split_feat)
        threshold[ids] = np.concatenate(split_thr)
        improvement[ids] = np.concatenate(split_impr)
        left[ids] = np.concatenate(split_left)
        right[ids] = left[ids] + 1
    return TreeArrays(
        children_left=left,
        children_right=right,
        feature=feature,
        threshold=threshold,
        n_node_samples=np.concatenate(rec_rows).astype(np.intp),
        weighted_n_labelled=np.concatenate(rec_nlab),
        impurity=np.concatenate(rec_imp),
        improvement=improvement,
        depth=np.concatenate(rec_depth).astype(np.intp),
        value=[np.concatenate(v) for v in rec_val],
    )


def _numpy_children(layout, XT, members, pos_node, do_split, best_feat, best_thr, act_stats):
    """The children of the split nodes with numpy: which child every sample goes to, the
    samples grouped by child, the children's sizes and sums of ``node_stats``."""
    s_ids = np.flatnonzero(do_split)
    s_rank = np.cumsum(do_split) - 1
    in_split = do_split[pos_node]
    samples0 = members[in_split]  # grouped by node, in node order
    node0 = pos_node[in_split]
    go_right = XT[best_feat[node0], samples0] > best_thr[node0]
    child0 = 2 * s_rank[node0] + go_right  # child rank, left/right per split node
    n_child = 2 * len(s_ids)
    child_len = np.bincount(child0, minlength=n_child)
    child_start = np.cumsum(child_len) - child_len
    by_child = samples0[np.argsort(child0, kind="stable")]
    if layout.exact:  # sums of the left children; right = parent - left (exact)
        left_len = child_len[0::2]
        lstats = np.add.reduceat(
            layout.node_stats[samples0[~go_right]], np.cumsum(left_len) - left_len, axis=0
        )
        cstats = np.empty((n_child, lstats.shape[1]))
        cstats[0::2] = lstats
        np.subtract(act_stats[s_ids], lstats, out=cstats[1::2])
    else:
        cstats = np.add.reduceat(layout.node_stats[by_child], child_start, axis=0)
    return samples0, child0, by_child, child_len, cstats


def _numpy_search(
    layout, info, rng, sampled, max_features, order, members, seg_start, seg_len, pos_node,
    node_tot, min_samples_leaf,
):  # fmt: skip
    """Best (proxy, feature, threshold) of every active node with numpy (no numba)."""
    A = len(seg_len)
    XTc, cont_ids, bin_ids = info.XTc, info.cont_ids, info.bin_ids
    at_low, bin_thr = info.at_low, info.bin_thr
    low_b = None
    n_low = np.zeros((A, 0), dtype=np.int64)
    if len(bin_ids):  # rows at the low value, per node and two-valued feature
        # (m, n_binary) low-value indicator, rows grouped by node; float32 is exact for
        # integer counts below 2**24 and halves the memory traffic
        low_b = at_low[members].astype(layout.sum_dtype)
        m_rows = len(members)
        ones = sparse.csr_matrix(
            (np.ones(m_rows), np.arange(m_rows), np.append(seg_start, m_rows)),
            shape=(A, m_rows),
        )
        n_low = np.rint(np.asarray(ones.astype(layout.sum_dtype) @ low_b)).astype(np.int64)

    selected = None
    if sampled:
        selected = _draw_features(rng, max_features, seg_len, seg_start, members, info, n_low)

    best_val, best_loc, best_thr = _search(
        layout,
        XTc,
        (info.rank, info.n_rank, members) if sampled else order[:-1],
        seg_len,
        seg_start,
        pos_node,
        node_tot,
        None if selected is None else selected[:, cont_ids],
        min_samples_leaf,
    )
    best_feat = (
        np.where(best_loc >= 0, cont_ids[np.maximum(best_loc, 0)], -1)
        if len(cont_ids)
        else best_loc
    )
    if len(bin_ids):
        b_val, b_loc = _search_binary(
            layout,
            low_b,
            n_low,
            members,
            seg_len,
            seg_start,
            node_tot,
            None if selected is None else selected[:, bin_ids],
            min_samples_leaf,
        )
        b_feat = bin_ids[np.maximum(b_loc, 0)]
        take = (b_val > best_val) | ((b_val == best_val) & (b_loc >= 0) & (b_feat < best_feat))
        take &= np.isfinite(b_val)
        best_val = np.where(take, b_val, best_val)
        best_feat = np.where(take, b_feat, best_feat)
        best_thr = np.where(take, bin_thr[np.maximum(b_loc, 0)], best_thr)
    return best_val, best_feat, best_thr


def _compiled_search(
    kern, prox, layout, info, rng, sampled, max_features, members, seg_start, seg_len,
    node_tot, min_samples_leaf,
):  # fmt: skip
    """The same as :func:`_numpy_search` with the numba kernels (the same random draws).

    ``prox``: (proxy parameters, (n, Q) float64 split statistics, feature ids), per tree;
    ``node_tot``: (A, Q) float64."""
    S, ids = prox[1], prox[2]
    prox = prox[0]
    A, p = len(seg_len), info.XT.shape[0]
    seg_start = seg_start.astype(np.int64, copy=False)
    seg_len = seg_len.astype(np.int64, copy=False)
    if sampled:  # one draw per level, as _draw_features
        prio = rng.random_sample((A, p))
        selected = kern.draw_features(
            prio, max_features, members, seg_start, seg_len, info.XTc, ids[2], ids[3], ids[4],
            info.at_low,
        )  # fmt: skip
    else:
        selected = np.ones((A, p), dtype=np.bool_)
    m, Q = len(members), S.shape[1]
    block_rows = max(1, _BLOCK_ELEMENTS // max(1, m * (Q + 4)))  # as _search
    return kern.search_level(
        S, node_tot, members, seg_start, seg_len,
        selected, ids[0], ids[1], info.XTc, info.rank, info.at_low,
        info.bin_thr, min_samples_leaf, block_rows, prox,
    )  # fmt: skip


def _search(layout, XT, order, seg_len, seg_start, pos_node, node_tot, selected, min_samples_leaf):
    """Best (proxy, feature, threshold) of every active node; proxy -inf = no valid split.

    Positions are flattened over (feature, node) segments; with all features selected the
    segments of one feature row are the active nodes in order (``order``: the sorted
    samples of every feature, per node), so statistics can be laid out as (Q, features, m)
    and node totals broadcast instead of gathered. With drawn features (``selected``),
    ``order`` is ``(rank, n_rank, members)`` and only the drawn (feature, node) segments are
    sorted, by the key (segment, rank): the same order a stable partition would give.
    """
    if selected is None:
        p, m = order.shape
    else:
        rank, n_rank, members = order
        p, m = rank.shape[0], len(members)
    A = len(seg_len)
    best_val = np.full(A, -np.inf)
    best_feat = np.full(A, -1, dtype=np.intp)
    best_thr = np.zeros(A)
    S = layout.split_stats
    Q = S.shape[0]
    rows = max(1, _BLOCK_ELEMENTS // max(1, m * (Q + 4)))
    for j0 in range(0, p, rows):
        j1 = min(p, j0 + rows)
        nb = j1 - j0
        full = selected is None
        if full:
            samples = order[j0:j1].ravel()
            xflat = np.take_along_axis(XT[j0:j1], order[j0:j1], axis=1).ravel()
            seg_feat = np.repeat(np.arange(j0, j1), A)
            seg_node = np.tile(np.arange(A), nb)
        else:
            jj, seg_node = np.nonzero(selected[:, j0:j1].T)  # (feature, node) pairs
            if not len(jj):
                continue
            seg_feat = j0 + jj
            lens = seg_len[seg_node]
            # the samples of those segments, each segment sorted by the feature's rank
            offset = seg_start[seg_node] - (np.cumsum(lens) - lens)
            samples = members[np.repeat(offset, lens) + np.arange(int(lens.sum()))]
            at = np.repeat(seg_feat * rank.shape[1], lens) + samples  # flat (feature, sample)
            # (int32 keys when they fit: the same order, a faster sort)
            kdt = np.int32 if len(jj) * n_rank < 2**31 - 1 else np.int64
            key = np.repeat(np.arange(len(jj), dtype=kdt) * kdt(n_rank), lens)
            key += rank.ravel()[at]
            perm = np.argsort(key)  # keys are distinct: any sort gives the same order
            samples = samples[perm]
            xflat = XT.ravel()[at[perm]]
        seg_l = seg_len[seg_node]
        seg_s = np.cumsum(seg_l) - seg_l
        M = len(samples)
        seg_of = np.repeat(np.arange(len(seg_l)), seg_l)
        n_left = np.arange(1, M + 1) - np.repeat(seg_s, seg_l)
        valid = (n_left >= min_samples_leaf) & (
            np.repeat(seg_l, seg_l) - n_left >= min_samples_leaf
        )
        x64 = xflat.astype(np.float64)
        valid[:-1] &= xflat[1:] > x64[:-1] + FEATURE_THRESHOLD
        valid[-1] = False
        n_valid = int(np.count_nonzero(valid))
        if not n_valid:
            continue
        # cumulative statistics restarted at every segment: subtract the previous segment's
        # total at each segment start, then one cumsum
        G = layout.scratch("search_G", (Q, M), S.dtype)
        np.take(S, samples, axis=1, out=G, mode="clip")  # ("raise" would copy via a buffer)
        total = node_tot[:, seg_node]
        if len(seg_s) > 1:
            G[:, seg_s[1:]] -= total[:, :-1]
        C = np.cumsum(G, axis=1, dtype=G.dtype, out=G)
        if n_valid > M // 2:  # score every position, mask the invalid ones
            vidx = np.arange(M)
            sv = seg_of
            L = C
            if full:
                R = np.subtract(node_tot[:, pos_node][:, None, :], C.reshape(Q, nb, m))
                R = R.reshape(Q, M)
            else:
                R = layout.scratch("search_R", (Q, M), S.dtype)
                np.take(total, seg_of, axis=1, out=R, mode="clip")
                R -= L
        else:
            vidx = np.flatnonzero(valid)
            sv = seg_of[vidx]
            k = len(vidx)
            L = layout.scratch("search_L", (Q, k), S.dtype)
            np.take(C, vidx, axis=1, out=L, mode="clip")
            R = layout.scratch("search_R", (Q, k), S.dtype)
            np.take(total, sv, axis=1, out=R, mode="clip")
            R -= L
        proxy = layout.proxy(L)
        proxy += layout.proxy(R)
        if len(vidx) == M:
            proxy[~valid] = -np.inf
        # best position per segment (first one on ties)
        newseg = np.empty(len(sv), dtype=bool)
        newseg[0] = True
        np.not_equal(sv[1:], sv[:-1], out=newseg[1:])
        starts = np.flatnonzero(newseg)
        grp = np.cumsum(newseg) - 1
        segmax = np.maximum.reduceat(proxy, starts)
        cand = np.where(proxy == segmax[grp], np.arange(len(vidx)), len(vidx))
        arg = np.minimum.reduceat(cand, starts)
        keep_seg = segmax > -np.inf
        starts, segmax, arg = starts[keep_seg], segmax[keep_seg], arg[keep_seg]
        useg = sv[starts]
        nodes, feats = seg_node[useg], seg_feat[useg]
        pos = vidx[arg]
        lo, hi = x64[pos], x64[pos + 1]
        thr = lo / 2.0 + hi / 2.0
        thr = np.where((thr == hi) | ~np.isfinite(thr), lo, thr)
        # best segment per node (lowest feature on ties), then merge with earlier blocks
        o = np.lexsort((feats, -segmax, nodes))
        first = np.r_[True, nodes[o][1:] != nodes[o][:-1]]
        o = o[first]
        nd = nodes[o]
        better = segmax[o] > best_val[nd]
        nd = nd[better]
        o = o[better]
        best_val[nd] = segmax[o]
        best_feat[nd] = feats[o]
        best_thr[nd] = thr[o]
    return best_val, best_feat, best_thr


def _search_binary(
    layout, low_b, n_low, members, seg_len, seg_start, node_tot, selected, min_samples_leaf
):
    """Best (proxy, binary-feature index) per node for the two-valued features.

    The left child of a two-valued feature is the node's samples at its low value, so its
    statistics are per-node sums of (statistic x indicator): one sparse-dense product.
    """
    A = len(seg_len)
    best_val = np.full(A, -np.inf)
    best_loc = np.full(A, -1, dtype=np.intp)
    valid = (n_low >= min_samples_leaf) & (seg_len[:, None] - n_low >= min_samples_leaf)
    if selected is not None:
        valid &= selected
    a_idx, j_idx = np.nonzero(valid)  # node-major, features increasing within a node
    if not len(a_idx):
        return best_val, best_loc
    S = layout.split_stats
    Q, m = S.shape[0], len(members)
    # per-node sums of (statistic x low-value indicator) for every statistic row q at once:
    # a sparse (Q*A, m) matrix whose row (q, a) holds statistic q on node a's samples,
    # times the dense (m, n_binary) low-value indicator of the same samples
    Sm = np.take(S, members, axis=1).astype(layout.sum_dtype)
    indptr = np.append((np.arange(Q)[:, None] * m + seg_start[None, :]).ravel(), Q * m)
    E = sparse.csr_matrix((Sm.ravel(), np.tile(np.arange(m), Q), indptr), shape=(Q * A, m))
    sums = np.asarray(E @ low_b).reshape(Q, A, -1)
    L = sums[:, a_idx, j_idx]
    if S.dtype.kind == "i":
        L = np.rint(L).astype(S.dtype)  # exact integer counts (float64 sums of ints are exact)
    R = np.take(node_tot, a_idx, axis=1)
    R -= L
    proxy = layout.proxy(L)
    proxy += layout.proxy(R)
    newnode = np.r_[True, a_idx[1:] != a_idx[:-1]]
    starts = np.flatnonzero(newnode)
    grp = np.cumsum(newnode) - 1
    nodemax = np.maximum.reduceat(proxy, starts)
    cand = np.where(proxy == nodemax[grp], np.arange(len(a_idx)), len(a_idx))
    arg = np.minimum.reduceat(cand, starts)  # lowest feature among equal scores
    nodes = a_idx[starts]
    best_val[nodes] = nodemax
    best_loc[nodes] = j_idx[arg]
    return best_val, best_loc
