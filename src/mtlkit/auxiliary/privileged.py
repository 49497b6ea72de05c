"""Privileged ("future") columns: known at training time only, they become auxiliary targets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from mtlkit._registry import AUXILIARY
from mtlkit.auxiliary._base import AuxiliaryGenerator, AuxTarget
from mtlkit.auxiliary._table import TABLE_KINDS, as_frame, check_columns_present, encode, infer_kind
from mtlkit.kinds import get_kind


@AUXILIARY.register()
class Privileged(AuxiliaryGenerator):
    """Table columns available at training time but not at prediction time (lab results
    that arrive after admission, next month's value ...) as auxiliary targets, **removed from
    the inputs**.

    Vapnik & Vashist (2009), "A new learning paradigm: Learning using privileged
    information", Neural Networks 22; Caruana (1997), "Multitask Learning", Machine Learning
    28 — "using the future to predict the present": such features are better used as extra
    outputs than ignored.

    ``generate(df)`` returns one task over ``columns`` (regression: one output per column;
    binary/multiclass: one column, its sorted distinct values coded 0 … K−1; multilabel:
    0/1 columns). Missing values are masked. ``AuxTarget.inputs`` is the DataFrame without
    the privileged columns: train on it, and prediction never asks for them. For several
    columns of different kinds, use :func:`split_privileged` (one task per column).

    Args:
        columns: the privileged column names (non-empty).
        kind: ``"regression"`` (default), ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
        weight: the loss weight λ of the auxiliary task.
        name: the task name (default ``"aux_privileged"``).

    >>> import pandas as pd
    >>> df = pd.DataFrame({"age": [50, 60], "lab": [1.5, None]})
    >>> aux = Privileged(columns=["lab"]).generate(df)
    >>> list(aux.inputs.columns), aux.targets.tolist(), aux.mask.tolist()
    (['age'], [[1.5], [0.0]], [[True], [False]])
    """

    paper = ("Vapnik & Vashist 2009, A new learning paradigm: Learning using privileged information; "
             "Caruana 1997, Multitask Learning")
    input_kind = "table"

    def __init__(self, *, columns: Sequence[str], kind: str = "regression", weight: float = 0.1,
                 name: str | None = None) -> None:
        super().__init__(weight=weight, name=name)
        if isinstance(columns, str) or not isinstance(columns, Sequence) or not columns \
                or not all(isinstance(c, str) and c for c in columns):
            raise ValueError(f"The 'columns' parameter of Privileged must be a non-empty list of column "
                             f"names. Got {columns!r}.")
        if len(set(columns)) != len(columns):
            raise ValueError(f"The 'columns' parameter of Privileged names a column twice. Got {list(columns)!r}.")
        self.columns = list(columns)
        if kind not in TABLE_KINDS:
            raise ValueError(f"The 'kind' parameter of Privileged must be one of {TABLE_KINDS}. Got {kind!r}.")
        if not get_kind(kind).multi_column and len(self.columns) != 1:
            raise ValueError(f"The 'kind' parameter of Privileged is {kind!r}, which takes exactly one column; "
                             f"'columns' has {len(self.columns)}.")
        self.kind = kind

    def _generate(self, x: Any, *, columns: list[str] | None) -> AuxTarget:
        df = as_frame(x, columns, "Privileged")
        check_columns_present(df, self.columns, "Privileged")
        y, mask, extra = encode(df[self.columns], self.kind, "Privileged")
        self.classes_ = extra.pop("classes", None)
        task = self._task(self.kind, columns=tuple(self.columns), **extra)
        features = df.drop(columns=self.columns)
        return AuxTarget(task, y, mask, tuple(self.columns), features)


def split_privileged(df: pd.DataFrame, columns: Sequence[str], *,
                     kinds: Mapping[str, str] | None = None,
                     weight: float = 0.1) -> tuple[pd.DataFrame, list[AuxTarget]]:
    """Remove privileged columns from a table and turn each into its own auxiliary task.

    Returns ``(features_df, [AuxTarget, ...])``: the table without ``columns``, and one
    auxiliary task per column, named ``"aux_<column>"``, whose kind is ``kinds[column]`` or
    inferred (numbers -> regression, booleans and 0/1 integers -> binary, other values ->
    binary or multiclass by their number of distinct values).

    >>> import pandas as pd
    >>> df = pd.DataFrame({"x": [0.1, 0.2, 0.3], "lab": [1.0, 2.0, None], "outcome": ["a", "b", "c"]})
    >>> features, aux = split_privileged(df, ["lab", "outcome"])
    >>> list(features.columns), [(a.task.name, a.task.kind) for a in aux]
    (['x'], [('aux_lab', 'regression'), ('aux_outcome', 'multiclass')])
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"split_privileged needs a pandas DataFrame. Got {type(df).__name__}.")
    cols = list(columns)
    check_columns_present(df, cols, "split_privileged")
    kinds = dict(kinds or {})
    unknown = set(kinds) - set(cols)
    if unknown:
        raise ValueError(f"split_privileged: 'kinds' names column(s) {sorted(unknown)} that are not in "
                         f"'columns' {cols}.")
    out = []
    for c in cols:  # one task per column: a loop over columns, not samples
        gen = Privileged(columns=[c], kind=kinds.get(c, infer_kind(df[c])), weight=weight, name=f"aux_{c}")
        out.append(gen.generate(df))
    return df.drop(columns=cols), out
