"""Per-channel skewness of a series as an auxiliary regression target."""

from __future__ import annotations

import numpy as np

from mtlkit._registry import AUXILIARY
from mtlkit.auxiliary._base import SeriesStatistic


def central_moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mean and the biased central moments m2, m3, m4 over the last axis, and a mask of the
    (numerically) constant channels — scipy.stats' test: m2 ≤ (eps · mean)²."""
    mean = x.mean(axis=-1, keepdims=True)
    d = x - mean
    d2 = d * d
    m2 = d2.mean(axis=-1)
    m3 = (d2 * d).mean(axis=-1)
    m4 = (d2 * d2).mean(axis=-1)
    constant = m2 <= (np.finfo(np.float64).eps * mean[..., 0]) ** 2
    return m2, m3, m4, constant


@AUXILIARY.register()
class Skewness(SeriesStatistic):
    """Sample skewness of each channel, g1 = m3 / m2^{3/2}, with the biased central moments
    m_k = (1/T) Σ_t (x_{c,t} − x̄_c)^k.

    Equals ``scipy.stats.skew(x, axis=-1, bias=True)``. A constant channel (m2 = 0, detected
    as scipy does) has no skewness: its target is masked.

    Joanes & Gill (1998), "Comparing measures of sample skewness and kurtosis", JRSS D 47(1)
    — the g1 estimator.

    Args:
        standardize: z-score the targets over the samples given (default: raw values).
        weight: the loss weight λ of the auxiliary task.
        name: the task name (default ``"aux_skewness"``).

    Input (N, C, T) -> target (N, C).

    >>> import numpy as np
    >>> aux = Skewness().generate(np.array([[[0.0, 0.0, 3.0], [1.0, 1.0, 1.0]]]))
    >>> aux.targets, aux.mask
    (tensor([[0.7071, 0.0000]]), tensor([[ True, False]]))
    """

    paper = "Joanes & Gill 1998, Comparing measures of sample skewness and kurtosis (g1)"

    def compute(self, x: np.ndarray) -> np.ndarray:
        m2, m3, _, constant = central_moments(x)
        with np.errstate(divide="ignore", invalid="ignore"):
            g1 = m3 / m2**1.5
        return np.where(constant, np.nan, g1)[..., None]
