"""The auxiliary-target contract: training inputs -> an auxiliary task and its targets.

An :class:`AuxiliaryGenerator` has keyword-only hyperparameters validated in ``__init__``,
a loss weight ``weight`` (λ, default 0.1) and one method,
``generate(x, *, columns=None) -> AuxTarget``. The targets are computed once from the whole
array (vectorised with numpy/scipy) and cached: calling ``generate`` again on the same
array returns the cached result.

Input layouts:

* series: (N, C, T) — N samples, C channels, T steps; (N, T) is read as one channel;
* images: (N, C, H, W); (N, H, W) is read as one channel;
* tables: a ``pandas.DataFrame``, or a 2-D array whose column names are given by ``columns``.

For series and images, ``columns`` names the channels (used to name the target columns in
:attr:`AuxTarget.names`).

A target that is undefined for a sample (e.g. the skewness of a constant channel, the sample
entropy of a series without template matches, a missing privileged value) is NaN in the
computation; it becomes a ``False`` mask entry (target 0) — masked, never imputed.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from mtlkit._checks import check_bool
from mtlkit._params import HasParams
from mtlkit.tasks import Task


@dataclass(frozen=True)
class AuxTarget:
    """What a generator returns.

    Attributes:
        task: the auxiliary :class:`~mtlkit.Task` (``role="auxiliary"``, ``weight=λ``).
        targets: the targets, shaped as :mod:`mtlkit.tasks` / :mod:`mtlkit.tasks_dense`
            document for the task's kind (float32, or int64 for class targets).
        mask: bool, same shape as ``targets``; ``False`` = undefined/missing.
        names: one name per target column for flat targets (e.g. ``"std[acc_x]"``), else ().
        inputs: the inputs the model must be fed when the generator changes them
            (``next_window`` cuts the window, ``privileged`` drops columns); ``None`` when the
            inputs stay as given.
    """

    task: Task
    targets: Tensor
    mask: Tensor
    names: tuple[str, ...] = ()
    inputs: Any = None


class AuxiliaryGenerator(HasParams):
    """Base class of auxiliary-target generators.

    Subclasses set ``paper`` and ``input_kind`` (``"series"``, ``"image"``, ``"table"`` or
    ``"any"``) and implement :meth:`_generate`. The base class validates ``weight``/``name``,
    converts the input, masks non-finite targets and caches the last result.
    """

    #: citation shown by ``mtlkit list``
    paper: ClassVar[str] = ""
    #: the input layout the generator reads
    input_kind: ClassVar[str] = "any"

    def __init__(self, *, weight: float = 0.1, name: str | None = None) -> None:
        cls = type(self).__name__
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) \
                or weight < 0:
            raise ValueError(f"The 'weight' parameter of {cls} must be a finite non-negative float. "
                             f"Got {weight!r}.")
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"The 'name' parameter of {cls} must be a non-empty string or None. Got {name!r}.")
        self.weight = float(weight)
        self.name = name
        self._cache: tuple[str, AuxTarget] | None = None

    # ------------------------------------------------------------------ public
    @property
    def task_name(self) -> str:
        """``name`` if given, else ``"aux_<registry key>"`` (e.g. ``"aux_fourier"``)."""
        return self.name or f"aux_{type(self).__module__.rsplit('.', 1)[-1].lstrip('_')}"

    def generate(self, x: Any, *, columns: Sequence[str] | None = None) -> AuxTarget:
        """The auxiliary task and its targets for the inputs ``x`` (cached per input)."""
        key = _fingerprint(x, columns)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        out = self._generate(x, columns=None if columns is None else [str(c) for c in columns])
        self._cache = (key, out)
        return out

    def _generate(self, x: Any, *, columns: list[str] | None) -> AuxTarget:  # pragma: no cover
        raise NotImplementedError

    # ------------------------------------------------------------------ helpers
    def _task(self, kind: str, **kw: Any) -> Task:
        from mtlkit._registry import KINDS

        if kind not in KINDS:
            raise RuntimeError(f"{type(self).__name__} makes a {kind!r} task, a kind this version of "
                               f"mtlkit.tasks.Task does not support yet (no file mtlkit/kinds/{kind}.py).")
        return Task(self.task_name, kind, weight=self.weight, role="auxiliary", **kw)

    def _regression(self, values: np.ndarray, names: Sequence[str], *, inputs: Any = None,
                    loss: str | None = None) -> AuxTarget:
        """(N, D) float values (NaN = undefined) -> a regression AuxTarget."""
        values = np.asarray(values, dtype=np.float64).reshape(values.shape[0], -1)
        mask = np.isfinite(values)
        y = np.where(mask, values, 0.0)
        task = self._task("regression", dim=y.shape[1], loss=loss)
        return AuxTarget(task, torch.as_tensor(y, dtype=torch.float32), torch.as_tensor(mask),
                         tuple(names), inputs)

# ---------------------------------------------------------------------------- inputs
def _fingerprint(x: Any, columns: Sequence[str] | None) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(repr(None if columns is None else list(columns)).encode())
    h.update(type(x).__name__.encode())
    if hasattr(x, "to_numpy") and hasattr(x, "columns"):  # DataFrame
        import pandas as pd

        h.update(repr(list(x.columns)).encode())
        h.update(pd.util.hash_pandas_object(x, index=True).to_numpy().tobytes())
        return h.hexdigest()
    try:
        a = to_numpy(x)
    except (TypeError, ValueError):
        return f"id:{id(x)}"
    h.update(repr((a.shape, str(a.dtype))).encode())
    h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def to_numpy(x: Any) -> np.ndarray:
    """A tensor or array-like as a numpy array (tensors are detached and moved to CPU)."""
    if isinstance(x, Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def as_series(x: Any, owner: str) -> np.ndarray:
    """(N, C, T) float64 from (N, C, T) or (N, T) input."""
    a = to_numpy(x)
    if a.ndim == 2:
        a = a[:, None, :]
    if a.ndim != 3 or a.shape[0] == 0 or a.shape[2] == 0:
        raise ValueError(f"{owner} needs series of shape (N, C, T) or (N, T). Got shape {a.shape}.")
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise ValueError(f"{owner}: the series contain NaN or infinite values.")
    return a


def as_images(x: Any, owner: str) -> np.ndarray:
    """(N, C, H, W) float64 from (N, C, H, W) or (N, H, W) input."""
    a = to_numpy(x)
    if a.ndim == 3:
        a = a[:, None]
    if a.ndim != 4 or 0 in a.shape:
        raise ValueError(f"{owner} needs images of shape (N, C, H, W) or (N, H, W). Got shape {a.shape}.")
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise ValueError(f"{owner}: the images contain NaN or infinite values.")
    return a


def channel_names(columns: list[str] | None, n_channels: int, owner: str) -> list[str]:
    if columns is None:
        return [f"ch{i}" for i in range(n_channels)]
    if len(columns) != n_channels:
        raise ValueError(f"{owner}: {len(columns)} channel name(s) given in 'columns' for "
                         f"{n_channels} channel(s).")
    return list(columns)


def block_mean(a: np.ndarray, factor: int) -> np.ndarray:
    """Mean over non-overlapping ``factor``×``factor`` blocks of the last two axes; trailing
    rows/columns that do not fill a block are dropped."""
    if factor == 1:
        return a
    h, w = (a.shape[-2] // factor) * factor, (a.shape[-1] // factor) * factor
    a = a[..., :h, :w]
    return a.reshape(*a.shape[:-2], h // factor, factor, w // factor, factor).mean(axis=(-3, -1))


def standardize_columns(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """z-score each column over its finite entries; returns (z, mean, scale) with scale 1
    for constant columns."""
    v = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(v)
    cnt = finite.sum(0)
    safe = np.where(finite, v, 0.0)
    mean = np.divide(safe.sum(0), cnt, out=np.zeros(v.shape[1:]), where=cnt > 0)
    var = np.divide((np.where(finite, v - mean, 0.0) ** 2).sum(0), cnt, out=np.zeros(v.shape[1:]),
                    where=cnt > 0)
    scale = np.sqrt(var)
    scale = np.where(scale > 0, scale, 1.0)
    return (v - mean) / scale, mean, scale


class SeriesStatistic(AuxiliaryGenerator):
    """A per-channel statistic of (N, C, T) series as a regression target of width C·k.

    Subclasses implement :meth:`compute` ((N, C, T) float64 -> (N, C, k) with NaN where
    undefined) and :meth:`_suffixes` (the k names of a channel's outputs). ``standardize``
    z-scores each target column over the samples given (the fitted ``target_mean_`` and
    ``target_scale_`` undo it); by default the targets are the raw statistic.
    """

    input_kind = "series"

    def __init__(self, *, standardize: bool = False, weight: float = 0.1, name: str | None = None) -> None:
        super().__init__(weight=weight, name=name)
        self.standardize = check_bool(type(self).__name__, "standardize", standardize)

    def compute(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _suffixes(self) -> list[str]:
        return [""]

    def _generate(self, x: Any, *, columns: list[str] | None) -> AuxTarget:
        a = as_series(x, type(self).__name__)
        chans = channel_names(columns, a.shape[1], type(self).__name__)
        stem = self.task_name.removeprefix("aux_")
        names = [f"{stem}{s}[{c}]" for c in chans for s in self._suffixes()]
        values = self.compute(a).reshape(a.shape[0], -1)
        if self.standardize:
            values, self.target_mean_, self.target_scale_ = standardize_columns(values)
        return self._regression(values, names)
