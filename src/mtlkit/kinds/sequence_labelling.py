"""``sequence_labelling``: a class per time step; long target (N, T), (N, C, T) logits."""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor

from mtlkit import tasks_dense as td
from mtlkit._registry import KINDS
from mtlkit.kinds._dense import DenseClassKind


@KINDS.register()
class SequenceLabelling(DenseClassKind):
    """A class per time step: long target (N, T) (``out_shape`` (T,)), (N, C, T) logits,
    per-step cross-entropy; accuracy and macro-F1 (main) over all labelled steps of a split.

    >>> from mtlkit import Task
    >>> t = Task("beat", "sequence_labelling", num_classes=4, out_shape=(10,))
    >>> t.task_kind.output_shape(t), t.task_kind.main_metric
    ((4, 10), 'macro_f1')
    """

    spatial_rank = 1
    out_shape_help = "(T,)"
    main_metric = "macro_f1"
    example: ClassVar[dict[str, Any]] = {"num_classes": 3, "out_shape": (6,)}
    metric_specs = (("accuracy", td._cls(td.pixel_accuracy), True),
                    ("macro_f1", td._cls(td.macro_f1), True))

    def compute_loss(self, task: Any, pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        return td.sequence_labelling_loss(pred, target, mask)
