"""``multiclass``: one of C classes per sample; long target, C logits out, cross-entropy."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mtlkit._registry import KINDS
from mtlkit.kinds._base import (
    Metric,
    TaskKind,
    as_bool,
    check_positive_int,
    masked_mean,
    skm,
    to_numpy,
)


@KINDS.register()
class Multiclass(TaskKind):
    """One of ``num_classes`` classes per sample: long target (N,) in [0, C), (N, C) logits,
    cross-entropy loss.

    >>> from mtlkit import Task
    >>> t = Task("digit", "multiclass", num_classes=3)
    >>> t.task_kind.prediction_columns(t, torch.tensor([[0.0, 2.0, 0.0]]))["digit"]
    array([1])
    """

    is_classification = True
    has_classes = True
    width_setting = "num_classes"
    losses = ("cross_entropy",)
    main_metric = "accuracy"
    example: ClassVar[dict[str, Any]] = {"num_classes": 3}

    def validate(self, task: Any) -> dict[str, Any]:
        check_positive_int(task, "num_classes", 2)
        return {}

    def output_shape(self, task: Any) -> tuple[int, ...]:
        return (int(task.num_classes or 0),)

    def target_shape(self, task: Any) -> tuple[int, ...]:
        return ()

    def compute_loss(self, task: Any, pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        mask = as_bool(mask)
        safe = torch.where(mask, target, torch.zeros_like(target))
        return masked_mean(F.cross_entropy(pred, safe, reduction="none"), mask)

    def _build_metrics(self) -> tuple[Metric, ...]:

        return (
            Metric("accuracy", lambda y, p: skm.accuracy_score(y, p.argmax(-1)), True),
            Metric("macro_f1", lambda y, p: skm.f1_score(y, p.argmax(-1), average="macro",
                                                          labels=list(range(p.shape[1])),
                                                          zero_division=0), True),
        )

    def predict_transform(self, task: Any, out: Tensor) -> Tensor:
        return torch.softmax(out, dim=-1)

    def targets_from_columns(self, task: Any, values: np.ndarray, missing: np.ndarray
                             ) -> tuple[Tensor, Tensor]:
        vals = values[~missing[:, 0], 0]
        if len(vals) and np.any(vals != np.round(vals)):
            raise ValueError(f"Task {task.name!r}: multiclass labels must be integers.")
        return torch.as_tensor(values[:, 0], dtype=torch.long), torch.as_tensor(~missing[:, 0])

    def prediction_columns(self, task: Any, out: Tensor) -> dict[str, np.ndarray]:
        prob = self.predict_transform(task, out).numpy()
        classes = getattr(task, "classes", None)
        if classes is None:  # integer classes: the index and its probability
            return {task.name: prob.argmax(-1), f"{task.name}_proba": prob.max(-1)}
        # named classes: the name and one probability column per class
        cols: dict[str, np.ndarray] = {task.name: np.asarray(list(classes), dtype=object)[prob.argmax(-1)]}
        cols.update({f"{task.name}_proba_{c}": prob[:, j] for j, c in enumerate(classes)})
        return cols

    def confusion_data(self, task: Any, out: Any, target: Any, mask: Any
                       ) -> tuple[np.ndarray, np.ndarray, list[int]]:
        m = to_numpy(mask).astype(bool)
        y = to_numpy(target)[m].astype(int)
        pred = to_numpy(out)[m].argmax(-1)
        return y, pred, list(range(int(task.num_classes or 0)))

    def classification_report(self, task: Any, out: Any, target: Any, mask: Any) -> dict[str, Any]:
        from sklearn.metrics import classification_report

        m = torch.as_tensor(mask).cpu().numpy().astype(bool)
        pred = torch.as_tensor(out).float().argmax(-1).cpu().numpy()[m]
        y = torch.as_tensor(target).cpu().numpy()[m]
        labels = list(range(int(task.num_classes or 0)))
        classes = getattr(task, "classes", None)
        names = [str(c) for c in classes] if classes is not None else None
        return classification_report(y, pred, labels=labels, target_names=names, output_dict=True,
                                     zero_division=0)

    def class_balance(self, task: Any, y: Tensor, mask: Tensor) -> list[Any]:
        return torch.bincount(y[mask], minlength=int(task.num_classes or 0)).tolist()
