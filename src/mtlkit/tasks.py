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
architecture computes it. The dense kinds (the last three; ``S`` = ``out_shape``) take their
losses and metrics from :mod:`mtlkit.tasks_dense`.

Each kind is an object (:attr:`Task.task_kind`), one file of :mod:`mtlkit.kinds` registered in
:data:`mtlkit._registry.KINDS`: its capabilities, loss, metrics, target checks and decoding
live there, and ``Task`` delegates to it. Adding a kind is adding one such file (see
:mod:`mtlkit.kinds._base`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import Tensor

from mtlkit._registry import KINDS as KIND_REGISTRY
from mtlkit.kinds import get_kind, kind_names, unknown_kind_hint
from mtlkit.kinds._base import Metric, TaskKind
from mtlkit.kinds.contrastive import contrastive_loss

ROLES = ("primary", "auxiliary")

__all__ = ["ROLES", "Metric", "Task", "TaskKind", "check_funnels", "check_tasks", "contrastive_loss",
           "funnel_masks", "task_from_dict"]


def __getattr__(name: str) -> Any:
    """``KINDS`` (the registered kind names) and the older kind-keyed tables, read from the
    kind registry (:mod:`mtlkit.kinds`) when asked for."""
    if name == "KINDS":
        return tuple(kind_names())
    if name == "_METRICS":  # kind -> metrics (a contrastive task's own margin aside)
        return {k: get_kind(k).metrics() for k in kind_names()}
    if name == "REGRESSION_LOSSES":
        return get_kind("regression").losses
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class Task:
    """One task of a multi-task problem.

    Args:
        name: unique task name; it keys the model outputs and the label columns.
        kind: ``binary``, ``multiclass``, ``multilabel``, ``regression``, ``contrastive`` (a
            pair task of the ``siamese`` architecture), or a dense kind: ``segmentation``,
            ``sequence_labelling``, ``dense_regression`` — any name registered in
            :data:`mtlkit._registry.KINDS` (one file of :mod:`mtlkit.kinds` per kind; the
            object is :attr:`task_kind`).
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
        classes: the class names of a ``binary`` (negative, positive) or ``multiclass`` task
            in index order (strings or numbers); predictions, confusion matrices and
            reports use them. ``None``: the labels are the indices themselves. Inferred from
            a table's label column when not given (:mod:`mtlkit.data.tabular`).
        positive_class: the positive class of a ``binary`` task whose labels are two values
            of any type (default: inferred and recorded in ``classes``).
        standardize: whether a ``regression`` task's targets are standardised on the training
            split (``None``: the default, yes for tables; ``False``: opt out).
        target_mean / target_std: the training-split statistics of a standardised
            regression target, one per output (set when the data is prepared): the model
            predicts ``(y - mean) / std``, the loss is computed on that scale, and
            :meth:`predict_transform`, the metrics and the predictions are in original units.
        given: the name of the task this one follows in a funnel (``conversion`` given
            ``click``): its event can only happen where the ``given`` task's is positive. Its
            labels cover every sample (0 where the parent is 0: the entire-space labels of
            ESMM); where the parent is unlabelled it is masked, and a positive where the parent
            is negative is refused or masked (:func:`funnel_masks`). ``esmm`` and ``aitm``
            read the funnel from it; the ranking metrics add the conditional view on the
            parent's positives. Binary tasks only.

    >>> t = Task("digit", "multiclass", num_classes=10)
    >>> t.out_dim, t.main_metric, t.metric("accuracy").higher_is_better
    (10, 'accuracy', True)
    >>> t.task_kind.name, t.task_kind.is_classification, t.task_kind.dense
    ('multiclass', True, False)
    >>> s = Task("mask", "segmentation", num_classes=3, out_shape=(8, 8))
    >>> s.output_shape, s.target_shape, s.out_dim, s.main_metric
    ((3, 8, 8), (8, 8), 192, 'miou')
    >>> Task("y", "regresion")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: Task 'y': unknown kind 'regresion'. Did you mean 'regression'? Known kinds: binary, ...
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
    classes: tuple[Any, ...] | None = None
    positive_class: Any = None
    standardize: bool | None = None
    target_mean: tuple[float, ...] | None = None
    target_std: tuple[float, ...] | None = None
    given: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"Task name must be a non-empty string. Got {self.name!r}.")
        if not isinstance(self.kind, str) or self.kind not in KIND_REGISTRY:
            raise ValueError(f"Task {self.name!r}: unknown kind {self.kind!r}.{unknown_kind_hint(self.kind)}")
        spec = self.task_kind
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
        self._check_out_shape(spec)
        if self.given is not None:
            if not isinstance(self.given, str) or not self.given or self.given == self.name:
                raise ValueError(f"Task {self.name!r}: 'given' names another task (the funnel step before "
                                 f"this one). Got {self.given!r}.")
            if self.kind != "binary":
                raise ValueError(f"Task {self.name!r}: 'given' (a funnel step) is for binary tasks; kind "
                                 f"{self.kind!r} takes none.")
        if self.margin is not None and not spec.pairwise:
            raise ValueError(f"Task {self.name!r}: 'margin' is for the contrastive kind; kind "
                             f"{self.kind!r} takes no margin.")
        self._check_classes_and_scale(spec)
        for key, value in spec.validate(self).items():  # the kind's own settings
            object.__setattr__(self, key, value)
        if self.loss is not None and self.loss not in spec.losses:
            raise ValueError(
                f"Task {self.name!r}: loss {self.loss!r} is not available for kind "
                f"{self.kind!r}. Choose from {spec.losses}."
            )
        if self.columns is not None:
            object.__setattr__(self, "columns", tuple(self.columns))
            n = len(self.columns)
            expected = self.out_dim if spec.multi_column else 1
            if n != expected:
                raise ValueError(
                    f"Task {self.name!r}: {n} label column(s) given but kind {self.kind!r} "
                    f"expects {expected}."
                )

    def _check_classes_and_scale(self, spec: TaskKind) -> None:
        """``classes`` / ``positive_class`` (one class per sample) and the target statistics
        (regression) are checked and normalised to tuples."""
        if self.classes is not None:
            if not (spec.class_per_sample or getattr(spec, "named_classes", False)):
                raise ValueError(f"Task {self.name!r}: 'classes' is for binary and multiclass tasks; kind "
                                 f"{self.kind!r} takes none.")
            classes = tuple(self.classes)
            keys = [str(c) for c in classes]
            if len(set(keys)) != len(keys):
                raise ValueError(f"Task {self.name!r}: 'classes' must be distinct. Got {list(classes)[:10]}.")
            if spec.binary_targets and len(classes) != 2:
                raise ValueError(f"Task {self.name!r}: a binary task has 2 classes (negative, positive). "
                                 f"Got {len(classes)}.")
            if spec.has_classes:
                if self.num_classes is None:
                    object.__setattr__(self, "num_classes", len(classes))
                elif self.num_classes != len(classes):
                    raise ValueError(f"Task {self.name!r}: {len(classes)} classes named but num_classes is "
                                     f"{self.num_classes}.")
            object.__setattr__(self, "classes", classes)
        if self.positive_class is not None:
            if not spec.binary_targets or spec.multi_column:
                raise ValueError(f"Task {self.name!r}: 'positive_class' is for binary tasks; kind "
                                 f"{self.kind!r} takes none.")
            if self.classes is not None and str(self.classes[1]) != str(self.positive_class):
                raise ValueError(f"Task {self.name!r}: positive_class {self.positive_class!r} is not the second "
                                 f"of the classes {list(self.classes)}.")
        if self.standardize is not None and spec.is_classification:
            raise ValueError(f"Task {self.name!r}: 'standardize' is for regression targets; kind "
                             f"{self.kind!r} takes none.")
        if (self.target_mean is None) != (self.target_std is None):
            raise ValueError(f"Task {self.name!r}: give both target_mean and target_std, or neither.")
        if self.target_mean is not None and self.target_std is not None:
            if spec.is_classification or spec.dense or spec.pairwise:
                raise ValueError(f"Task {self.name!r}: target statistics are for regression tasks.")
            mean = tuple(float(v) for v in self.target_mean)
            std = tuple(float(v) for v in self.target_std)
            if len(mean) != len(std) or not all(math.isfinite(v) for v in mean + std) or min(std) <= 0:
                raise ValueError(f"Task {self.name!r}: target_mean and target_std must be finite, of one "
                                 f"length, with std > 0. Got {list(mean)}, {list(std)}.")
            object.__setattr__(self, "target_mean", mean)
            object.__setattr__(self, "target_std", std)

    def _check_out_shape(self, spec: TaskKind) -> None:
        shape = self.out_shape
        if shape is None:
            return
        try:
            shape = tuple(int(s) for s in shape)
        except (TypeError, ValueError):
            raise ValueError(f"Task {self.name!r}: 'out_shape' must be a tuple of ints. "
                             f"Got {self.out_shape!r}.") from None
        object.__setattr__(self, "out_shape", shape)
        if not spec.dense:
            dense = tuple(k for k in kind_names() if get_kind(k).dense)
            raise ValueError(f"Task {self.name!r}: 'out_shape' is for the dense kinds "
                             f"{dense}; kind {self.kind!r} takes no out_shape.")

    # ------------------------------------------------------------------ the kind
    @property
    def task_kind(self) -> TaskKind:
        """The kind object registered under :attr:`kind` (its capabilities, loss, metrics,
        decoding; see :mod:`mtlkit.kinds`)."""
        return get_kind(self.kind)

    # ------------------------------------------------------------------ shapes
    @property
    def out_dim(self) -> int:
        """Width of the head's output layer (for dense kinds: the flattened output)."""
        return int(math.prod(self.output_shape))

    @property
    def output_shape(self) -> tuple[int, ...]:
        """Per-sample shape of the model's prediction: () binary, (C,) multiclass, (L,)
        multilabel, (D,) regression, () contrastive, (C, *out_shape) dense class kinds,
        out_shape dense regression."""
        return self.task_kind.output_shape(self)

    @property
    def target_shape(self) -> tuple[int, ...]:
        """Per-sample shape of the targets (and masks)."""
        return self.task_kind.target_shape(self)

    @property
    def label_columns(self) -> tuple[str, ...]:
        return self.columns if self.columns is not None else (self.name,)

    @property
    def loss_name(self) -> str:
        return self.loss or self.task_kind.default_loss

    def shape_output(self, out: Tensor) -> Tensor:
        """Bring a head's raw (N, out_dim) output to the task's prediction shape."""
        return out.reshape(out.shape[0], *self.output_shape)

    # ------------------------------------------------------------------ loss
    def compute_loss(self, pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        """Mean loss over the labelled entries; 0 (with graph) when none is labelled."""
        return self.task_kind.compute_loss(self, pred, target, mask)

    # ------------------------------------------------------------------ metrics
    @property
    def metrics(self) -> tuple[Metric, ...]:
        return self.task_kind.metrics(self)

    def metric(self, name: str) -> Metric:
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(
            f"Task {self.name!r} has no metric {name!r}. Known: {[m.name for m in self.metrics]}."
        )

    @property
    def main_metric(self) -> str:
        return self.task_kind.main_metric

    def predict_transform(self, out: Tensor) -> Tensor:
        """Raw output -> probabilities (classification) or values (regression; the distance of
        a contrastive task)."""
        return self.task_kind.predict_transform(self, out)

    def evaluate(self, out: Tensor | np.ndarray, target: Tensor | np.ndarray,
                 mask: Tensor | np.ndarray) -> dict[str, float]:
        """All metrics of this task on the labelled entries of a whole split."""
        return self.task_kind.evaluate(self, out, target, mask)

    def classification_report(self, out: Tensor, target: Tensor, mask: Tensor) -> dict[str, Any] | None:
        """Per-class precision/recall/F1 (multiclass only), as scikit-learn reports it."""
        return self.task_kind.classification_report(self, out, target, mask)

    def confusion_data(self, out: Any, target: Any, mask: Any
                       ) -> tuple[np.ndarray, np.ndarray, list[int]] | None:
        """(true classes, predicted classes, class labels) of the labelled samples for a
        confusion matrix (binary: logit >= 0; multiclass: argmax); ``None`` for the kinds
        without one class per sample."""
        return self.task_kind.confusion_data(self, out, target, mask)

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
        for key in ("classes", "positive_class", "standardize", "target_mean", "target_std", "given"):
            if d[key] is None:  # set for tables only: older readers keep working
                del d[key]
            elif isinstance(d[key], tuple):
                d[key] = list(d[key])
        return d


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


def check_funnels(tasks: Sequence[Task]) -> dict[str, str]:
    """The funnel of ``tasks`` as ``{task: parent}``; a parent that is not among the tasks, or
    a cycle, is an error that names the task."""
    names = {t.name for t in tasks}
    parents = {t.name: t.given for t in tasks if t.given is not None}
    for child, parent in parents.items():
        if parent not in names:
            raise ValueError(f"Task {child!r} is given {parent!r} (a funnel step), but there is no task "
                             f"{parent!r}; the tasks are {sorted(names)}.")
        kind = next(t.kind for t in tasks if t.name == parent)
        if kind != "binary":
            raise ValueError(f"Task {child!r} is given {parent!r}, a {kind} task; a funnel step follows a "
                             f"binary task.")
    for start in parents:
        seen, node = {start}, parents.get(start)
        while node is not None:
            if node in seen:
                raise ValueError(f"The funnel declarations ('given') of tasks {sorted(seen)} form a cycle.")
            seen.add(node)
            node = parents.get(node)
    return parents


def funnel_masks(tasks: Sequence[Task], targets: dict[str, Tensor], masks: dict[str, Tensor], *,
                 violations: str = "error") -> dict[str, Tensor]:
    """The masks with each funnel task (``given``) masked where its parent is unlabelled.

    A positive label where the parent is labelled negative (a conversion without a click)
    contradicts the funnel: ``violations="error"`` (default) refuses the data with their
    count; ``"mask"`` masks those entries out.

    >>> import torch
    >>> ts = [Task("click", "binary"), Task("buy", "binary", given="click")]
    >>> y = {"click": torch.tensor([1.0, 0.0, 1.0]), "buy": torch.tensor([1.0, 1.0, 0.0])}
    >>> m = {"click": torch.tensor([True, True, False]), "buy": torch.ones(3, dtype=torch.bool)}
    >>> funnel_masks(ts, y, m, violations="mask")["buy"].tolist()
    [True, False, False]
    """
    if violations not in ("error", "mask"):
        raise ValueError(f"The 'violations' argument must be 'error' or 'mask'. Got {violations!r}.")
    out = dict(masks)
    for child, parent in check_funnels(tasks).items():
        pm, py = out[parent].bool(), targets[parent]
        cm, cy = out[child].bool(), targets[child]
        bad = cm & pm & (py <= 0.5) & (cy > 0.5)
        n = int(bad.sum())
        if n and violations == "error":
            labels = "positive label" if n == 1 else "positive labels"
            raise ValueError(f"Task {child!r} (given {parent!r}) has {n} {labels} where {parent!r} is "
                             f"negative (a {child} without a {parent}). Fix the data, or mask them "
                             f"(YAML: data.funnel_violations: mask; Python: funnel_masks(..., violations='mask')).")
        out[child] = cm & pm & ~bad
    return out


def task_from_dict(d: dict[str, Any]) -> Task:
    d = dict(d)
    for key in ("columns", "classes", "target_mean", "target_std"):
        if d.get(key) is not None:
            d[key] = tuple(d[key])
    return Task(**d)
