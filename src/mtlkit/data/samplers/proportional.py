"""Proportional task sampling: p_t ∝ n_t."""

from __future__ import annotations

from collections.abc import Mapping

from mtlkit._registry import SAMPLERS
from mtlkit.data.samplers._base import TaskSampler, size_probabilities


@SAMPLERS.register()
class Proportional(TaskSampler):
    """Draw each batch's task with probability proportional to its labelled rows, p_t ∝ n_t.

    The "examples-proportional mixing" of Raffel et al. (2020), "Exploring the Limits of
    Transfer Learning with a Unified Text-to-Text Transformer" (JMLR 21), without their
    artificial size cap K, and the task selection of MT-DNN (Liu et al. 2019). Large tasks
    dominate; a task with 5% of the rows gets 5% of the steps.

    Args:
        epoch_budget: ``"sum"`` | ``"largest"`` | steps per epoch (see :class:`TaskSampler`).
        exclusive: mask every task but the drawn one in its batch.

    >>> Proportional().probabilities({"big": 900, "small": 100})
    {'big': 0.9, 'small': 0.1}
    """

    paper = "Raffel et al. 2020, Exploring the Limits of Transfer Learning (examples-proportional mixing)"

    def __init__(self, *, epoch_budget: str | int = "sum", exclusive: bool = True) -> None:
        super().__init__(epoch_budget=epoch_budget, exclusive=exclusive)

    def probabilities(self, sizes: Mapping[str, int]) -> dict[str, float]:
        return size_probabilities(sizes, 1.0)
