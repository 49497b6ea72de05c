"""Auto-λ: task weights meta-learned on the primary tasks' validation loss (Liu et al. 2022)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from mtlkit._checks import check_float
from mtlkit._registry import WEIGHTINGS
from mtlkit.weighting._base import StepContext, Weighting, WeightingResult, present_of
from mtlkit.weighting._bilevel import (
    bilevel_context,
    primary_mask,
    task_jacobian,
)
from mtlkit.weighting._optim import AdamState


def check_task_names(owner: str, name: str, value: Sequence[str] | None) -> tuple[str, ...] | None:
    """A non-empty sequence of task names (not a string), or None."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value \
            or not all(isinstance(v, str) for v in value):
        raise ValueError(f"The '{name}' parameter of {owner} must be a non-empty sequence of task names "
                         f"or None. Got {value!r}.")
    return tuple(value)


def auto_lambda_hypergradient(train_jacobian: Tensor, validation_gradient: Tensor, alpha: float) -> Tensor:
    """∂/∂λ of the validation loss after the virtual step θ' = θ − α Σ_k λ_k ∇ℓ_k(θ):

        ∂L_val(θ')/∂λ_k = −α · ⟨∇ℓ_k(θ), ∇L_val(θ')⟩,

    exact because θ' is affine in λ. ``train_jacobian`` (K, P) holds the ∇ℓ_k(θ),
    ``validation_gradient`` (P,) is ∇L_val at θ'. The paper's finite difference
    (∇_λ L_train(θ + εd) − ∇_λ L_train(θ − εd))/2ε with d = ∇L_val(θ') approximates the same
    ⟨∇ℓ_k(θ), d⟩ (∇_λ L_train = ℓ, the vector of task losses).

    >>> import torch
    >>> auto_lambda_hypergradient(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([2.0, -1.0]), 0.1)
    tensor([-0.2000,  0.1000])
    """
    return -alpha * (train_jacobian @ validation_gradient)


@WEIGHTINGS.register()
class AutoLambda(Weighting):
    """Task weights λ learned by a one-step look-ahead on the primary tasks' validation loss.

    Liu, Davison & Johns, "Auto-Lambda: Disentangling Dynamic Task Relationships", TMLR 2022
    (https://arxiv.org/abs/2202.03091), as in the official code (github.com/lorenmt/auto-lambda).
    Each step, with ℓ_k the training losses of the batch (as the trainer passes them, i.e.
    with the task priors) and θ all the model's trainable parameters:

    1. virtual step θ' = θ − α Σ_k λ_k ∇_θ ℓ_k(θ) (``alpha`` = α);
    2. meta-objective L_val(θ') = Σ_{k primary} L_k^val(θ') on the validation batch the trainer
       draws for this step (``ctx.validation_losses``): auxiliary tasks have weights but are
       not in it;
    3. hypergradient ∂L_val(θ')/∂λ_k = −α ⟨∇ℓ_k(θ), ∇L_val(θ')⟩ (:func:`auto_lambda_hypergradient`),
       computed **exactly** (autograd gives the K per-task gradients and ∇L_val at θ'; the
       paper's finite-difference approximation of the same second-order term is not needed at
       the model sizes of this library; the tests check the value against a central difference
       and against autograd through the virtual step);
    4. λ takes one Adam step along it (learning rate ``meta_lr``; its own Adam, whose moments
       are in ``state_dict()``), and is then clipped at 0;
    5. the model descends Σ_k λ_k ℓ_k with the new λ (the reported weights).

    So an auxiliary task whose training gradient points the way the primary tasks' validation
    gradient does gains weight, and one that points against it loses weight.

    Which tasks are primary: ``primary`` when given, else the tasks whose ``Task.role`` is
    ``"primary"`` (when every task is auxiliary, or the specs are not known, every task). λ
    starts at ``weight_init`` for every task (official code: 0.1); it is state
    (``task_weights``), like the meta-optimiser's moments, so a resumed run continues exactly.
    Tasks absent from the training batch get weight 0 and keep their λ and Adam moments.

    Choices where the official code differs: the hypergradient is exact instead of a central
    difference with ε = 0.01/‖∇L_val(θ')‖; the virtual step is plain SGD with the given α —
    the official code takes α from the scheduler of its SGD optimiser and adds that optimiser's
    momentum and weight decay to the virtual step (terms that do not depend on λ; the trainer
    does not expose its optimiser to a weighting, so set ``alpha`` to the model's learning
    rate); λ is clipped at 0 (the official code leaves it unconstrained; a negative weight would
    make the model ascend a task's loss).

    The virtual step models a plain weighted-sum update; with a gradient-space aggregator the
    λ still scale the task gradients before aggregation (``aggregator_compatible``, as the
    authors combine Auto-λ with PCGrad/CAGrad), but the look-ahead does not model the
    aggregator's step.

    Args:
        alpha: α > 0, the learning rate of the virtual step (the model's learning rate).
        meta_lr: learning rate of λ's Adam (official code: 1e-4 on NYUv2, 3e-5 on CityScapes).
        weight_init: λ of every task at the start (official code: 0.1).
        primary: names of the tasks of the meta-objective (default: from ``Task.role``).

    >>> import torch
    >>> from torch import nn
    >>> theta = nn.Linear(1, 1, bias=False); _ = nn.init.zeros_(theta.weight)
    >>> losses = torch.stack([(theta.weight[0, 0] - 1) ** 2, (theta.weight[0, 0] + 1) ** 2])
    >>> val = lambda params=None: torch.stack([(params["weight"][0, 0] - 1) ** 2, torch.tensor(0.0)])
    >>> w = AutoLambda(alpha=0.1, meta_lr=0.01, primary=["main"]); w.setup(["main", "aux"])
    >>> w(losses, StepContext(model=theta, validation_losses=val)).weights  # aux pulls away: down
    tensor([0.1100, 0.0900])
    """

    paper = ("Liu, Davison & Johns 2022, Auto-Lambda: Disentangling Dynamic Task Relationships "
             "(TMLR)")
    stateful = True
    needs_validation_batch = True

    def __init__(self, *, alpha: float = 1e-3, meta_lr: float = 1e-4, weight_init: float = 0.1,
                 primary: Sequence[str] | None = None) -> None:
        super().__init__()
        self.alpha = check_float("AutoLambda", "alpha", alpha, low=0.0, low_open=True)
        self.meta_lr = check_float("AutoLambda", "meta_lr", meta_lr, low=0.0, low_open=True)
        self.weight_init = check_float("AutoLambda", "weight_init", weight_init, low=0.0)
        self.primary = check_task_names("AutoLambda", "primary", primary)
        self.optim = AdamState(lr=self.meta_lr)
        self.register_buffer("task_weights", torch.zeros(0))
        self.hypergradient_: Tensor | None = None

    def setup(self, task_names: Sequence[str], task_sizes: Mapping[str, int] | None = None) -> None:
        super().setup(task_names, task_sizes)
        if self.primary is not None:
            primary_mask(None, self.task_names, len(self.task_names), self.primary, "AutoLambda")
        self._reset(len(self.task_names), self.task_weights)

    def _reset(self, k: int, like: Tensor) -> None:
        self.task_weights = torch.full((k,), self.weight_init, dtype=like.dtype, device=like.device)
        self.optim.reset(k, self.task_weights)

    def primary_tasks(self, k: int) -> Tensor:
        """(K,) bool: the tasks of the meta-objective."""
        return primary_mask(getattr(self, "task_specs", None), getattr(self, "task_names", None), k,
                            self.primary, "AutoLambda")

    def forward(self, losses: Tensor, ctx: StepContext) -> WeightingResult:
        bl = bilevel_context("AutoLambda", ctx)
        k = losses.shape[0]
        if self.task_weights.numel() != k:
            self._reset(k, losses.detach())
        p = present_of(losses, ctx)
        zero = torch.zeros_like(losses)
        if not bool(p.any()):
            return WeightingResult((losses * 0.0).sum(), zero)
        jac = task_jacobian(losses, p, bl.params)
        lam = self.task_weights.to(jac)
        theta_v = bl.flat() - self.alpha * (lam @ jac)
        _, d = bl.validation_gradients(theta_v, self.primary_tasks(k).to(jac))
        h = auto_lambda_hypergradient(jac, d, self.alpha)
        self.hypergradient_ = h
        new = self.optim.step(self.task_weights.clone(), h.to(self.task_weights),
                              p.to(self.task_weights.device)).clamp_min(0.0)
        self.task_weights = new
        w = torch.where(p, new.to(losses), zero)
        return WeightingResult((w * losses).sum(), w.detach())
