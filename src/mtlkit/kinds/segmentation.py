"""``segmentation``: a class per pixel; long target (N, H, W), (N, C, H, W) logits."""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor

from mtlkit import tasks_dense as td
from mtlkit._registry import KINDS
from mtlkit.kinds._dense import DenseClassKind


@KINDS.register()
class Segmentation(DenseClassKind):
    """A class per pixel: long target (N, H, W) (``out_shape`` (H, W)), (N, C, H, W) logits,
    per-pixel cross-entropy; mIoU (main) and pixel accuracy over all labelled pixels of a split.

    >>> from mtlkit import Task
    >>> t = Task("mask", "segmentation", num_classes=3, out_shape=(8, 8))
    >>> t.task_kind.output_shape(t), t.task_kind.target_shape(t)
    ((3, 8, 8), (8, 8))
    """

    spatial_rank = 2
    out_shape_help = "(H, W)"
    main_metric = "miou"
    example: ClassVar[dict[str, Any]] = {"num_classes": 3, "out_shape": (4, 5)}
    metric_specs = (("miou", td._cls(td.mean_iou), True),
                    ("pixel_accuracy", td._cls(td.pixel_accuracy), True))

    def compute_loss(self, task: Any, pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        return td.segmentation_loss(pred, target, mask)
