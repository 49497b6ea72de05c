"""Hints: any user function x -> target as an auxiliary task."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from mtlkit._registry import AUXILIARY
from mtlkit.auxiliary._base import AuxiliaryGenerator, AuxTarget, to_numpy
from mtlkit.auxiliary._table import TABLE_KINDS, encode
from mtlkit.kinds import get_kind


def resolve_function(fn: Callable[..., Any] | str, owner: str) -> Callable[..., Any]:
    """A callable as is; ``"package.module:function"`` (YAML configs) only from code the user
    allowed explicitly (``mtlkit train --code``, :func:`mtlkit.user_code.allow_code`): a config
    never makes mtlkit import a module by itself."""
    from mtlkit.user_code import resolve

    return resolve(fn, owner=owner)


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
        fn: a callable, or ``"package.module:function"`` for YAML configs: a module the user
            allowed (``mtlkit train --code my_hints.py``; see :mod:`mtlkit.user_code`).
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
