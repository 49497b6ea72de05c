"""Δm: the average relative change of a multi-task model against single-task models.

Maninis et al. 2019 / Vandenhende et al. 2021 (and the LibMTL documentation):

    Δm = (1/T) Σ_t (1/|M_t|) Σ_{m ∈ M_t} (−1)^{h_m} (M_mtl − M_stl) / M_stl × 100

where ``h_m = 1`` when higher is better for metric ``m``. **Sign convention: a negative Δm
means the multi-task model is better** (every term is "how much worse, in %").
Metrics whose single-task value is 0 or not finite are skipped (the ratio is undefined) and
the skip is reported by :func:`delta_m_per_task`.

**Which metrics enter Δm.** A relative change explodes when the single-task value is near
zero: R² going from 0.068 to 0.119 is a −75 % term while the MAE moved by 1 %. Runs therefore
use :func:`delta_m_metrics`, which picks per task kind the metrics whose references are
bounded away from zero (:data:`DELTA_M_METRICS`): errors (MAE, RMSE) are zero only for a
perfect model, accuracy is at least the chance level, ROC AUC about 0.5; R² (zero for a weak
model, the very case of interest) and binary/multilabel F1 (zero for a model that predicts
no positive) are left out. The run records the chosen metrics in ``summary.json``
(``delta_m_metrics``) and warns when a term is still dominated by a small reference
(:func:`small_reference_warnings`). Called without ``metrics``, :func:`delta_m` and
:func:`delta_m_per_task` keep using every metric of the task (the behaviour before the change).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from mtlkit.tasks import Task

__all__ = ["DELTA_M_METRICS", "delta_m", "delta_m_metrics", "delta_m_per_task", "small_reference_warnings"]

#: per task kind, the metrics that enter Δm in a run (references bounded away from zero);
#: a kind not listed uses all its metrics
DELTA_M_METRICS: dict[str, tuple[str, ...]] = {
    "regression": ("mae", "rmse"),
    "binary": ("accuracy", "roc_auc"),
    "multiclass": ("accuracy", "macro_f1"),
    "multilabel": ("micro_f1",),
    "contrastive": ("roc_auc", "accuracy"),
    "dense_regression": ("abs_err", "rel_err"),
    "segmentation": ("miou", "pixel_accuracy"),
    "sequence_labelling": ("accuracy", "macro_f1"),
}


def delta_m_metrics(tasks: Sequence[Task]) -> dict[str, list[str]]:
    """The metrics that enter Δm per task in a run: :data:`DELTA_M_METRICS` of the task's
    kind (those the task has), else all the task's metrics.

    >>> delta_m_metrics([Task("y", "regression"), Task("c", "binary")])
    {'y': ['mae', 'rmse'], 'c': ['accuracy', 'roc_auc']}
    """
    out: dict[str, list[str]] = {}
    for task in tasks:
        have = [m.name for m in task.metrics]
        wanted = [m for m in DELTA_M_METRICS.get(task.kind, ()) if m in have]
        out[task.name] = wanted or have
    return out


def small_reference_warnings(
    mtl: Mapping[str, Mapping[str, float]],
    stl: Mapping[str, Mapping[str, float]],
    tasks: Sequence[Task],
    metrics: Mapping[str, Sequence[str]] | None = None,
    *,
    limit: float = 50.0,
) -> list[str]:
    """One message per Δm term of magnitude ``limit`` % or more: a term that large comes
    from a single-task reference small next to the change, and it dominates Δm.

    >>> small_reference_warnings({"y": {"r2": 0.119}}, {"y": {"r2": 0.068}}, [Task("y", "regression")])[0][:46]
    "The Δm term of task 'y' metric 'r2' is -75.0 %"
    """
    out = []
    for task in tasks:
        if task.name not in mtl or task.name not in stl:
            continue
        names = list(metrics[task.name]) if metrics and task.name in metrics else [m.name for m in task.metrics]
        for name in names:
            a, b = mtl[task.name].get(name), stl[task.name].get(name)
            if a is None or b is None or not math.isfinite(a) or not math.isfinite(b) or b == 0:
                continue
            sign = -1.0 if task.metric(name).higher_is_better else 1.0
            term = sign * (a - b) / abs(b) * 100.0
            if abs(term) >= limit:
                out.append(f"The Δm term of task {task.name!r} metric {name!r} is {term:+.1f} % because its "
                           f"single-task reference is small ({b:.4g}; multi-task {a:.4g}): it dominates Δm. "
                           f"Read the metric itself rather than the percentage.")
    return out


def delta_m_per_task(
    mtl: Mapping[str, Mapping[str, float]],
    stl: Mapping[str, Mapping[str, float]],
    tasks: Sequence[Task],
    metrics: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, float]:
    """Per-task term (1/|M_t|) Σ_m (−1)^{h_m} (M_mtl − M_stl)/M_stl × 100.

    ``metrics`` optionally restricts the metric names used per task (default: all metrics
    of the task present in both results).
    """
    out: dict[str, float] = {}
    for task in tasks:
        if task.name not in mtl or task.name not in stl:
            continue
        names = list(metrics[task.name]) if metrics and task.name in metrics else [
            m.name for m in task.metrics
        ]
        terms = []
        for name in names:
            a, b = mtl[task.name].get(name), stl[task.name].get(name)
            if a is None or b is None or not math.isfinite(a) or not math.isfinite(b) or b == 0:
                continue
            sign = -1.0 if task.metric(name).higher_is_better else 1.0
            terms.append(sign * (a - b) / abs(b) * 100.0)
        if terms:
            out[task.name] = sum(terms) / len(terms)
    return out


def delta_m(
    mtl: Mapping[str, Mapping[str, float]],
    stl: Mapping[str, Mapping[str, float]],
    tasks: Sequence[Task],
    *,
    primary_only: bool = True,
    metrics: Mapping[str, Sequence[str]] | None = None,
) -> float:
    """The headline Δm in percent (negative = the multi-task model is better).

    Auxiliary tasks are excluded when ``primary_only`` (the default).

    >>> from mtlkit import Task
    >>> t = Task("y", "regression")
    >>> round(delta_m({"y": {"mae": 0.9, "rmse": 1.0, "r2": 0.5}},
    ...               {"y": {"mae": 1.0, "rmse": 1.0, "r2": 0.5}}, [t]), 6)  # MAE 10% lower, all metrics
    -3.333333
    >>> metrics = delta_m_metrics([t])  # what runs use: MAE and RMSE, not R²
    >>> round(delta_m({"y": {"mae": 0.9, "rmse": 1.0, "r2": 0.5}},
    ...               {"y": {"mae": 1.0, "rmse": 1.0, "r2": 0.5}}, [t], metrics=metrics), 6)
    -5.0
    """
    chosen = [t for t in tasks if t.role == "primary"] if primary_only else list(tasks)
    per = delta_m_per_task(mtl, stl, chosen, metrics)
    if not per:
        return float("nan")
    return sum(per.values()) / len(per)
