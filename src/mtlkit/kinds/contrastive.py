"""``contrastive``: pairs labelled similar (1) or dissimilar (0); the output is the distance
between the two embeddings (computed by the ``siamese`` architecture), margin loss."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from mtlkit._registry import KINDS
from mtlkit.kinds._base import Metric, TaskKind, binary_balance, skm


def contrastive_loss(d: Tensor, same: Tensor, margin: float = 1.0, *, mask: Tensor | None = None) -> Tensor:
    """Margin contrastive loss of Hadsell, Chopra & LeCun (2006), "Dimensionality Reduction by
    Learning an Invariant Mapping", CVPR, averaged over the (unmasked) pairs:

        L = same · ½ d² + (1 − same) · ½ max(0, margin − d)²

    ``d``: embedding distances; ``same``: 1 for a similar pair, 0 for a dissimilar one.

    >>> contrastive_loss(torch.tensor([0.5, 0.5]), torch.tensor([1.0, 0.0]), margin=1.0)
    tensor(0.1250)
    """
    d = d.reshape(-1)
    same = same.reshape(-1).to(d.dtype)
    per = same * 0.5 * d.pow(2) + (1 - same) * 0.5 * torch.clamp(margin - d, min=0).pow(2)
    if mask is None:
        return per.mean()
    m = mask.reshape(-1).bool()
    per = torch.where(m, per, torch.zeros_like(per))
    return per.sum() / m.sum().clamp_min(1).to(per.dtype)


def contrastive_metrics(margin: float) -> tuple[Metric, ...]:
    """``roc_auc`` of −distance for "similar" (main metric), and ``accuracy`` of the rule
    "similar ⇔ distance < margin / 2" (halfway between the loss's two targets, 0 and m)."""

    def auc(y: np.ndarray, d: np.ndarray) -> float:
        y, d = np.asarray(y).reshape(-1), np.asarray(d).reshape(-1)
        if len(np.unique(y)) < 2:
            return float("nan")
        return float(skm.roc_auc_score(y, -d))

    def acc(y: np.ndarray, d: np.ndarray) -> float:
        return float(((np.asarray(d).reshape(-1) < margin / 2) == (np.asarray(y).reshape(-1) > 0.5)).mean())

    return (Metric("roc_auc", auc, True), Metric("accuracy", acc, True))


def _margin(task: Any) -> float:
    return float(getattr(task, "margin", None) or 1.0)


@KINDS.register()
class Contrastive(TaskKind):
    """Pairs labelled similar (1) or dissimilar (0): float target (N,) in {0, 1}, the (N,)
    distance between the two embeddings (only the ``siamese`` architecture computes it; no
    head), the margin loss :func:`contrastive_loss` with the task's ``margin`` (default 1).

    >>> from mtlkit import Task
    >>> t = Task("same", "contrastive", margin=2.0)
    >>> t.task_kind.prediction_columns(t, torch.tensor([0.5, 1.5]))["same"]  # distance < m/2
    array([1, 0])
    """

    binary_targets = True
    pairwise = True
    losses = ("contrastive",)
    main_metric = "roc_auc"
    example: ClassVar[dict[str, Any]] = {"margin": 2.0}

    def validate(self, task: Any) -> dict[str, Any]:
        m = 1.0 if task.margin is None else task.margin
        try:
            m = float(m)
        except (TypeError, ValueError):
            m = float("nan")
        if not math.isfinite(m) or m <= 0:
            raise ValueError(f"Task {task.name!r}: the 'margin' of a contrastive task must be a finite "
                             f"positive float. Got {task.margin!r}.")
        return {"margin": m}

    def output_shape(self, task: Any) -> tuple[int, ...]:
        return ()

    def target_shape(self, task: Any) -> tuple[int, ...]:
        return ()

    def compute_loss(self, task: Any, pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        return contrastive_loss(pred, target, _margin(task), mask=mask)

    def _build_metrics(self) -> tuple[Metric, ...]:
        return contrastive_metrics(1.0)  # names and directions; metrics(task) uses its margin

    def metrics(self, task: Any = None) -> tuple[Metric, ...]:
        if task is None:
            return super().metrics()
        return contrastive_metrics(_margin(task))

    def prediction_columns(self, task: Any, out: Tensor) -> dict[str, np.ndarray]:
        d = self.predict_transform(task, out).numpy()  # the pair's embedding distance
        return {f"{task.name}_distance": d, task.name: (d < _margin(task) / 2).astype(int)}

    def class_balance(self, task: Any, y: Tensor, mask: Tensor) -> list[Any]:
        return binary_balance(y, mask)
