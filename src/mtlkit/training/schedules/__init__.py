"""Task schedules (which tasks are optimised at a step). One file per schedule.

``Trainer(schedule=...)`` asks ``schedule.select(step, present, ctx)`` at every step and
optimises the chosen tasks among those with labels in the batch. :func:`check_compatible`
rejects combinations of schedule, sampler, weighting and aggregator that cannot mean anything.
"""

from __future__ import annotations

from typing import Any

from mtlkit.training.schedules._base import Schedule
from mtlkit.training.schedules.active import Active
from mtlkit.training.schedules.alternate import Alternate
from mtlkit.training.schedules.joint import Joint
from mtlkit.training.schedules.random_subset import RandomSubset
from mtlkit.training.schedules.similarity import Similarity


class IncompatibleComponentsError(ValueError):
    """A schedule / sampler cannot be combined with the configured weighting or aggregator."""


def tasks_per_step(schedule: Any = None, sampler: Any = None) -> int | None:
    """The most task losses one step can optimise under this schedule and sampler (None: all)."""
    found = [getattr(obj, attr, None) for obj, attr in ((schedule, "max_tasks_per_step"),
                                                         (sampler, "max_tasks_per_batch"))]
    limits = [int(v) for v in found if v is not None]
    return min(limits) if limits else None


def check_compatible(schedule: Any = None, weighting: Any = None, aggregator: Any = None, *,
                     sampler: Any = None) -> None:
    """Reject meaningless combinations with an error that names the components.

    A gradient-space aggregator combines the gradients of several tasks at each step, and a
    weighting that ``needs_gradients`` (GradNorm-like) balances several tasks' gradient norms
    at each step; both are meaningless when every step optimises a single task (the
    ``alternate`` schedule, ``random_subset``/``active`` with ``num_tasks=1``, or a sampler
    drawing one task per batch with ``exclusive=True``). Likewise a schedule that compares tasks
    within a batch (``similarity``: ``min_tasks_per_step = 2``) cannot follow a sampler that puts
    one task per batch. An aggregator or weighting may declare
    the smallest number of tasks per step it needs with a ``min_tasks_per_step`` attribute
    (defaults: 2 for aggregators and for weightings with ``needs_gradients``, else 1).

    >>> check_compatible(Joint(), None, None)
    >>> from mtlkit.aggregation.mean import Mean
    >>> check_compatible(Alternate(), None, Mean())
    Traceback (most recent call last):
    ...
    mtlkit.training.schedules.IncompatibleComponentsError: The schedule Alternate optimises at most 1 task per step, but the aggregator Mean combines the gradients of at least 2 tasks per step. Use the 'joint' schedule (or random_subset with num_tasks >= 2), or drop the aggregator.
    """
    s_limit = tasks_per_step(None, sampler)
    s_need = int(getattr(schedule, "min_tasks_per_step", 1)) if schedule is not None else 1
    if s_limit is not None and s_limit < s_need:
        raise IncompatibleComponentsError(
            f"The schedule {schedule} compares at least {s_need} tasks within a batch, but the sampler "
            f"{sampler} (exclusive=True) puts one task per batch. Use exclusive=False or mixed batches."
        )
    limit = tasks_per_step(schedule, sampler)
    if limit is None:
        return
    if schedule is not None and getattr(schedule, "max_tasks_per_step", None) == limit:
        who = f"The schedule {schedule}"
    else:
        who = f"The sampler {sampler} (exclusive=True: one task per batch)"
    fix = ("Use the 'joint' schedule (or random_subset with num_tasks >= 2)"
           if who.startswith("The schedule") else "Use exclusive=False or mixed batches")
    if aggregator is not None:
        need = int(getattr(aggregator, "min_tasks_per_step", 2))
        if limit < need:
            raise IncompatibleComponentsError(
                f"{who} optimises at most {limit} task per step, but the aggregator {aggregator} "
                f"combines the gradients of at least {need} tasks per step. {fix}, or drop the "
                f"aggregator."
            )
    if weighting is not None:
        default = 2 if getattr(weighting, "needs_gradients", False) else 1
        need = int(getattr(weighting, "min_tasks_per_step", default))
        if limit < need:
            raise IncompatibleComponentsError(
                f"{who} optimises at most {limit} task per step, but the weighting {weighting} "
                f"balances at least {need} tasks within a step. {fix}, or choose another weighting."
            )


__all__ = ["Active", "Alternate", "IncompatibleComponentsError", "Joint", "RandomSubset", "Schedule",
           "Similarity", "check_compatible", "tasks_per_step"]
