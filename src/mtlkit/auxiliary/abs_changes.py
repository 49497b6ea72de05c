"""Per-channel sum of absolute changes of a series as an auxiliary regression target."""

from __future__ import annotations

import numpy as np

from mtlkit._registry import AUXILIARY
from mtlkit.auxiliary._base import SeriesStatistic


@AUXILIARY.register()
class AbsChanges(SeriesStatistic):
    """Sum of absolute changes of each channel: Σ_{t=1}^{T−1} |x_{c,t+1} − x_{c,t}|.

    Christ, Braun, Neuffer & Kempa-Liehr (2018), "Time Series FeatuRe Extraction on basis of
    Scalable Hypothesis tests (tsfresh)", Neurocomputing 307 — the
    ``absolute_sum_of_changes`` feature. A series of one step has sum 0.

    Args:
        standardize: z-score the targets over the samples given (default: raw values).
        weight: the loss weight λ of the auxiliary task.
        name: the task name (default ``"aux_abs_changes"``).

    Input (N, C, T) -> target (N, C).

    >>> import numpy as np
    >>> AbsChanges().generate(np.array([[[1.0, 3.0, 2.0, 2.0, -1.0]]])).targets
    tensor([[6.]])
    """

    paper = "Christ et al. 2018, tsfresh (absolute_sum_of_changes)"

    def compute(self, x: np.ndarray) -> np.ndarray:
        return np.abs(np.diff(x, axis=2)).sum(axis=2)[..., None]
