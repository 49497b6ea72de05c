"""Krum / Multi-Krum: the gradient(s) closest to their nearest neighbours."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from mtlkit._checks import check_choice, check_int
from mtlkit._registry import AGGREGATORS
from mtlkit.aggregation._base import GramianWeightedAggregator
from mtlkit.aggregation._solvers import normalized, to_numpy

DISTANCES = ("squared", "euclidean")
#: scores within this fraction of the largest score are ties
_TIE = 1e-12


@AGGREGATORS.register()
class Krum(GramianWeightedAggregator):
    """Byzantine-robust selection: each gradient is scored by its distances to its
    ``K − f − 2`` nearest neighbours, and the ``m`` best-scored gradients are averaged.

    Blanchard, El Mhamdi, Guerraoui & Stainer, "Machine Learning with Adversaries:
    Byzantine Tolerant Gradient Descent", NeurIPS 2017 (https://arxiv.org/abs/1703.02757),
    as TorchJD defines it (with ``n_byzantine`` = f and ``n_selected`` = m; m = 1 is Krum,
    m > 1 Multi-Krum). The score of row i is ``s(i) = Σ_{j ∈ N(i)} ‖g_i − g_j‖²`` over the
    set N(i) of its K − f − 2 nearest other rows, and ``d = (1/m) Σ_{i ∈ S} g_i`` over the m
    rows of smallest score. The distances come from the Gramian
    (‖g_i − g_j‖² = G_ii + G_jj − 2G_ij), so the method works at representation level.

    Choices:

    * ``distance``: the paper scores with *squared* distances (default ``"squared"``);
      TorchJD sums the distances themselves (``"euclidean"``). The two can select
      different rows.
    * Ties in the score (within 1e-12 of the largest score), which a sort would break by
      row order, share the remaining selection weight equally, so the result does not
      depend on the order of the tasks (two tasks always tie: the result is their mean).
    * TorchJD refuses fewer than f + 3 rows, or fewer than m; here (a step where some tasks
      are absent must still work) the number of neighbours is clipped to
      ``max(1, min(K − f − 2, K − 1))`` and m to K. One task gives its gradient.

    Args:
        n_byzantine: f ≥ 0, the number of rows that may be adversarial (default 0).
        n_selected: m ≥ 1, the number of rows averaged (default 1, plain Krum).
        distance: ``"squared"`` (the paper, default) or ``"euclidean"`` (TorchJD).

    >>> import torch
    >>> j = torch.tensor([[1.0, 0.0], [1.1, 0.0], [1.0, 0.2], [-9.0, 5.0]])
    >>> Krum()(j)  # 2 neighbours each; scores 0.05, 0.06, 0.09 and 1e2: row 0 is picked
    tensor([1., 0.])
    >>> Krum(n_selected=3).weights_of(j)  # Multi-Krum: the outlier is left out
    tensor([0.3333, 0.3333, 0.3333, 0.0000])
    """

    paper = ("Blanchard, El Mhamdi, Guerraoui & Stainer 2017, Machine Learning with Adversaries: Byzantine "
             "Tolerant Gradient Descent (NeurIPS; arXiv:1703.02757), Krum / Multi-Krum as in TorchJD")
    permutation_invariant = True
    equals_mean_for_one_task = True

    def __init__(self, *, n_byzantine: int = 0, n_selected: int = 1, distance: str = "squared") -> None:
        self.n_byzantine = check_int("Krum", "n_byzantine", n_byzantine, low=0)
        self.n_selected = check_int("Krum", "n_selected", n_selected, low=1)
        self.distance = check_choice("Krum", "distance", distance, options=DISTANCES)

    def weights(self, gramian: Tensor) -> Tensor:
        w = krum_weights(to_numpy(gramian), self.n_byzantine, self.n_selected, squared=self.distance == "squared")
        return torch.as_tensor(w, dtype=gramian.dtype, device=gramian.device)


def krum_scores(g: np.ndarray, n_byzantine: int, *, squared: bool = True) -> np.ndarray:
    """The Krum score of every row of J, from its Gramian ``g`` (scaled to mean diagonal 1)."""
    k = g.shape[0]
    if k == 1:
        return np.zeros(1)
    gn, _ = normalized(g)
    diag = np.diag(gn)
    dist = np.clip(diag[:, None] + diag[None, :] - 2.0 * gn, 0.0, None)
    if not squared:
        dist = np.sqrt(dist)
    np.fill_diagonal(dist, np.inf)
    neighbours = max(1, min(k - n_byzantine - 2, k - 1))
    return np.sort(dist, axis=1)[:, :neighbours].sum(axis=1)


def krum_weights(g: np.ndarray, n_byzantine: int, n_selected: int, *, squared: bool = True) -> np.ndarray:
    """``1/m`` on the m rows of smallest score (ties at the m-th score share the rest)."""
    scores = krum_scores(g, n_byzantine, squared=squared)
    k = scores.size
    m = min(n_selected, k)
    threshold = float(np.sort(scores)[m - 1])
    tol = _TIE * float(np.max(scores))
    below = scores < threshold - tol
    tied = ~below & (scores <= threshold + tol)
    w = np.zeros(k)
    w[below] = 1.0 / m
    w[tied] = (m - int(below.sum())) / (m * int(tied.sum()))
    return w
