"""Per-channel standard deviation of a series as an auxiliary regression target."""

from __future__ import annotations

import numpy as np

from mtlkit._checks import check_int
from mtlkit._registry import AUXILIARY
from mtlkit.auxiliary._base import SeriesStatistic


@AUXILIARY.register()
class Std(SeriesStatistic):
    """Standard deviation of each channel: σ_c = sqrt( (1/(T − ddof)) Σ_t (x_{c,t} − x̄_c)² ).

    Christ, Braun, Neuffer & Kempa-Liehr (2018), "Time Series FeatuRe Extraction on basis of
    Scalable Hypothesis tests (tsfresh)", Neurocomputing 307 — the ``standard_deviation``
    feature (``ddof=0``, numpy's default, as tsfresh computes it).

    Args:
        ddof: delta degrees of freedom (0 = population std; 1 = sample std).
        standardize: z-score the targets over the samples given (default: raw values).
        weight: the loss weight λ of the auxiliary task.
        name: the task name (default ``"aux_std"``).

    Input (N, C, T) -> target (N, C).

    >>> import numpy as np
    >>> aux = Std().generate(np.array([[[1.0, 3.0, 1.0, 3.0], [0.0, 0.0, 0.0, 4.0]]]))
    >>> aux.targets, aux.task.kind, aux.task.role, aux.task.weight
    (tensor([[1.0000, 1.7321]]), 'regression', 'auxiliary', 0.1)
    """

    paper = "Christ et al. 2018, tsfresh (standard_deviation)"

    def __init__(self, *, ddof: int = 0, standardize: bool = False, weight: float = 0.1,
                 name: str | None = None) -> None:
        super().__init__(standardize=standardize, weight=weight, name=name)
        self.ddof = check_int("Std", "ddof", ddof, low=0, what="an int >= 0")

    def compute(self, x: np.ndarray) -> np.ndarray:
        if x.shape[2] <= self.ddof:
            return np.full((*x.shape[:2], 1), np.nan)
        return x.std(axis=2, ddof=self.ddof)[..., None]
