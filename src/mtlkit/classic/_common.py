"""Shared helpers of the classic estimators: parameter checks, targets with missing labels.

Targets are a 2-D array ``Y`` (samples x tasks), one column per task; a missing label is
``NaN`` (or ``None`` / ``pd.NA`` in an object array) and is ignored by that task only.
Classification columns are encoded as class indices (float, ``NaN`` where missing),
regression columns keep their values.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, r2_score
from sklearn.utils.multiclass import check_classification_targets, type_of_target

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _sk_validate_data
except ImportError:  # pragma: no cover - older scikit-learn
    _sk_validate_data = None

CLASSIC_KINDS = ("classification", "regression")


def kind_alias(kind: object) -> str | None:
    """``classification``/``regression`` for an accepted ``task_kinds`` entry, else ``None``:
    one of the two classic kinds itself, or the name of an mtlkit task kind with one class
    label per sample (``binary``, ``multiclass``: classification)."""
    if not isinstance(kind, str):
        return None
    if kind in CLASSIC_KINDS:
        return kind
    from mtlkit.kinds import get_kind, kind_names  # the task kinds load only for such a name

    if kind not in kind_names():
        return None
    spec = get_kind(kind)
    return "classification" if spec.class_per_sample else None


def validate_X(estimator, X, *, reset: bool, dtype=np.float64):
    """``validate_data`` for X only (sets or checks ``n_features_in_`` / feature names)."""
    if _sk_validate_data is not None:
        return _sk_validate_data(estimator, X, reset=reset, dtype=dtype)
    return estimator._validate_data(X, reset=reset, dtype=dtype)  # pragma: no cover


# --------------------------------------------------------------------------- parameters
# (the scalar checks are mtlkit._checks: check_int, check_float, check_choice, check_bool)
def _owner(estimator) -> str:
    return type(estimator).__name__


def resolve_max_features(estimator, value, n_features: int) -> int:
    """``None`` | int >= 1 | float in (0, 1] | 'sqrt' | 'log2' -> a number of features."""
    if value is None:
        return n_features
    if isinstance(value, str) and value in ("sqrt", "log2"):
        f = np.sqrt if value == "sqrt" else np.log2
        return max(1, int(f(n_features)))
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) >= 1:
        return min(int(value), n_features)
    if (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and 0.0 < cast(float, value) <= 1.0
    ):
        return max(1, int(cast(float, value) * n_features))
    raise ValueError(
        f"The 'max_features' parameter of {_owner(estimator)} must be None, an int >= 1, "
        f"a float in (0, 1], 'sqrt' or 'log2'. Got {value!r}."
    )


def resolve_task_weights(estimator, value, n_tasks: int) -> np.ndarray:
    if value is None:
        return np.ones(n_tasks)
    w = np.asarray(value, dtype=float) if not isinstance(value, str) else np.array([np.nan])
    if (
        w.ndim != 1
        or len(w) != n_tasks
        or not np.all(np.isfinite(w))
        or np.any(w < 0)
        or not np.any(w > 0)
    ):
        raise ValueError(
            f"The 'task_weights' parameter of {_owner(estimator)} must be None or "
            f"{n_tasks} finite non-negative floats (one per task, not all zero). Got {value!r}."
        )
    return w


def resolve_task_kinds(estimator, value, n_tasks: int) -> list[str] | None:
    """Validate ``task_kinds``; ``None`` means "infer from the targets"."""
    if value is None:
        return None
    bad = (
        isinstance(value, str)
        or not isinstance(value, Sequence)
        or len(value) != n_tasks
        or any(kind_alias(k) is None for k in value)
    )
    if bad:
        raise ValueError(
            f"The 'task_kinds' parameter of {_owner(estimator)} must be None or a list of "
            f"{n_tasks} entries, each 'classification' or 'regression'. Got {value!r}."
        )
    return [cast(str, kind_alias(k)) for k in value]


# --------------------------------------------------------------------------- targets
@dataclass
class Targets:
    """Encoded targets: ``Y`` float (n, T) with NaN where missing."""

    Y: np.ndarray
    kinds: list[str]
    classes: list[np.ndarray | None]
    single_output: bool

    @property
    def n_tasks(self) -> int:
        return self.Y.shape[1]

    @property
    def n_classes(self) -> list[int]:
        return [len(c) if c is not None else 0 for c in self.classes]


def _missing_mask(Y: np.ndarray) -> np.ndarray:
    if Y.dtype.kind in "fc":
        return np.isnan(Y)
    if Y.dtype.kind in "iub":
        return np.zeros(Y.shape, dtype=bool)
    return np.asarray(pd.isna(Y), dtype=bool)


def infer_kind(column: np.ndarray) -> str:
    """'regression' when scikit-learn calls the labelled values continuous."""
    if column.dtype.kind in "fc" or column.dtype == object:
        try:
            vals = column.astype(float)
        except (TypeError, ValueError):
            return "classification"
        if not np.all(np.isfinite(vals)):
            raise ValueError("Input y contains infinity or a value too large for dtype('float64').")
        return "regression" if type_of_target(vals) == "continuous" else "classification"
    return "classification"


def encode_targets(estimator, y, kinds: list[str] | str | None) -> Targets:
    """Validate ``y`` (1-D or 2-D, NaN = missing) and encode it task by task.

    ``kinds``: a single kind for every column, a list (one per column), or ``None`` to infer
    each column's kind (``type_of_target`` 'continuous' -> regression, else classification).
    """
    name = _owner(estimator)
    if y is None:
        raise ValueError(f"{name} requires y to be passed, but the target y is None.")
    if isinstance(y, (pd.DataFrame, pd.Series)):
        y = y.to_numpy()
    Y = np.asarray(y)
    if Y.dtype.kind == "c":
        raise ValueError("Complex data not supported in y.")
    single = Y.ndim == 1
    if single:
        Y = Y.reshape(-1, 1)
    if Y.ndim != 2:
        raise ValueError(f"{name}: y must be 1-D or 2-D (samples x tasks). Got shape {Y.shape}.")
    if Y.shape[1] == 0:
        raise ValueError(f"{name}: y has no task (0 columns).")
    missing = _missing_mask(Y)
    n_tasks = Y.shape[1]
    if isinstance(kinds, str):
        kinds = [kinds] * n_tasks
    elif kinds is not None:
        kinds = resolve_task_kinds(estimator, kinds, n_tasks)
    out = np.full(Y.shape, np.nan)
    out_kinds: list[str] = []
    classes: list[np.ndarray | None] = []
    for t in range(n_tasks):
        lab = ~missing[:, t]
        col = Y[lab, t]
        if len(col) == 0:
            raise ValueError(
                f"{name}: task {t} has no labelled sample (its target column is all missing)."
            )
        kind = infer_kind(col) if kinds is None else kinds[t]
        if kind == "classification":
            if col.dtype.kind in "fc" and not np.all(np.isfinite(col.astype(float))):
                raise ValueError(
                    "Input y contains infinity or a value too large for dtype('float64')."
                )
            if col.dtype == object:
                try:
                    col = (
                        col.astype(float)
                        if all(isinstance(v, numbers.Number) for v in col)
                        else col.astype(str)
                    )
                except (TypeError, ValueError):
                    col = col.astype(str)
            check_classification_targets(col)
            cls, enc = np.unique(col, return_inverse=True)
            out[lab, t] = enc
            classes.append(cls)
        else:
            try:
                vals = col.astype(float)
            except (TypeError, ValueError) as err:
                raise ValueError(
                    f"{name}: task {t} is a regression task but its targets are not numeric."
                ) from err
            if not np.all(np.isfinite(vals)):
                raise ValueError(
                    "Input y contains infinity or a value too large for dtype('float64')."
                )
            out[lab, t] = vals
            classes.append(None)
        out_kinds.append(kind)
    return Targets(out, out_kinds, classes, single)


def check_same_length(estimator, X: np.ndarray, Y: np.ndarray) -> None:
    if X.shape[0] != Y.shape[0]:
        raise ValueError(
            f"Found input variables with inconsistent numbers of samples: "
            f"[{X.shape[0]}, {Y.shape[0]}] ({_owner(estimator)})."
        )


def stack_predictions(cols: list[np.ndarray]) -> np.ndarray:
    """Columns of possibly different dtypes -> one (n, T) array (object if they mix)."""
    kinds = {c.dtype.kind for c in cols}
    if kinds <= set("iufb"):
        dtype = np.result_type(*[c.dtype for c in cols])
    elif len({c.dtype for c in cols}) == 1:
        dtype = cols[0].dtype
    else:
        dtype = np.dtype(object)
    out = np.empty((len(cols[0]), len(cols)), dtype=dtype)
    for t, c in enumerate(cols):
        out[:, t] = c
    return out


def multitask_score(estimator, X, y, kinds: list[str]) -> float:
    """Mean over tasks of accuracy (classification) or R² (regression), labelled entries only."""
    pred = estimator.predict(X)
    Y = np.asarray(y.to_numpy() if isinstance(y, (pd.DataFrame, pd.Series)) else y)
    if Y.ndim == 1:
        Y = Y.reshape(-1, 1)
    pred = np.asarray(pred).reshape(Y.shape[0], -1)
    missing = _missing_mask(Y)
    scores = []
    for t, kind in enumerate(kinds):
        lab = ~missing[:, t]
        if not lab.any():
            continue
        if kind == "classification":
            yt, pt = Y[lab, t], pred[lab, t]
            if yt.dtype == object or pt.dtype == object:
                yt, pt = yt.astype(str), pt.astype(str)
            scores.append(accuracy_score(yt, pt))
        else:
            scores.append(r2_score(Y[lab, t].astype(float), pred[lab, t].astype(float)))
    return float(np.mean(scores)) if scores else float("nan")


def has_classification_task(estimator) -> bool:
    """``available_if`` test of ``predict_proba`` on mixed-task estimators."""
    kinds = getattr(estimator, "task_kinds_", None)
    return kinds is None or "classification" in kinds


def mixed_proba(raw: list, kinds: list[str], single: bool):
    """Per task the class probabilities, ``None`` for a regression task; unwrapped for 1-D y."""
    out = [r if k == "classification" else None for r, k in zip(raw, kinds, strict=True)]
    return out[0] if single else out
