"""Random-subset schedule: k tasks drawn uniformly at every step."""

from __future__ import annotations

import torch
from torch import Tensor

from mtlkit._checks import check_int
from mtlkit._registry import SCHEDULES
from mtlkit.training.schedules._base import Schedule, draw_without_replacement
from mtlkit.weighting._base import StepContext


@SCHEDULES.register()
class RandomSubset(Schedule):
    """Optimise ``num_tasks`` tasks drawn uniformly without replacement at every step.

    A stochastic task schedule: each present task is optimised with probability
    ``num_tasks / K_present``. It is the fixed-size counterpart of the Bernoulli ("random
    task dropping") variants of random loss weighting in Lin et al. (2022), "Reasonable
    Effectiveness of Random Weighting: A Litmus Test for Multi-Task Learning" (TMLR); we draw
    exactly ``num_tasks`` tasks (all of them when fewer are present) from the trainer's seeded
    ``ctx.generator``.

    Args:
        num_tasks: k, the tasks optimised per step.

    >>> import torch
    >>> s = RandomSubset(num_tasks=2)
    >>> ctx = StepContext(task_names=["a", "b", "c"], generator=torch.Generator().manual_seed(0))
    >>> int(s.select(0, torch.ones(3, dtype=torch.bool), ctx).sum())
    2
    """

    paper = "Lin et al. 2022, Reasonable Effectiveness of Random Weighting (random task subsets)"

    def __init__(self, *, num_tasks: int = 1) -> None:
        super().__init__()
        self.num_tasks = check_int("RandomSubset", "num_tasks", num_tasks, low=1)
        self._fallback = torch.Generator().manual_seed(0)

    @property
    def max_tasks_per_step(self) -> int:
        return self.num_tasks

    def choose(self, step: int, present: Tensor, ctx: StepContext, names: list[str]) -> Tensor:
        g = ctx.generator if ctx.generator is not None else self._fallback
        idx = draw_without_replacement(present.double(), self.num_tasks, g)
        out = torch.zeros_like(present)
        out[idx] = True
        return out
