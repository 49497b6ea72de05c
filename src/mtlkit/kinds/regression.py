"""``regression``: D real values per sample; D values out, MSE (or L1, Huber)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mtlkit._registry import KINDS
from mtlkit.kinds._base import Metric, TaskKind, as_bool, masked_mean, skm


def target_scale(task: Any, like: Tensor) -> tuple[Tensor, Tensor] | None:
    """``(mean, std)`` of a standardised regression target as tensors like ``like``; ``None``
    when the task's targets are not standardised."""
    mean, std = getattr(task, "target_mean", None), getattr(task, "target_std", None)
    if mean is None or std is None:
        return None
    return (torch.tensor(mean, dtype=like.dtype, device=like.device),
            torch.tensor(std, dtype=like.dtype, device=like.device))


@KINDS.register()
class Regression(TaskKind):
    """``dim`` real values per sample: float target (N, D), (N, D) values, ``mse`` (default),
    ``l1`` or ``huber`` loss; metrics over the fully labelled rows.

    >>> from mtlkit import Task
    >>> t = Task("y", "regression", dim=2)
    >>> t.task_kind.output_shape(t), t.task_kind.losses
    ((2,), ('mse', 'l1', 'huber'))
    """

    multi_column = True
    width_setting = "dim"
    losses = ("mse", "l1", "huber")
    main_metric = "mae"
    example: ClassVar[dict[str, Any]] = {"dim": 2}

    def validate(self, task: Any) -> dict[str, Any]:
        if task.dim < 1:
            raise ValueError(f"Task {task.name!r}: 'dim' must be >= 1. Got {task.dim!r}.")
        return {}

    def output_shape(self, task: Any) -> tuple[int, ...]:
        return (int(task.dim),)

    def target_shape(self, task: Any) -> tuple[int, ...]:
        return self.output_shape(task)

    def compute_loss(self, task: Any, pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        mask = as_bool(mask)
        scale = target_scale(task, pred)
        if scale is not None:  # a standardised target: the loss on the training split's scale
            target = (target - scale[0]) / scale[1]
        fns: dict[str, Callable[..., Tensor]] = {"mse": F.mse_loss, "l1": F.l1_loss, "huber": F.huber_loss}
        fn = fns[task.loss or self.default_loss]
        return masked_mean(fn(pred, target, reduction="none"), mask)

    def _build_metrics(self) -> tuple[Metric, ...]:

        return (
            Metric("mae", lambda y, p: skm.mean_absolute_error(y, p), False),
            Metric("rmse", lambda y, p: float(np.sqrt(skm.mean_squared_error(y, p))), False),
            Metric("r2", lambda y, p: skm.r2_score(y, p) if len(y) > 1 else float("nan"), True),
        )

    def predict_transform(self, task: Any, out: Tensor) -> Tensor:
        """The model's output in the target's original units (a standardised target's
        ``out * std + mean``)."""
        scale = target_scale(task, out)
        return out if scale is None else out * scale[1] + scale[0]

    def cast_targets(self, task: Any, y: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        y = y.float()
        if y.dim() == 1:  # one value per sample -> (N, 1)
            return y.unsqueeze(1), mask.unsqueeze(1)
        return y, mask
