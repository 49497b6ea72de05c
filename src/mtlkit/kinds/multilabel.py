"""``multilabel``: L independent yes/no labels per sample; L logits out, BCE."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mtlkit._registry import KINDS
from mtlkit.kinds._base import Metric, TaskKind, as_bool, check_positive_int, masked_mean, skm


@KINDS.register()
class Multilabel(TaskKind):
    """``num_labels`` independent yes/no labels per sample: float target (N, L) in {0, 1},
    (N, L) logits, BCE loss; metrics over the fully labelled rows.

    >>> from mtlkit import Task
    >>> t = Task("tags", "multilabel", num_labels=2, columns=("red", "round"))
    >>> t.task_kind.prediction_columns(t, torch.tensor([[3.0, -3.0]]))
    {'red': array([1]), 'round': array([0])}
    """

    is_classification = True
    binary_targets = True
    multi_column = True
    width_setting = "num_labels"
    losses = ("bce",)
    main_metric = "macro_f1"
    example: ClassVar[dict[str, Any]] = {"num_labels": 3}

    def validate(self, task: Any) -> dict[str, Any]:
        check_positive_int(task, "num_labels", 1)
        return {}

    def output_shape(self, task: Any) -> tuple[int, ...]:
        return (int(task.num_labels or 0),)

    def target_shape(self, task: Any) -> tuple[int, ...]:
        return self.output_shape(task)

    def compute_loss(self, task: Any, pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        mask = as_bool(mask)
        return masked_mean(F.binary_cross_entropy_with_logits(pred, target, reduction="none"), mask)

    def _build_metrics(self) -> tuple[Metric, ...]:

        return (
            Metric("micro_f1", lambda y, p: skm.f1_score(y, p >= 0.5, average="micro", zero_division=0), True),
            Metric("macro_f1", lambda y, p: skm.f1_score(y, p >= 0.5, average="macro", zero_division=0), True),
        )

    def predict_transform(self, task: Any, out: Tensor) -> Tensor:
        return torch.sigmoid(out)

    def prediction_columns(self, task: Any, out: Tensor) -> dict[str, np.ndarray]:
        prob = self.predict_transform(task, out).numpy()
        names = task.label_columns if task.columns else [f"{task.name}[{i}]" for i in range(task.out_dim)]
        return {c: (prob[:, j] >= 0.5).astype(int) for j, c in enumerate(names)}

    def class_balance(self, task: Any, y: Tensor, mask: Tensor) -> list[Any]:
        return (y * mask).sum(0).long().tolist()  # positives per label
