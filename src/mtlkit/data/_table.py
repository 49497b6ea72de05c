"""Tables, files and arrays -> :class:`MultiTaskData` with masks for missing labels."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from mtlkit.data._dataset import MultiTaskData
from mtlkit.tasks import Task, check_tasks


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV (any delimiter pandas sniffs: , ; tab or whitespace) or Parquet file."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"Data file not found: {str(p)!r}.")
    suffix = "".join(p.suffixes[-2:]).lower()
    if suffix.endswith((".parquet", ".pq")):
        try:
            return pd.read_parquet(p)
        except ImportError as exc:
            raise ImportError("Reading Parquet needs pyarrow: pip install 'mtlkit[parquet]'.") from exc
    _check_csv_header(p)
    try:
        if p.suffix.lower() in (".txt", ".tsv"):
            df = pd.read_csv(p, sep=None, engine="python")
        else:
            df = pd.read_csv(p)
    except pd.errors.EmptyDataError:
        raise ValueError(f"Data file {str(p)!r} is empty: it has no header row.") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        text = str(exc)  # a parser error may quote a whole line: never echo more than a little
        text = text if len(text) <= 300 else f"{text[:300]}... ({len(text):,} characters)"
        raise ValueError(f"Data file {str(p)!r} cannot be read as CSV: {text}") from None
    from mtlkit.data.tabular import check_frame

    check_frame(df, repr(str(p)))
    return df


#: the longest header line read (bytes): a longer one is refused, never parsed or echoed
MAX_HEADER_BYTES = 1_000_000


def _check_csv_header(p: Path) -> None:
    """Duplicate column names (pandas would silently rename them ``f0.1``) and an over-long
    first line (a file without line breaks) are refused before pandas parses the file."""
    import csv

    with open(p, "rb") as f:
        first = f.readline(MAX_HEADER_BYTES + 1)
    if len(first) > MAX_HEADER_BYTES:
        raise ValueError(f"Data file {str(p)!r}: its first line (the header) is longer than {MAX_HEADER_BYTES:,} "
                         f"bytes; is it a CSV file with line breaks?")
    text = first.decode("utf-8", errors="replace").rstrip("\r\n")
    if not text:
        return
    delimiter = "\t" if p.suffix.lower() == ".tsv" else ";" if text.count(";") > text.count(",") else ","
    header = next(csv.reader([text], delimiter=delimiter), [])
    seen: set[str] = set()
    dup = [n for n in header if n in seen or seen.add(n)]  # type: ignore[func-returns-value]
    if dup:
        from mtlkit.data.tabular import names

        raise ValueError(f"Data file {str(p)!r}: column name(s) {names(dict.fromkeys(dup))} appear "
                         f"more than once in its header (duplicate names); rename or drop the copies.")


def targets_from_frame(df: pd.DataFrame, tasks: Sequence[Task], *, source: str = "the table"
                       ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Label columns -> (targets, masks). NaN, empty cells and ``Task.missing_value`` are
    masked. Classification labels may be strings: they must then be the class names given in
    order by ``0..C-1`` integers or be 0/1-like; otherwise an error names the column."""
    targets: dict[str, torch.Tensor] = {}
    masks: dict[str, torch.Tensor] = {}
    _check_unique_columns(df, source)
    for t in tasks:
        missing_cols = [c for c in t.label_columns if c not in df.columns]
        if missing_cols:
            raise KeyError(
                f"Label column(s) {missing_cols} for task {t.name!r} not found in {source}. "
                f"Columns: {list(df.columns)[:30]}."
            )
        block = df[list(t.label_columns)]
        arr = np.empty(block.shape, dtype=np.float64)
        miss = np.zeros(block.shape, dtype=bool)
        for j, c in enumerate(t.label_columns):
            col = block[c]
            if col.dtype == object or pd.api.types.is_string_dtype(col):
                col = col.replace(r"^\s*$", np.nan, regex=True)
            num = pd.to_numeric(col, errors="coerce")
            bad = num.isna() & col.notna()
            if bad.any():
                raise ValueError(
                    f"Label column {c!r} of task {t.name!r} has non-numeric value "
                    f"{col[bad].iloc[0]!r} (row {int(np.flatnonzero(bad.to_numpy())[0])}). Encode "
                    f"classes as integers 0..C-1."
                )
            v = num.to_numpy(dtype=np.float64)
            m = np.isnan(v)
            if t.missing_value is not None:
                m |= v == float(t.missing_value)
            arr[:, j] = np.where(m, 0.0, v)
            miss[:, j] = m
        targets[t.name], masks[t.name] = t.task_kind.targets_from_columns(t, arr, miss)
    return targets, masks


def _check_unique_columns(df: pd.DataFrame, source: str) -> None:
    dup = list(dict.fromkeys(c for c in df.columns[df.columns.duplicated()]))
    if dup:
        raise ValueError(f"Column(s) {dup} appear twice (duplicate names) in {source}; rename or drop "
                         f"the copies.")


def features_from_frame(df: pd.DataFrame, features: Sequence[str], *, source: str = "the table") -> np.ndarray:
    _check_unique_columns(df, source)
    missing = [c for c in features if c not in df.columns]
    if missing:
        raise KeyError(f"Feature column(s) {missing} not found in {source}. Columns: {list(df.columns)[:30]}.")
    out = np.empty((len(df), len(features)), dtype=np.float32)
    for j, c in enumerate(features):
        col = df[c]
        if not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)):
            num = pd.to_numeric(col, errors="coerce")
            bad = num.isna() & col.notna()
            if bad.any():
                raise ValueError(
                    f"Feature column {c!r} is not numeric (value {col[bad].iloc[0]!r}); one-hot "
                    f"encode it first (e.g. pandas.get_dummies)."
                )
            col = num
        v = col.to_numpy(dtype=np.float64)
        if not np.isfinite(v).all():
            row = int(np.flatnonzero(~np.isfinite(v))[0])
            raise ValueError(f"Feature column {c!r} has NaN or infinite values (first at row {row}).")
        out[:, j] = v
    return out


def from_dataframe(df: pd.DataFrame, tasks: Sequence[Task], features: Sequence[str] | None = None,
                   *, image_column: str | None = None, image_root: str | Path | None = None,
                   image_size: tuple[int, int] | None = None, grayscale: bool = False,
                   source: str = "the table") -> tuple[MultiTaskData, list[str]]:
    """A DataFrame with feature columns (or one image-path column) and label columns.

    Returns the dataset and the feature names used. ``features=None`` takes every column
    that is not a label column (nor the image column)."""
    tasks = check_tasks(tasks)
    if len(df) == 0:
        raise ValueError(f"{source} is empty: it has no rows.")
    label_cols = {c for t in tasks for c in t.label_columns}
    targets, masks = targets_from_frame(df, tasks, source=source)
    if image_column is not None:
        if image_column not in df.columns:
            raise KeyError(f"Image column {image_column!r} not found in {source}. Columns: {list(df.columns)}.")
        x = load_images(df[image_column].astype(str).tolist(), root=image_root, size=image_size,
                        grayscale=grayscale)
        return MultiTaskData(torch.as_tensor(x), targets, masks, tasks, source=source), [image_column]
    if features is None:
        features = [c for c in df.columns if c not in label_cols]
    features = list(features)
    if not features:
        raise ValueError(f"{source} has no feature columns besides the label columns.")
    overlap = label_cols & set(features)
    if overlap:
        raise ValueError(f"Column(s) {sorted(overlap)} are both features and labels.")
    x = features_from_frame(df, features, source=source)
    return MultiTaskData(torch.as_tensor(x), targets, masks, tasks, source=source), features


def from_arrays(x: Any, labels: Mapping[str, Any], tasks: Sequence[Task]) -> MultiTaskData:
    """NumPy/torch inputs with a dict of label arrays; NaN (or the task's sentinel) = missing."""
    tasks = check_tasks(tasks)
    if isinstance(x, Mapping):  # several named inputs {name: array}: checked to share the sample count
        from mtlkit import _batch

        xt: Any = _batch.float_inputs(_batch.as_inputs(x, source="the arrays"))
    else:
        if not isinstance(x, torch.Tensor):
            x = np.asarray(x)
            if x.dtype.kind not in "biuf":
                raise TypeError(f"The inputs x must be numeric (bool, int or float); got an array of dtype "
                                f"{x.dtype}.")
        xt = torch.as_tensor(x)
        if xt.is_floating_point():
            xt = xt.float()
    n_rows = int(next(iter(xt.values())).shape[0]) if isinstance(xt, dict) else int(xt.shape[0])
    frame: dict[str, np.ndarray] = {}
    fixed: list[Task] = []
    for t in tasks:
        if t.name not in labels:
            raise KeyError(f"No label array for task {t.name!r}; given: {sorted(labels)}.")
        raw = labels[t.name]
        try:
            a = np.asarray(raw.cpu() if isinstance(raw, torch.Tensor) else raw, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"The labels of task {t.name!r} must be a numeric array (NaN = missing): "
                             f"{exc}") from None
        if a.ndim == 1:
            a = a[:, None]
        if a.ndim != 2 and not t.task_kind.dense:
            raise ValueError(f"The labels of task {t.name!r} must be 1-D or 2-D; got shape {a.shape}.")
        if a.shape[0] != n_rows:
            raise ValueError(f"Task {t.name!r} has {a.shape[0]} labels but x has {n_rows} rows.")
        want = t.out_dim if t.task_kind.multi_column else 1
        if a.shape[1] != want and not t.task_kind.dense:
            raise ValueError(f"Task {t.name!r} ({t.kind}) expects {want} label column(s); "
                             f"the array has {a.shape[1]}.")
        cols = tuple(f"{t.name}[{i}]" for i in range(a.shape[1])) if a.shape[1] > 1 else (t.name,)
        for j, c in enumerate(cols):
            frame[c] = a[:, j]
        fixed.append(dataclasses.replace(t, columns=cols if t.task_kind.multi_column else None))
    targets, masks = targets_from_frame(pd.DataFrame(frame), fixed, source="the label arrays")
    return MultiTaskData(xt, targets, masks, tasks, source="the arrays")


def load_images(paths: Sequence[str], *, root: str | Path | None = None,
                size: tuple[int, int] | None = None, grayscale: bool = False) -> np.ndarray:
    """Read image files into a float32 array (N, C, H, W) scaled to [0, 1]."""
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover
        raise ImportError("Reading image files needs Pillow: pip install 'mtlkit[images]'.") from exc
    arrs = []
    for p in paths:
        full = Path(root) / p if root is not None else Path(p)
        if not full.exists():
            raise FileNotFoundError(f"Image file not found: {str(full)!r}.")
        with Image.open(full) as opened:
            im = opened.convert("L" if grayscale else "RGB")
            if size is not None:
                im = im.resize((size[1], size[0]))
            a = np.asarray(im, dtype=np.float32) / 255.0
        arrs.append(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))
    shapes = {a.shape for a in arrs}
    if len(shapes) > 1:
        raise ValueError(f"Images have different sizes {sorted(shapes)[:3]}; set image_size to resize them.")
    return np.stack(arrs)
