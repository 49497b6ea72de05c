"""Next-window prediction: forecast the next values of each channel from the current window."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from mtlkit._checks import check_int
from mtlkit._registry import AUXILIARY
from mtlkit.auxiliary._base import AuxTarget, SeriesStatistic, to_numpy


def split_window(x: Any, horizon: int) -> tuple[Any, Any]:
    """Cut series (N, C, T) (or (N, T)) into the model's input window and the future values.

    ``inputs = x[..., :T − horizon]`` and ``targets = x[..., T − horizon:]``: the model sees
    the first T − h steps and the auxiliary head predicts the last h. Tensors stay tensors
    and arrays stay arrays (views, no copy).

    >>> import numpy as np
    >>> inputs, targets = split_window(np.arange(10.0).reshape(1, 2, 5), 2)
    >>> inputs.tolist(), targets.tolist()
    ([[[0.0, 1.0, 2.0], [5.0, 6.0, 7.0]]], [[[3.0, 4.0], [8.0, 9.0]]])
    """
    horizon = check_int("split_window", "horizon", horizon, low=1)
    t = x.shape[-1]
    if horizon >= t:
        raise ValueError(f"The 'horizon' of split_window is {horizon} but the series have only {t} steps; "
                         f"at least one input step must remain.")
    return x[..., : t - horizon], x[..., t - horizon:]


@AUXILIARY.register()
class NextWindow(SeriesStatistic):
    """Predict the next ``horizon`` values of every channel from the window before them.

    Caruana (1997), "Multitask Learning", Machine Learning 28 — "using the future to predict
    the present": values that lie in the future of the input are available at training time
    and serve as extra outputs.

    Given full series x (N, C, T), the model's input is the first T − h steps and the
    target is y_{n,c,j} = x_{n,c,T−h+j} for j = 0 … h−1 (see :func:`split_window`). The
    returned :class:`AuxTarget` carries the cut window in ``inputs``: **train and predict on
    those inputs**, not on the full series (the primary task's labels are unchanged).

    Args:
        horizon: h, the number of future steps per channel (≥ 1, < T).
        standardize: z-score the targets over the samples given (default: raw values).
        weight: the loss weight λ of the auxiliary task.
        name: the task name (default ``"aux_next_window"``).

    Input (N, C, T) -> target (N, C·h) (channel-major), ``inputs`` (N, C, T − h).

    >>> import numpy as np
    >>> aux = NextWindow(horizon=2).generate(np.arange(10.0).reshape(1, 2, 5))
    >>> aux.targets, tuple(aux.inputs.shape), aux.names
    (tensor([[3., 4., 8., 9.]]), (1, 2, 3), ('next_window_1[ch0]', 'next_window_2[ch0]', 'next_window_1[ch1]', 'next_window_2[ch1]'))
    """

    paper = "Caruana 1997, Multitask Learning (using the future to predict the present)"

    def __init__(self, *, horizon: int = 1, standardize: bool = False, weight: float = 0.1,
                 name: str | None = None) -> None:
        super().__init__(standardize=standardize, weight=weight, name=name)
        self.horizon = check_int("NextWindow", "horizon", horizon, low=1, what="an int >= 1")

    def _suffixes(self) -> list[str]:
        return [f"_{j}" for j in range(1, self.horizon + 1)]

    def compute(self, x: np.ndarray) -> np.ndarray:
        return split_window(x, self.horizon)[1]

    def _generate(self, x: Any, *, columns: list[str] | None) -> AuxTarget:
        arr = x if isinstance(x, torch.Tensor) else to_numpy(x)
        if arr.ndim == 2:
            arr = arr[:, None, :]
        inputs, _ = split_window(arr, self.horizon)
        out = super()._generate(arr, columns=columns)
        return dataclasses.replace(out, inputs=inputs)
