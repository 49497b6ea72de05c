"""ConFIG: the conflict-free direction with equal cosine to every task gradient."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from mtlkit._registry import AGGREGATORS
from mtlkit.aggregation._base import GramianWeightedAggregator
from mtlkit.aggregation._solvers import row_normalized, to_numpy

#: eigenvalues of the cosine matrix below this many ``K·eps`` of the largest are treated as
#: zero by the pseudo-inverse (the Gramian's own round-off is a few ``eps·√P`` of its scale)
_RCOND_EPS = 1e4


@AGGREGATORS.register()
class ConFIG(GramianWeightedAggregator):
    """Conflict-free inverse gradients: the direction whose cosine with every task gradient
    is the same, scaled by the sum of the gradients' projections on it.

    Liu, Chu & Thuerey, "ConFIG: Towards Conflict-free Training of Physics Informed Neural
    Networks", arXiv:2408.11104, 2024 (ICLR 2025), Eq. 2. With the unit gradients
    ``ĝ_i = g_i / ‖g_i‖`` stacked as the rows of Û,

        g_u = Û⁺ 1  (the least-norm x with ⟨ĝ_i, x⟩ = 1 for every i),
        d = (Σ_i ⟨g_i, g_u/‖g_u‖⟩) · g_u/‖g_u‖.

    When the unit gradients are linearly independent (K ≤ P) every task gets the same
    positive cosine 1/‖g_u‖, so d conflicts with none; otherwise Û⁺1 is the least-squares
    solution and that guarantee is lost (the flag ``non_conflicting`` is therefore off).
    One task gives its gradient; g_u depends on the directions only, so the result is
    linear in a positive rescaling of each row (``ConFIG(diag(c) J)`` is linear in c), and it
    does not depend on the order of the rows. With dependent unit gradients the length
    Σ⟨g_i, g_u⟩ can vanish although the tasks are not stationary.

    Computed on the Gramian alone (so it works at representation level and with a Gramian
    summed over processes): ``Û⁺ = Ûᵀ (ÛÛᵀ)⁺`` and ``ÛÛᵀ = D⁻¹GD⁻¹`` is the matrix of
    cosines (D = diag ‖g_i‖), so ``g_u = Σ_i c_i ĝ_i`` with ``c = (D⁻¹GD⁻¹)⁺ 1``, and
    ``d = (1ᵀG v / vᵀG v) Jᵀv`` with ``v = D⁻¹c``.

    Choices: the pseudo-inverse of the cosine matrix drops the eigenvalues below
    ``1e4·K·eps`` of the largest (eps of the Gramian's dtype: 2e-12·K in float64, 1e-3·K in
    float32) — below that they are round-off of the Gramian, and inverting them would point
    g_u along noise. A zero gradient has no direction: its row of Û is zero (as the
    reference code's ``nan_to_num``) and it is left out of the equations. TorchJD's optional
    preference vector (a right-hand side other than 1) is not offered.

    >>> import torch
    >>> ConFIG()(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))  # cos 45° with both; length 1/√2 + 2/√2
    tensor([1.5000, 1.5000])
    """

    paper = ("Liu, Chu & Thuerey 2024, ConFIG: Towards Conflict-free Training of Physics Informed Neural "
             "Networks (arXiv:2408.11104; ICLR 2025), ConFIG")
    permutation_invariant = True
    linear_under_scaling = True  # g_u depends on the directions only; the length is linear
    equals_mean_for_one_task = True

    def weights(self, gramian: Tensor) -> Tensor:
        eps = float(torch.finfo(gramian.dtype).eps)
        w = config_weights(to_numpy(gramian), rcond=_RCOND_EPS * gramian.shape[0] * eps)
        return torch.as_tensor(w, dtype=gramian.dtype, device=gramian.device)


def config_weights(g: np.ndarray, *, rcond: float) -> np.ndarray:
    """Weights ``w`` of the ConFIG direction ``d = Jᵀw`` for the Gramian ``g``."""
    k = g.shape[0]
    out = np.zeros(k)
    cos, n = row_normalized(g)  # ÛÛᵀ, and the row norms (zero rows: zero rows of ÛÛᵀ)
    lam, vec = np.linalg.eigh(cos)
    top = float(lam[-1])
    if not top > 0.0:
        return out
    keep = lam > min(rcond, 0.5) * top
    c = vec[:, keep] @ ((vec[:, keep].T @ np.ones(k)) / lam[keep])  # (ÛÛᵀ)⁺ 1: g_u = Ûᵀc
    gc = cos @ c  # ⟨ĝ_i, g_u⟩
    norm2 = float(c @ gc)  # ‖g_u‖²
    if not norm2 > 0.0:
        return out
    # d = (Σ_i ⟨g_i, g_u⟩ / ‖g_u‖²) g_u, with ⟨g_i, g_u⟩ = n_i ⟨ĝ_i, g_u⟩ and g_u = Σ_i (c_i/n_i) g_i
    live = n > 0.0
    out[live] = (float(n @ gc) / norm2) * c[live] / n[live]
    return out
