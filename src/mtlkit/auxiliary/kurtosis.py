"""Per-channel kurtosis of a series as an auxiliary regression target."""

from __future__ import annotations

import numpy as np

from mtlkit._registry import AUXILIARY
from mtlkit.auxiliary._base import SeriesStatistic
from mtlkit.auxiliary.skewness import central_moments


@AUXILIARY.register()
class Kurtosis(SeriesStatistic):
    """Sample kurtosis of each channel, g2 = m4 / m2² − 3 (Fisher's excess kurtosis; Pearson's
    m4 / m2² with ``fisher=False``), with the biased central moments
    m_k = (1/T) Σ_t (x_{c,t} − x̄_c)^k.

    Equals ``scipy.stats.kurtosis(x, axis=-1, fisher=True, bias=True)``. A constant channel
    (m2 = 0, detected as scipy does) has no kurtosis: its target is masked.

    Joanes & Gill (1998), "Comparing measures of sample skewness and kurtosis", JRSS D 47(1)
    — the g2 estimator.

    Args:
        fisher: subtract 3 (normal → 0); ``False`` gives Pearson's kurtosis (normal → 3).
        standardize: z-score the targets over the samples given (default: raw values).
        weight: the loss weight λ of the auxiliary task.
        name: the task name (default ``"aux_kurtosis"``).

    Input (N, C, T) -> target (N, C).

    >>> import numpy as np
    >>> Kurtosis().generate(np.array([[[-1.0, 1.0, -1.0, 1.0]]])).targets
    tensor([[-2.]])
    """

    paper = "Joanes & Gill 1998, Comparing measures of sample skewness and kurtosis (g2)"

    def __init__(self, *, fisher: bool = True, standardize: bool = False, weight: float = 0.1,
                 name: str | None = None) -> None:
        super().__init__(standardize=standardize, weight=weight, name=name)
        if not isinstance(fisher, bool):
            raise ValueError(f"The 'fisher' parameter of Kurtosis must be a bool. Got {fisher!r}.")
        self.fisher = fisher

    def compute(self, x: np.ndarray) -> np.ndarray:
        m2, _, m4, constant = central_moments(x)
        with np.errstate(divide="ignore", invalid="ignore"):
            g2 = m4 / (m2 * m2) - (3.0 if self.fisher else 0.0)
        return np.where(constant, np.nan, g2)[..., None]
