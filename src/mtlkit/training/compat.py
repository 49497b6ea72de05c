"""Checks of a model, its methods and the settings against each other, made when a Trainer is
built (before any data is seen), each error naming the parts that do not fit."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from torch import nn

from mtlkit.aggregation._base import Aggregator
from mtlkit.architectures._base import NO_REPRESENTATION
from mtlkit.tasks import Task
from mtlkit.training.schedules import check_compatible
from mtlkit.training.settings import TrainerSettings
from mtlkit.weighting._base import Weighting

__all__ = ["check_components", "check_monitor", "conflicts_site"]


def _shared(model: nn.Module) -> list[nn.Parameter]:
    fn = getattr(model, "shared_parameters", None)
    return [p for p in fn() if p.requires_grad] if callable(fn) else []


def conflicts_site(model: nn.Module) -> str | None:
    """Where the conflict monitor reads the task gradients: the shared representation (cheap:
    the heads only) or, for a model without one (MMoE, PLE, cross-stitch ...), the parameters
    of its last shared layer (as GradNorm does); None without shared parameters."""
    if getattr(model, "has_representation", False):
        return "representation"
    return "last_shared_parameters" if _shared(model) else None


def check_components(model: nn.Module, settings: TrainerSettings, *, weighting: Weighting,
                     aggregator: Aggregator | None, schedule: Any, sampler: Any,
                     tasks: Sequence[Task]) -> None:
    """Refuse a combination that cannot train, before any data is seen."""
    if not isinstance(weighting, Weighting):
        raise TypeError(f"weighting must be a mtlkit Weighting. Got {type(weighting).__name__}.")
    if aggregator is not None and not isinstance(aggregator, Aggregator):
        raise TypeError(f"aggregator must be a mtlkit Aggregator. Got {type(aggregator).__name__}.")
    has_rep = bool(getattr(model, "has_representation", False))
    if settings.jacobian_engine == "two-stage" and not has_rep:
        raise ValueError(f"jacobian_engine='two-stage' pulls the task gradients back through one shared "
                         f"representation; the model {type(model).__name__} has none. Use 'loop' or 'batched'.")
    if aggregator is not None and settings.level == "representation" and not has_rep:
        raise ValueError(f"level='representation' needs a model with a shared representation; "
                         f"{type(model).__name__} has none. Use level='parameters'.")
    check_gradients_at(model, weighting)
    if settings.jacobian_block_size is not None and aggregator is not None and settings.level == "parameters" \
            and not getattr(aggregator, "gramian_based", False) \
            and type(aggregator).row_stream is Aggregator.row_stream:
        raise ValueError(f"jacobian_block_size={settings.jacobian_block_size} computes the Gramian block by block, "
                         f"which serves an aggregator that weights the Gramian (gramian_based), or one that "
                         f"consumes the rows one at a time (GradDrop, MoCo); {aggregator} reads the whole Jacobian. "
                         f"Remove jacobian_block_size or choose such an aggregator.")
    if aggregator is not None and settings.level == "parameters" and callable(getattr(model, "shared_parameters", None)) \
            and not _shared(model):
        warnings.warn(f"The model {type(model).__name__} has no shared parameters, so the aggregator "
                      f"{aggregator} has no task gradients to combine: every parameter gets its own "
                      f"task's (weighted) gradient, which is plain loss-space training.",
                      UserWarning, stacklevel=4)
    if aggregator is not None and not weighting.aggregator_compatible:
        raise ValueError(f"The weighting {weighting} cannot be combined with a gradient-space "
                         f"aggregator ({aggregator}).")
    check_compatible(schedule, weighting, aggregator, sampler=sampler)
    if settings.monitor:
        check_monitor(settings.monitor, tasks)


def check_monitor(monitor: str, tasks: Sequence[Task]) -> None:
    """``monitor`` is ``"task"`` or ``"task:metric"`` naming a task and one of its metrics."""
    task, _, metric = monitor.partition(":")
    spec = next((t for t in tasks if t.name == task), None)
    if spec is None:
        raise ValueError(f"The 'monitor' {monitor!r} names unknown task {task!r}; tasks are "
                         f"{[t.name for t in tasks]}.")
    names = [m.name for m in spec.metrics]
    if metric and metric not in names:
        raise ValueError(f"The 'monitor' {monitor!r} names unknown metric {metric!r} of task {task!r}; "
                         f"its metrics are {names}.")


def check_gradients_at(model: nn.Module, weighting: Weighting) -> None:
    """Refuse a weighting whose gradients are taken at a part of the model that this model
    does not have (``Weighting.gradients_at``)."""
    where = getattr(weighting, "gradients_at", None)
    name, arch = type(weighting).__name__, type(model).__name__
    if where == "representation" and not getattr(model, "has_representation", False):
        raise ValueError(f"{name} needs one shared representation that every task head reads; the model "
                         f"{arch} has none (has_representation is False, as for {NO_REPRESENTATION}). "
                         f"Use hard_sharing, fusion or siamese.")
    if where in ("shared_parameters", "last_shared_parameters"):
        fn = getattr(model, where, None)
        if fn is None and where == "last_shared_parameters":
            fn = getattr(model, "shared_parameters", None)
        params = [p for p in fn() if p.requires_grad] if callable(fn) else []
        if not params:
            what = "shared parameters" if where == "shared_parameters" else "last shared layer"
            raise ValueError(f"{name} measures the task gradients on the model's {what} ({where}()); the "
                             f"model {arch} has no shared parameters (e.g. soft_sharing keeps one column per "
                             f"task). Use a loss weighting without gradients (uncertainty, dwa, famo ...) "
                             f"or an architecture with a shared trunk.")
