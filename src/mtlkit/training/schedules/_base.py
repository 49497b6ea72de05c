"""The schedule contract: which tasks are optimised at a step.

``schedule.select(step, present, ctx) -> chosen`` gets the bool vector (K,) of tasks with
labels in the batch and returns a bool vector (K,); the trainer optimises ``present & chosen``
(a step where nothing is chosen is skipped). Capability flags are class attributes the trainer
reads, never names:

* ``needs_representation``: ``select`` reads ``ctx.representation`` (and the task losses in
  ``ctx.extra["losses"]``) to take gradients, so the trainer must compute the shared
  representation at every step;
* ``adaptive``: updates from validation metrics in ``on_epoch_end(epoch, record)``;
* ``needs_references``: needs per-task references (single-task baselines or targets).

``max_tasks_per_step`` tells :func:`~mtlkit.training.schedules.check_compatible` how many task
losses can reach the weighting/aggregator at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

from mtlkit._params import HasParams
from mtlkit.tasks import Task
from mtlkit.weighting._base import StepContext


class Schedule(HasParams):
    """Base class of task schedules. Subclasses implement :meth:`choose`."""

    #: citation shown by ``mtlkit list``
    paper: ClassVar[str] = ""
    #: reads ``ctx.representation`` and ``ctx.extra["losses"]`` in ``select``
    needs_representation: ClassVar[bool] = False
    #: updates from validation metrics in :meth:`on_epoch_end`
    adaptive: ClassVar[bool] = False
    #: needs a reference score per task (single-task baselines or targets)
    needs_references: ClassVar[bool] = False

    def __init__(self) -> None:
        self._tasks: list[Task] | None = None
        self._counts: dict[str, int] = {}
        self._count_epoch: int | None = None

    @property
    def max_tasks_per_step(self) -> int | None:
        """The most tasks optimised in one step (None: no limit)."""
        return None

    def setup(self, tasks: Sequence[Task]) -> None:
        """Called once with the Task specs, in the order of the loss vector."""
        self._tasks = list(tasks)

    def select(self, step: int, present: Tensor, ctx: StepContext) -> Tensor:
        """The bool (K,) vector of tasks optimised at this step (a subset of ``present``)."""
        present = torch.as_tensor(present).bool()
        if present.dim() != 1:
            raise ValueError(f"{type(self).__name__}.select expects a 1-D bool vector of present "
                             f"tasks. Got shape {tuple(present.shape)}.")
        names = list(ctx.task_names) if ctx.task_names else [str(i) for i in range(len(present))]
        if len(names) != len(present):
            raise ValueError(f"{type(self).__name__}: {len(present)} present flags for "
                             f"{len(names)} task names.")
        chosen = self.choose(step, present, ctx, names).bool() & present
        if self._count_epoch != ctx.epoch:
            self._count_epoch, self._counts = ctx.epoch, dict.fromkeys(names, 0)
        for k in chosen.nonzero()[:, 0].tolist():
            self._counts[names[k]] = self._counts.get(names[k], 0) + 1
        return chosen

    def choose(self, step: int, present: Tensor, ctx: StepContext,
               names: list[str]) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def on_epoch_end(self, epoch: int, record: Mapping[str, Any]) -> None:
        """Called after each epoch's evaluation with the epoch record."""

    def probabilities(self) -> dict[str, float] | None:
        """The current per-task selection probabilities (adaptive schedules), else None."""
        return None

    def epoch_summary(self) -> dict[str, Any]:
        """Steps per task in the current epoch, and the probabilities when there are any."""
        out: dict[str, Any] = {"counts": dict(self._counts)}
        p = self.probabilities()
        if p is not None:
            out["probabilities"] = p
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"counts": dict(self._counts), "count_epoch": self._count_epoch, **self.extra_state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._counts = dict(state.get("counts", {}))
        self._count_epoch = state.get("count_epoch")
        self.load_extra_state(state)

    def extra_state(self) -> dict[str, Any]:
        return {}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        pass


def draw_without_replacement(probs: Tensor, k: int, generator: torch.Generator | None) -> Tensor:
    """k distinct indices drawn with probabilities ∝ ``probs`` (entries 0 are never drawn)."""
    nz = int((probs > 0).sum())
    k = min(k, nz)
    if k == 0:
        return torch.zeros(0, dtype=torch.long)
    return torch.multinomial(probs.double(), k, replacement=False, generator=generator)
