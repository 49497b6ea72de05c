"""``binary``: one yes/no label per sample; float target in {0, 1}, one logit out, BCE."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mtlkit._registry import KINDS
from mtlkit.kinds._base import Metric, TaskKind, as_bool, binary_balance, masked_mean, skm, to_numpy


@KINDS.register()
class Binary(TaskKind):
    """One yes/no label per sample: float target (N,) in {0, 1}, a (N,) logit, BCE loss.

    >>> from mtlkit import Task
    >>> t = Task("y", "binary")
    >>> t.task_kind.confusion_data(t, torch.tensor([2.0, -1.0]), torch.tensor([1.0, 1.0]),
    ...                            torch.tensor([True, True]))
    (array([1, 1]), array([1, 0]), [0, 1])
    """

    is_classification = True
    binary_targets = True
    losses = ("bce",)
    main_metric = "roc_auc"

    def output_shape(self, task: Any) -> tuple[int, ...]:
        return ()

    def target_shape(self, task: Any) -> tuple[int, ...]:
        return ()

    def compute_loss(self, task: Any, pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        mask = as_bool(mask)
        return masked_mean(F.binary_cross_entropy_with_logits(pred, target, reduction="none"), mask)

    def _build_metrics(self) -> tuple[Metric, ...]:

        def auc(y: np.ndarray, p: np.ndarray) -> float:
            if len(np.unique(y)) < 2:
                return float("nan")
            return skm.roc_auc_score(y, p)

        return (
            Metric("accuracy", lambda y, p: skm.accuracy_score(y, p >= 0.5), True),
            Metric("f1", lambda y, p: skm.f1_score(y, p >= 0.5, zero_division=0), True),
            Metric("roc_auc", auc, True),
        )

    def predict_transform(self, task: Any, out: Tensor) -> Tensor:
        return torch.sigmoid(out)

    def prediction_columns(self, task: Any, out: Tensor) -> dict[str, np.ndarray]:
        prob = self.predict_transform(task, out).numpy()
        hit = (prob >= 0.5).astype(int)
        classes = getattr(task, "classes", None)
        label = hit if classes is None else np.asarray(list(classes), dtype=object)[hit]
        return {task.name: label, f"{task.name}_proba": prob}

    def confusion_data(self, task: Any, out: Any, target: Any, mask: Any
                       ) -> tuple[np.ndarray, np.ndarray, list[int]]:
        m = to_numpy(mask).astype(bool)
        y = to_numpy(target)[m].astype(int)
        pred = (to_numpy(out)[m] >= 0).astype(int)  # logit >= 0 <=> probability >= 0.5
        return y, pred, [0, 1]

    def class_balance(self, task: Any, y: Tensor, mask: Tensor) -> list[Any]:
        return binary_balance(y, mask)
