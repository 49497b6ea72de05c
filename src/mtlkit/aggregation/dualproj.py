"""DualProj: the mean gradient projected onto the dual cone of the task gradients."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from mtlkit._registry import AGGREGATORS
from mtlkit.aggregation._base import GramianWeightedAggregator
from mtlkit.aggregation._solvers import DualCone, eigenvalue_floor, row_normalized, to_numpy


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
    ``v = argmin_{v ≥ u} vᵀGv``, u = (1/K)·1. The cone depends only on the directions of the
    rows, so the problem is solved on the unit rows ĝ_i = g_i/‖g_i‖ with the shared dual-cone
    solver of UPGrad (:class:`mtlkit.aggregation._solvers.DualCone`): ḡ = Σ_i b_i ĝ_i with
    b_i = ‖g_i‖/K, ``π_C(ḡ) = Σ_i (b_i + μ_i) ĝ_i`` with ``μ = argmin_{μ ≥ 0} ‖Ĵᵀ(b + μ)‖`` —
    a non-negative least squares solved *exactly* by Lawson–Hanson (SciPy's compiled NNLS for
    K ≥ 3 when it is installed), in a canonical row order, with the eigenvalues of the
    normalised Gramian floored at its precision (exact wherever the Gramian resolves the
    geometry; bounded, order-independent weights on nearly weakly-stationary matrices, where
    it cannot). TorchJD instead adds 1e-4 to the normalised Gramian's diagonal and solves
    with a general QP solver. The result lies in C (never conflicts with a task), equals ḡ
    when ḡ conflicts with none, and does not depend on the order of the tasks; it is 0 only
    if some combination of the rows with all weights ≥ 1/K vanishes (strongly stationary).

    >>> import torch
    >>> DualProj()(torch.tensor([[1.0, 0.0], [-2.0, 1.0]]))  # ḡ = (−½, ½) conflicts with g₁
    tensor([0.0000, 0.5000])
    """

    paper = ("Lopez-Paz & Ranzato 2017, Gradient Episodic Memory for Continual Learning (NeurIPS; "
             "arXiv:1706.08840), Eq. 11 on the mean gradient: DualProj as in TorchJD")
    non_conflicting = True
    permutation_invariant = True
    strongly_stationary = True  # weights ≥ 1/K
    equals_mean_for_one_task = True

    def weights(self, gramian: Tensor) -> Tensor:
        w = dualproj_weights(to_numpy(gramian), floor=eigenvalue_floor(gramian.dtype))
        return torch.as_tensor(w, dtype=gramian.dtype, device=gramian.device)


def dualproj_weights(g: np.ndarray, *, floor: float | None = None) -> np.ndarray:
    """``v = argmin_{v ≥ 1/K} vᵀGv``: the weights of the projection of the mean row of J onto
    the dual cone of the rows (zero rows constrain nothing and keep 1/K)."""
    k = g.shape[0]
    u = np.full(k, 1.0 / k)
    gh, n = row_normalized(g)
    idx = np.flatnonzero(n > 0.0)
    if idx.size == 0:
        return u
    sub = gh[np.ix_(idx, idx)]
    b = n[idx] / float(np.max(n[idx]))  # ḡ ∝ Σ_i n_i ĝ_i; the projection is positively homogeneous
    if (sub @ b >= 0.0).all():  # ḡ already conflicts with no task
        return u
    mu = DualCone(sub, eigenvalue_floor() if floor is None else floor).project(b)
    out = u.copy()
    out[idx] += mu * float(np.max(n[idx])) / (k * n[idx])
    return out
