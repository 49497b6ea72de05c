"""MOML: multi-objective meta learning of the task weights (Ye et al. 2021), as LibMTL runs it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from mtlkit._checks import check_float
from mtlkit._registry import WEIGHTINGS
from mtlkit.aggregation._solvers import min_norm_weights, to_numpy
from mtlkit.weighting._base import StepContext, Weighting, WeightingResult, present_of
from mtlkit.weighting._bilevel import (
    bilevel_context,
    masked_softmax,
    softmax_jacobian,
    task_jacobian,
    validation_present,
)
from mtlkit.weighting._optim import AdamState


def moml_hypergradients(train_jacobian: Tensor, validation_jacobian: Tensor, weights: Tensor,
                        inner_lr: float) -> Tensor:
    """(K, K): row t is ∂L_t^val(θ')/∂α for θ' = θ − η Σ_k softmax(α)_k ∇ℓ_k(θ):

        −η · ∇L_t^val(θ')ᵀ · Jᵀ · ∂softmax/∂α

    with J (K, P) the training Jacobian at θ, ``validation_jacobian`` (K, P) the per-task
    validation gradients at θ' and ``weights`` = softmax(α). Exact: θ' is affine in softmax(α).

    >>> import torch
    >>> moml_hypergradients(torch.eye(2), torch.eye(2), torch.tensor([0.5, 0.5]), 1.0)
    tensor([[-0.2500,  0.2500],
            [ 0.2500, -0.2500]])
    """
    return -inner_lr * validation_jacobian @ train_jacobian.T @ softmax_jacobian(weights)


def moml_direction(hypergradients: Tensor) -> Tensor:
    """The common descent direction of the upper-level objectives: their hypergradients
    normalised to unit length (LibMTL's ``l2`` normalisation; a zero row stays zero), then the
    minimum-norm point of their convex hull (MGDA), solved exactly.

    >>> import torch
    >>> moml_direction(torch.tensor([[2.0, 0.0], [0.0, 3.0]]))
    tensor([0.5000, 0.5000])
    """
    if hypergradients.shape[0] == 0:
        return torch.zeros(hypergradients.shape[1], dtype=hypergradients.dtype, device=hypergradients.device)
    norms = hypergradients.norm(dim=1, keepdim=True)
    unit = torch.where(norms > 0, hypergradients / norms.clamp_min(torch.finfo(norms.dtype).tiny),
                       torch.zeros_like(hypergradients))
    sol = torch.as_tensor(min_norm_weights(to_numpy(unit @ unit.T)), dtype=unit.dtype, device=unit.device)
    return sol @ unit


@WEIGHTINGS.register()
class MOML(Weighting):
    """Task weights softmax(α), α learned so that a virtual step improves every task's
    validation loss (a multi-objective upper level, combined by MGDA).

    Ye, Lin, Zhang & Kwok, "Multi-Objective Meta Learning", NeurIPS 2021
    (https://proceedings.neurips.cc/paper/2021/hash/b23975176653284f1f7356ba5539cfcb-Abstract.html),
    in the one-inner-step form LibMTL implements (``Trainer.bacth_forward_MOML``, by the
    paper's authors). Each step, with w = softmax(α) over the tasks present in the batch, ℓ_k
    the training losses as the trainer passes them and θ all the model's trainable parameters:

    1. virtual step θ' = θ − η Σ_k w_k ∇_θ ℓ_k(θ) (η = ``inner_lr``);
    2. for every task t with labels in the validation batch, the exact hypergradient
       ∂L_t^val(θ')/∂α (:func:`moml_hypergradients`);
    3. these K upper-level gradients are normalised to unit length and combined into their
       minimum-norm convex combination (:func:`moml_direction`), along which α takes one
       Adam step (learning rate ``outer_lr``; moments in ``state_dict()``);
    4. the model descends Σ_k softmax(α)_k ℓ_k with the new α (the reported weights, which
       sum to 1 as in LibMTL).

    LibMTL draws two half-size training batches for the lower and upper level and a third
    batch for the model's update; here the lower level is the step's training batch and the
    upper level the validation batch the trainer draws (``ctx.validation_losses``). Its MGDA
    solver is Frank-Wolfe (and clamps the two-task solution to [0.001, 0.999]); here the
    min-norm problem is solved exactly. A task absent from the training batch leaves the
    softmax (weight 0) and keeps its α and moments; a task without labels in the validation
    batch is left out of the upper level.

    Args:
        inner_lr: η > 0, the learning rate of the virtual step (LibMTL: 0.1).
        outer_lr: learning rate of α's Adam (LibMTL: 1e-3).

    >>> import torch
    >>> from torch import nn
    >>> lin = nn.Linear(1, 1, bias=False); _ = nn.init.zeros_(lin.weight)
    >>> t = lin.weight[0, 0]
    >>> losses = torch.stack([(t - 1) ** 2, (t - 2) ** 2])
    >>> val = lambda params: torch.stack([(params["weight"][0, 0] - 1) ** 2, (params["weight"][0, 0] - 2) ** 2])
    >>> w = MOML(inner_lr=0.1, outer_lr=0.01); w.setup(["a", "b"])
    >>> w(losses, StepContext(model=lin, validation_losses=val)).weights  # both want θ up: b more
    tensor([0.4950, 0.5050])
    """

    paper = "Ye, Lin, Zhang & Kwok 2021, Multi-Objective Meta Learning (NeurIPS)"
    stateful = True
    needs_validation_batch = True

    def __init__(self, *, inner_lr: float = 0.1, outer_lr: float = 1e-3) -> None:
        super().__init__()
        self.inner_lr = check_float("MOML", "inner_lr", inner_lr, low=0.0, low_open=True)
        self.outer_lr = check_float("MOML", "outer_lr", outer_lr, low=0.0, low_open=True)
        self.optim = AdamState(lr=self.outer_lr)
        self.register_buffer("logits", torch.zeros(0))
        self.direction_: Tensor | None = None

    def setup(self, task_names: Sequence[str], task_sizes: Mapping[str, int] | None = None) -> None:
        super().setup(task_names, task_sizes)
        self._reset(len(self.task_names), self.logits)

    def _reset(self, k: int, like: Tensor) -> None:
        # LibMTL initialises α to 1/K (any constant gives the same softmax)
        self.logits = torch.full((k,), 1.0 / max(k, 1), dtype=like.dtype, device=like.device)
        self.optim.reset(k, self.logits)

    def forward(self, losses: Tensor, ctx: StepContext) -> WeightingResult:
        bl = bilevel_context("MOML", ctx)
        k = losses.shape[0]
        if self.logits.numel() != k:
            self._reset(k, losses.detach())
        p = present_of(losses, ctx)
        zero = torch.zeros_like(losses)
        if not bool(p.any()):
            return WeightingResult((losses * 0.0).sum(), zero)
        jac = task_jacobian(losses, p, bl.params)
        w = masked_softmax(self.logits.to(jac), p.to(jac.device))
        theta_v = bl.flat() - self.inner_lr * (w @ jac)
        _, val_jac = bl.validation_gradients(theta_v)
        hyper = moml_hypergradients(jac, val_jac, w, self.inner_lr)
        upper = validation_present(ctx, getattr(self, "task_names", None), k).to(hyper.device)
        direction = moml_direction(hyper[upper])
        self.direction_ = direction
        self.logits = self.optim.step(self.logits.clone(), direction.to(self.logits), p.to(self.logits.device))
        new = masked_softmax(self.logits.to(losses), p.to(losses.device))
        return WeightingResult((new * losses).sum(), new.detach())
