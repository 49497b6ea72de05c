"""Quantisation smoothing: the continuous score behind a discretised label as a regression."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mtlkit._registry import AUXILIARY
from mtlkit.auxiliary._base import AuxiliaryGenerator, AuxTarget, standardize_columns, to_numpy
from mtlkit.auxiliary._table import as_frame, check_columns_present


@AUXILIARY.register()
class Quantisation(AuxiliaryGenerator):
    """The continuous value behind a discretised label (the raw score behind a risk class,
    the exact age behind an age band) as an auxiliary regression target.

    Caruana (1997), "Multitask Learning", Machine Learning 28 — "quantization smoothing":
    the finer-grained version of a coarsely quantised target carries information the
    class label has lost, and learning it as an extra output smooths the main task.

    With a table input, the score is the column ``column``; it is **removed from the
    inputs** (``AuxTarget.inputs``) unless ``drop=False``, because a score that defines the
    label is not known at prediction time. With ``column=None`` the input itself is the score
    ((N,) or (N, 1)). Target (N, 1); missing scores are masked.

    Args:
        column: the score column of the table (None: the input is the score).
        drop: remove the score column from the inputs (default True).
        standardize: z-score the target over the samples given (default: raw values).
        weight: the loss weight λ of the auxiliary task.
        name: the task name (default ``"aux_quantisation"``).

    >>> import pandas as pd
    >>> df = pd.DataFrame({"x": [1.0, 2.0, 3.0], "risk_score": [0.12, 0.55, 0.91]})
    >>> aux = Quantisation(column="risk_score").generate(df)
    >>> aux.targets.squeeze(1), list(aux.inputs.columns)
    (tensor([0.1200, 0.5500, 0.9100]), ['x'])
    """

    paper = "Caruana 1997, Multitask Learning (quantization smoothing)"
    input_kind = "table"

    def __init__(self, *, column: str | None = None, drop: bool = True, standardize: bool = False,
                 weight: float = 0.1, name: str | None = None) -> None:
        super().__init__(weight=weight, name=name)
        if column is not None and (not isinstance(column, str) or not column):
            raise ValueError(f"The 'column' parameter of Quantisation must be a column name or None. Got {column!r}.")
        for pname, v in (("drop", drop), ("standardize", standardize)):
            if not isinstance(v, bool):
                raise ValueError(f"The '{pname}' parameter of Quantisation must be a bool. Got {v!r}.")
        self.column = column
        self.drop = drop
        self.standardize = standardize

    def _generate(self, x: Any, *, columns: list[str] | None) -> AuxTarget:
        inputs = None
        if self.column is None:
            score = to_numpy(x)
            if score.ndim == 2 and score.shape[1] == 1:
                score = score[:, 0]
            if score.ndim != 1:
                raise ValueError(f"Quantisation with column=None needs the score itself, shape (N,) or (N, 1). "
                                 f"Got shape {score.shape}; give 'column' to read it from a table.")
            name = self.task_name
        else:
            df = as_frame(x, columns, "Quantisation")
            check_columns_present(df, [self.column], "Quantisation")
            score = pd.to_numeric(df[self.column], errors="raise").to_numpy()
            if self.drop:
                inputs = df.drop(columns=[self.column])
            name = self.column
        values = np.asarray(score, dtype=np.float64)[:, None]
        if self.standardize:
            values, self.target_mean_, self.target_scale_ = standardize_columns(values)
        return self._regression(values, [name], inputs=inputs)
