"""Joint schedule: every task with labels in the batch, one combined update."""

from __future__ import annotations

from torch import Tensor

from mtlkit._registry import SCHEDULES
from mtlkit.training.schedules._base import Schedule
from mtlkit.weighting._base import StepContext


@SCHEDULES.register()
class Joint(Schedule):
    """Optimise every task present in the batch at every step (the default).

    The standard multi-task objective of Caruana (1997), "Multitask Learning": one update on
    the (weighted) sum of all task losses.

    >>> import torch
    >>> Joint().select(0, torch.tensor([True, False, True]), StepContext(task_names=["a", "b", "c"]))
    tensor([ True, False,  True])
    """

    paper = "Caruana 1997, Multitask Learning (joint training)"

    def __init__(self) -> None:
        super().__init__()

    def choose(self, step: int, present: Tensor, ctx: StepContext, names: list[str]) -> Tensor:
        return present.clone()
