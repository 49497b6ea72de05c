"""The :class:`TaskKind` base class: everything that depends on what a task predicts.

A task kind is an object registered in :data:`mtlkit._registry.KINDS` under its file stem.
:class:`mtlkit.Task` keeps ``kind`` as the string the user gives (configs, ``to_dict``, saved
runs) and reaches the object as ``task.task_kind``; every kind-dependent step of mtlkit asks
that object, by its capabilities (``is_classification``, ``dense``, ``pairwise`` ...) or its
methods, instead of comparing kind names.

What a kind provides
--------------------
* capabilities (class attributes): ``is_classification``, ``has_classes``,
  ``binary_targets``, ``multi_column``, ``dense``, ``pairwise``, ``width_setting``;
* the losses it accepts (``losses``; the first is the default) and :meth:`~TaskKind.compute_loss`;
* its metrics (:meth:`~TaskKind.metrics`) and ``main_metric``;
* shapes from the task's settings: :meth:`~TaskKind.output_shape`, :meth:`~TaskKind.target_shape`,
  and the checks of those settings (:meth:`~TaskKind.validate`);
* targets: :meth:`~TaskKind.check_labels` (``check_targets``),
  :meth:`~TaskKind.targets_from_columns` (table loading), :meth:`~TaskKind.cast_targets`
  (labels collated from a torch ``Dataset``);
* predictions: :meth:`~TaskKind.predict_transform` (logits -> probabilities or values),
  :meth:`~TaskKind.prediction_columns` (the columns of ``mtlkit predict``),
  :meth:`~TaskKind.evaluate`;
* per-class summaries: :meth:`~TaskKind.confusion_data`,
  :meth:`~TaskKind.classification_report`, :meth:`~TaskKind.class_balance`.

Each method takes the :class:`~mtlkit.Task` (or any object with the settings the kind reads:
``name``, ``kind``, ``num_classes``, ``num_labels``, ``dim``, ``loss``, ``margin``,
``out_shape``, ``columns``) as its first argument; the kind object itself holds no task state.

Adding a kind is one file
-------------------------
Create ``src/mtlkit/kinds/<name>.py`` with one subclass of :class:`TaskKind` decorated with
``@KINDS.register()``::

    import torch
    import torch.nn.functional as F

    from mtlkit._registry import KINDS
    from mtlkit.kinds._base import Metric, TaskKind, as_bool, masked_mean

    @KINDS.register()
    class Count(TaskKind):
        \"\"\"A count per sample: float target (N,) >= 0, a (N,) log-rate, Poisson loss.\"\"\"

        losses = ("poisson",)
        main_metric = "mae"

        def output_shape(self, task):
            return ()

        def target_shape(self, task):
            return ()

        def compute_loss(self, task, pred, target, mask):
            per = F.poisson_nll_loss(pred, target, log_input=True, reduction="none")
            return masked_mean(per, as_bool(mask))

        def predict_transform(self, task, out):
            return torch.exp(out)  # the expected count

        def _build_metrics(self):
            return (Metric("mae", lambda y, p: float(abs(y - p).mean()), False),)

It registers under the file stem (``"count"``), which is then a valid ``Task(kind=...)``, a
valid ``kind:`` of a run config (the config's list of kinds is the registry's) and a line of
``mtlkit list tasks``. Give ``example`` (the settings of a small valid task) when the kind
needs settings; the kind conformance test (``tests/core/test_kinds.py``, which trains this
very ``Count`` kind from a file of its own) then checks it. Override the other methods only
where the defaults below (a flat target, one row per sample) do not fit;
:mod:`mtlkit.kinds._dense` holds the shared base of the dense kinds.

>>> from mtlkit.kinds import get_kind
>>> k = get_kind("multiclass")
>>> k.has_classes, k.dense, k.losses, k.main_metric
(True, False, ('cross_entropy',), 'accuracy')
>>> from mtlkit import Task
>>> k.output_shape(Task("digit", "multiclass", num_classes=10))
(10,)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor


class _SklearnMetrics:
    """``sklearn.metrics``, imported when a metric is first computed: a kind's metric list is
    read at start-up (the samplers' metric directions, a run's checks) and importing
    scikit-learn then would cost ~0.9 s before any data is there."""

    def __getattr__(self, name: str) -> Any:
        import sklearn.metrics

        return getattr(sklearn.metrics, name)


#: use as ``skm.roc_auc_score(...)`` inside metric functions
skm: Any = _SklearnMetrics()


@dataclass(frozen=True)
class Metric:
    """A named metric on numpy arrays of labelled samples only."""

    name: str
    fn: Callable[[np.ndarray, np.ndarray], float]
    higher_is_better: bool


def to_numpy(a: Any) -> np.ndarray:
    """A tensor (any device) or array-like as a numpy array."""
    if isinstance(a, Tensor):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def masked_mean(per: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``per`` over the ``True`` entries of the bool ``mask``; 0 (with graph) when
    none is labelled."""
    n = mask.sum()
    per = torch.where(mask, per, torch.zeros_like(per))
    return per.sum() / n.clamp_min(1).to(per.dtype)


def as_bool(mask: Tensor) -> Tensor:
    return mask if mask.dtype == torch.bool else mask.bool()


class TaskKind:
    """What a task predicts: its targets, outputs, losses, metrics and decoding.

    The defaults describe a *flat* kind (one target row per sample); see the module
    docstring for the full list and for how to add a kind.
    """

    #: the registry key (the file stem), the ``kind`` string of a :class:`~mtlkit.Task`
    name: str = ""

    # ------------------------------------------------------------ capabilities
    #: the output is class scores (logits) and the loss a likelihood over classes
    is_classification: ClassVar[bool] = False
    #: targets are class indices in [0, num_classes) (long tensors)
    has_classes: ClassVar[bool] = False
    #: targets are 0/1 floats
    binary_targets: ClassVar[bool] = False
    #: one label column per output unit (a table row holds several labels of the task)
    multi_column: ClassVar[bool] = False
    #: one prediction per position of an ``out_shape`` map (pixels, time steps); the
    #: predictions do not fit a table
    dense: ClassVar[bool] = False
    #: the samples are pairs and the output the distance between their embeddings (only the
    #: ``siamese`` architecture computes it; no head); the kind takes a ``margin``
    pairwise: ClassVar[bool] = False
    #: the Task field that sets the width of the output (``num_classes``, ``num_labels``,
    #: ``dim``), ``None`` when the width is fixed or given by ``out_shape`` alone
    width_setting: ClassVar[str | None] = None
    #: the loss names the kind accepts; the first is the default
    losses: ClassVar[tuple[str, ...]] = ()
    #: the metric that ranks models of this kind (Δm, early stopping, reports)
    main_metric: ClassVar[str] = ""
    #: the settings of a small valid task of this kind (``Task("t", kind, **example)``), for
    #: the docs and the kind conformance test
    example: ClassVar[dict[str, Any]] = {}

    def __init__(self, name: str | None = None) -> None:
        self.name = name or type(self).name or type(self).__module__.rsplit(".", 1)[-1].lstrip("_")
        self._metrics: tuple[Metric, ...] | None = None

    def __repr__(self) -> str:
        return f"<task kind {self.name!r}>"

    @property
    def default_loss(self) -> str:
        return self.losses[0]

    @property
    def class_per_sample(self) -> bool:
        """One class label per sample (binary, multiclass): a confusion matrix applies."""
        return self.is_classification and not self.dense and not self.multi_column

    # ------------------------------------------------------------ settings and shapes
    def validate(self, task: Any) -> dict[str, Any]:
        """Check the kind's own settings of ``task`` (raise ``ValueError`` naming the task);
        return the settings to normalise (e.g. ``{"margin": 1.0}``), ``{}`` for none."""
        return {}

    def output_shape(self, task: Any) -> tuple[int, ...]:
        """Per-sample shape of the model's prediction."""
        raise NotImplementedError

    def target_shape(self, task: Any) -> tuple[int, ...]:
        """Per-sample shape of the targets (and masks)."""
        raise NotImplementedError

    # ------------------------------------------------------------ loss and metrics
    def compute_loss(self, task: Any, pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        """Mean loss over the labelled entries; 0 (with graph) when none is labelled."""
        raise NotImplementedError

    def _build_metrics(self) -> tuple[Metric, ...]:
        raise NotImplementedError

    def metrics(self, task: Any = None) -> tuple[Metric, ...]:
        """The metrics of this kind (of ``task`` when they depend on its settings)."""
        if self._metrics is None:
            self._metrics = self._build_metrics()
        return self._metrics

    def predict_transform(self, task: Any, out: Tensor) -> Tensor:
        """Raw output -> probabilities (classification) or values."""
        return out

    def evaluate(self, task: Any, out: Tensor | np.ndarray, target: Tensor | np.ndarray,
                 mask: Tensor | np.ndarray) -> dict[str, float]:
        """All metrics on the labelled entries of a whole split (for a multi-column kind:
        on the fully labelled rows)."""
        out_t = torch.as_tensor(out).detach().float().cpu()
        prob = self.predict_transform(task, out_t).numpy()
        y = torch.as_tensor(target).detach().cpu().numpy()
        m = torch.as_tensor(mask).detach().cpu().numpy().astype(bool)
        if self.multi_column:
            keep = m.all(axis=1)  # metrics over fully labelled rows
            prob, y = prob[keep], y[keep]
        else:
            prob, y = prob[m], y[m]
        metrics = self.metrics(task)
        if len(y) == 0:
            return {mm.name: float("nan") for mm in metrics}
        return {mm.name: float(mm.fn(y, prob)) for mm in metrics}

    # ------------------------------------------------------------ targets
    def check_labels(self, task: Any, values: Tensor) -> None:
        """Check the labelled target entries ``values`` (non-empty) are in range."""
        if self.has_classes:
            lo, hi = int(values.min()), int(values.max())
            if lo < 0 or hi >= int(task.num_classes or 0):
                raise ValueError(
                    f"Task {task.name!r}: label {hi if hi >= (task.num_classes or 0) else lo} is outside "
                    f"[0, {task.num_classes}) (num_classes={task.num_classes})."
                )
        elif self.binary_targets:
            bad = values[(values != 0) & (values != 1)]
            if bad.numel():
                raise ValueError(f"Task {task.name!r}: {task.kind} labels must be 0 or 1. Got {float(bad[0])}.")
        elif not torch.isfinite(values.float()).all():
            raise ValueError(f"Task {task.name!r}: {task.kind} targets contain infinite values.")

    def cast_targets(self, task: Any, y: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Labels collated from a torch ``Dataset`` -> the kind's target dtype (and shape)."""
        return (y.long() if self.has_classes else y.float()), mask

    def targets_from_columns(self, task: Any, values: np.ndarray, missing: np.ndarray
                             ) -> tuple[Tensor, Tensor]:
        """(N, columns) float label values (0 where missing) and the missing flags of a
        task's label columns -> (targets, mask)."""
        if self.multi_column or self.dense:
            return torch.as_tensor(values, dtype=torch.float32), torch.as_tensor(~missing)
        return torch.as_tensor(values[:, 0], dtype=torch.float32), torch.as_tensor(~missing[:, 0])

    # ------------------------------------------------------------ predictions
    def prediction_columns(self, task: Any, out: Tensor) -> dict[str, np.ndarray]:
        """Table columns of the predictions of raw outputs ``out`` (``mtlkit predict``): one
        value column per output unit by default; ``{}`` when they do not fit a table."""
        prob = self.predict_transform(task, out).numpy()
        prob = prob.reshape(prob.shape[0], -1)  # (N, D); a scalar output is one column
        names = task.label_columns if task.columns else (
            [task.name] if task.out_dim == 1 else [f"{task.name}[{i}]" for i in range(task.out_dim)])
        return {c: prob[:, j] for j, c in enumerate(names)}

    def confusion_data(self, task: Any, out: Any, target: Any, mask: Any
                       ) -> tuple[np.ndarray, np.ndarray, list[int]] | None:
        """(true classes, predicted classes, class labels) of the labelled samples, for a
        confusion matrix; ``None`` when the kind has none."""
        return None

    def classification_report(self, task: Any, out: Any, target: Any, mask: Any) -> dict[str, Any] | None:
        """Per-class precision/recall/F1 as scikit-learn reports it; ``None`` when the kind
        has none."""
        return None

    def class_balance(self, task: Any, y: Tensor, mask: Tensor) -> list[Any] | None:
        """Labelled samples per class (``None`` for a kind without classes)."""
        return None


def binary_balance(y: Tensor, mask: Tensor) -> list[int]:
    """``[n_negative, n_positive]`` of the labelled 0/1 targets."""
    pos = int(y[mask].sum())
    return [int(mask.sum()) - pos, pos]


def check_positive_int(task: Any, setting: str, low: int) -> None:
    """``Task 'y': a <kind> task needs <setting> >= <low>``."""
    value = getattr(task, setting)
    if value is None or value < low:
        raise ValueError(f"Task {task.name!r}: a {task.kind} task needs {setting} >= {low}. Got {value!r}.")
