"""Plumbing shared by the bilevel weightings (Auto-λ, MOML, FORUM): the model's trainable
parameters as one flat vector, per-task gradients, a virtual step, and the validation (and
training) losses at other parameter values, all through the ``StepContext`` the trainer fills
for a weighting that declares ``needs_validation_batch``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from mtlkit.jacobian import jacobian
from mtlkit.weighting._base import StepContext


@dataclass
class Bilevel:
    """What a bilevel method reads from the step context: the model's trainable parameters
    (names and tensors, in ``named_parameters`` order), the validation-loss function and, when
    the trainer gives it, the training-loss function at other parameter values."""

    model: nn.Module
    names: list[str]
    params: list[Tensor]
    validation_losses: Callable[..., Tensor]
    training_losses: Callable[..., Tensor] | None

    @property
    def size(self) -> int:
        return sum(p.numel() for p in self.params)

    def flat(self) -> Tensor:
        """θ: the trainable parameters, detached and concatenated."""
        return torch.cat([p.detach().reshape(-1) for p in self.params])

    def as_params(self, vector: Tensor, *, requires_grad: bool = False) -> dict[str, Tensor]:
        """``{name: tensor}`` from a flat vector (fresh leaves, for ``functional_call``)."""
        out: dict[str, Tensor] = {}
        offset = 0
        for name, p in zip(self.names, self.params):
            n = p.numel()
            t = vector[offset:offset + n].detach().view_as(p).to(p.dtype).clone()
            out[name] = t.requires_grad_(requires_grad)
            offset += n
        return out

    def validation_gradients(self, vector: Tensor, coefficients: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(losses, grads)`` of the validation losses at the parameters ``vector``: the (K,)
        losses (detached) and either the (K, P) per-task gradients (``coefficients`` None) or
        the (P,) gradient of ``Σ_k coefficients_k · L_k``."""
        leaves = self.as_params(vector, requires_grad=True)
        values = self.validation_losses(leaves)
        wrt = list(leaves.values())
        if coefficients is not None:
            total = (coefficients.to(values) * values).sum()
            return values.detach(), flat_gradient(total, wrt)
        return values.detach(), jacobian(list(values.unbind(0)), wrt, retain_graph=False)


def bilevel_context(owner: str, ctx: StepContext) -> Bilevel:
    """The :class:`Bilevel` view of ``ctx``, or a clear error when the trainer did not give
    what a bilevel method needs."""
    if ctx.model is None or ctx.validation_losses is None:
        raise ValueError(f"{owner} learns its task weights from a validation batch at every step: it "
                         f"needs ctx.model and ctx.validation_losses, which the Trainer gives a weighting "
                         f"that declares needs_validation_batch when it is fitted with validation data, "
                         f"fit(train, val).")
    named = [(n, p) for n, p in ctx.model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError(f"{owner} needs a model with trainable parameters.")
    training = getattr(ctx, "training_losses", None)
    if training is None:
        training = ctx.extra.get("training_losses")
    return Bilevel(ctx.model, [n for n, _ in named], [p for _, p in named], ctx.validation_losses, training)


def flat_gradient(output: Tensor, wrt: Sequence[Tensor], *, retain_graph: bool = False) -> Tensor:
    """∂output/∂wrt, flattened and concatenated (zeros where ``wrt`` is unused)."""
    if not output.requires_grad:
        return torch.cat([w.detach().reshape(-1) * 0 for w in wrt])
    grads = torch.autograd.grad(output, list(wrt), retain_graph=retain_graph, allow_unused=True)
    return torch.cat([(g if g is not None else torch.zeros_like(w)).reshape(-1) for g, w in zip(grads, wrt)])


def task_jacobian(losses: Tensor, present: Tensor, params: Sequence[Tensor]) -> Tensor:
    """(K, P) gradients of the K (training) losses w.r.t. ``params``; rows of absent tasks are
    0. The graph is retained (the trainer back-propagates the objective afterwards)."""
    k = losses.shape[0]
    size = sum(p.numel() for p in params)
    out = torch.zeros(k, size, dtype=params[0].dtype, device=params[0].device)
    idx = present.nonzero()[:, 0].tolist()
    if idx:
        out[idx] = jacobian([losses[i] for i in idx], params, retain_graph=True).detach().to(out)
    return out


def primary_mask(specs: Sequence[Any] | None, task_names: Sequence[str] | None, k: int,
                 primary: Sequence[str] | None, owner: str) -> Tensor:
    """(K,) bool: the tasks of the meta-objective. ``primary`` when given, else the tasks whose
    ``role`` is ``primary`` in the Task specs (when the trainer passed them), else every task."""
    names = list(task_names) if task_names is not None and len(task_names) == k else None
    if primary is not None:
        if names is None:
            raise ValueError(f"{owner} was given primary={list(primary)} but does not know the task "
                             f"names: call setup(task_names) first.")
        unknown = set(primary) - set(names)
        if unknown:
            raise ValueError(f"{owner} primary names unknown task(s) {sorted(unknown)}; tasks are {names}.")
        return torch.tensor([n in set(primary) for n in names])
    if specs and len(specs) == k:
        mask = torch.tensor([getattr(t, "role", "primary") == "primary" for t in specs])
        if bool(mask.any()):
            return mask
    return torch.ones(k, dtype=torch.bool)


def validation_present(ctx: StepContext, task_names: Sequence[str] | None, k: int) -> Tensor:
    """(K,) bool: which tasks have at least one label in the validation batch (all True when
    the batch or the names are not known)."""
    batch = ctx.validation_batch
    if batch is None or task_names is None or len(task_names) != k:
        return torch.ones(k, dtype=torch.bool)
    try:
        _, _, ms = batch
        return torch.tensor([bool(torch.as_tensor(ms[t]).bool().any()) for t in task_names])
    except (TypeError, ValueError, KeyError):
        return torch.ones(k, dtype=torch.bool)


def masked_softmax(logits: Tensor, present: Tensor) -> Tensor:
    """softmax over the present entries, 0 elsewhere."""
    on = present.to(logits.device)
    s = torch.softmax(torch.where(on, logits, torch.full_like(logits, -torch.inf)), dim=0)
    return torch.where(on, s, torch.zeros_like(s))


def softmax_jacobian(weights: Tensor) -> Tensor:
    """∂softmax/∂logits at the softmax value ``weights``: diag(w) − w wᵀ (symmetric)."""
    return torch.diag(weights) - torch.outer(weights, weights)
