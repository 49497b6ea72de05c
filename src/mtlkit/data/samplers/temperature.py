"""Temperature task sampling: p_t ∝ n_t^{1/T}."""

from __future__ import annotations

from collections.abc import Mapping

from mtlkit._checks import check_float
from mtlkit._registry import SAMPLERS
from mtlkit.data.samplers._base import TaskSampler, size_probabilities


@SAMPLERS.register()
class Temperature(TaskSampler):
    """Draw each batch's task with p_t ∝ n_t^{1/T} (temperature-based sampling).

    Arivazhagan et al. (2019), "Massively Multilingual Neural Machine Translation in the Wild:
    Findings and Challenges" (arXiv:1907.05019), Sec. 4.2: the data distribution p_t ∝ n_t is
    sharpened or flattened by a temperature, T = 1 is proportional sampling and T → ∞ uniform;
    T = 5 was their best trade-off between high- and low-resource languages. Also used by
    XLM (Conneau & Lample 2019, as α = 1/T) and mT5 (α = 0.3).

    Args:
        temperature: T > 0; ``float('inf')`` gives uniform sampling over the tasks with
            labelled rows (the same as :class:`Uniform`).
        epoch_budget: ``"sum"`` | ``"largest"`` | steps per epoch (see :class:`TaskSampler`).
        exclusive: mask every task but the drawn one in its batch.

    >>> Temperature(temperature=2.0).probabilities({"big": 900, "small": 100})
    {'big': 0.75, 'small': 0.25}
    """

    paper = "Arivazhagan et al. 2019, Massively Multilingual NMT in the Wild (temperature sampling)"

    def __init__(self, *, temperature: float = 5.0, epoch_budget: str | int = "sum",
                 exclusive: bool = True) -> None:
        super().__init__(epoch_budget=epoch_budget, exclusive=exclusive)
        # T = inf is the documented uniform limit (size_probabilities handles it)
        self.temperature = check_float("Temperature", "temperature", temperature, low=0.0, low_open=True,
                                       inf_ok=True)

    def probabilities(self, sizes: Mapping[str, int]) -> dict[str, float]:
        return size_probabilities(sizes, self.temperature)
