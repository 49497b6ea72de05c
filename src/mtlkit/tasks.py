"""Task specifications: what a task predicts, its loss, its metrics and its role.

A :class:`Task` is a frozen dataclass. Targets are stored per task as tensors:

==================  ======================  ==================  =========================
kind                target tensor           mask shape          model output
==================  ======================  ==================  =========================
binary              float (N,) in {0, 1}    (N,)                (N,) logit
contrastive         float (N,) in {0, 1}    (N,)                (N,) distance
multiclass          long (N,) in [0, C)     (N,)                (N, C) logits
multilabel          float (N, L) in {0, 1}  (N, L)              (N, L) logits
regression          float (N, D)            (N, D)              (N, D) values
segmentation        long (N, H, W)          (N, H, W)           (N, C, H, W) logits
sequence_labelling  long (N, T)             (N, T)              (N, C, T) logits
dense_regression    float (N, *S)           (N, *S)             (N, *S) values
==================  ======================  ==================  =========================

A ``False`` mask entry means "no label here": the entry is excluded from the loss and the
metrics, never imputed. A ``contrastive`` task's samples are pairs (1 = similar, 0 =
dissimilar) and its output is the distance between the two embeddings; only the ``siamese``
architecture computes it. The dense kinds (the last three; ``S`` = ``out_shape``) keep their
losses and metrics in :mod:`mtlkit.tasks_dense`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mtlkit import tasks_dense
from mtlkit.tasks_dense import DENSE_CLASS_KINDS, DENSE_KINDS

Kind = Literal["binary", "multiclass", "multilabel", "regression", "contrastive", "segmentation",
               "dense_regression", "sequence_labelling"]
KINDS: tuple[str, ...] = ("binary", "multiclass", "multilabel", "regression", "contrastive", *DENSE_KINDS)
REGRESSION_LOSSES = ("mse", "l1", "huber")
ROLES = ("primary", "auxiliary")


@dataclass(frozen=True)
class Metric:
    """A named metric on numpy arrays of labelled samples only."""

    name: str
    fn: Callable[[np.ndarray, np.ndarray], float]
    higher_is_better: bool


@dataclass(frozen=True)
class Task:
    """One task of a multi-task problem.

    Args:
        name: unique task name; it keys the model outputs and the label columns.
        kind: ``binary``, ``multiclass``, ``multilabel``, ``regression``, ``contrastive`` (a
            pair task of the ``siamese`` architecture), or a dense kind: ``segmentation``,
            ``sequence_labelling``, ``dense_regression``.
        num_classes: number of classes (``multiclass``, ``segmentation``,
            ``sequence_labelling``).
        num_labels: number of labels (``multilabel`` only).
        dim: output dimension (``regression`` only, default 1).
        loss: ``None`` for the kind's default; for regression one of ``mse`` (default),
            ``l1``, ``huber``; for dense regression one of ``l1`` (default), ``mse``, ``huber``.
        weight: the static loss weight λ of this task (default 1 for a primary task, 0.1 for
            an auxiliary one).
        role: ``primary`` (counted in the headline Δm) or ``auxiliary``.
        missing_value: a sentinel that means "no label" besides NaN/empty (e.g. ``-1``).
        columns: the table columns holding this task's labels (default: ``[name]``; a
            multilabel or multi-output regression task may name several).
        out_shape: the per-sample shape of a dense target: (H, W) for ``segmentation``,
            (T,) for ``sequence_labelling``, (C, H, W), (C, T) or (D,) for
            ``dense_regression``; ``None`` for the other kinds.
        margin: the margin m of a ``contrastive`` task's loss (default 1.0; see
            :func:`contrastive_loss`); ``None`` for the other kinds.

    >>> t = Task("digit", "multiclass", num_classes=10)
    >>> t.out_dim, t.main_metric, t.metric("accuracy").higher_is_better
    (10, 'accuracy', True)
    >>> s = Task("mask", "segmentation", num_classes=3, out_shape=(8, 8))
    >>> s.output_shape, s.target_shape, s.out_dim, s.main_metric
    ((3, 8, 8), (8, 8), 192, 'miou')
    """

    name: str
    kind: str
    num_classes: int | None = None
    num_labels: int | None = None
    dim: int = 1
    loss: str | None = None
    weight: float | None = None
    role: str = "primary"
    missing_value: float | None = None
    columns: tuple[str, ...] | None = field(default=None)
    out_shape: tuple[int, ...] | None = field(default=None)
    margin: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"Task name must be a non-empty string. Got {self.name!r}.")
        if self.kind not in KINDS:
            raise ValueError(
                f"Task {self.name!r}: unknown kind {self.kind!r}. Known kinds: {', '.join(KINDS)}."
            )
        if self.role not in ROLES:
            raise ValueError(f"Task {self.name!r}: role must be one of {ROLES}. Got {self.role!r}.")
        if self.weight is None:
            object.__setattr__(self, "weight", 0.1 if self.role == "auxiliary" else 1.0)
        try:
            w = float(self.weight)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            w = float("nan")
        if not math.isfinite(w) or w < 0:
            raise ValueError(
                f"Task {self.name!r}: the 'weight' must be a finite non-negative float. Got {self.weight!r}."
            )
        if self.kind == "multiclass" and (self.num_classes is None or self.num_classes < 2):
            raise ValueError(
                f"Task {self.name!r}: a multiclass task needs num_classes >= 2. Got {self.num_classes!r}."
            )
        if self.kind == "multilabel" and (self.num_labels is None or self.num_labels < 1):
            raise ValueError(
                f"Task {self.name!r}: a multilabel task needs num_labels >= 1. Got {self.num_labels!r}."
            )
        if self.kind == "regression" and self.dim < 1:
            raise ValueError(f"Task {self.name!r}: 'dim' must be >= 1. Got {self.dim!r}.")
        self._check_dense()
        self._check_margin()
        if self.loss is not None:
            allowed = {"regression": REGRESSION_LOSSES,
                       "dense_regression": tasks_dense.DENSE_REGRESSION_LOSSES}.get(
                self.kind, (_DEFAULT_LOSS[self.kind],))
            if self.loss not in allowed:
                raise ValueError(
                    f"Task {self.name!r}: loss {self.loss!r} is not available for kind "
                    f"{self.kind!r}. Choose from {allowed}."
                )
        if self.columns is not None:
            object.__setattr__(self, "columns", tuple(self.columns))
            n = len(self.columns)
            expected = {"multilabel": self.num_labels, "regression": self.dim}.get(self.kind, 1)
            if n != expected:
                raise ValueError(
                    f"Task {self.name!r}: {n} label column(s) given but kind {self.kind!r} "
                    f"expects {expected}."
                )

    def _check_margin(self) -> None:
        if self.kind != "contrastive":
            if self.margin is not None:
                raise ValueError(f"Task {self.name!r}: 'margin' is for the contrastive kind; kind "
                                 f"{self.kind!r} takes no margin.")
            return
        m = 1.0 if self.margin is None else self.margin
        try:
            m = float(m)
        except (TypeError, ValueError):
            m = float("nan")
        if not math.isfinite(m) or m <= 0:
            raise ValueError(f"Task {self.name!r}: the 'margin' of a contrastive task must be a finite "
                             f"positive float. Got {self.margin!r}.")
        object.__setattr__(self, "margin", m)

    def _check_dense(self) -> None:
        shape = self.out_shape
        if shape is not None:
            try:
                shape = tuple(int(s) for s in shape)
            except (TypeError, ValueError):
                raise ValueError(f"Task {self.name!r}: 'out_shape' must be a tuple of ints. "
                                 f"Got {self.out_shape!r}.") from None
            object.__setattr__(self, "out_shape", shape)
        if self.kind not in DENSE_KINDS:
            if shape is not None:
                raise ValueError(f"Task {self.name!r}: 'out_shape' is for the dense kinds "
                                 f"{DENSE_KINDS}; kind {self.kind!r} takes no out_shape.")
            return
        if self.kind in DENSE_CLASS_KINDS:
            if self.num_classes is None or self.num_classes < 2:
                raise ValueError(f"Task {self.name!r}: a {self.kind} task needs num_classes >= 2. "
                                 f"Got {self.num_classes!r}.")
            rank = tasks_dense.SPATIAL_RANK[self.kind]
            ok = shape is not None and len(shape) == rank
            want = "(H, W)" if rank == 2 else "(T,)"
        else:
            ok = shape is not None and 1 <= len(shape) <= 3
            want = "(C, H, W), (C, T) or (D,)"
        if not ok or any(s < 1 for s in shape or ()):
            raise ValueError(f"Task {self.name!r}: a {self.kind} task needs out_shape {want} of "
                             f"positive sizes. Got {self.out_shape!r}.")

    # ------------------------------------------------------------------ shapes
    @property
    def out_dim(self) -> int:
        """Width of the head's output layer (for dense kinds: the flattened output)."""
        if self.kind in ("binary", "contrastive"):
            return 1
        if self.kind == "multiclass":
            return int(self.num_classes or 0)
        if self.kind == "multilabel":
            return int(self.num_labels or 0)
        if self.kind in DENSE_KINDS:
            return math.prod(self.output_shape)
        return int(self.dim)

    @property
    def output_shape(self) -> tuple[int, ...]:
        """Per-sample shape of the model's prediction: () binary, (C,) multiclass, (L,)
        multilabel, (D,) regression, () contrastive, (C, *out_shape) dense class kinds,
        out_shape dense regression."""
        if self.kind in ("binary", "contrastive"):
            return ()
        if self.kind in DENSE_CLASS_KINDS:
            return (int(self.num_classes or 0), *(self.out_shape or ()))
        if self.kind == "dense_regression":
            return tuple(self.out_shape or ())
        return (self.out_dim,)

    @property
    def target_shape(self) -> tuple[int, ...]:
        """Per-sample shape of the targets (and masks)."""
        if self.kind in ("binary", "multiclass", "contrastive"):
            return ()
        if self.kind in DENSE_KINDS:
            return tuple(self.out_shape or ())
        return (self.out_dim,)

    @property
    def label_columns(self) -> tuple[str, ...]:
        return self.columns if self.columns is not None else (self.name,)

    @property
    def loss_name(self) -> str:
        return self.loss or _DEFAULT_LOSS[self.kind]

    def shape_output(self, out: Tensor) -> Tensor:
        """Bring a head's raw (N, out_dim) output to the task's prediction shape."""
        if self.kind in ("binary", "contrastive"):
            return out.reshape(out.shape[0])
        if self.kind in DENSE_KINDS:
            return out.reshape(out.shape[0], *self.output_shape)
        return out.reshape(out.shape[0], self.out_dim)

    # ------------------------------------------------------------------ loss
    def compute_loss(self, pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        """Mean loss over the labelled entries; 0 (with graph) when none is labelled."""
        if self.kind in DENSE_KINDS:
            return tasks_dense.compute_loss(self.kind, pred, target, mask, loss=self.loss)
        if self.kind == "contrastive":
            return contrastive_loss(pred, target, float(self.margin or 1.0), mask=mask)
        if mask.dtype != torch.bool:
            mask = mask.bool()
        n = mask.sum()
        if self.kind == "multiclass":
            safe = torch.where(mask, target, torch.zeros_like(target))
            per = F.cross_entropy(pred, safe, reduction="none")
        elif self.kind in ("binary", "multilabel"):
            per = F.binary_cross_entropy_with_logits(pred, target, reduction="none")
        else:
            fns: dict[str, Callable[..., Tensor]] = {"mse": F.mse_loss, "l1": F.l1_loss, "huber": F.huber_loss}
            fn = fns[self.loss_name]
            per = fn(pred, target, reduction="none")
        per = torch.where(mask, per, torch.zeros_like(per))
        return per.sum() / n.clamp_min(1).to(per.dtype)

    # ------------------------------------------------------------------ metrics
    @property
    def metrics(self) -> tuple[Metric, ...]:
        if self.kind == "contrastive":
            return _contrastive_metrics(float(self.margin or 1.0))
        return _METRICS[self.kind]

    def metric(self, name: str) -> Metric:
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(
            f"Task {self.name!r} has no metric {name!r}. Known: {[m.name for m in self.metrics]}."
        )

    @property
    def main_metric(self) -> str:
        return {"binary": "roc_auc", "contrastive": "roc_auc", "multiclass": "accuracy", "multilabel": "macro_f1",
                "regression": "mae", **tasks_dense.MAIN_METRIC}[self.kind]

    def predict_transform(self, out: Tensor) -> Tensor:
        """Raw output -> probabilities (classification) or values (regression; the distance of
        a contrastive task)."""
        if self.kind in DENSE_KINDS:
            return tasks_dense.predict_transform(self.kind, out)
        if self.kind == "binary" or self.kind == "multilabel":
            return torch.sigmoid(out)
        if self.kind == "multiclass":
            return torch.softmax(out, dim=-1)
        return out

    def evaluate(self, out: Tensor | np.ndarray, target: Tensor | np.ndarray,
                 mask: Tensor | np.ndarray) -> dict[str, float]:
        """All metrics of this task on the labelled entries of a whole split."""
        if self.kind in DENSE_KINDS:
            return tasks_dense.evaluate(self.kind, out, target, mask)
        out_t = torch.as_tensor(out).detach().float().cpu()
        prob = self.predict_transform(out_t).numpy()
        y = torch.as_tensor(target).detach().cpu().numpy()
        m = torch.as_tensor(mask).detach().cpu().numpy().astype(bool)
        if self.kind in ("binary", "multiclass", "contrastive"):
            prob, y = prob[m], y[m]
        elif self.kind == "multilabel":
            keep = m.all(axis=1)  # metrics over fully labelled rows
            prob, y = prob[keep], y[keep]
        else:
            keep = m.all(axis=1)
            prob, y = prob[keep], y[keep]
        if len(y) == 0:
            return {mm.name: float("nan") for mm in self.metrics}
        return {mm.name: float(mm.fn(y, prob)) for mm in self.metrics}

    def classification_report(self, out: Tensor, target: Tensor, mask: Tensor) -> dict[str, Any] | None:
        """Per-class precision/recall/F1 (multiclass only), as scikit-learn reports it."""
        if self.kind != "multiclass":
            return None
        from sklearn.metrics import classification_report

        m = torch.as_tensor(mask).cpu().numpy().astype(bool)
        pred = torch.as_tensor(out).float().argmax(-1).cpu().numpy()[m]
        y = torch.as_tensor(target).cpu().numpy()[m]
        labels = list(range(int(self.num_classes or 0)))
        return classification_report(y, pred, labels=labels, output_dict=True, zero_division=0)

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        if d["columns"] is not None:
            d["columns"] = list(d["columns"])
        if d["out_shape"] is None:  # only dense tasks have one: older readers keep working
            del d["out_shape"]
        else:
            d["out_shape"] = list(d["out_shape"])
        if d["margin"] is None:  # only contrastive tasks have one
            del d["margin"]
        return d


_DEFAULT_LOSS = {"binary": "bce", "multiclass": "cross_entropy", "multilabel": "bce",
                 "regression": "mse", "contrastive": "contrastive", **tasks_dense.DEFAULT_LOSS}


def _binary_metrics() -> tuple[Metric, ...]:
    from sklearn import metrics as skm

    def auc(y: np.ndarray, p: np.ndarray) -> float:
        if len(np.unique(y)) < 2:
            return float("nan")
        return skm.roc_auc_score(y, p)

    return (
        Metric("accuracy", lambda y, p: skm.accuracy_score(y, p >= 0.5), True),
        Metric("f1", lambda y, p: skm.f1_score(y, p >= 0.5, zero_division=0), True),
        Metric("roc_auc", auc, True),
    )


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


def _contrastive_metrics(margin: float) -> tuple[Metric, ...]:
    """``roc_auc`` of −distance for "similar" (main metric), and ``accuracy`` of the rule
    "similar ⇔ distance < margin / 2" (halfway between the loss's two targets, 0 and m)."""
    from sklearn import metrics as skm

    def auc(y: np.ndarray, d: np.ndarray) -> float:
        y, d = np.asarray(y).reshape(-1), np.asarray(d).reshape(-1)
        if len(np.unique(y)) < 2:
            return float("nan")
        return float(skm.roc_auc_score(y, -d))

    def acc(y: np.ndarray, d: np.ndarray) -> float:
        return float(((np.asarray(d).reshape(-1) < margin / 2) == (np.asarray(y).reshape(-1) > 0.5)).mean())

    return (Metric("roc_auc", auc, True), Metric("accuracy", acc, True))


def _multiclass_metrics() -> tuple[Metric, ...]:
    from sklearn import metrics as skm

    return (
        Metric("accuracy", lambda y, p: skm.accuracy_score(y, p.argmax(-1)), True),
        Metric("macro_f1", lambda y, p: skm.f1_score(y, p.argmax(-1), average="macro",
                                                      labels=list(range(p.shape[1])),
                                                      zero_division=0), True),
    )


def _multilabel_metrics() -> tuple[Metric, ...]:
    from sklearn import metrics as skm

    return (
        Metric("micro_f1", lambda y, p: skm.f1_score(y, p >= 0.5, average="micro", zero_division=0), True),
        Metric("macro_f1", lambda y, p: skm.f1_score(y, p >= 0.5, average="macro", zero_division=0), True),
    )


def _regression_metrics() -> tuple[Metric, ...]:
    from sklearn import metrics as skm

    return (
        Metric("mae", lambda y, p: skm.mean_absolute_error(y, p), False),
        Metric("rmse", lambda y, p: float(np.sqrt(skm.mean_squared_error(y, p))), False),
        Metric("r2", lambda y, p: skm.r2_score(y, p) if len(y) > 1 else float("nan"), True),
    )


_METRICS: dict[str, tuple[Metric, ...]] = {
    "binary": _binary_metrics(),
    "multiclass": _multiclass_metrics(),
    "multilabel": _multilabel_metrics(),
    "regression": _regression_metrics(),
    "contrastive": _contrastive_metrics(1.0),  # names and directions; Task.metrics uses its margin
    **{kind: tuple(Metric(name, fn, hib) for name, fn, hib in specs)
       for kind, specs in tasks_dense.METRICS.items()},
}


def check_tasks(tasks: Sequence[Task]) -> list[Task]:
    """Validate a task list: non-empty, Task instances, unique names."""
    tasks = list(tasks)
    if not tasks:
        raise ValueError("At least one task is needed; the task list is empty.")
    seen: set[str] = set()
    for t in tasks:
        if not isinstance(t, Task):
            raise TypeError(f"Expected Task objects, got {type(t).__name__}: {t!r}.")
        if t.name in seen:
            raise ValueError(f"Duplicate task name {t.name!r}: task names must be unique.")
        seen.add(t.name)
    return tasks


def task_from_dict(d: dict[str, Any]) -> Task:
    d = dict(d)
    if d.get("columns") is not None:
        d["columns"] = tuple(d["columns"])
    return Task(**d)
