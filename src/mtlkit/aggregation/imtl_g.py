"""IMTL-G: the update whose projections on all unit task gradients are equal."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from mtlkit._registry import AGGREGATORS
from mtlkit.aggregation._base import GramianWeightedAggregator
from mtlkit.aggregation._solvers import row_normalized, to_numpy


@AGGREGATORS.register()
class IMTLG(GramianWeightedAggregator):
    """Impartial multi-task learning, gradient part (IMTL-G).

    Liu, Li, Kuang, Xue, Chen, Yang, Liao & Zhang, "Towards Impartial Multi-task Learning",
    ICLR 2021. The update ``d = Σ_i α_i g_i`` with ``Σ_i α_i = 1`` has the same projection
    on every unit gradient u_i = g_i/‖g_i‖: ``⟨d, u_i⟩ = ⟨d, u_j⟩`` for all i, j. The paper's
    closed form ``α_{2:K} = g_1 Uᵀ (D Uᵀ)⁻¹`` is, written with the Gramian G and the norms
    n_i = ‖g_i‖, ``G α = t n``, i.e. ``α = G⁻¹ n / (1ᵀ G⁻¹ n)``. With ``G = N Ĝ N`` (N the
    norms, Ĝ the unit-diagonal Gramian of the unit gradients), ``G⁻¹ n = N⁻¹ Ĝ⁻¹ 1`` is
    computed on Ĝ, which stays well conditioned for gradients of very different norms (1e-15
    to 1e15). The pseudo-inverse of Ĝ (relative cut-off at the Jacobian dtype's precision)
    extends it to rank-deficient Gramians, where the paper's inverse does not exist; a zero
    gradient gets weight 0. Where ``1ᵀ N⁻¹ Ĝ⁺ 1 = 0`` the weights cannot sum to 1 (the formula
    has a pole) and the update is 0. The weights may be negative; the update is not
    guaranteed to be non-conflicting.

    >>> import torch
    >>> IMTLG()(torch.tensor([[1.0, 0.0], [0.0, 3.0]]))  # equal projections (0.75 each)
    tensor([0.7500, 0.7500])
    """

    paper = "Liu et al. 2021, Towards Impartial Multi-task Learning (ICLR), IMTL-G"
    permutation_invariant = True
    equals_mean_for_one_task = True

    def weights(self, gramian: Tensor) -> Tensor:
        g = to_numpy(gramian)
        k = g.shape[0]
        # G = N Ĝ N (N = diag of the norms, Ĝ unit-diagonal): G⁻¹n = N⁻¹ Ĝ⁻¹ 1, computed on the
        # well-conditioned Ĝ whatever the spread of the gradients' norms
        gh, norms = row_normalized(g)
        live = norms > 0.0
        if not live.any():
            return torch.full((k,), 1.0 / k, dtype=gramian.dtype, device=gramian.device)
        rcond = 10.0 * k * float(torch.finfo(gramian.dtype).eps)
        v = np.zeros(k)
        sub = gh[np.ix_(live, live)]
        v[live] = (np.linalg.pinv(sub, rcond=rcond, hermitian=True) @ np.ones(int(live.sum()))) / norms[live]
        total = float(v.sum())
        if not np.isfinite(total) or abs(total) <= 1e-12 * float(np.abs(v).sum()):
            w = np.zeros(k)
        else:
            w = v / total
        return torch.as_tensor(w, dtype=gramian.dtype, device=gramian.device)
