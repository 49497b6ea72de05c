"""Per-channel autoregressive coefficients of a series as auxiliary regression targets."""

from __future__ import annotations

import numpy as np

from mtlkit._checks import check_int
from mtlkit._registry import AUXILIARY
from mtlkit.auxiliary._base import SeriesStatistic


def ar_coefficients(x: np.ndarray, *, order: int, intercept: bool = True) -> np.ndarray:
    """Least-squares AR(p) coefficients (φ_1 … φ_p) of every series along the last axis.

    Returns shape ``x.shape[:-1] + (order,)``, NaN for series too short or constant.

    >>> x = np.array([1.0, 0.5, 0.25, 0.125, 0.0625])   # x_t = 0.5 x_{t−1}
    >>> ar_coefficients(x, order=1, intercept=False).round(6)
    array([0.5])
    """
    x = np.asarray(x, dtype=np.float64)
    lead = x.shape[:-1]
    series = x.reshape(-1, x.shape[-1])
    t = series.shape[1]
    rows = t - order
    ncol = order + int(intercept)
    out = np.full((series.shape[0], order), np.nan)
    if rows < ncol:
        return out.reshape(*lead, order)
    # design (S, T−p, p[+1]): column i is the lag-(i+1) value x_{t−i−1}; rows t = p … T−1
    design = np.stack([series[:, order - 1 - i: t - 1 - i] for i in range(order)], axis=2)
    if intercept:
        design = np.concatenate([design, np.ones((series.shape[0], rows, 1))], axis=2)
    target = series[:, order:]
    gram = design.transpose(0, 2, 1) @ design
    rhs = design.transpose(0, 2, 1) @ target[..., None]
    ok = np.linalg.matrix_rank(gram) == ncol
    if ok.any():
        out[ok] = np.linalg.solve(gram[ok], rhs[ok])[:, :order, 0]
    return out.reshape(*lead, order)


@AUXILIARY.register()
class Autoregressive(SeriesStatistic):
    """Autoregressive coefficients of order p of each channel, fitted by least squares.

    Each channel is fitted on its own by ordinary least squares:
    x_t = c + φ_1 x_{t−1} + … + φ_p x_{t−p} + ε_t for t = p … T−1 (conditional least
    squares, the first p values conditioning), with an intercept c unless
    ``intercept=False``. The target is (φ_1, …, φ_p); c is not a target. Channels whose
    lagged design is rank deficient (e.g. constant) have their coefficients masked.

    Box, Jenkins, Reinsel & Ljung (2015), "Time Series Analysis: Forecasting and Control",
    5th ed., Wiley — conditional least-squares estimation of AR(p); the tsfresh
    ``ar_coefficient`` feature (Christ et al. 2018) is the same idea.

    Args:
        order: the order p (≥ 1).
        intercept: fit the constant c (default True).
        standardize: z-score the targets over the samples given (default: raw values).
        weight: the loss weight λ of the auxiliary task.
        name: the task name (default ``"aux_autoregressive"``).

    Input (N, C, T) -> target (N, C·p), channel-major.

    >>> import numpy as np
    >>> x = np.array([[[1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125]]])
    >>> Autoregressive(order=1).generate(x).targets
    tensor([[0.5000]])
    """

    paper = "Box, Jenkins, Reinsel & Ljung 2015, Time Series Analysis (conditional least squares AR)"

    def __init__(self, *, order: int = 2, intercept: bool = True, standardize: bool = False,
                 weight: float = 0.1, name: str | None = None) -> None:
        super().__init__(standardize=standardize, weight=weight, name=name)
        self.order = check_int("Autoregressive", "order", order, low=1, what="an int >= 1")
        if not isinstance(intercept, bool):
            raise ValueError(f"The 'intercept' parameter of Autoregressive must be a bool. Got {intercept!r}.")
        self.intercept = intercept

    def _suffixes(self) -> list[str]:
        return [f"_phi{i}" for i in range(1, self.order + 1)]

    def compute(self, x: np.ndarray) -> np.ndarray:
        return ar_coefficients(x, order=self.order, intercept=self.intercept)
