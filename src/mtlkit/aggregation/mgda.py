"""MGDA: the minimum-norm point of the convex hull of the task gradients."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from mtlkit._checks import check_choice
from mtlkit._registry import AGGREGATORS
from mtlkit.aggregation._base import GramianWeightedAggregator
from mtlkit.aggregation._solvers import min_norm_weights, to_numpy

NORMALIZATIONS = ("none", "l2", "loss", "loss+")


@AGGREGATORS.register()
class MGDA(GramianWeightedAggregator):
    """Multiple-gradient descent: ``d = Σ w_i ĝ_i`` with ``w`` minimising ‖Σ w_i ĝ_i‖ over
    the simplex, i.e. the minimum-norm point of the convex hull of the (normalised) task
    gradients ĝ_i = g_i / n_i.

    Désidéri, "Multiple-gradient descent algorithm (MGDA) for multiobjective optimization",
    Comptes Rendus Mathématique 350, 2012; Sener & Koltun, "Multi-Task Learning as
    Multi-Objective Optimization", NeurIPS 2018 (Frank-Wolfe solver, gradient normalisation,
    MGDA-UB = this method at ``level="representation"``).

    The min-norm problem on the K×K Gramian is solved *exactly* for any K (Lawson–Hanson
    least-distance programming through non-negative least squares), not by Frank-Wolfe.
    By the optimality of the min-norm point, ⟨ĝ_i, d⟩ ≥ ‖d‖² for every i, so
    ⟨g_i, d⟩ ≥ n_i ‖d‖² ≥ 0: the direction never conflicts with a task. If 0 lies in the hull
    (the tasks are Pareto-stationary, e.g. one task has a zero gradient) the result is 0.

    Args:
        normalization: the normaliser n_i of task i's gradient, as in Sener & Koltun's
            code: ``"none"`` (n_i = 1, default), ``"l2"`` (‖g_i‖), ``"loss"`` (L_i) or
            ``"loss+"`` (L_i·‖g_i‖). Only ``none`` and ``l2`` are functions of the Jacobian
            alone; ``loss`` and ``loss+`` need the losses: call ``mgda(J, losses=L)`` (the
            trainer does so when ``needs_losses`` is true). A task with n_i = 0 (zero loss or
            zero gradient) counts as a zero normalised gradient.

    Choice where the paper's code is ambiguous: the min-norm weights are applied to the
    *normalised* gradients (d = Σ w_i g_i / n_i), so the guarantee above holds for every
    normalisation; the original code re-applies them to the raw losses, which loses it. The
    weights reported by :meth:`weights_of` are the effective ones on the raw rows, w_i / n_i.

    >>> import torch
    >>> MGDA()(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    tensor([0.5000, 0.5000])
    >>> MGDA(normalization="loss")(torch.tensor([[2.0, 0.0], [0.0, 2.0]]), losses=torch.tensor([1.0, 2.0]))
    tensor([0.4000, 0.8000])
    """

    paper = ("Désidéri 2012, Multiple-gradient descent algorithm (MGDA) for multiobjective optimization "
             "(C. R. Math.); Sener & Koltun 2018, Multi-Task Learning as Multi-Objective Optimization (NeurIPS)")
    non_conflicting = True
    permutation_invariant = True

    def __init__(self, *, normalization: str = "none") -> None:
        check_choice("MGDA", "normalization", normalization, options=NORMALIZATIONS)
        self.normalization = normalization

    @property
    def needs_losses(self) -> bool:  # type: ignore[override]
        return self.normalization in ("loss", "loss+")

    @property
    def equals_mean_for_one_task(self) -> bool:  # type: ignore[override]
        """One task: d = g / n₁ — the gradient itself only without normalisation."""
        return self.normalization == "none"

    def weights(self, gramian: Tensor, losses: Tensor | None = None) -> Tensor:
        g = to_numpy(gramian)
        k = g.shape[0]
        norms = np.sqrt(np.clip(np.diag(g), 0.0, None))
        if self.normalization == "none":
            n = np.ones(k)
        elif self.normalization == "l2":
            n = norms
        else:
            if losses is None:
                raise ValueError(f"MGDA(normalization={self.normalization!r}) needs the task losses: "
                                 f"call it with losses=<(K,) tensor>.")
            lv = torch.as_tensor(losses, dtype=torch.float64).reshape(-1).numpy()
            if not np.all(np.isfinite(lv)) or (lv < 0).any():
                raise ValueError(f"MGDA(normalization={self.normalization!r}) needs finite, non-negative "
                                 f"losses. Got {lv.tolist()}.")
            n = lv if self.normalization == "loss" else lv * norms
        inv = np.where(n > 0, 1.0 / np.where(n > 0, n, 1.0), 0.0)
        w = min_norm_weights(g * inv[:, None] * inv[None, :])
        return torch.as_tensor(w * inv, dtype=gramian.dtype, device=gramian.device)
