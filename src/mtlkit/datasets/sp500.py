"""S&P 500: will each of ten stocks go up tomorrow? Ten binary tasks from past returns."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from mtlkit._checks import check_int
from mtlkit._registry import DATASETS
from mtlkit.data._dataset import MultiTaskData
from mtlkit.datasets._bundle import DatasetBundle
from mtlkit.datasets._files import package_file
from mtlkit.tasks import Task

TICKERS = ["AAPL", "AMZN", "IBM", "INTC", "JNJ", "JPM", "KO", "MSFT", "WMT", "XOM"]

PAPER = "river SP500Stocks (Kaggle S&P 500 stock data, 2013-2018)"


def windows(returns: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sliding windows over daily returns (days, stocks).

    Sample ``i`` ends on day ``t = i + window - 1``: inputs are the returns of days
    ``t-window+1 .. t`` as (stocks, window), oldest first; targets are ``returns[t+1] > 0``
    per stock. Returns (inputs, targets, last-day index t of each sample)."""
    days, stocks = returns.shape
    n = days - window
    if n < 1:
        raise ValueError(f"A window of {window} days leaves no sample in {days} days of returns.")
    idx = np.arange(window)[None, :] + np.arange(n)[:, None]  # (n, window)
    x = returns[idx].transpose(0, 2, 1)  # (n, stocks, window)
    end = idx[:, -1]
    y = (returns[end + 1] > 0).astype(np.float32)
    return np.ascontiguousarray(x, dtype=np.float32), y, end


@DATASETS.register()
def load_sp500(
    window: int = 10, layout: str = "table", test_fraction: float = 0.2
) -> DatasetBundle:
    """Daily returns of ten S&P 500 stocks (river's SP500Stocks); tasks: next-day up/down.

    Data: split-adjusted daily simple returns in percent of AAPL, AMZN, IBM, INTC, JNJ, JPM,
    KO, MSFT, WMT and XOM, 1,257 trading days from February 2013 to February 2018, as shipped
    in river (``river/datasets/sp500.csv.gz``, from the Kaggle "S&P 500 stock data" set;
    river is not imported). One binary task per ticker (task name = ticker): 1 when that
    stock's return on the next trading day is strictly positive (a 0.0 return counts as
    "not up"). Inputs: the ten stocks' returns over the last ``window`` days, as a table of
    ``10 × window`` columns named ``"AAPL[t-0]"`` (today) ... ``"AAPL[t-9]"``, or as a series
    (N, 10, window), oldest day first. The file's ``next_day_return`` column (an equal-weight
    portfolio return) is not used.

    Choice made here: the test set is chronological, the last ``test_fraction`` of the samples
    (``test_fraction=0`` gives none, so the caller splits at random). Windows overlap, so a
    random train/validation split of the rest shares days between the two.

    Args:
        window: number of past trading days in each input (>= 1).
        layout: ``"table"`` (flat features, MLP trunk) or ``"series"`` (1-D CNN trunk).
        test_fraction: share of the latest samples kept as ``test``, in [0, 1).

    >>> b = load_sp500(window=5)
    >>> b.data.x.shape[1], len(b.data) + len(b.test), b.tasks[0].name
    (50, 1252, 'AAPL')
    """
    window = check_int("load_sp500", "window", window, low=1)
    if layout not in ("table", "series"):
        raise ValueError(
            f"The 'layout' parameter of load_sp500 must be 'table' or 'series'. Got {layout!r}."
        )
    if (
        isinstance(test_fraction, bool)
        or not isinstance(test_fraction, (int, float))
        or not 0 <= test_fraction < 1
    ):
        raise ValueError(
            f"The 'test_fraction' parameter of load_sp500 must be a float in [0, 1). Got {test_fraction!r}."
        )
    path = package_file("sp500", "river", "datasets/sp500.csv.gz")
    df = pd.read_csv(path)
    missing = [c for c in ["date", *TICKERS] if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}.")
    returns = df[TICKERS].to_numpy(dtype=np.float64)
    x, y, end = windows(returns, window)
    dates = df["date"].astype(str).to_numpy()
    if layout == "table":
        # column j*window + k holds stock j at lag k (k = 0 is the last day of the window)
        x = x[:, :, ::-1].reshape(len(x), -1).copy()
        feature_names: list[str] | None = [f"{s}[t-{k}]" for s in TICKERS for k in range(window)]
        trunk: dict[str, Any] = {"name": "mlp", "hidden": [64, 32]}
    else:
        feature_names = None
        trunk = {
            "name": "cnn1d",
            "channels": [16, 32],
            "kernel_size": min(5, window) | 1,
            "hidden": 32,
        }
    tasks = [Task(s, "binary") for s in TICKERS]
    n_test = round(len(x) * test_fraction)
    cut = len(x) - n_test

    def part(s: slice, name: str) -> MultiTaskData:
        return MultiTaskData(
            torch.from_numpy(np.ascontiguousarray(x[s])),
            {t: torch.from_numpy(y[s, j].copy()) for j, t in enumerate(TICKERS)},
            None,
            tasks,
            source=f"sp500 ({name})",
        )

    return DatasetBundle(
        name="sp500",
        data=part(slice(0, cut), "train"),
        tasks=tasks,
        test=part(slice(cut, None), "test") if n_test else None,
        input_kind=layout,
        default_trunk=trunk,
        feature_names=feature_names,
        description=(
            f"S&P 500: next-day up/down of 10 stocks from their last {window} daily returns "
            f"({layout}); {cut} samples to {dates[end[cut - 1]]}"
            + (f", test = the last {n_test} up to {dates[end[-1]]}." if n_test else ".")
        ),
        licence="Kaggle 'S&P 500 stock data' (CC0 1.0 public domain); file shipped in river (BSD-3-Clause).",
        info={"tickers": TICKERS, "window_end_dates": dates[end], "window": window},
    )


load_sp500.paper = PAPER  # type: ignore[attr-defined]
