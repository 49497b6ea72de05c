"""Per-channel sample entropy of a series as an auxiliary regression target."""

from __future__ import annotations

import numpy as np

from mtlkit._checks import check_float, check_int
from mtlkit._registry import AUXILIARY
from mtlkit.auxiliary._base import SeriesStatistic

#: float64 entries of one (chunk, L, L) distance block (≈ 32 MB)
_BLOCK = 1 << 22


def sample_entropy(x: np.ndarray, *, m: int = 2, r: float = 0.2) -> np.ndarray:
    """SampEn(m, r) of each series along the last axis (NaN where undefined).

    ``r`` is relative: the tolerance of a series is r · std(series) (population std,
    ddof = 0). See :class:`SampleEntropy` for the definition.

    >>> round(float(sample_entropy(np.array([0.0, 2.0, 0.0, 2.0, 2.0, 0.0]), m=1, r=0.5)), 4)
    0.6931
    """
    x = np.asarray(x, dtype=np.float64)
    lead = x.shape[:-1]
    series = x.reshape(-1, x.shape[-1])
    t = series.shape[1]
    n_templates = t - m
    out = np.full(series.shape[0], np.nan)
    if n_templates < 2:
        return out.reshape(lead)
    tol = r * series.std(axis=1)
    chunk = max(1, _BLOCK // (t * t))
    for s0 in range(0, series.shape[0], chunk):  # chunks of series bound the memory, not a per-sample loop
        xs = series[s0:s0 + chunk]
        lim = tol[s0:s0 + chunk, None, None]
        # |x_a − x_b| for all pairs of steps; offset k of two templates is its diagonal shift
        pair = np.abs(xs[:, :, None] - xs[:, None, :])
        dist = pair[:, :n_templates, :n_templates].copy()
        for k in range(1, m):  # Chebyshev distance of the length-m templates
            np.maximum(dist, pair[:, k:k + n_templates, k:k + n_templates], out=dist)
        # matches over the full symmetric matrix, minus the diagonal (self-matches), halved (i < j)
        b = ((dist <= lim).sum(axis=(1, 2)) - n_templates) // 2
        np.maximum(dist, pair[:, m:m + n_templates, m:m + n_templates], out=dist)  # the (m+1)-th point
        a = ((dist <= lim).sum(axis=(1, 2)) - n_templates) // 2
        with np.errstate(divide="ignore", invalid="ignore"):
            val = -np.log(a / b)
        out[s0:s0 + chunk] = np.where((a > 0) & (b > 0), val, np.nan)
    return out.reshape(lead)


@AUXILIARY.register()
class SampleEntropy(SeriesStatistic):
    """Sample entropy SampEn(m, r) of each channel (Richman & Moorman 2000).

    Richman & Moorman (2000), "Physiological time-series analysis using approximate entropy
    and sample entropy", Am. J. Physiol. Heart Circ. Physiol. 278(6): H2039–H2049.

    For a series x_0 … x_{T−1}, the templates are u_m(i) = (x_i, …, x_{i+m−1}) for
    i = 0 … T−m−1 (the same T−m start points for lengths m and m+1, as in the paper), their
    distance is the Chebyshev distance max_k |x_{i+k} − x_{j+k}|, and

    * B = number of pairs i < j whose length-m templates match (distance ≤ tol),
    * A = number of pairs i < j whose length-(m+1) templates match,
    * SampEn = −ln(A / B)   (self-matches are never counted).

    Choices: the tolerance is **relative**, tol = r · std of the channel (population std,
    ddof = 0), as the paper recommends r as a fraction of the SD (0.1–0.25); "match" is
    distance ≤ tol (the paper's "within r"; PhysioNet's ``sampenc`` uses a strict <, which
    differs only on exact ties). SampEn is undefined when A = 0 or B = 0 (too short or too
    irregular a series): the target is then masked. Cost O(T²) per channel, vectorised over
    all channels and samples in blocks of ≈ 32 MB.

    Args:
        m: template length (≥ 1; 2 is the usual choice).
        r: tolerance as a fraction of the channel's standard deviation (> 0).
        standardize: z-score the targets over the samples given (default: raw values).
        weight: the loss weight λ of the auxiliary task.
        name: the task name (default ``"aux_sample_entropy"``).

    Input (N, C, T) -> target (N, C).

    >>> import numpy as np
    >>> x = np.array([[[0.0, 2.0, 0.0, 2.0, 2.0, 0.0]]])   # std 1; B = 4, A = 2 for m = 1
    >>> SampleEntropy(m=1, r=0.5).generate(x).targets       # −ln(2/4) = ln 2
    tensor([[0.6931]])
    """

    paper = ("Richman & Moorman 2000, Physiological time-series analysis using approximate entropy "
             "and sample entropy")

    def __init__(self, *, m: int = 2, r: float = 0.2, standardize: bool = False, weight: float = 0.1,
                 name: str | None = None) -> None:
        super().__init__(standardize=standardize, weight=weight, name=name)
        self.m = check_int("SampleEntropy", "m", m, low=1, what="an int >= 1")
        self.r = check_float("SampleEntropy", "r", r, low=0.0, low_open=True, what="a finite positive float")

    def compute(self, x: np.ndarray) -> np.ndarray:
        return sample_entropy(x, m=self.m, r=self.r)[..., None]
