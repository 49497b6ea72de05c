"""``dense_regression``: a value per position; float target (N, *S), (N, *S) values."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from torch import Tensor

from mtlkit import tasks_dense as td
from mtlkit._registry import KINDS
from mtlkit.kinds._dense import DenseKind


@KINDS.register()
class DenseRegression(DenseKind):
    """A value per position: float target (N, *S) with ``out_shape`` S = (C, H, W), (C, T)
    or (D,), (N, *S) values, ``l1`` (default), ``mse`` or ``huber`` loss; absolute (main) and
    relative error over all labelled entries of a split.

    >>> from mtlkit import Task
    >>> t = Task("depth", "dense_regression", out_shape=(1, 4, 4))
    >>> t.task_kind.output_shape(t), t.loss_name
    ((1, 4, 4), 'l1')
    """

    losses = td.DENSE_REGRESSION_LOSSES
    main_metric = "abs_err"
    example: ClassVar[dict[str, Any]] = {"out_shape": (2, 3, 4)}
    out_shape_help = "(C, H, W), (C, T) or (D,)"
    metric_specs = (("abs_err", td._reg(td.absolute_error), False),
                    ("rel_err", td._reg(td.relative_error), False))

    def _out_shape_ok(self, shape: tuple[int, ...] | None) -> bool:
        return shape is not None and 1 <= len(shape) <= 3

    def output_shape(self, task: Any) -> tuple[int, ...]:
        return tuple(task.out_shape or ())

    def compute_loss(self, task: Any, pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        return td.dense_regression_loss(pred, target, mask, loss=task.loss or "l1")

    def encode_mask(self, target: Any, mask: Any) -> np.ndarray:
        return td.encode_value_mask(target, mask)
