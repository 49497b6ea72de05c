"""DualProj: the mean gradient projected onto the dual cone of the task gradients."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from mtlkit._registry import AGGREGATORS
from mtlkit.aggregation._base import GramianWeightedAggregator
from mtlkit.aggregation._solvers import (
    SCIPY_NNLS_MIN_K,
    factor,
    nnls_gram,
    normalized,
    scipy_optimize,
    to_numpy,
)


@AGGREGATORS.register()
class DualProj(GramianWeightedAggregator):
    """The projection of the average gradient onto the dual cone of the task gradients,
    ``C = {x : ⟨g_i, x⟩ ≥ 0 ∀i}`` (the directions that conflict with no task).

    As TorchJD defines it (Quinton & Rey, "Jacobian Descent for Multi-Objective
    Optimization", https://arxiv.org/abs/2406.16232, 2024): the solution of Eq. 11 of
    Lopez-Paz & Ranzato, "Gradient Episodic Memory for Continual Learning", NeurIPS 2017
    (https://arxiv.org/abs/1706.08840), applied to the mean ``ḡ = (1/K) Σ g_i``:

        d = argmin_{x ∈ C} ‖x − ḡ‖².

    Its dual (as in GEM) is a K-variable quadratic program on the Gramian: ``d = Jᵀv`` with
    ``v = argmin_{v ≥ u} vᵀGv``, u = (1/K)·1. With ``v = u + μ`` it is the non-negative least
    squares ``min_{μ ≥ 0} ‖A(u + μ)‖`` (``AᵀA = G``), solved *exactly* by Lawson–Hanson (SciPy's
    compiled NNLS for K ≥ 3 when it is installed) — where TorchJD adds 1e-4 to the
    normalised Gramian's diagonal and solves with a general QP solver. The result lies in
    C (never conflicts with a task), equals ḡ when ḡ conflicts with none, is linear in the
    gradients' scale and independent of their order.

    >>> import torch
    >>> DualProj()(torch.tensor([[1.0, 0.0], [-2.0, 1.0]]))  # ḡ = (−½, ½) conflicts with g₁
    tensor([0.0000, 0.5000])
    """

    paper = ("Lopez-Paz & Ranzato 2017, Gradient Episodic Memory for Continual Learning (NeurIPS; "
             "arXiv:1706.08840), Eq. 11 on the mean gradient: DualProj as in TorchJD")
    non_conflicting = True
    permutation_invariant = True

    def weights(self, gramian: Tensor) -> Tensor:
        w = dualproj_weights(to_numpy(gramian))
        return torch.as_tensor(w, dtype=gramian.dtype, device=gramian.device)


def dualproj_weights(g: np.ndarray, u: np.ndarray | None = None) -> np.ndarray:
    """``v = argmin_{v ≥ u} vᵀGv`` (default u = 1/K): the weights of the projection of ``Jᵀu``
    onto the dual cone of the rows of J."""
    k = g.shape[0]
    u = np.full(k, 1.0 / k) if u is None else np.asarray(u, dtype=np.float64)
    gn, s = normalized(g)
    if s == 0.0 or (gn @ u >= 0.0).all():  # Jᵀu already in the cone
        return u.copy()
    so = scipy_optimize("DualProj", required=False) if k >= SCIPY_NNLS_MIN_K else None
    if so is not None:
        a = factor(gn)
        mu = so.nnls(a, -(a @ u))[0]
    else:
        mu = nnls_gram(gn, -(gn @ u))
    return u + mu
