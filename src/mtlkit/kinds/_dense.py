"""Shared base of the dense kinds (one prediction per pixel or time step); the math (losses,
mIoU, ...) is in :mod:`mtlkit.tasks_dense`."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from mtlkit import tasks_dense
from mtlkit.kinds._base import Metric, TaskKind, check_positive_int


class DenseKind(TaskKind):
    """A kind whose targets are (N, *out_shape) maps; its metrics read the mask in-band
    (:meth:`encode_mask`) and are computed over all labelled entries of a split at once."""

    dense = True
    #: the metrics as ``(name, fn(y, p), higher_is_better)`` in the in-band mask convention
    metric_specs: ClassVar[tuple[tuple[str, Any, bool], ...]] = ()
    #: how the error message describes a valid ``out_shape``
    out_shape_help: ClassVar[str] = ""

    def _out_shape_ok(self, shape: tuple[int, ...] | None) -> bool:
        raise NotImplementedError

    def validate(self, task: Any) -> dict[str, Any]:
        shape = task.out_shape
        if not self._out_shape_ok(shape) or any(s < 1 for s in shape or ()):
            raise ValueError(f"Task {task.name!r}: a {task.kind} task needs out_shape {self.out_shape_help} "
                             f"of positive sizes. Got {task.out_shape!r}.")
        return {}

    def target_shape(self, task: Any) -> tuple[int, ...]:
        return tuple(task.out_shape or ())

    def _build_metrics(self) -> tuple[Metric, ...]:
        return tuple(Metric(name, fn, hib) for name, fn, hib in self.metric_specs)

    def encode_mask(self, target: Any, mask: Any) -> np.ndarray:
        """Targets with the mask written in-band (−1 for class kinds, NaN for values)."""
        raise NotImplementedError

    def evaluate(self, task: Any, out: Any, target: Any, mask: Any) -> dict[str, float]:
        prob = self.predict_transform(task, torch.as_tensor(out).detach().float().cpu()).numpy()
        y = self.encode_mask(target, mask)
        return {m.name: float(m.fn(y, prob)) for m in self.metrics(task)}

    def prediction_columns(self, task: Any, out: Tensor) -> dict[str, np.ndarray]:
        return {}  # maps do not fit a table: use the Python API (predict_raw)


class DenseClassKind(DenseKind):
    """A class per position: long target (N, *S), (N, C, *S) logits, cross-entropy."""

    is_classification = True
    has_classes = True
    width_setting = "num_classes"
    losses = ("cross_entropy",)
    #: rank of the target's per-sample shape: 2 for (H, W), 1 for (T,)
    spatial_rank: ClassVar[int] = 0

    def _out_shape_ok(self, shape: tuple[int, ...] | None) -> bool:
        return shape is not None and len(shape) == self.spatial_rank

    def validate(self, task: Any) -> dict[str, Any]:
        check_positive_int(task, "num_classes", 2)
        return super().validate(task)

    def output_shape(self, task: Any) -> tuple[int, ...]:
        return (int(task.num_classes or 0), *(task.out_shape or ()))

    def predict_transform(self, task: Any, out: Tensor) -> Tensor:
        return torch.softmax(out, dim=1)

    def encode_mask(self, target: Any, mask: Any) -> np.ndarray:
        return tasks_dense.encode_class_mask(target, mask)
