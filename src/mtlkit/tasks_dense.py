"""Losses and metrics of the dense task kinds: one prediction per pixel or per time step.

============================  =====================  =================  ======================
kind                          target tensor          mask shape         model output
============================  =====================  =================  ======================
``segmentation``              long (N, H, W)         (N, H, W)          (N, C, H, W) logits
``sequence_labelling``        long (N, T)            (N, T)             (N, C, T) logits
``dense_regression``          float (N, *S)          (N, *S)            (N, *S) values
============================  =====================  =================  ======================

``S`` is the task's ``out_shape`` (e.g. ``(C, H, W)`` for a depth- or edge-like map,
``(C, T)`` for a series). A ``False`` mask entry means "no label at this pixel/step": it is
excluded from the loss and from every metric, never imputed (the masked contract of
:mod:`mtlkit.tasks`).

Losses are means over the labelled entries of the batch (0, with graph, when none is
labelled). Metrics are computed over **all labelled entries of a split at once**: mIoU
accumulates one confusion matrix over every labelled pixel of the split (as segmentation
benchmarks do), not a mean of per-image IoUs.

The kind objects :mod:`mtlkit.kinds.segmentation`, :mod:`mtlkit.kinds.sequence_labelling`
and :mod:`mtlkit.kinds.dense_regression` own what depends on the kind (default loss, metric
list, main metric, shapes); this module holds their math and imports nothing from
:mod:`mtlkit.tasks` or :mod:`mtlkit.kinds` at import time. The kind-named helpers at the end
(:func:`compute_loss`, :func:`evaluate` ...) and the older constants (``DENSE_KINDS``,
``METRICS`` ...) are read from the registered dense kinds.

>>> import torch
>>> logits = torch.tensor([[[[4.0, -4.0]], [[-4.0, 4.0]]]])   # (N=1, C=2, H=1, W=2)
>>> target = torch.tensor([[[0, 1]]]); mask = torch.ones(1, 1, 2, dtype=torch.bool)
>>> round(float(segmentation_loss(logits, target, mask)), 4)
0.0003
>>> mean_iou(logits, target, mask), pixel_accuracy(logits, target, mask)
(1.0, 1.0)
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

DENSE_REGRESSION_LOSSES: tuple[str, ...] = ("l1", "mse", "huber")


# ---------------------------------------------------------------------------- losses
def _bool_mask(mask: Tensor, like: Tensor) -> Tensor:
    mask = mask.to(like.device)
    if mask.dtype != torch.bool:
        mask = mask.bool()
    if mask.shape != like.shape:
        mask = mask.expand_as(like)
    return mask


def _masked_mean(per: Tensor, mask: Tensor) -> Tensor:
    per = torch.where(mask, per, torch.zeros_like(per))
    return per.sum() / mask.sum().clamp_min(1).to(per.dtype)


def _masked_cross_entropy(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    if pred.dim() != target.dim() + 1 or pred.shape[0] != target.shape[0] or pred.shape[2:] != target.shape[1:]:
        raise ValueError(f"Class scores of shape {tuple(pred.shape)} do not fit targets of shape "
                         f"{tuple(target.shape)}: expected (N, C, *S) scores for (N, *S) targets.")
    mask = _bool_mask(mask, target)
    safe = torch.where(mask, target.long(), torch.zeros_like(target, dtype=torch.long))
    per = F.cross_entropy(pred, safe, reduction="none")
    return _masked_mean(per, mask)


def segmentation_loss(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Per-pixel cross-entropy, mean over labelled pixels.

    ``pred`` (N, C, H, W) logits, ``target`` long (N, H, W), ``mask`` bool (N, H, W):
    L = (1/|M|) Σ_{(n,i,j) ∈ M} −log softmax(pred[n, :, i, j])[target[n, i, j]].

    >>> import torch
    >>> p = torch.zeros(1, 3, 2, 2); y = torch.zeros(1, 2, 2, dtype=torch.long)
    >>> round(float(segmentation_loss(p, y, torch.ones(1, 2, 2))), 4)  # log 3
    1.0986
    """
    return _masked_cross_entropy(pred, target, mask)


def sequence_labelling_loss(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Per-timestep cross-entropy, mean over labelled steps.

    ``pred`` (N, C, T) logits, ``target`` long (N, T), ``mask`` bool (N, T).

    >>> import torch
    >>> p = torch.zeros(2, 2, 5); y = torch.ones(2, 5, dtype=torch.long)
    >>> round(float(sequence_labelling_loss(p, y, torch.ones(2, 5))), 4)  # log 2
    0.6931
    """
    return _masked_cross_entropy(pred, target, mask)


def dense_regression_loss(pred: Tensor, target: Tensor, mask: Tensor, *, loss: str = "l1") -> Tensor:
    """Per-entry regression loss (L1 by default), mean over labelled entries.

    L = (1/|M|) Σ_{e ∈ M} |pred_e − target_e| (``loss="mse"``: squared error; ``"huber"``:
    Huber with δ = 1). ``mask`` has the target's shape or broadcasts to it.

    >>> import torch
    >>> p = torch.tensor([[1.0, 2.0, 9.0]]); y = torch.tensor([[0.0, 4.0, 0.0]])
    >>> float(dense_regression_loss(p, y, torch.tensor([[True, True, False]])))
    1.5
    """
    if pred.shape != target.shape:
        raise ValueError(f"Dense regression output of shape {tuple(pred.shape)} does not match targets "
                         f"of shape {tuple(target.shape)}.")
    fns: dict[str, Callable[..., Tensor]] = {"l1": F.l1_loss, "mse": F.mse_loss, "huber": F.huber_loss}
    if loss not in fns:
        raise ValueError(f"The 'loss' parameter of dense_regression_loss must be one of "
                         f"{DENSE_REGRESSION_LOSSES}. Got {loss!r}.")
    mask = _bool_mask(mask, target)
    safe = torch.where(mask, target, torch.zeros_like(target))
    per = fns[loss](pred, safe, reduction="none")
    return _masked_mean(per, mask)


def compute_loss(kind: str, pred: Tensor, target: Tensor, mask: Tensor, *, loss: str | None = None) -> Tensor:
    """Dispatch to the loss of a dense ``kind`` (``loss`` only applies to dense regression)."""
    return _dense_kind(kind).compute_loss(SimpleNamespace(loss=loss), pred, target, mask)


# ---------------------------------------------------------------------------- metrics
def _np(a: Any) -> np.ndarray:
    if isinstance(a, Tensor):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def _labels_and_mask(pred: Any, target: Any, mask: Any) -> tuple[np.ndarray, np.ndarray, int]:
    """Predicted labels (argmax over axis 1 of the scores), true labels, both flattened to
    the labelled positions, and the number of classes."""
    p, y = _np(pred), _np(target)
    m = np.broadcast_to(_np(mask).astype(bool), y.shape)
    if p.ndim == y.ndim + 1:
        num_classes = p.shape[1]
        p = p.argmax(axis=1)
    elif p.shape == y.shape:  # already labels
        num_classes = int(max(p[m].max(initial=0), y[m].max(initial=0))) + 1
    else:
        raise ValueError(f"Predictions of shape {p.shape} do not fit targets of shape {y.shape}: give "
                         f"(N, C, *S) scores or (N, *S) labels.")
    return p[m].astype(np.int64), y[m].astype(np.int64), int(num_classes)


def confusion_matrix(pred: Any, target: Any, mask: Any) -> np.ndarray:
    """C×C counts over the labelled positions: rows = true class, columns = predicted.

    >>> confusion_matrix(np.array([[0, 1, 1]]), np.array([[0, 1, 0]]), np.ones((1, 3), bool))
    array([[1, 1],
           [0, 1]])
    """
    p, y, c = _labels_and_mask(pred, target, mask)
    if y.size and (y.min() < 0 or y.max() >= c):
        raise ValueError(f"Labels must lie in [0, {c}); got labels in [{y.min()}, {y.max()}].")
    return np.bincount(y * c + p, minlength=c * c).reshape(c, c)


def mean_iou(pred: Any, target: Any, mask: Any) -> float:
    """Mean intersection over union over the classes present in target or prediction.

    From the confusion matrix K accumulated over all labelled positions:
    IoU_c = K_cc / (Σ_j K_cj + Σ_i K_ic − K_cc); classes with an empty union (absent from
    both target and prediction) are left out of the mean. NaN when nothing is labelled.

    >>> y = np.array([[0, 0, 1, 1]]); p = np.array([[0, 1, 1, 1]])
    >>> round(mean_iou(p, y, np.ones((1, 4), bool)), 4)   # (1/2 + 2/3) / 2
    0.5833
    """
    k = confusion_matrix(pred, target, mask).astype(np.float64)
    tp = np.diag(k)
    union = k.sum(0) + k.sum(1) - tp
    seen = union > 0
    if not seen.any():
        return float("nan")
    return float((tp[seen] / union[seen]).mean())


def pixel_accuracy(pred: Any, target: Any, mask: Any) -> float:
    """Fraction of labelled positions whose argmax class equals the target (NaN if none).

    >>> pixel_accuracy(np.array([[0, 1, 1, 1]]), np.array([[0, 0, 1, 1]]), np.ones((1, 4), bool))
    0.75
    """
    p, y, _ = _labels_and_mask(pred, target, mask)
    return float((p == y).mean()) if y.size else float("nan")


def macro_f1(pred: Any, target: Any, mask: Any) -> float:
    """Unweighted mean over classes of F1_c = 2 TP_c / (2 TP_c + FP_c + FN_c), over the
    classes present in target or prediction — the same number as
    ``sklearn.metrics.f1_score(y, p, average="macro")`` on the labelled positions.

    >>> round(macro_f1(np.array([[0, 1, 1, 1]]), np.array([[0, 0, 1, 1]]), np.ones((1, 4), bool)), 4)
    0.7333
    """
    k = confusion_matrix(pred, target, mask).astype(np.float64)
    tp = np.diag(k)
    denom = 2 * tp + (k.sum(0) - tp) + (k.sum(1) - tp)
    seen = denom > 0
    if not seen.any():
        return float("nan")
    return float((2 * tp[seen] / denom[seen]).mean())


def absolute_error(pred: Any, target: Any, mask: Any) -> float:
    """Mean |pred − target| over labelled entries (NaN if none).

    >>> absolute_error(np.array([1.0, 2.0, 5.0]), np.array([2.0, 2.0, 1.0]), np.array([1, 1, 0]))
    0.5
    """
    p, y = _np(pred).astype(np.float64), _np(target).astype(np.float64)
    m = np.broadcast_to(_np(mask).astype(bool), y.shape)
    return float(np.abs(p - y)[m].mean()) if m.any() else float("nan")


def relative_error(pred: Any, target: Any, mask: Any) -> float:
    """Mean |pred − target| / |target| over labelled entries with a non-zero target (the
    depth-estimation "rel. error"); NaN if there is none.

    >>> relative_error(np.array([1.0, 3.0, 5.0]), np.array([2.0, 2.0, 0.0]), np.ones(3, bool))
    0.5
    """
    p, y = _np(pred).astype(np.float64), _np(target).astype(np.float64)
    m = np.broadcast_to(_np(mask).astype(bool), y.shape) & (y != 0)
    return float((np.abs(p - y)[m] / np.abs(y[m])).mean()) if m.any() else float("nan")


# Metric specs (name, fn(y, p), higher_is_better) in the ``mtlkit.tasks.Metric`` convention
# ``fn(labels, predictions)``. Dense targets carry their mask in-band: class targets mark an
# unlabelled position with a negative label, regression targets with NaN (``encode_mask``).
def _cls(fn: Callable[[Any, Any, Any], float]) -> Callable[[np.ndarray, np.ndarray], float]:
    return lambda y, p: fn(p, np.where(y >= 0, y, 0), y >= 0)


def _reg(fn: Callable[[Any, Any, Any], float]) -> Callable[[np.ndarray, np.ndarray], float]:
    return lambda y, p: fn(p, np.nan_to_num(y), ~np.isnan(y))


def encode_class_mask(target: Any, mask: Any) -> np.ndarray:
    """Class targets with the mask written in-band: −1 where unlabelled."""
    y = _np(target)
    m = np.broadcast_to(_np(mask).astype(bool), y.shape)
    return np.where(m, y.astype(np.int64), -1)


def encode_value_mask(target: Any, mask: Any) -> np.ndarray:
    """Value targets with the mask written in-band: NaN where unlabelled."""
    y = _np(target)
    m = np.broadcast_to(_np(mask).astype(bool), y.shape)
    return np.where(m, y.astype(np.float64), np.nan)


# ---------------------------------------------------------------------------- by kind name
def _dense_kinds() -> list[Any]:
    from mtlkit.kinds import get_kind, kind_names

    return [k for k in (get_kind(n) for n in kind_names()) if k.dense]


def _dense_kind(kind: str) -> Any:
    """The registered dense kind object named ``kind``."""
    for k in _dense_kinds():
        if k.name == kind:
            return k
    raise ValueError(f"Unknown dense kind {kind!r}. Known: {', '.join(k.name for k in _dense_kinds())}.")


def encode_mask(kind: str, target: Any, mask: Any) -> np.ndarray:
    """Targets with the mask written in-band: −1 (class kinds) or NaN (regression)."""
    return _dense_kind(kind).encode_mask(target, mask)


def predict_transform(kind: str, out: Tensor) -> Tensor:
    """Raw output -> class probabilities over axis 1 (class kinds) or values."""
    return _dense_kind(kind).predict_transform(None, out)


def evaluate(kind: str, out: Any, target: Any, mask: Any) -> dict[str, float]:
    """Every metric of a dense ``kind`` over the labelled entries of a whole split.

    >>> out = np.array([[[2.0, -1.0], [0.0, 3.0]]])  # (N=1, C=2, T=2) logits
    >>> evaluate("sequence_labelling", out, np.array([[0, 0]]), np.array([[True, False]]))
    {'accuracy': 1.0, 'macro_f1': 1.0}
    """
    return _dense_kind(kind).evaluate(None, out, target, mask)


def __getattr__(name: str) -> Any:
    """The older kind-keyed constants, read from the registered dense kinds."""
    if name == "DENSE_KINDS":
        return tuple(k.name for k in _dense_kinds())
    if name == "DENSE_CLASS_KINDS":
        return tuple(k.name for k in _dense_kinds() if k.has_classes)
    if name == "SPATIAL_RANK":
        return {k.name: k.spatial_rank for k in _dense_kinds() if k.has_classes}
    if name == "DEFAULT_LOSS":
        return {k.name: k.default_loss for k in _dense_kinds()}
    if name == "MAIN_METRIC":
        return {k.name: k.main_metric for k in _dense_kinds()}
    if name == "METRICS":
        return {k.name: k.metric_specs for k in _dense_kinds()}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
