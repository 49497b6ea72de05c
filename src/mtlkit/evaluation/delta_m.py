"""Δm: the average relative change of a multi-task model against single-task models.

Maninis et al. 2019 / Vandenhende et al. 2021 (and the LibMTL documentation):

    Δm = (1/T) Σ_t (1/|M_t|) Σ_{m ∈ M_t} (−1)^{h_m} (M_mtl − M_stl) / M_stl × 100

where ``h_m = 1`` when higher is better for metric ``m``. **Sign convention: a negative Δm
means the multi-task model is better** (every term is "how much worse, in %").
Metrics whose single-task value is 0 or not finite are skipped (the ratio is undefined) and
the skip is reported by :func:`delta_m_per_task`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from mtlkit.tasks import Task


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
    >>> delta_m({"y": {"mae": 0.9, "rmse": 1.0, "r2": 0.5}},
    ...         {"y": {"mae": 1.0, "rmse": 1.0, "r2": 0.5}}, [t])  # MAE 10% lower
    -3.333333333333333
    """
    chosen = [t for t in tasks if t.role == "primary"] if primary_only else list(tasks)
    per = delta_m_per_task(mtl, stl, chosen, metrics)
    if not per:
        return float("nan")
    return sum(per.values()) / len(per)
