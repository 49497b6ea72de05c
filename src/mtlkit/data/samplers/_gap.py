"""Per-task performance gaps to a reference (single-task baseline or target), shared by the
adaptive sampler (``dynamic_temperature``) and the ``active`` schedule.

The gap of task t with current validation value c_t and reference r_t is the *relative
shortfall*

    gap_t = (r_t − c_t) / |r_t|     when higher is better for the metric,
    gap_t = (c_t − r_t) / |r_t|     when lower is better,

positive when the task is below its reference. It is Sharma et al.'s (2017) normalised
distance to the target score and lets tasks with different metrics share one scale.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from mtlkit.kinds import get_kind, kind_names
from mtlkit.tasks import Task

#: the direction of every metric mtlkit computes (used when no Task specs are given)
_DIRECTION: dict[str, bool] = {m.name: m.higher_is_better for k in kind_names() for m in get_kind(k).metrics()}


def _main_by_names() -> dict[frozenset[str], str]:
    """The main metric of a task kind, keyed by the set of metric names the kind reports; when
    two kinds report the same set (multiclass and sequence_labelling), the first registered
    kind wins. Used only when the sampler/schedule was not given the Task specs."""
    out: dict[frozenset[str], str] = {}
    for k in kind_names():
        kind = get_kind(k)
        main = Task("_", k, **kind.example).main_metric
        out.setdefault(frozenset(m.name for m in kind.metrics()), main)
    return out


#: the main metric of a task kind, keyed by the set of metric names the kind reports
_MAIN_BY_NAMES: dict[frozenset[str], str] = _main_by_names()


def check_references(owner: str, references: Any) -> dict[str, Any] | None:
    """Validate the ``references`` argument: ``{task: value}`` or ``{task: {metric: value}}``."""
    if references is None:
        return None
    if not isinstance(references, Mapping):
        raise ValueError(f"The 'references' parameter of {owner} must be a mapping "
                         f"{{task: value}} or {{task: {{metric: value}}}}. Got {references!r}.")
    out: dict[str, Any] = {}
    for k, v in references.items():
        if isinstance(v, Mapping):
            out[str(k)] = {str(m): float(x) for m, x in v.items()}
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[str(k)] = float(v)
        else:
            raise ValueError(f"The 'references' parameter of {owner} has a non-numeric value for "
                             f"task {k!r}: {v!r}.")
    return out


class PerformanceGap:
    """Turns validation metrics into the relative gaps above (see the module docstring).

    ``metric``: one metric name for every task, ``{task: metric}``, or ``None`` for each
    task's main metric (which needs :meth:`setup` with the Task specs).
    """

    def __init__(self, owner: str, references: Mapping[str, Any] | None,
                 metric: str | Mapping[str, str] | None) -> None:
        self.owner = owner
        self.references = check_references(owner, references)
        if metric is not None and not isinstance(metric, (str, Mapping)):
            raise ValueError(f"The 'metric' parameter of {owner} must be a metric name, a mapping "
                             f"{{task: metric}} or None. Got {metric!r}.")
        self.metric = metric
        self._tasks: dict[str, Task] = {}

    def setup(self, tasks: Sequence[Task]) -> None:
        self._tasks = {t.name: t for t in tasks}
        for name in self._tasks:
            m = self.metric_of(name)
            self._tasks[name].metric(m)  # raises a clear KeyError for an unknown metric

    def metric_of(self, task: str, reported: Mapping[str, float] | None = None) -> str:
        """The metric compared for ``task``: the ``metric`` argument, else the task's main
        metric (from the Task spec, or recognised from the set of metrics ``reported``)."""
        if isinstance(self.metric, str):
            return self.metric
        if isinstance(self.metric, Mapping) and task in self.metric:
            return str(self.metric[task])
        if task in self._tasks:
            return self._tasks[task].main_metric
        if reported is not None and frozenset(reported) in _MAIN_BY_NAMES:
            return _MAIN_BY_NAMES[frozenset(reported)]
        raise ValueError(
            f"{self.owner} does not know which validation metric to use for task {task!r}: pass "
            f"'metric' or call setup(tasks) with the Task specs (the Trainer does)."
        )

    def higher_is_better(self, task: str, reported: Mapping[str, float] | None = None) -> bool:
        m = self.metric_of(task, reported)
        if task in self._tasks:
            return self._tasks[task].metric(m).higher_is_better
        if m not in _DIRECTION:
            raise ValueError(f"{self.owner}: unknown direction of metric {m!r} for task {task!r}; "
                             f"call setup(tasks) with the Task specs.")
        return _DIRECTION[m]

    def reference_of(self, task: str, reported: Mapping[str, float] | None = None) -> float:
        if self.references is None:
            raise ValueError(
                f"{self.owner} needs a reference score per task (single-task baselines or "
                f"targets): pass 'references' or call set_references(...)."
            )
        if task not in self.references:
            raise ValueError(f"{self.owner} has no reference for task {task!r}; references are given "
                             f"for {sorted(self.references)}.")
        v = self.references[task]
        if isinstance(v, dict):
            m = self.metric_of(task, reported)
            if m not in v:
                raise ValueError(f"{self.owner}: the reference of task {task!r} has no metric {m!r} "
                                 f"(it has {sorted(v)}).")
            v = v[m]
        if not math.isfinite(v) or v == 0:
            raise ValueError(f"{self.owner}: the reference of task {task!r} must be finite and "
                             f"non-zero (the gap is relative to it). Got {v!r}.")
        return float(v)

    def gaps(self, task_names: Sequence[str], val: Mapping[str, Mapping[str, float]]
             ) -> dict[str, float]:
        """Relative gap per task; NaN when the task's validation value is missing or NaN."""
        out: dict[str, float] = {}
        for t in task_names:
            reported = val.get(t) or {}
            ref = self.reference_of(t, reported)
            cur = reported.get(self.metric_of(t, reported), float("nan"))
            cur = float("nan") if cur is None else float(cur)
            if not math.isfinite(cur):
                out[t] = float("nan")
                continue
            diff = ref - cur if self.higher_is_better(t, reported) else cur - ref
            out[t] = diff / abs(ref)
        return out


def validation_metrics(record: Mapping[str, Any]) -> Mapping[str, Mapping[str, float]] | None:
    """The ``{task: {metric: value}}`` validation metrics of an epoch record (or the metrics
    themselves when given directly); ``None`` when the epoch had no validation data."""
    if "val" in record and isinstance(record["val"], Mapping):
        return record["val"]
    if record and all(isinstance(v, Mapping) for v in record.values()):
        return record
    return None
