"""Small helpers shared by the projected-gradient weightings (MoCo, MoDo): the Euclidean
projection onto the probability simplex, and per-task state keyed by task index."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def project_to_simplex(v: np.ndarray) -> np.ndarray:
    """The Euclidean projection of ``v`` onto ``{x : x ≥ 0, Σ x = 1}`` (exact, O(K log K)).

    Held, Wolfe & Crowder, "Validation of subgradient optimization", Math. Programming 6,
    1974; Duchi, Shalev-Shwartz, Singer & Chandra, ICML 2008: with ``u`` the entries of ``v``
    sorted in decreasing order, ``θ = (Σ_{j≤ρ} u_j − 1)/ρ`` for the largest ρ with
    ``u_ρ > (Σ_{j≤ρ} u_j − 1)/ρ``, and the projection is ``max(v − θ, 0)``.

    >>> project_to_simplex(np.array([0.0, 0.0, 2.0])).tolist()
    [0.0, 0.0, 1.0]
    >>> project_to_simplex(np.array([0.0, 0.5])).tolist()
    [0.25, 0.75]
    """
    v = np.asarray(v, dtype=np.float64)
    if not np.all(np.isfinite(v)):
        raise ValueError(f"cannot project a non-finite vector onto the simplex: {v.tolist()}")
    v = v - float(np.max(v))  # the projection ignores a common shift; this one avoids cancellation
    u = np.sort(v)[::-1]
    excess = np.cumsum(u) - 1.0
    ranks = np.arange(1, v.size + 1)
    hits = np.nonzero(u - excess / ranks > 0.0)[0]  # never empty: the first entry gives 1 > 0
    rho = int(hits[-1]) if hits.size else 0
    theta = excess[rho] / (rho + 1)
    x = np.maximum(v - theta, 0.0)
    total = float(x.sum())
    return x / total if total > 0.0 else np.full(v.size, 1.0 / v.size)


def task_ids(k: int, tasks: Sequence[int] | None) -> list[int]:
    """The task index of each of the ``k`` rows (``0..k-1`` when not given)."""
    return list(range(k)) if tasks is None else [int(t) for t in tasks]
