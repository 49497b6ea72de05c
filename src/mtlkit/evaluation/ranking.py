"""Ranking metrics of recommender tasks: AUC, GAUC, log loss, HR@K and NDCG@K.

Pure functions of NumPy arrays (scores, 0/1 labels, a group id per row — the user):

* ``auc``: the probability that a random positive outscores a random negative (ties count
  one half), by ranks.
* ``gauc``: per-group AUC averaged with each group's number of rows (impressions) as weight,
  over the groups that hold both a positive and a negative (Zhou et al. 2018, "Deep Interest
  Network"); the groups left out are counted in ``ranking_metrics``.
* ``log_loss``: mean binary cross-entropy of probabilities clipped to [eps, 1 - eps].
* ``hit_rate_at_k`` / ``ndcg_at_k``: per group, the candidates are that group's rows (state
  whether they are the full item set or a sample: :func:`ranking_metrics` records the
  ``candidates`` statement). HR@K = 1 when a positive is among the top K; NDCG@K =
  DCG@K / ideal DCG@K with gain 1 per positive and discount 1/log2(rank + 2). With
  leave-one-out (one held-out positive per user) NDCG@K = 1/log2(rank + 2) when rank < K.
  Ties are broken pessimistically (a positive ranks after the negatives that score the same).
  Means over the groups with at least one positive.

>>> import numpy as np
>>> s = np.array([0.9, 0.2, 0.8, 0.3]); y = np.array([1, 0, 0, 1]); g = np.array([0, 0, 1, 1])
>>> round(auc(s, y), 4), gauc(s, y, g), hit_rate_at_k(s, y, g, 1)
(0.75, 0.5, 0.5)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["auc", "gauc", "hit_rate_at_k", "log_loss", "ndcg_at_k", "ranking_metrics"]


def _arrays(scores: Any, labels: Any, groups: Any = None) -> tuple[np.ndarray, ...]:
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    if s.shape != y.shape:
        raise ValueError(f"scores and labels differ in length: {s.shape[0]} and {y.shape[0]}.")
    if groups is None:
        return s, y
    g = np.asarray(groups).reshape(-1)
    if g.shape != s.shape:
        raise ValueError(f"groups and scores differ in length: {g.shape[0]} and {s.shape[0]}.")
    return s, y, g


def auc(scores: Any, labels: Any) -> float:
    """ROC AUC by the rank-sum formula (average ranks for ties); NaN without both classes."""
    s, y = _arrays(scores, labels)
    pos = y > 0.5
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    ss = s[order]
    i = 0
    while i < len(ss):  # average ranks over ties
        j = i
        while j + 1 < len(ss) and ss[j + 1] == ss[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _groups(g: np.ndarray) -> list[np.ndarray]:
    order = np.argsort(g, kind="stable")
    _, starts = np.unique(g[order], return_index=True)
    return np.split(order, starts[1:])


def gauc(scores: Any, labels: Any, groups: Any) -> float:
    """Impression-weighted mean of the per-group AUCs (groups with both classes only)."""
    s, y, g = _arrays(scores, labels, groups)
    num = den = 0.0
    for idx in _groups(g):
        a = auc(s[idx], y[idx])
        if not np.isnan(a):
            num += a * len(idx)
            den += len(idx)
    return num / den if den else float("nan")


def log_loss(probs: Any, labels: Any, eps: float = 1e-7) -> float:
    p, y = _arrays(probs, labels)
    p = np.clip(p, eps, 1 - eps)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def _group_ranks(s: np.ndarray, y: np.ndarray, g: np.ndarray, k: int) -> list[tuple[np.ndarray, int]]:
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"The 'k' parameter must be a positive integer. Got {k!r}.")
    out = []
    for idx in _groups(g):
        yy, sc = y[idx] > 0.5, s[idx]
        n_pos = int(yy.sum())
        if n_pos == 0:
            continue
        # pessimistic ties: positives after negatives of equal score
        order = np.lexsort((yy.astype(int), -sc))
        ranks = np.nonzero(yy[order])[0]
        out.append((ranks, n_pos))
    return out


def hit_rate_at_k(scores: Any, labels: Any, groups: Any, k: int) -> float:
    """Share of groups with a positive among their top ``k`` candidates."""
    s, y, g = _arrays(scores, labels, groups)
    r = _group_ranks(s, y, g, k)
    return float(np.mean([float(ranks.min() < k) for ranks, _ in r])) if r else float("nan")


def ndcg_at_k(scores: Any, labels: Any, groups: Any, k: int) -> float:
    """Mean over groups of DCG@k / ideal DCG@k (binary gains)."""
    s, y, g = _arrays(scores, labels, groups)
    r = _group_ranks(s, y, g, k)
    vals = []
    for ranks, n_pos in r:
        dcg = float(np.sum(1.0 / np.log2(ranks[ranks < k] + 2.0)))
        ideal = float(np.sum(1.0 / np.log2(np.arange(min(n_pos, k)) + 2.0)))
        vals.append(dcg / ideal)
    return float(np.mean(vals)) if vals else float("nan")


def ranking_metrics(probs: Any, labels: Any, groups: Any, *, mask: Any = None, ks: Sequence[int] = (10,),
                    candidates: str = "the group's rows", parent: Any = None) -> dict[str, Any]:
    """AUC, GAUC, log loss, HR@K and NDCG@K of one binary task on the rows of ``mask``, with
    the candidate-set statement. With ``parent`` (the 0/1 labels of a funnel task's parent),
    AUC and log loss are also given on the parent's positives (``conditional_auc``: the CVR
    AUC on clicked impressions of ESMM's paper).

    >>> m = ranking_metrics([0.9, 0.2, 0.8, 0.3], [1, 0, 0, 1], [0, 0, 1, 1], ks=(1,))
    >>> m["hr@1"], m["groups_without_both_classes"]
    (0.5, 0)
    """
    p, y, g = _arrays(probs, labels, groups)
    keep = np.ones(len(p), dtype=bool) if mask is None else np.asarray(mask, dtype=bool).reshape(-1)
    p, y, g = p[keep], y[keep], g[keep]
    out: dict[str, Any] = {"auc": auc(p, y), "gauc": gauc(p, y, g), "log_loss": log_loss(p, y)}
    both = sum(1 for idx in _groups(g) if 0 < (y[idx] > 0.5).sum() < len(idx))
    out["groups_without_both_classes"] = len(np.unique(g)) - both
    for k in ks:
        out[f"hr@{k}"] = hit_rate_at_k(p, y, g, k)
        out[f"ndcg@{k}"] = ndcg_at_k(p, y, g, k)
    if parent is not None:
        c = np.asarray(parent, dtype=np.float64).reshape(-1)[keep] > 0.5
        out["conditional_auc"] = auc(p[c], y[c])
        out["conditional_log_loss"] = log_loss(p[c], y[c]) if c.any() else float("nan")
    out["candidates"] = candidates
    return out
