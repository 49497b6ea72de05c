"""Real tables in: column types, categorical encoders, missing values, class labels.

A table is read as it is. Each feature column gets a type, inferred or declared
(``features: {zip: categorical, age: numeric}``):

==============  =============================================================================
``numeric``     missing values imputed with the training median, plus a 0/1 missing-indicator
                column when the training split had any; standardised on the training split
``boolean``     True/False, yes/no, 1/0 (any case) -> 0/1, then as numeric
``datetime``    parsed, split into numeric parts (year, month, day, weekday, hour, days since
                1970), then as numeric
``categorical`` one-hot (``onehot_max`` categories or fewer) or an index into a learned
                embedding (:class:`~mtlkit.data.embedding.TabularInput`, part of the model);
                index 0 is the "unknown" bucket (categories never seen in training, or seen
                fewer than ``min_count`` times for an embedding), 1 is "missing"
``text``        tokenised (a tokenizer fitted on the training split, see :mod:`mtlkit.data.text`)
                into ``max_length`` columns of token IDs read by a text trunk
                (:mod:`mtlkit.architectures.text`); only when declared: a column of long, distinct,
                multi-word strings is never read as text silently (a warning suggests declaring it)
``id``          not a feature: carried through to the predictions
==============  =============================================================================

:class:`TablePreprocessor` is fitted on the training split only and is stored as JSON (in
``model.json``); the learned embeddings are model weights (safetensors). Nothing is pickled.
The same fitted object encodes the rows for training, ``mtlkit predict``, ``mtlkit evaluate
--data``, the Python API, the GBDT baselines (:meth:`TablePreprocessor.gbdt_matrix`) and the
exported graphs.

>>> import pandas as pd
>>> df = pd.DataFrame({"size": [1.0, None, 3.0, 4.0], "colour": ["red", "blue", None, "red"]})
>>> pre = TablePreprocessor(infer_types(df)).fit(df)
>>> pre.feature_names
['size', 'size=missing', 'colour=<unknown>', 'colour=<missing>', 'colour=red', 'colour=blue']
>>> row = pre.transform(pd.DataFrame({"size": [None], "colour": ["green"]}))  # green: unknown
>>> [round(float(v), 2) for v in row[0]]
[0.23, 1.0, 1.0, 0.0, 0.0, 0.0]
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mtlkit.tasks import Task

__all__ = ["COLUMN_TYPES", "TableOptions", "TablePreprocessor", "category_keys", "check_frame", "fit_labels",
           "infer_types", "labels_from_frame", "onnx_feed", "resolve_types", "short"]

COLUMN_TYPES = ("numeric", "categorical", "boolean", "datetime", "text", "id")
DATETIME_PARTS = ("year", "month", "day", "weekday", "hour", "days")
UNKNOWN, MISSING = 0, 1  # the two reserved indices of every categorical column
_TRUE = frozenset({"true", "t", "yes", "y", "1", "1.0"})
_FALSE = frozenset({"false", "f", "no", "n", "0", "0.0"})
_AFFIRMATIVE = frozenset({"1", "true", "t", "yes", "y", "positive", "pos"})
#: cells longer than this are refused (reported by position and length, never echoed)
MAX_CELL_CHARS = 100_000


def short(value: Any, limit: int = 40) -> str:
    """``repr(value)`` cut to ``limit`` characters (long cells are never echoed whole)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit - 12]}...' ({len(str(value)):,} characters)"


def names(values: Any) -> list[Any]:
    """Column names or values for a message: as they are, a long one cut (:func:`short`)."""
    return [v if len(str(v)) <= 60 else short(v) for v in values]


@dataclass(frozen=True)
class TableOptions:
    """How categorical columns are encoded (recorded with the fitted preprocessing).

    Args:
        onehot_max: one-hot encode a categorical column with at most this many categories in
            the training split; above it, a learned embedding.
        min_count: an embedded category seen fewer times in the training split goes to the
            unknown bucket (so the unknown embedding is trained too).
        embedding_dim: the width of every embedding (``None``: ``min(32, round(1.6 K^0.56))``
            for K categories).
        max_categories: a categorical column with more distinct values is refused (hash it or
            use an ID embedding model instead).
        standardize: standardise numeric columns on the training split.
        text: how ``text`` columns are tokenised (the mapping of
            :meth:`mtlkit.data.text.TextOptions.from_mapping`; ``None``: the defaults).
    """

    onehot_max: int = 16
    min_count: int = 5
    embedding_dim: int | None = None
    max_categories: int = 1_000_000
    standardize: bool = True
    text: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        for name, low in (("onehot_max", 0), ("min_count", 1), ("max_categories", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"The {name!r} parameter of TableOptions must be an integer >= {low}. "
                                 f"Got {value!r}.")
        if self.embedding_dim is not None and (not isinstance(self.embedding_dim, int) or self.embedding_dim < 1):
            raise ValueError(f"The 'embedding_dim' parameter of TableOptions must be a positive integer or "
                             f"None. Got {self.embedding_dim!r}.")


# ---------------------------------------------------------------------------- checks
def check_frame(df: pd.DataFrame, source: str = "the table") -> None:
    """Refuse duplicate column names and over-long cells or column names (reported by
    position and length, never echoed)."""
    labels = [str(c) for c in df.columns]
    for j, c in enumerate(labels):
        if len(c) > 1000:
            raise ValueError(f"Column {j} of {source} has a name of {len(c):,} characters (limit 1,000); is "
                             f"the file a table with a header row?")
    dup = list(dict.fromkeys(c for c in df.columns[df.columns.duplicated()]))
    if dup:
        raise ValueError(f"Column(s) {names(dup)} appear twice (duplicate names) in {source}; rename "
                         f"or drop the copies.")
    for j, c in enumerate(df.columns):
        col = df[c]
        if pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
            continue
        if pd.api.types.is_datetime64_any_dtype(col):
            continue
        lengths = col.map(lambda v: len(v) if isinstance(v, str) else 0, na_action="ignore")
        if len(lengths) and float(lengths.max(skipna=True) or 0) > MAX_CELL_CHARS:
            i = int(np.nanargmax(lengths.to_numpy(dtype=np.float64, na_value=0)))
            raise ValueError(f"The cell at row {i}, column {j} ({short(str(c))}) of {source} holds "
                             f"{int(lengths.iloc[i]):,} characters (limit {MAX_CELL_CHARS:,}); is the file "
                             f"damaged or not delimited as expected?")


# ---------------------------------------------------------------------------- types
def _is_stringy(col: pd.Series) -> bool:
    return pd.api.types.is_string_dtype(col) or pd.api.types.is_object_dtype(col)


def infer_types(df: pd.DataFrame, columns: Sequence[str] | None = None) -> dict[str, str]:
    """A type per column: bool -> boolean, datetime -> datetime, numbers -> numeric (a
    warning suggests declaring integer codes with few distinct values), text of numbers ->
    numeric, text of dates -> datetime, other text -> categorical; a text column with a
    distinct value in every row -> id (with a warning)."""
    out: dict[str, str] = {}
    for c in list(df.columns) if columns is None else columns:
        col = df[c]
        if pd.api.types.is_bool_dtype(col):
            out[c] = "boolean"
        elif pd.api.types.is_datetime64_any_dtype(col):
            out[c] = "datetime"
        elif pd.api.types.is_numeric_dtype(col):
            out[c] = "numeric"
            values = col.dropna()
            k = values.nunique()
            if pd.api.types.is_integer_dtype(col) and 2 < k <= 10 and len(values) > 4 * k:
                warnings.warn(f"Feature column {short(c)} holds integers with {k} distinct values; it is read "
                              f"as numeric. If the numbers are codes, declare it categorical "
                              f"(data.features: {{{c}: categorical}}).", stacklevel=2)
        else:
            out[c] = _infer_text(df[c], c)
    return out


def _infer_text(col: pd.Series, name: Any) -> str:
    keys = category_keys(col)
    present = keys[keys != None]  # noqa: E711 (object array)
    if len(present) == 0:
        return "categorical"
    distinct = pd.unique(present.astype(str))  # each distinct value once: fast on large tables
    text = pd.Series(distinct, dtype=object)
    if pd.to_numeric(text, errors="coerce").notna().all():
        return "numeric"
    low = text.str.lower()
    if low.isin(_TRUE | _FALSE).all() and low.nunique() <= 2:
        return "boolean"
    if text.str.contains(r"^\d{4}-\d{1,2}-\d{1,2}", regex=True).all():
        parsed = pd.to_datetime(text, errors="coerce", format="mixed")
        if parsed.notna().all():
            return "datetime"
    if len(present) > 20 and len(distinct) == len(present):
        if _looks_like_text(text):
            warnings.warn(f"Feature column {short(name)} holds free text (long, distinct, several words per "
                          f"value): it is read as an ID (not a feature). Declare it text "
                          f"(data.features: {{{name}: text}}) to tokenise it for a text trunk.", stacklevel=3)
            return "id"
        warnings.warn(f"Feature column {short(name)} has a distinct value in every row: it is read as an ID "
                      f"(carried to the predictions, not a feature). Declare its type in data.features to "
                      f"change that.", stacklevel=3)
        return "id"
    return "categorical"


def _looks_like_text(values: pd.Series) -> bool:
    """Long strings of several words: free text rather than categories or IDs."""
    sample = values.iloc[:1000].astype(str)
    return bool(sample.str.len().mean() >= 20 and (sample.str.count(" ") >= 2).mean() >= 0.5)


def resolve_types(df: pd.DataFrame, features: Sequence[str] | Mapping[str, str] | None, exclude: Sequence[str],
                  *, source: str = "the table") -> dict[str, str]:
    """The feature columns and their types: declared (a mapping; ``None`` values inferred),
    listed (inferred) or every column but ``exclude`` (inferred)."""
    declared: dict[str, str | None]
    if features is None:
        declared = {c: None for c in df.columns if c not in set(exclude)}
    elif isinstance(features, Mapping):
        declared = dict(features)
    else:
        declared = {c: None for c in features}
    missing = [c for c in declared if c not in df.columns]
    if missing:
        raise KeyError(f"Feature column(s) {names(missing)} not found in {source}. Columns: "
                       f"{names(list(df.columns)[:30])}.")
    overlap = [c for c in declared if c in set(exclude)]
    if overlap:
        raise ValueError(f"Column(s) {sorted(overlap)} are both features and labels.")
    for c, t in declared.items():
        if t is not None and t not in COLUMN_TYPES:
            raise ValueError(f"Feature column {short(c)}: unknown type {t!r}; choose from {', '.join(COLUMN_TYPES)}.")
    inferred = infer_types(df, [c for c, t in declared.items() if t is None])
    types = {c: (t if t is not None else inferred[c]) for c, t in declared.items()}
    if not any(t != "id" for t in types.values()):
        raise ValueError(f"{source} has no feature columns besides the label and ID columns.")
    return types


# ---------------------------------------------------------------------------- values
def category_keys(col: pd.Series) -> np.ndarray:
    """The category of each cell as a string (``None`` when missing: NaN, None or an empty
    string). Numbers are written without a trailing ``.0`` so that ``850`` and ``"850"``
    are one category."""
    n = len(col)
    if pd.api.types.is_bool_dtype(col) and not col.isna().any():
        return np.where(col.to_numpy(dtype=bool), "True", "False").astype(object)
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        v = col.to_numpy(dtype=np.float64, na_value=np.nan)
        miss = ~np.isfinite(v)
        ints = ~miss & (v == np.round(v)) & (np.abs(v) < 2 ** 53)
        out = np.empty(n, dtype=object)
        if ints.any():
            out[ints] = v[ints].astype(np.int64).astype(str)
        rest = ~miss & ~ints
        if rest.any():
            out[rest] = [repr(float(x)) for x in v[rest]]
        out[miss] = None
        return out
    miss = col.isna().to_numpy()
    if pd.api.types.is_string_dtype(col) and not pd.api.types.is_object_dtype(col):  # text only: vectorised
        out = col.to_numpy(dtype=object, na_value=None).copy()
        out[miss | (col.fillna("x").to_numpy(dtype=object) == "")] = None
        return out
    vals = col.to_numpy(dtype=object)
    out = np.empty(n, dtype=object)
    for i in np.flatnonzero(~miss):
        v = vals[i]
        if isinstance(v, (bool, np.bool_)):
            out[i] = "True" if v else "False"
        elif isinstance(v, (float, np.floating)) and float(v).is_integer() and abs(float(v)) < 2 ** 53:
            out[i] = str(int(v))
        else:
            out[i] = v if isinstance(v, str) else str(v)
    out[miss] = None
    empty = np.array([s == "" for s in out], dtype=bool) if n else np.zeros(0, dtype=bool)
    out[empty] = None
    return out


def _numbers(col: pd.Series, name: Any, kind: str, source: str, *, strict: bool) -> np.ndarray:
    """A numeric or boolean column as float64 with NaN for missing (infinities too)."""
    if kind == "boolean":
        if pd.api.types.is_bool_dtype(col):
            return col.astype("float64").to_numpy(dtype=np.float64, na_value=np.nan)
        keys = category_keys(col)
        out = np.full(len(col), np.nan)
        for i, k in enumerate(keys):
            if k is None:
                continue
            low = k.lower()
            if low in _TRUE:
                out[i] = 1.0
            elif low in _FALSE:
                out[i] = 0.0
            elif strict:
                raise ValueError(f"Boolean feature column {short(name)} of {source} has value {short(k)} at row {i}; "
                                 f"use true/false, yes/no or 1/0.")
        return out
    if pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
        v = col.astype("float64").to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        keys = pd.Series(category_keys(col), dtype=object)
        num = pd.to_numeric(keys, errors="coerce")
        bad = num.isna() & keys.notna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            if strict:
                raise ValueError(f"Feature column {short(name)} of {source} is numeric but has value "
                                 f"{short(keys.iloc[i])} (row {i}); declare its type (data.features: "
                                 f"{{{name}: categorical}}) if it holds categories.")
            warnings.warn(f"Numeric feature column {short(name)}: {int(bad.sum())} non-numeric value(s) "
                          f"(e.g. {short(keys.iloc[i])}) read as missing.", stacklevel=3)
        v = num.to_numpy(dtype=np.float64, na_value=np.nan)
    v = v.copy()
    v[~np.isfinite(v)] = np.nan
    return v


def _datetime_parts(col: pd.Series) -> np.ndarray:
    """(N, 6) float64: year, month, day, weekday, hour, days since 1970; NaN when missing."""
    if pd.api.types.is_datetime64_any_dtype(col):
        d = pd.to_datetime(col)
    else:
        keys = pd.Series(category_keys(col), dtype=object)
        d = pd.to_datetime(keys, errors="coerce", format="mixed")
    if getattr(d.dt, "tz", None) is not None:
        d = d.dt.tz_convert("UTC").dt.tz_localize(None)
    epoch = (d - pd.Timestamp("1970-01-01")).dt.total_seconds() / 86400.0
    parts = [d.dt.year, d.dt.month, d.dt.day, d.dt.day_of_week, d.dt.hour + d.dt.minute / 60.0, epoch]
    return np.stack([p.astype("float64").to_numpy(dtype=np.float64, na_value=np.nan) for p in parts], axis=1)


# ---------------------------------------------------------------------------- the preprocessor
@dataclass
class _Column:
    """One fitted feature column (its JSON is one entry of ``columns``)."""

    name: Any
    type: str
    median: list[float] = field(default_factory=list)
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    indicator: bool = False
    encoding: str | None = None  # categorical: onehot | embedding
    categories: list[str] = field(default_factory=list)
    dim: int | None = None
    # text: the tokenizer's JSON, its vocabulary size and padding ID, the token slots
    tokenizer: str | None = None
    vocab: int | None = None
    pad_id: int | None = None
    max_length: int | None = None
    truncation: str | None = None

    @property
    def width(self) -> int:
        """Numeric sub-columns (datetime parts: 6)."""
        return len(DATETIME_PARTS) if self.type == "datetime" else 1

    @property
    def cardinality(self) -> int:
        return len(self.categories) + 2

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in dataclasses.asdict(self).items() if v not in (None, [])}
        d["indicator"] = self.indicator
        return d


class TablePreprocessor:
    """Encode a table's feature columns as one float32 matrix, fitted on the training rows.

    The matrix is ``[numeric (standardised) | missing indicators | one-hot | embedding
    indices]``; the embedding indices (float, exact) are read by
    :class:`~mtlkit.data.embedding.TabularInput`, the model's input module
    (:attr:`input_spec`).

    Args:
        types: ``{column: type}`` (:func:`resolve_types`); ``id`` columns are carried only.
        options: :class:`TableOptions`.
    """

    def __init__(self, types: Mapping[Any, str], options: TableOptions | None = None) -> None:
        self.types = dict(types)
        self.options = options or TableOptions()
        self.columns_: list[_Column] | None = None
        #: the decoder input slots of generation tasks (mtlkit.architectures.text_decoder), after the text slots
        self.decoder_: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ fit
    def fit(self, df: pd.DataFrame, *, source: str = "the training split") -> TablePreprocessor:
        opts = self.options
        cols: list[_Column] = []
        for name, kind in self.types.items():
            if kind == "id":
                continue
            if name not in df.columns:
                raise KeyError(f"Feature column(s) [{short(name)}] not found in {source}.")
            col = df[name]
            if kind == "categorical":
                cols.append(self._fit_categorical(name, col, source))
                continue
            if kind == "text":
                cols.append(self._fit_text(name, col, source))
                continue
            v = _datetime_parts(col) if kind == "datetime" else _numbers(col, name, kind, source, strict=True)[:, None]
            if kind == "datetime":
                keys = category_keys(col) if not pd.api.types.is_datetime64_any_dtype(col) else None
                bad = np.isnan(v[:, 0]) & (col.notna().to_numpy() if keys is None else (keys != None))  # noqa: E711
                if bad.any():
                    i = int(np.flatnonzero(bad)[0])
                    raise ValueError(f"Datetime feature column {short(name)} of {source} has value "
                                     f"{short(col.iloc[i])} (row {i}) that is not a date.")
            med, mean, std = [], [], []
            for j in range(v.shape[1]):
                obs = v[:, j][~np.isnan(v[:, j])]
                m = float(np.median(obs)) if len(obs) else 0.0
                filled = np.where(np.isnan(v[:, j]), m, v[:, j])
                mu = float(filled.mean()) if opts.standardize and len(filled) else 0.0
                sd = float(filled.std()) if opts.standardize and len(filled) else 1.0
                med.append(m)
                mean.append(mu)
                std.append(sd if sd > 1e-12 else 1.0)
            cols.append(_Column(name, kind, med, mean, std, indicator=bool(np.isnan(v[:, 0]).any())))
        self.columns_ = cols
        return self

    def _fit_categorical(self, name: Any, col: pd.Series, source: str) -> _Column:
        opts = self.options
        keys = category_keys(col)
        present = pd.Series(keys[keys != None], dtype=object)  # noqa: E711
        counts = present.value_counts(sort=False)
        k = len(counts)
        if k > opts.max_categories:
            raise ValueError(f"Categorical feature column {short(name)} of {source} has {k:,} distinct values (more "
                             f"than {opts.max_categories:,}); hash it into fewer buckets or model it with an ID "
                             f"embedding, or declare it 'id' to leave it out.")
        declared = self.types.get(name) == "categorical"
        if declared and k > 1 and k == len(present) and len(present) > 20:
            raise ValueError(f"Categorical feature column {short(name)} of {source} has a distinct value in every "
                             f"row ({k:,}): it cannot generalise. Declare it 'id' (carried to the predictions) "
                             f"or leave it out.")
        order = sorted(counts.items(), key=lambda kv: (-int(kv[1]), str(kv[0])))
        if k <= opts.onehot_max:
            return _Column(name, "categorical", encoding="onehot", categories=[str(c) for c, _ in order])
        kept = [str(c) for c, n in order if n >= opts.min_count]
        card = len(kept) + 2
        dim = opts.embedding_dim or min(32, max(2, round(1.6 * card ** 0.56)))
        return _Column(name, "categorical", encoding="embedding", categories=kept, dim=dim)

    def _fit_text(self, name: Any, col: pd.Series, source: str) -> _Column:
        from mtlkit.data.text import TextOptions, fit_tokenizer, pad_id_of, texts_of

        opts = TextOptions.from_mapping(self.options.text)
        texts, _ = texts_of(col, name, source)
        tok = fit_tokenizer(texts, opts)
        return _Column(name, "text", tokenizer=tok.to_str(), vocab=int(tok.get_vocab_size(with_added_tokens=True)),
                       pad_id=pad_id_of(tok, f"The tokenizer of text column {short(name)}"),
                       max_length=opts.max_length, truncation=opts.truncation)

    def text_ids(self, c: _Column, col: pd.Series, source: str = "the input") -> np.ndarray:
        """(N, max_length) int64 token IDs of a text column (padded with its padding ID)."""
        from mtlkit.data.text import encode_texts, texts_of, tokenizer_from_json

        texts, empty = texts_of(col, c.name, source)
        if empty.any():
            warnings.warn(f"Text column {short(c.name)}: {int(empty.sum()):,} missing or empty value(s) of {source} "
                          f"(first at row {int(np.flatnonzero(empty)[0])}) are encoded as an empty text.",
                          stacklevel=3)
        cache = self.__dict__.setdefault("_tokenizers", {})
        if c.name not in cache:
            cache[c.name] = tokenizer_from_json(str(c.tokenizer))
        return encode_texts(cache[c.name], texts, max_length=int(c.max_length or 1), pad_id=int(c.pad_id or 0),
                            truncation=c.truncation or "warn", column=c.name, source=source)

    # ------------------------------------------------------------------ shapes
    @property
    def fitted(self) -> list[_Column]:
        if self.columns_ is None:
            raise RuntimeError("TablePreprocessor is not fitted yet; call fit first.")
        return self.columns_

    @property
    def numeric(self) -> list[_Column]:
        return [c for c in self.fitted if c.type not in ("categorical", "text")]

    @property
    def onehot(self) -> list[_Column]:
        return [c for c in self.fitted if c.encoding == "onehot"]

    @property
    def embedded(self) -> list[_Column]:
        return [c for c in self.fitted if c.encoding == "embedding"]

    @property
    def text(self) -> list[_Column]:
        return [c for c in self.fitted if c.type == "text"]

    @property
    def ids(self) -> list[Any]:
        return [c for c, t in self.types.items() if t == "id"]

    @property
    def features(self) -> list[Any]:
        """The raw feature columns a table must have."""
        return [c for c, t in self.types.items() if t != "id"]

    @property
    def dense_width(self) -> int:
        return (sum(c.width for c in self.numeric) + sum(1 for c in self.numeric if c.indicator)
                + sum(c.cardinality for c in self.onehot))

    @property
    def width(self) -> int:
        return (self.dense_width + len(self.embedded) + sum(int(c.max_length or 0) for c in self.text)
                + sum(int(e["max_length"]) for e in self.decoder_))

    @property
    def feature_names(self) -> list[str]:
        """A name per column of the encoded matrix."""
        names: list[str] = []
        for c in self.numeric:
            names += [f"{c.name}.{p}" for p in DATETIME_PARTS] if c.type == "datetime" else [str(c.name)]
        names += [f"{c.name}=missing" for c in self.numeric if c.indicator]
        for c in self.onehot:
            names += [f"{c.name}=<unknown>", f"{c.name}=<missing>"] + [f"{c.name}={v}" for v in c.categories]
        names += [f"{c.name}#index" for c in self.embedded]
        for c in self.text:
            names += [f"{c.name}#token{i}" for i in range(int(c.max_length or 0))]
        for e in self.decoder_:
            names += [f"{e['column']}#target{i}" for i in range(int(e["max_length"]))]
        return names

    @property
    def input_spec(self) -> dict[str, Any] | None:
        """The spec of the model's input module (``None``: no embedded or text column). Text
        columns add ``text``: one ``{column, vocab, max_length, pad_id}`` per column, their
        token slots following the embedded indices in that order."""
        if not self.embedded and not self.text:
            return None
        spec: dict[str, Any] = {
            "dense": self.dense_width, "cardinalities": [c.cardinality for c in self.embedded],
            "dims": [int(c.dim or 1) for c in self.embedded], "columns": [str(c.name) for c in self.embedded]}
        if self.text:
            spec["text"] = [{"column": str(c.name), "vocab": int(c.vocab or 0), "max_length": int(c.max_length or 0),
                             "pad_id": int(c.pad_id or 0)} for c in self.text]
        if self.decoder_:
            spec["decoder"] = [{k: e[k] for k in ("task", "column", "vocab", "max_length", "pad_id")}
                               for e in self.decoder_]
        return spec

    # ------------------------------------------------------------------ transform
    def check_columns(self, df: pd.DataFrame, source: str = "the input") -> None:
        missing = [c for c in self.features if c not in df.columns]
        if missing:
            raise KeyError(f"Feature column(s) {names(missing)} not found in {source}. Columns: "
                           f"{names(list(df.columns)[:30])}.")

    def transform(self, df: pd.DataFrame, *, source: str = "the input") -> np.ndarray:
        """The encoded float32 matrix. Unseen categories go to the unknown bucket (counted in
        a warning), a missing value is imputed (never a rejected row)."""
        self.check_columns(df, source)
        n = len(df)
        blocks: list[np.ndarray] = []
        indicators: list[np.ndarray] = []
        for c in self.numeric:
            v = self.numeric_values(c, df[c.name], source)
            miss = np.isnan(v)
            v = np.where(miss, np.asarray(c.median)[None, :], v)
            blocks.append((v - np.asarray(c.mean)[None, :]) / np.asarray(c.std)[None, :])
            if c.indicator:
                indicators.append(miss[:, :1].astype(np.float64))
        blocks += indicators
        for c in self.onehot:
            idx = self.category_index(c, df[c.name], source)
            blocks.append((idx[:, None] == np.arange(c.cardinality)[None, :]).astype(np.float64))
        for c in self.embedded:
            blocks.append(self.category_index(c, df[c.name], source)[:, None].astype(np.float64))
        for c in self.text:
            blocks.append(self.text_ids(c, df[c.name], source).astype(np.float64))
        if self.decoder_:
            from mtlkit.data.text import decoder_slots

            blocks += [decoder_slots(self, e, df, source).astype(np.float64) for e in self.decoder_]
        if not blocks:
            return np.zeros((n, 0), dtype=np.float32)
        return np.concatenate(blocks, axis=1).astype(np.float32)

    def numeric_values(self, c: _Column, col: pd.Series, source: str) -> np.ndarray:
        """(N, width) float64 with NaN for missing: the raw numbers of a numeric, boolean or
        datetime column (what the exported graphs take)."""
        if c.type == "datetime":
            return _datetime_parts(col)
        return _numbers(col, c.name, c.type, source, strict=False)[:, None]

    def category_index(self, c: _Column, col: pd.Series, source: str = "the input") -> np.ndarray:
        keys = category_keys(col)
        lookup = {v: i + 2 for i, v in enumerate(c.categories)}
        codes = pd.Series(keys, dtype=object).map(lookup)
        idx = codes.fillna(UNKNOWN).to_numpy(dtype=np.int64).copy()
        idx[np.array([k is None for k in keys], dtype=bool)] = MISSING
        unseen = (idx == UNKNOWN)
        if unseen.any():
            first = keys[np.flatnonzero(unseen)[0]]
            what = "never seen in training" if c.encoding == "onehot" else \
                f"never seen in training or seen fewer than {self.options.min_count} times"
            warnings.warn(f"Categorical column {short(c.name)}: {int(unseen.sum())} value(s) of {source} {what} "
                          f"(e.g. {short(first)}) went to the unknown bucket.", stacklevel=3)
        return idx

    def gbdt_matrix(self, df: pd.DataFrame, *, source: str = "the input") -> tuple[np.ndarray, np.ndarray]:
        """``(X, categorical mask)`` for scikit-learn's HistGradientBoosting: numeric columns
        raw with NaN (native missing values), categorical columns as their category index
        (unknown 0, missing -> NaN), the same fitted vocabularies as the neural model. Text
        columns are left out (token IDs are no features for trees)."""
        self.check_columns(df, source)
        blocks: list[np.ndarray] = []
        cat: list[bool] = []
        for c in self.numeric:
            v = self.numeric_values(c, df[c.name], source)
            blocks.append(v)
            cat += [False] * v.shape[1]
        for c in self.onehot + self.embedded:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                idx = self.category_index(c, df[c.name], source).astype(np.float64)
            idx[idx == MISSING] = np.nan
            blocks.append(idx[:, None])
            cat.append(c.cardinality <= 250)  # HistGradientBoosting's native categories (<= 255 bins)
        if not blocks:
            raise ValueError(f"{source} has no numeric or categorical feature for a gradient-boosted baseline "
                             f"(text columns are left out of it).")
        return np.concatenate(blocks, axis=1), np.asarray(cat, dtype=bool)

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        return {"kind": "table", "version": 1, "options": dataclasses.asdict(self.options),
                "types": [[str(c), t] for c, t in self.types.items()],
                "columns": [c.to_dict() for c in self.fitted], "width": self.width,
                "feature_names": self.feature_names, "input": self.input_spec,
                **({"decoder": [dict(e) for e in self.decoder_]} if self.decoder_ else {})}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TablePreprocessor:
        if d.get("kind") != "table":
            raise ValueError(f"Not a table preprocessing record (kind {d.get('kind')!r}).")
        pre = cls({c: t for c, t in d["types"]}, TableOptions(**d.get("options", {})))
        pre.columns_ = [_Column(**c) for c in d["columns"]]
        pre.decoder_ = [dict(e) for e in d.get("decoder") or []]
        return pre


def is_table_preprocessing(pre: Any) -> bool:
    return isinstance(pre, Mapping) and pre.get("kind") == "table"


# ---------------------------------------------------------------------------- labels
def _natural(keys: Sequence[str]) -> list[str]:
    """Numbers in numeric order, else text order."""
    try:
        return sorted(keys, key=float)
    except ValueError:
        return sorted(keys)


def _original(col: pd.Series, keys: np.ndarray, key: str) -> Any:
    """The first original value of ``col`` whose key is ``key`` (an int stays an int)."""
    v = col.iloc[int(np.flatnonzero(keys == key)[0])]
    if isinstance(v, (np.integer, np.floating)) and float(v).is_integer():
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v.item() if hasattr(v, "item") else v


def _label_keys(col: pd.Series, task: Task) -> np.ndarray:
    keys = category_keys(col)
    if task.missing_value is not None:
        sentinel = category_keys(pd.Series([task.missing_value]))[0]
        keys[keys == sentinel] = None
    return keys


def fit_labels(df: pd.DataFrame, tasks: Sequence[Task], *, source: str = "the table") -> list[Task]:
    """The tasks with the class names of their label columns (binary, multiclass): labels
    that are not the indices themselves (strings, other integers, two values of any type)
    get ``classes`` (binary: ``(negative, positive)``, the positive class stated or inferred
    and recorded). Other tasks are returned as they are."""
    out = []
    for t in tasks:
        kind = t.task_kind
        if not kind.class_per_sample or t.label_columns[0] not in df.columns:
            out.append(t)
            continue
        col = df[t.label_columns[0]]
        keys = _label_keys(col, t)
        present = [k for k in dict.fromkeys(keys[keys != None])]  # noqa: E711
        if t.classes is not None:
            known = {str(c) for c in t.classes}
            unknown = [k for k in present if k not in known]
            if unknown:
                raise ValueError(f"Label column {short(t.label_columns[0])} of task {t.name!r} has value "
                                 f"{short(unknown[0])}, which is not one of the task's classes {list(t.classes)[:20]}.")
            out.append(t)
            continue
        if kind.binary_targets:
            out.append(_fit_binary(t, col, keys, present, source))
        else:
            out.append(_fit_multiclass(t, col, keys, present, source))
    return out


def _fit_binary(t: Task, col: pd.Series, keys: np.ndarray, present: list[str], source: str) -> Task:
    c = t.label_columns[0]
    if len(present) > 2:
        shown = ", ".join(short(k) for k in _natural(present)[:5])
        raise ValueError(f"Task {t.name!r} is binary but its label column {short(c)} in {source} holds "
                         f"{len(present)} distinct values ({shown}{' ...' if len(present) > 5 else ''}); use "
                         f"kind multiclass.")
    if len(present) < 2:
        raise ValueError(f"Task {t.name!r}: its label column {short(c)} holds a single class "
                         f"({short(present[0]) if present else 'none'}); a classifier needs at least two.")
    if t.positive_class is not None:
        pos = str(category_keys(pd.Series([t.positive_class]))[0])
        if pos not in present:
            raise ValueError(f"Task {t.name!r}: positive_class {t.positive_class!r} is not a value of its label "
                             f"column {short(c)} ({', '.join(short(k) for k in present)}).")
    elif set(present) <= {"0", "1"}:
        return t  # already 0/1
    elif set(present) == {"True", "False"}:
        pos = "True"
    else:
        yes = [k for k in present if k.lower() in _AFFIRMATIVE]
        if len(yes) == 1:
            pos = yes[0]
        else:
            pos = _natural(present)[1]
            warnings.warn(f"Task {t.name!r}: positive class inferred as {short(pos)} (the second of the two values "
                          f"in sorted order); state positive_class to choose.", stacklevel=3)
    neg = next(k for k in present if k != pos)
    classes = (_original(col, keys, neg), _original(col, keys, pos))
    return dataclasses.replace(t, classes=classes, positive_class=classes[1])


def _fit_multiclass(t: Task, col: pd.Series, keys: np.ndarray, present: list[str], source: str) -> Task:
    c = t.label_columns[0]
    try:
        nums = [float(k) for k in present]
    except ValueError:
        nums = []
    n = t.num_classes
    if nums and all(v.is_integer() and 0 <= v < (n or 0) for v in nums):
        return t  # already the indices 0..C-1
    names = _natural(present)
    if n is not None and len(names) != n:
        raise ValueError(f"Task {t.name!r}: its label column {short(c)} in {source} holds {len(names)} distinct "
                         f"labels ({', '.join(short(k) for k in names[:6])}{' ...' if len(names) > 6 else ''}) "
                         f"but num_classes is {n}; fix num_classes or name every class with 'classes'.")
    classes = tuple(_original(col, keys, k) for k in names)
    return dataclasses.replace(t, classes=classes, num_classes=len(classes))


def labels_from_frame(df: pd.DataFrame, tasks: Sequence[Task], *, source: str = "the table"
                      ) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(targets, masks)`` of the label columns; a task with ``classes`` maps its values to
    class indices (a value training never saw is an error naming it and the task); the
    other tasks read numbers as :func:`~mtlkit.data._table.targets_from_frame` does."""
    import torch

    from mtlkit.data._table import targets_from_frame

    # generation tasks: their targets are the decoder input slots of the encoded table (data.text)
    tasks = [t for t in tasks if not getattr(t.task_kind, "targets_from_inputs", False)]
    plain = [t for t in tasks if t.classes is None]
    targets, masks = targets_from_frame(df, plain, source=source) if plain else ({}, {})
    for t in tasks:
        if t.classes is None:
            continue
        c = t.label_columns[0]
        if c not in df.columns:
            raise KeyError(f"Label column(s) [{short(c)}] for task {t.name!r} not found in {source}. "
                           f"Columns: {names(list(df.columns)[:30])}.")
        keys = _label_keys(df[c], t)
        lookup = {str(k): i for i, k in enumerate(t.classes)}
        miss = np.array([k is None for k in keys], dtype=bool)
        idx = np.array([lookup.get(k, -1) if k is not None else 0 for k in keys], dtype=np.int64)
        bad = (idx < 0) & ~miss
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"Label value {short(keys[i])} of task {t.name!r} (column {short(c)}, row {i}) in {source} "
                             f"was never seen in training; the task's classes are {list(t.classes)[:20]}.")
        targets[t.name], masks[t.name] = t.task_kind.targets_from_columns(
            t, idx[:, None].astype(np.float64), miss[:, None])
        if t.task_kind.has_classes:
            targets[t.name] = targets[t.name].to(torch.long)
    return targets, masks


def fit_target_scaling(tasks: Sequence[Task], targets: Mapping[str, Any], masks: Mapping[str, Any],
                       train_idx: np.ndarray) -> list[Task]:
    """Regression tasks (``standardize`` not ``False``) with the mean and standard deviation
    of their labelled training targets; a warning names a target left unscaled whose scale
    is more than 100 times another task's."""
    out = []
    scales: dict[str, float] = {}
    for t in tasks:
        kind = t.task_kind
        if kind.is_classification or kind.dense or kind.pairwise or t.name not in targets:
            out.append(t)
            continue
        y = np.asarray(targets[t.name], dtype=np.float64)[train_idx]
        m = np.asarray(masks[t.name], dtype=bool)[train_idx]
        y, m = y.reshape(len(y), -1), m.reshape(len(m), -1)
        means, stds = [], []
        for j in range(y.shape[1]):
            v = y[m[:, j], j]
            means.append(float(v.mean()) if len(v) else 0.0)
            sd = float(v.std()) if len(v) > 1 else 1.0
            stds.append(sd if sd > 1e-12 and math.isfinite(sd) else 1.0)
        if t.standardize is False:
            scales[t.name] = max(max(abs(a) for a in means), max(stds))
            out.append(t)
        else:
            out.append(dataclasses.replace(t, target_mean=tuple(means), target_std=tuple(stds)))
    for name, s in scales.items():
        others = [t for t in out if t.name != name]
        ref = [max(max(t.target_std or (1.0,)), 1.0) if t.target_mean is not None else 1.0 for t in others]
        for other, r in zip(others, ref):
            if s > 100 * r or (r > 100 * s and s > 0):
                warnings.warn(f"Task {name!r}: its targets (scale {s:.3g}) are left unstandardised (standardize: "
                              f"false) and differ in scale by more than 100x from task {other.name!r} ({r:.3g}); "
                              f"its loss will dominate or vanish. Standardise it (the default) or rescale it.",
                              stacklevel=2)
                break
    return out


# ---------------------------------------------------------------------------- exported graphs
def onnx_feed(df: pd.DataFrame, pre: TablePreprocessor | Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The inputs of an exported raw-row ONNX graph for the rows of ``df``: one (N, 1) input
    per feature column, named by the column: ``float64`` with NaN for numeric and boolean
    columns, strings (``""`` = missing) for categorical ones."""
    if not isinstance(pre, TablePreprocessor):
        pre = TablePreprocessor.from_dict(pre)
    pre.check_columns(df)
    feed: dict[str, np.ndarray] = {}
    for c in pre.fitted:
        if c.type == "categorical":
            keys = category_keys(df[c.name])
            feed[str(c.name)] = np.array(["" if k is None else k for k in keys], dtype=object)[:, None]
        elif c.type == "datetime":
            raise ValueError(f"Datetime column {short(c.name)} has no raw-row ONNX input (see mtlkit.export).")
        elif c.type == "text":
            raise ValueError(f"Text column {short(c.name)} has no raw-row ONNX input: export the model itself "
                             f"(its input is the encoded matrix, token IDs included; see docs/text.md).")
        else:
            feed[str(c.name)] = pre.numeric_values(c, df[c.name], "the input")
    return feed
