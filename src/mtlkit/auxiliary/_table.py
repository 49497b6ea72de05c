"""Table helpers: inputs as DataFrames, and label columns -> targets of a task kind."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from mtlkit.auxiliary._base import to_numpy
from mtlkit.kinds import get_kind, kind_names

#: the task kinds an auxiliary target can take from table columns: the registered kinds with
#: one target row per sample that are not pair tasks
TABLE_KINDS = tuple(k for k in kind_names() if not get_kind(k).dense and not get_kind(k).pairwise)


def as_frame(x: Any, columns: Sequence[str] | None, owner: str) -> pd.DataFrame:
    """A DataFrame as is; a 2-D array/tensor with its column names from ``columns``."""
    if isinstance(x, pd.DataFrame):
        return x
    a = to_numpy(x)
    if a.ndim != 2:
        raise ValueError(f"{owner} needs a table: a DataFrame or a 2-D array with 'columns'. Got shape {a.shape}.")
    if columns is None or len(columns) != a.shape[1]:
        got = "no" if columns is None else len(columns)
        raise ValueError(f"{owner}: a 2-D array needs one name per column in 'columns' "
                         f"({a.shape[1]} columns, {got} names given).")
    return pd.DataFrame(a, columns=list(columns))


def check_columns_present(df: pd.DataFrame, wanted: Sequence[str], owner: str) -> None:
    missing = [c for c in wanted if c not in df.columns]
    if missing:
        raise KeyError(f"{owner}: column(s) {missing} not found in the table. Columns: {list(df.columns)}.")


def _missing(s: pd.Series) -> np.ndarray:
    return s.isna().to_numpy()


def infer_kind(s: pd.Series) -> str:
    """regression for numbers (except 0/1 integers and booleans, which are binary); binary or
    multiclass for anything else, by its number of distinct values."""
    values = s.dropna()
    if pd.api.types.is_bool_dtype(s):
        return "binary"
    if pd.api.types.is_numeric_dtype(s):
        if pd.api.types.is_integer_dtype(s) and set(values.unique()) <= {0, 1}:
            return "binary"
        return "regression"
    return "binary" if values.nunique() <= 2 else "multiclass"


def encode(frame: pd.DataFrame, kind: str, owner: str) -> tuple[Tensor, Tensor, dict[str, Any]]:
    """Label columns -> (targets, mask, extra Task fields) for ``kind``; NaN = unlabelled.

    binary/multiclass encode the sorted distinct values of their single column as 0 … K−1
    (``extra["classes"]`` keeps them); multilabel columns must hold 0/1."""
    cols = list(frame.columns)
    if kind not in TABLE_KINDS:
        raise ValueError(f"{owner}: unknown kind {kind!r}. Choose from {TABLE_KINDS}.")
    spec = get_kind(kind)
    if not spec.multi_column:  # one class value per sample (binary, multiclass)
        if len(cols) != 1:
            raise ValueError(f"{owner}: a {kind} target takes exactly one column. Got {cols}.")
        s = frame[cols[0]]
        miss = _missing(s)
        classes = sorted(s.dropna().unique().tolist())
        if spec.binary_targets and len(classes) > 2:
            raise ValueError(f"{owner}: column {cols[0]!r} has {len(classes)} distinct values; a binary "
                             f"target needs at most 2 (use kind='multiclass').")
        if spec.binary_targets and set(classes) <= {0, 1}:
            classes = [0, 1]
        if spec.has_classes and len(classes) < 2:
            raise ValueError(f"{owner}: column {cols[0]!r} has {len(classes)} distinct value(s); a multiclass "
                             f"target needs at least 2.")
        index = {c: i for i, c in enumerate(classes)}
        codes = np.array([0 if m else index[v] for v, m in zip(s.tolist(), miss, strict=True)])
        extra: dict[str, Any] = {"classes": classes}
        if spec.has_classes:  # class indices
            extra[str(spec.width_setting)] = len(classes)
            y = torch.as_tensor(codes, dtype=torch.long)
        else:
            y = torch.as_tensor(codes, dtype=torch.float32)
        return y, torch.as_tensor(~miss), extra
    try:
        a = frame.apply(pd.to_numeric).to_numpy(dtype=np.float64)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{owner}: {kind} columns {cols} must be numeric: {exc}") from exc
    mask = np.isfinite(a)
    if spec.binary_targets:
        bad = a[mask & (a != 0) & (a != 1)]
        if bad.size:
            raise ValueError(f"{owner}: multilabel columns must hold 0 or 1. Got {bad[0]!r}.")
    values = np.where(mask, a, 0.0)
    extra = {str(spec.width_setting): len(cols)}  # num_labels (multilabel) or dim (regression)
    return torch.as_tensor(values, dtype=torch.float32), torch.as_tensor(mask), extra
