"""UPGrad: average of the projections of the task gradients onto the dual cone."""

from __future__ import annotations

import torch
from torch import Tensor

from mtlkit._registry import AGGREGATORS
from mtlkit.aggregation._base import GramianWeightedAggregator
from mtlkit.aggregation._solvers import dual_cone_weights, eigenvalue_floor, to_numpy


@AGGREGATORS.register()
class UPGrad(GramianWeightedAggregator):
    """Unconflicting projection of gradients.

    Quinton & Rey, "Jacobian Descent for Multi-Objective Optimization", arXiv:2406.16232,
    2024. Each task gradient g_i is projected onto the dual cone of the rows,
    ``C = {x : ⟨g_j, x⟩ ≥ 0 ∀j}`` (the directions that conflict with no task), and the
    projections are averaged: ``d = (1/K) Σ_i π_C(g_i)``. The projection of a row is
    ``π_C(g_i) = Jᵀ v_i`` with ``v_i = argmin_{v ≥ e_i} vᵀ G v``, a K-variable quadratic
    program solved exactly by non-negative least squares (Lawson–Hanson) on the Gramian
    (SciPy's compiled NNLS for K ≥ 3 when it is installed). The result lies in C, so it
    never conflicts with a task; a row that already conflicts with none is kept as it is.

    C depends only on the directions of the rows, so each row is projected as a unit vector
    on the row-normalised Gramian (unit diagonal) and scaled back: rows of very different
    norms cost no accuracy, and ``UPGrad(diag(c) J)`` is linear in ``c > 0`` by construction
    (the paper's "linear under scaling"). The problems are solved in a canonical row order,
    with the eigenvalues of the normalised Gramian floored at its precision (100 eps of its
    dtype): exact wherever the Gramian resolves the geometry, and, on nearly weakly-stationary
    matrices (some positive combination of the rows almost vanishes, so the Gramian cannot
    tell how nearly), the same result whatever the order of the tasks, with bounded weights
    instead of round-off-driven ones. See :mod:`mtlkit.aggregation._solvers`.

    >>> import torch
    >>> UPGrad()(torch.tensor([[1.0, 0.0], [-1.0, 1.0]]))
    tensor([0.2500, 0.7500])
    """

    paper = "Quinton & Rey 2024, Jacobian Descent for Multi-Objective Optimization (arXiv:2406.16232), UPGrad"
    non_conflicting = True
    permutation_invariant = True
    linear_under_scaling = True
    strongly_stationary = True  # weights ≥ 1/K (each v_i ≥ e_i)
    equals_mean_for_one_task = True

    def weights(self, gramian: Tensor) -> Tensor:
        v = dual_cone_weights(to_numpy(gramian), floor=eigenvalue_floor(gramian.dtype))
        return torch.as_tensor(v.mean(axis=0), dtype=gramian.dtype, device=gramian.device)
