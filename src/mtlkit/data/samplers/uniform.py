"""Uniform task sampling: p_t = 1/K."""

from __future__ import annotations

from collections.abc import Mapping

from mtlkit._registry import SAMPLERS
from mtlkit.data.samplers._base import TaskSampler, size_probabilities


@SAMPLERS.register()
class Uniform(TaskSampler):
    """Draw each batch's task uniformly, p_t = 1/K (among the tasks with labelled rows).

    The T → ∞ limit of temperature sampling (Arivazhagan et al. 2019, "Massively Multilingual
    Neural Machine Translation in the Wild: Findings and Challenges"): every task gets the same
    number of steps whatever its size, so small tasks are seen many times per epoch (and may
    overfit) while large ones are under-sampled.

    Args:
        epoch_budget: ``"sum"`` | ``"largest"`` | steps per epoch (see :class:`TaskSampler`).
        exclusive: mask every task but the drawn one in its batch.

    >>> Uniform().probabilities({"big": 900, "small": 100})
    {'big': 0.5, 'small': 0.5}
    """

    paper = "Arivazhagan et al. 2019, Massively Multilingual NMT in the Wild (T → ∞)"

    def __init__(self, *, epoch_budget: str | int = "sum", exclusive: bool = True) -> None:
        super().__init__(epoch_budget=epoch_budget, exclusive=exclusive)

    def probabilities(self, sizes: Mapping[str, int]) -> dict[str, float]:
        return size_probabilities(sizes, float("inf"))
