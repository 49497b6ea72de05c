"""Magnitudes of the first Fourier coefficients of each channel as auxiliary targets."""

from __future__ import annotations

import numpy as np

from mtlkit._checks import check_int
from mtlkit._registry import AUXILIARY
from mtlkit.auxiliary._base import SeriesStatistic


@AUXILIARY.register()
class Fourier(SeriesStatistic):
    """Magnitudes of the first ``k`` discrete Fourier coefficients of each channel.

    X_{c,j} = Σ_{t=0}^{T−1} x_{c,t} e^{−2πi jt/T} (numpy's ``rfft``); the target is
    |X_{c,j}| / T for j = 1 … k (the DC term j = 0 is **excluded** by default, since it is
    just the channel mean; ``include_dc=True`` takes j = 0 … k−1 instead). Dividing by T
    (numpy's ``norm="forward"``) keeps the targets on the scale of the input: a channel
    a·cos(2π j t / T) has target a/2 at j (0 < j < T/2), a constant c has DC target |c|.

    Christ, Braun, Neuffer & Kempa-Liehr (2018), "Time Series FeatuRe Extraction on basis of
    Scalable Hypothesis tests (tsfresh)", Neurocomputing 307 — the ``fft_coefficient``
    feature with ``attr="abs"`` (tsfresh does not divide by T).

    Args:
        k: number of coefficients per channel (needs k ≤ T//2, or T//2 + 1 with DC).
        include_dc: start at j = 0 instead of j = 1.
        standardize: z-score the targets over the samples given (default: raw values).
        weight: the loss weight λ of the auxiliary task.
        name: the task name (default ``"aux_fourier"``).

    Input (N, C, T) -> target (N, C·k), channel-major (channel 0's k coefficients first).

    >>> import numpy as np
    >>> t = np.arange(16)
    >>> x = np.stack([2.0 * np.cos(2 * np.pi * 3 * t / 16)])[None]   # (1, 1, 16)
    >>> Fourier(k=4).generate(x).targets.round(decimals=6)
    tensor([[0., 0., 1., 0.]])
    """

    paper = "Christ et al. 2018, tsfresh (fft_coefficient, abs)"

    def __init__(self, *, k: int = 8, include_dc: bool = False, standardize: bool = False,
                 weight: float = 0.1, name: str | None = None) -> None:
        super().__init__(standardize=standardize, weight=weight, name=name)
        self.k = check_int("Fourier", "k", k, low=1, what="an int >= 1")
        if not isinstance(include_dc, bool):
            raise ValueError(f"The 'include_dc' parameter of Fourier must be a bool. Got {include_dc!r}.")
        self.include_dc = include_dc

    def _suffixes(self) -> list[str]:
        start = 0 if self.include_dc else 1
        return [f"_{j}" for j in range(start, start + self.k)]

    def compute(self, x: np.ndarray) -> np.ndarray:
        t = x.shape[2]
        start = 0 if self.include_dc else 1
        available = t // 2 + 1 - start
        if self.k > available:
            raise ValueError(f"The 'k' parameter of Fourier is {self.k} but series of length {t} have only "
                             f"{available} coefficient(s) {'from j=0' if self.include_dc else 'after DC'}.")
        spec = np.fft.rfft(x, axis=2, norm="forward")
        return np.abs(spec[..., start:start + self.k])
