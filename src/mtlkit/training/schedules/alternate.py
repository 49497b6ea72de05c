"""Alternate schedule: round-robin over the tasks, one task's loss per update."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from mtlkit._checks import check_int
from mtlkit._registry import SCHEDULES
from mtlkit.training.schedules._base import Schedule
from mtlkit.weighting._base import StepContext


@SCHEDULES.register()
class Alternate(Schedule):
    """Round-robin: an update on task 1's loss, then on task 2's, …, then task 1 again.

    The "optimise the losses separately, alternately" recipe of Dong et al. (2015),
    "Multi-Task Learning for Multiple Language Translation" (ACL), who train the shared
    encoder by alternating between the language pairs, and of Luong et al. (2016),
    "Multi-task Sequence to Sequence Learning" (ICLR), with fixed mixing ratios.

    The order is exact: with every task present, step s optimises
    ``order[(s // steps_per_task) mod K]``. A task absent from the batch is skipped (the
    next present task in the order takes the step), so the cycle never stalls on a batch
    that lacks a task.

    Args:
        order: the task names in round-robin order (default: the trainer's task order).
        steps_per_task: consecutive steps given to each task before moving on.

    >>> import torch
    >>> s, ctx = Alternate(), StepContext(task_names=["a", "b", "c"])
    >>> [s.select(i, torch.ones(3, dtype=torch.bool), ctx).nonzero().item() for i in range(5)]
    [0, 1, 2, 0, 1]
    """

    paper = "Dong et al. 2015, Multi-Task Learning for Multiple Language Translation (alternating)"

    def __init__(self, *, order: Sequence[str] | None = None, steps_per_task: int = 1) -> None:
        super().__init__()
        if order is not None:
            if isinstance(order, str) or not all(isinstance(t, str) for t in order) or not order:
                raise ValueError(f"The 'order' parameter of Alternate must be a non-empty list of task "
                                 f"names. Got {order!r}.")
            if len(set(order)) != len(order):
                raise ValueError(f"The 'order' parameter of Alternate repeats a task. Got {list(order)!r}.")
            order = list(order)
        self.order = order
        self.steps_per_task = check_int("Alternate", "steps_per_task", steps_per_task, low=1)
        self._pos = 0
        self._rep = 0

    @property
    def max_tasks_per_step(self) -> int:
        return 1

    def choose(self, step: int, present: Tensor, ctx: StepContext, names: list[str]) -> Tensor:
        order = self.order or names
        unknown = [t for t in order if t not in names]
        if unknown:
            raise ValueError(f"The 'order' of Alternate names unknown task(s) {unknown}; the tasks are "
                             f"{names}.")
        out = torch.zeros_like(present)
        n = len(order)
        for off in range(n):
            j = (self._pos + off) % n
            k = names.index(order[j])
            if present[k]:
                break
        else:
            return out
        if j != self._pos:
            self._rep = 0
        out[k] = True
        self._pos, self._rep = j, self._rep + 1
        if self._rep >= self.steps_per_task:
            self._pos, self._rep = (j + 1) % n, 0
        return out

    def extra_state(self) -> dict[str, Any]:
        return {"pos": self._pos, "rep": self._rep}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        self._pos, self._rep = int(state.get("pos", 0)), int(state.get("rep", 0))
