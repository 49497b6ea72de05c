"""Aligned-MTL: align the principal components of the task gradients."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from mtlkit._checks import check_choice
from mtlkit._registry import AGGREGATORS
from mtlkit.aggregation._base import GramianWeightedAggregator

SCALE_MODES = ("min", "median", "rmse")


@AGGREGATORS.register()
class AlignedMTL(GramianWeightedAggregator):
    """Aligned-MTL: make the task gradients orthogonal with equal norms (a condition number
    of 1), the closest such system to the original one, then sum them.

    Senushkin, Patakin, Kuznetsov & Konushin, "Independent Component Alignment for
    Multi-Task Learning", CVPR 2023. With the eigendecomposition G = V Λ Vᵀ of the Gramian
    (``torch.linalg.eigh``; eigenvalues below ``λ_max · K · eps(dtype)`` count as zero, as in
    the authors' code) the aligned gradients are the rows of ``B J`` with
    ``B = σ V_r Λ_r^{-1/2} V_rᵀ``, where σ² is the smallest kept eigenvalue (``scale_mode=
    "min"``, the paper's choice), their median (the lower one for an even count, as
    ``torch.median``) or their mean (``"rmse"``). The update is
    their sum, ``d = 1ᵀ B J`` (the authors' code sums over tasks; task weights are left to
    the loss-space weighting).

    Args:
        scale_mode: ``"min"`` (default) | ``"median"`` | ``"rmse"``.

    >>> import torch
    >>> AlignedMTL()(torch.tensor([[2.0, 0.0], [0.0, 1.0]]))  # both rows rescaled to norm 1
    tensor([1., 1.])
    """

    paper = ("Senushkin, Patakin, Kuznetsov & Konushin 2023, Independent Component Alignment for Multi-Task "
             "Learning (CVPR), Aligned-MTL")
    permutation_invariant = True
    strongly_stationary = True  # d = σ U_r V_rᵀ1 = 0 iff 1 ⊥ range(G) iff Jᵀ1 = 0
    equals_mean_for_one_task = True

    def __init__(self, *, scale_mode: str = "min") -> None:
        check_choice("AlignedMTL", "scale_mode", scale_mode, options=SCALE_MODES)
        self.scale_mode = scale_mode

    def weights(self, gramian: Tensor) -> Tensor:
        k = gramian.shape[0]
        g = gramian.detach().to(torch.float64)
        g = 0.5 * (g + g.T)
        scale = float(torch.diagonal(g).mean())
        if not np.isfinite(scale) or scale <= 0.0:
            return torch.ones(k, dtype=gramian.dtype, device=gramian.device)
        lam, vec = torch.linalg.eigh(g / scale)
        tol = float(lam.max()) * k * float(torch.finfo(gramian.dtype).eps)
        keep = lam > tol
        lam_r, vec_r = lam[keep], vec[:, keep]
        if self.scale_mode == "min":
            sigma2 = lam_r.min()
        elif self.scale_mode == "median":
            sigma2 = lam_r.median()
        else:
            sigma2 = lam_r.mean()
        b = (vec_r * (sigma2.sqrt() / lam_r.sqrt())) @ vec_r.T
        return b.sum(dim=1).to(dtype=gramian.dtype, device=gramian.device)
