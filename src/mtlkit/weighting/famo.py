"""FAMO: Fast Adaptive Multitask Optimization (Liu et al. 2023)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from mtlkit._checks import check_float
from mtlkit._registry import WEIGHTINGS
from mtlkit.weighting._base import (
    StepContext,
    Weighting,
    WeightingResult,
)


def famo_logits_gradient(logits: Tensor, losses_before: Tensor, losses_after: Tensor, eps: float,
                         present: Tensor | None = None) -> Tensor:
    """The gradient FAMO's logits ξ descend: J_softmax(ξ)ᵀ·δ with
    δ_k = log(L_k^before + ε) − log(L_k^after + ε), the observed decrease of each log-loss
    over one step (0 for tasks not in ``present``). With z = softmax(ξ):
    (Jᵀδ)_k = z_k·(δ_k − Σ_i z_i δ_i)."""
    delta = torch.log((losses_before + eps) / (losses_after + eps))
    if present is not None:
        delta = torch.where(present, delta, torch.zeros_like(delta))
    z = torch.softmax(logits, dim=0)
    return z * (delta - (z * delta).sum())


@WEIGHTINGS.register()
class FAMO(Weighting):
    """O(1) balancing: task logits learned from the observed per-task loss decrease.

    Liu, Feng, Stone & Liu, "FAMO: Fast Adaptive Multitask Optimization", NeurIPS 2023
    (https://arxiv.org/abs/2306.03792), Algorithm 2 (its practical form, as in the official
    code). With z = softmax(ξ) and c = (Σ_k z_k / (L_k + ε))⁻¹ held constant, the model
    descends

        c·Σ_k z_k·log(L_k + ε),   i.e. weights ∂objective/∂L_k = c·z_k / (L_k + ε),

    and the weights sum to 1: the update is a convex combination of the task gradients
    ∇L_k in which a task's share is z_k over its loss. After the optimiser step the
    trainer re-evaluates the same batch (``needs_post_step_losses``) and :meth:`after_step`
    moves ξ one Adam step (learning rate ``lr``, L2 ``weight_decay`` = the paper's γ) along
    J_softmax(ξ)ᵀ·δ, δ_k = log(L_k^before + ε) − log(L_k^after + ε): a task whose loss fell
    more loses weight. The Adam of ξ is FAMO's own (ξ and its moments are in
    ``state_dict()``, through ``extra_state``).

    The paper's optional lower bounds L_k* are taken as 0. Tasks absent from the batch are
    left out of the objective and have δ_k = 0.

    Args:
        lr: learning rate of the logits' Adam (paper and official code: 0.025).
        weight_decay: γ, L2 regularisation of the logits (paper's Algorithm 2: 1e-3).
        eps: ε > 0 inside the logarithms.

    >>> import torch
    >>> w = FAMO(); w.setup(["a", "b"])
    >>> w(torch.tensor([1.0, 4.0]), StepContext()).weights  # c·z/L with z = (½, ½), c = 1.6
    tensor([0.8000, 0.2000])
    >>> w.after_step(torch.tensor([0.5, 3.0]), StepContext())  # a fell faster
    >>> w.logits
    tensor([-0.0250,  0.0250])
    """

    paper = "Liu, Feng, Stone & Liu 2023, FAMO: Fast Adaptive Multitask Optimization (NeurIPS)"
    stateful = True
    needs_post_step_losses = True

    def __init__(self, *, lr: float = 0.025, weight_decay: float = 1e-3, eps: float = 1e-8) -> None:
        super().__init__()
        self.lr = check_float("FAMO", "lr", lr, low=0.0, low_open=True)
        self.weight_decay = check_float("FAMO", "weight_decay", weight_decay, low=0.0)
        self.eps = check_float("FAMO", "eps", eps, low=0.0, low_open=True)
        # K numbers each: kept as Python floats (one small-tensor op costs more than the
        # whole K-vector arithmetic here); extra_state() turns them into float64 tensors.
        self._reset(0)

    def setup(self, task_names: Sequence[str], task_sizes: Mapping[str, int] | None = None) -> None:
        super().setup(task_names, task_sizes)
        self._reset(len(self.task_names))

    def _reset(self, k: int) -> None:
        self._logits = [0.0] * k
        self._exp_avg = [0.0] * k
        self._exp_avg_sq = [0.0] * k
        self._steps = 0
        self._before = [0.0] * k
        self._present = [False] * k

    @property
    def logits(self) -> Tensor:
        """The task logits ξ (z = softmax(ξ) are the task weights before normalisation by c)."""
        return torch.tensor(self._logits)

    def _softmax(self) -> list[float]:
        top = max(self._logits)
        e = [math.exp(x - top) for x in self._logits]
        total = sum(e)
        return [x / total for x in e]

    def forward(self, losses: Tensor, ctx: StepContext) -> WeightingResult:
        k = losses.shape[0]
        if len(self._logits) != k:
            self._reset(k)
        values = losses.detach().tolist()
        present = [True] * k if ctx.present is None else [bool(p) for p in ctx.present.tolist()]
        z = self._softmax()
        inv = [zi / (li + self.eps) if pi else 0.0 for zi, li, pi in zip(z, values, present)]
        self._before, self._present = values, present
        if not any(present):
            return WeightingResult((losses * 0.0).sum(), torch.zeros_like(losses))
        c = 1.0 / sum(inv)
        coef = torch.tensor([c * zi if pi else 0.0 for zi, pi in zip(z, present)],
                            dtype=losses.dtype, device=losses.device)
        objective = (coef * torch.log(losses + self.eps)).sum()
        weights = torch.tensor([c * x for x in inv], dtype=losses.dtype, device=losses.device)
        return WeightingResult(objective, weights)

    def after_step(self, losses: Tensor, ctx: StepContext) -> None:
        after = losses.detach().tolist()
        delta = [math.log((b + self.eps) / (a + self.eps)) if p else 0.0
                 for b, a, p in zip(self._before, after, self._present)]
        z = self._softmax()
        mean = sum(zi * di for zi, di in zip(z, delta))
        # one Adam step (torch.optim.Adam's arithmetic, L2 weight decay) along Jᵀδ
        b1, b2, t = 0.9, 0.999, self._steps + 1
        bc1, bc2_sqrt = 1 - b1**t, math.sqrt(1 - b2**t)
        for i, (zi, di) in enumerate(zip(z, delta)):
            g = zi * (di - mean) + self.weight_decay * self._logits[i]
            self._exp_avg[i] = b1 * self._exp_avg[i] + (1 - b1) * g
            self._exp_avg_sq[i] = b2 * self._exp_avg_sq[i] + (1 - b2) * g * g
            denom = math.sqrt(self._exp_avg_sq[i]) / bc2_sqrt + 1e-8
            self._logits[i] -= self.lr / bc1 * self._exp_avg[i] / denom
        self._steps = t

    def extra_state(self) -> dict[str, Any]:
        f64 = torch.float64
        return {"logits": torch.tensor(self._logits, dtype=f64),
                "exp_avg": torch.tensor(self._exp_avg, dtype=f64),
                "exp_avg_sq": torch.tensor(self._exp_avg_sq, dtype=f64),
                "steps": self._steps,
                "losses_before": torch.tensor(self._before, dtype=f64),
                "present_before": torch.tensor(self._present, dtype=torch.bool)}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if "logits" not in state:
            return
        self._logits = [float(x) for x in state["logits"].tolist()]
        self._exp_avg = [float(x) for x in state["exp_avg"].tolist()]
        self._exp_avg_sq = [float(x) for x in state["exp_avg_sq"].tolist()]
        self._steps = int(state["steps"])
        self._before = [float(x) for x in state["losses_before"].tolist()]
        self._present = [bool(x) for x in state["present_before"].tolist()]
