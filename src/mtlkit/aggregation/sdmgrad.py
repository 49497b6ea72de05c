"""SDMGrad: MGDA's min-norm problem regularised towards the average gradient."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from mtlkit._checks import check_float
from mtlkit._registry import AGGREGATORS
from mtlkit.aggregation._base import GramianWeightedAggregator
from mtlkit.aggregation._solvers import min_norm_weights, normalized, to_numpy


@AGGREGATORS.register()
class SDMGrad(GramianWeightedAggregator):
    """Direction-oriented multi-objective gradient: the min-norm point of the hull of the
    task gradients, each shifted by λ times the average gradient g₀, averaged with λg₀.

    Xiao, Ban & Ji, "Direction-oriented Multi-objective Learning: Simple and Provable
    Stochastic Algorithms", NeurIPS 2023 (https://arxiv.org/abs/2305.18409). With
    ``g₀ = (1/K) Σ g_i`` and ``g_w = Σ w_i g_i``:

        w* = argmin_{w ∈ simplex} ½ ‖g_w + λ g₀‖²,   d = (g_{w*} + λ g₀) / (1 + λ).

    λ = 0 is MGDA (the min-norm point); λ → ∞ tends to the average gradient g₀ (the
    distance is O(1/λ)). Since Σ w_i = 1, ``g_w + λg₀ = Σ w_i (g_i + λg₀)``: w* is the
    min-norm point of the hull of the shifted gradients, whose Gramian is
    ``G + λ(h1ᵀ + 1hᵀ) + λ²g₀ᵀg₀`` (h = G1/K). It is solved *exactly* for any K by the same
    least-distance-programming NNLS as MGDA — where the paper (and the authors' code)
    approach w* with a few projected stochastic-gradient steps, warm-started across
    iterations, on two independent mini-batches.

    Choices: one Jacobian per step, so the paper's double sampling (ξ, ξ' for w; ζ for
    the update) uses the same batch three times — the deterministic direction the
    stochastic algorithm tracks. The regularisation weight is named ``lmbd`` (λ; ``lambda``
    is a Python keyword).

    Args:
        lmbd: λ ≥ 0, the pull towards the average gradient (default 0.3, the authors'
            default).

    >>> import torch
    >>> SDMGrad(lmbd=0.0)(torch.tensor([[2.0, 0.0], [0.0, 1.0]]))  # MGDA's min-norm point
    tensor([0.4000, 0.8000])
    """

    paper = ("Xiao, Ban & Ji 2023, Direction-oriented Multi-objective Learning: Simple and Provable "
             "Stochastic Algorithms (NeurIPS; arXiv:2305.18409), SDMGrad")
    permutation_invariant = True
    strongly_stationary = True  # weights ≥ λ/(K(1+λ)) > 0 (λ > 0; λ = 0 is MGDA, only weakly)
    equals_mean_for_one_task = True

    def __init__(self, *, lmbd: float = 0.3) -> None:
        self.lmbd = check_float("SDMGrad", "lmbd", lmbd, low=0.0)

    def weights(self, gramian: Tensor) -> Tensor:
        w = sdmgrad_weights(to_numpy(gramian), self.lmbd)
        return torch.as_tensor(w, dtype=gramian.dtype, device=gramian.device)


def sdmgrad_weights(g: np.ndarray, lmbd: float) -> np.ndarray:
    """Weights of ``d = Jᵀ weights`` for the Gramian ``g``: ``(w* + λ/K) / (1 + λ)``."""
    k = g.shape[0]
    u = np.full(k, 1.0 / k)
    gn, s = normalized(g)
    if s == 0.0:
        return u
    h = gn @ u
    g0sq = float(u @ h)
    shifted = gn + lmbd * (h[:, None] + h[None, :]) + (lmbd * lmbd) * g0sq
    w = min_norm_weights(shifted)
    return (w + lmbd * u) / (1.0 + lmbd)
