"""Hints: any user function x -> target as an auxiliary task."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from mtlkit._registry import AUXILIARY
from mtlkit.auxiliary._base import AuxiliaryGenerator, AuxTarget, to_numpy
from mtlkit.auxiliary._table import TABLE_KINDS, encode
from mtlkit.kinds import get_kind


def resolve_function(fn: Callable[..., Any] | str, owner: str) -> Callable[..., Any]:
    """A callable as is, or ``"package.module:function"`` imported (for YAML configs)."""
    if callable(fn):
        return fn
    if isinstance(fn, str) and fn.count(":") == 1:
        module, _, attr = fn.partition(":")
        try:
            obj: Any = importlib.import_module(module)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"The 'fn' parameter of {owner}: cannot import {fn!r}: {exc}") from exc
        if callable(obj):
            return obj
    raise ValueError(f"The 'fn' parameter of {owner} must be a callable or a 'module:function' string. "
                     f"Got {fn!r}.")


@AUXILIARY.register()
class Hint(AuxiliaryGenerator):
    """Any function of the input, ``target = fn(x)``, as an auxiliary task ("hint").

    Abu-Mostafa (1990), "Learning from hints in neural networks", Journal of Complexity
    6(2) — known properties of the target function, given to the network as extra outputs
    to fit; Caruana (1997), "Multitask Learning" — hints as related tasks.

    ``fn`` receives the inputs exactly as given to :meth:`generate` (array, tensor or
    DataFrame) and returns N targets: (N,) or (N, D) values (more axes are flattened to
    D), NaN where undefined (masked). Regression targets become a task of width D; binary/multiclass take one value per
    sample (multiclass codes its sorted distinct values 0 … K−1); multilabel takes (N, L)
    0/1 values.

    Args:
        fn: a callable, or ``"package.module:function"`` (importable, for YAML configs).
        kind: ``"regression"`` (default), ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
        weight: the loss weight λ of the auxiliary task.
        name: the task name (default ``"aux_hint"``).

    >>> import numpy as np
    >>> aux = Hint(fn=lambda x: x.sum(axis=1) > 0, kind="binary").generate(np.array([[1.0, -3.0], [2.0, 0.5]]))
    >>> aux.task.kind, aux.targets
    ('binary', tensor([0., 1.]))
    """

    paper = "Abu-Mostafa 1990, Learning from hints in neural networks"

    def __init__(self, *, fn: Callable[..., Any] | str, kind: str = "regression", weight: float = 0.1,
                 name: str | None = None) -> None:
        super().__init__(weight=weight, name=name)
        self.fn = fn
        self._fn = resolve_function(fn, "Hint")
        if kind not in TABLE_KINDS:
            raise ValueError(f"The 'kind' parameter of Hint must be one of {TABLE_KINDS}. Got {kind!r}.")
        self.kind = kind

    def _generate(self, x: Any, *, columns: list[str] | None) -> AuxTarget:
        n = len(x)
        if n == 0:
            raise ValueError("Hint: the inputs are empty (no samples).")
        raw = self._fn(x)
        y = to_numpy(raw.to_numpy() if isinstance(raw, (pd.Series, pd.DataFrame)) else raw)
        if y.ndim == 0 or y.shape[0] != n:
            raise ValueError(f"Hint: fn returned shape {y.shape}; expected ({n},) or ({n}, D) for {n} inputs.")
        if not get_kind(self.kind).multi_column:  # one class value per sample (binary, multiclass)
            if y.size != n:
                raise ValueError(f"Hint: a {self.kind} hint needs one value per sample; fn returned shape "
                                 f"{y.shape}.")
            y = y.reshape(n)
        frame = pd.DataFrame(y.reshape(n, -1))
        frame.columns = [f"{self.task_name}_{i}" for i in range(frame.shape[1])] if frame.shape[1] > 1 \
            else [self.task_name]
        if y.dtype == np.bool_:
            frame = frame.astype(np.int64)
        targets, mask, extra = encode(frame, self.kind, "Hint")
        self.classes_ = extra.pop("classes", None)
        task = self._task(self.kind, **extra)
        return AuxTarget(task, targets, mask, tuple(frame.columns))
