"""The loss-space contract: K task losses -> the scalar to minimise, and the weights used."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from mtlkit._params import HasParams


@dataclass
class StepContext:
    """What the trainer tells loss weightings (and schedules) about the current step.

    Attributes:
        step: global optimisation step (0-based).
        epoch: current epoch (0-based).
        task_names: names of the K tasks, in the order of the loss vector.
        present: bool tensor (K,): which tasks have at least one label in this batch. Absent
            tasks have loss 0 and must get weight 0.
        task_sizes: labelled training samples per task (for size-based weightings).
        shared_parameters: the model's shared parameters (possibly empty).
        last_shared_parameters: the parameters of the last shared layer (GradNorm).
        representation: the shared representation of this batch (with graph) or None.
        grad_fn: ``grad_fn(losses, wrt)`` -> Jacobian (K, P) of the K losses w.r.t. the list
            of tensors ``wrt`` (flattened and concatenated). It goes through
            :mod:`mtlkit.jacobian`, the only autograd plumbing; the graph is retained.
        generator: a seeded ``torch.Generator`` for methods that draw random numbers.
        model: the model being trained (for bilevel methods that take a virtual step).
        validation_batch: a batch ``(x, ys, ms)`` of the validation data, drawn for this step
            when the weighting declares ``needs_validation_batch`` (else None).
        validation_losses: ``validation_losses(params=None)`` -> (K,) per-task losses of the
            model on ``validation_batch``; ``params`` (``{name: tensor}``, e.g. parameters after
            a virtual step, with graph) replace the model's own via
            :func:`torch.func.functional_call`, so the result can be differentiated through them.
        training_losses: the same on this step's training batch (raw losses, no task prior).
    """

    step: int = 0
    epoch: int = 0
    task_names: Sequence[str] = ()
    present: Tensor | None = None
    task_sizes: Mapping[str, int] | None = None
    shared_parameters: Sequence[Tensor] = ()
    last_shared_parameters: Sequence[Tensor] = ()
    representation: Tensor | None = None
    grad_fn: Callable[[Tensor | Sequence[Tensor], Sequence[Tensor]], Tensor] | None = None
    generator: torch.Generator | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    model: nn.Module | None = None
    validation_batch: Any = None
    validation_losses: Callable[..., Tensor] | None = None
    training_losses: Callable[..., Tensor] | None = None


@dataclass
class WeightingResult:
    """``objective``: the scalar to minimise. ``weights``: the (K,) effective weight of each
    task loss, i.e. ∂objective/∂L_k, detached; used for logging and, when a gradient-space
    aggregator is also configured, to scale the Jacobian rows before aggregation."""

    objective: Tensor
    weights: Tensor


class Weighting(HasParams, nn.Module):
    """Base class of loss-space weightings.

    Subclasses implement :meth:`forward`. Capability flags are class attributes the trainer
    reads; it never checks a method's name.
    """

    #: citation shown by ``mtlkit list``
    paper: ClassVar[str] = ""
    #: holds state beyond nn.Parameters that must survive resume (history, logits ...)
    stateful: ClassVar[bool] = False
    #: reads ``ctx.grad_fn`` / gradients each step (GradNorm, DB-MTL)
    needs_gradients: ClassVar[bool] = False
    #: the part of the model the gradients are taken at: "shared_parameters" (DB-MTL),
    #: "last_shared_parameters" (GradNorm) or "representation" (GREAT); the trainer refuses a
    #: model without it when it is built, not at the first step
    gradients_at: ClassVar[str | None] = None
    #: wants :meth:`after_step` with the losses re-evaluated after the update (FAMO)
    needs_post_step_losses: ClassVar[bool] = False
    #: can be combined with a gradient-space aggregator
    aggregator_compatible: ClassVar[bool] = True
    #: wants a validation batch at every step (bilevel methods: Auto-λ, MOML, FORUM): the
    #: trainer draws one (seeded, resumable) into ``ctx.validation_batch`` and gives
    #: ``ctx.validation_losses``; fitting without validation data is then an error
    needs_validation_batch: ClassVar[bool] = False

    def setup(self, task_names: Sequence[str], task_sizes: Mapping[str, int] | None = None) -> None:
        """Called once by the trainer before training, with the task order of the loss vector."""
        self.task_names = list(task_names)

    def setup_from_tasks(self, tasks: Sequence[Any], task_sizes: Mapping[str, int] | None = None) -> None:
        """Like :meth:`setup`, given the :class:`~mtlkit.tasks.Task` specs themselves.

        Records them in ``self.task_specs`` (so a weighting can read each task's ``kind``,
        e.g. :class:`~mtlkit.weighting.Uncertainty`) and then calls
        ``setup(names, task_sizes)``; subclasses override :meth:`setup` only.
        """
        self.task_specs = list(tasks)
        self.setup([t.name for t in self.task_specs], task_sizes)

    def forward(self, losses: Tensor, ctx: StepContext) -> WeightingResult:  # pragma: no cover
        raise NotImplementedError

    def on_epoch_end(self, epoch: int, mean_losses: Tensor) -> None:
        """Called with the mean training loss of every task at the end of each epoch."""

    def after_step(self, losses: Tensor, ctx: StepContext) -> None:
        """Called after the optimiser step with the same batch's losses re-evaluated
        (only when ``needs_post_step_losses``)."""

    def extra_state(self) -> dict[str, Any]:
        """Non-parameter state (tensors or JSON-able values) for checkpoints."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`extra_state`."""

    def get_extra_state(self) -> Any:  # nn.Module hook: goes into state_dict()
        return self.extra_state()

    def set_extra_state(self, state: Any) -> None:
        self.load_extra_state(state or {})

    def _load_from_state_dict(self, state_dict: Mapping[str, Any], prefix: str, *args: Any) -> None:
        resize_empty(self, state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args)


def masked(weights: Tensor, present: Tensor | None) -> Tensor:
    """Zero the weights of tasks absent from the batch."""
    if present is None:
        return weights
    return torch.where(present.to(weights.device), weights, torch.zeros_like(weights))


def present_of(losses: Tensor, ctx: StepContext) -> Tensor:
    """The bool (K,) mask of tasks present in the batch, on the losses' device (all True
    when the context does not say)."""
    if ctx.present is None:
        return torch.ones(losses.shape[0], dtype=torch.bool, device=losses.device)
    return ctx.present.to(device=losses.device, dtype=torch.bool)


def resize_empty(module: nn.Module, state_dict: Mapping[str, Any], prefix: str) -> None:
    """Give ``module``'s empty parameters/buffers the shape saved in ``state_dict``.

    Per-task tensors are created in ``setup()`` with K entries; a weighting loaded before
    ``setup()`` holds empty placeholders, which take the saved shape here (call it from
    ``_load_from_state_dict``).
    """
    for name, t in list(module._parameters.items()) + list(module._buffers.items()):
        saved = state_dict.get(prefix + name)
        if t is not None and t.numel() == 0 and isinstance(saved, Tensor) and saved.numel() > 0:
            fresh = torch.zeros(saved.shape, dtype=t.dtype, device=t.device)
            if name in module._parameters:
                t.data = fresh
            else:
                module._buffers[name] = fresh
