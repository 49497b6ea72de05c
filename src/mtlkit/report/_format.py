"""Small, dependency-free helpers shared by the HTML report and the terminal table. They read\na run through its types (:class:`~mtlkit.run.summary.Summary`, ``EpochRecord``)."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

from mtlkit.run.summary import EpochRecord, Summary

NA = "n/a"

# Metric names whose value is better when lower, used only when a run folder does not say.
_LOWER_IS_BETTER_HINTS = ("mae", "mse", "rmse", "loss", "error", "err", "ece", "brier")


def num(value: Any) -> float | None:
    """``value`` as a finite float, or ``None`` (null, NaN, ±inf, non-numeric, bool)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def fmt(value: Any, digits: int = 4) -> str:
    """A number for humans: ``n/a`` when missing or non-finite, thousands separators for ints.

    >>> fmt(None), fmt(float("nan")), fmt(12345), fmt(0.912345), fmt(1.5e-7), fmt(12345.67)
    ('n/a', 'n/a', '12,345', '0.9123', '1.5e-07', '12,345.7')
    """
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    f = num(value)
    if f is None:
        return NA
    if f != 0 and (abs(f) >= 1e6 or abs(f) < 1e-4):
        return f"{f:.{max(digits - 1, 1)}g}"
    if abs(f) >= 10 ** digits:  # 12,345.6 rather than 1.235e+04
        return f"{f:,.1f}"
    return f"{f:.{digits}g}"


def fmt_signed(value: Any, digits: int = 4) -> str:
    """Like :func:`fmt` with an explicit sign (``+0.01``, ``−0.02`` use ASCII ``-``)."""
    f = num(value)
    if f is None:
        return NA
    s = fmt(f, digits)
    return s if s.startswith("-") else f"+{s}"


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def as_dict(value: Any) -> dict[str, Any]:
    """``value`` if it is a mapping, else an empty dict (optional parts of a run)."""
    return dict(value) if isinstance(value, Mapping) else {}


def higher_is_better(summary: Summary | Mapping[str, Any], task: str, metric: str) -> bool:
    """Whether higher is better for ``metric`` of ``task``: from the summary, else from the
    task's kind (via :class:`mtlkit.tasks.Task`), else from the metric's name."""
    summary = Summary.coerce(summary)
    hib = summary.higher_is_better
    if isinstance(hib, Mapping):
        entry = hib.get(task)
        if isinstance(entry, Mapping) and isinstance(entry.get(metric), bool):
            return bool(entry[metric])
    spec = summary.task(task)
    if spec is not None:
        try:
            from mtlkit.tasks import task_from_dict

            return task_from_dict(spec).metric(metric).higher_is_better
        except Exception:
            pass
    name = metric.lower()
    return not any(h in name for h in _LOWER_IS_BETTER_HINTS)


def arrow(higher: bool) -> str:
    return "↑" if higher else "↓"


def task_spec(summary: Summary | Mapping[str, Any], task: str) -> dict[str, Any] | None:
    return Summary.coerce(summary).task(task)


def task_names(summary: Summary | Mapping[str, Any], records: Sequence[EpochRecord] | None = None) -> list[str]:
    """Task names in the run's order: from ``summary.tasks``, else from the first record."""
    summary = Summary.coerce(summary)
    names = summary.task_names()
    if names:
        return names
    for r in records or []:
        if isinstance(r.train_loss, Mapping):
            return [str(k) for k in r.train_loss]
    if summary.mtl is not None and isinstance(summary.mtl.test, Mapping):
        return [str(k) for k in summary.mtl.test]
    return []


def task_role(summary: Summary | Mapping[str, Any], task: str) -> str:
    spec = Summary.coerce(summary).task(task)
    role = (spec or {}).get("role")
    return str(role) if role else "primary"


def main_metric(summary: Summary | Mapping[str, Any], task: str, available: list[str] | None = None) -> str | None:
    """The task's main metric: ``summary.main_metric``, else the Task kind's, else the first."""
    summary = Summary.coerce(summary)
    mm = summary.main_metric
    if isinstance(mm, Mapping) and isinstance(mm.get(task), str):
        return str(mm[task])
    spec = summary.task(task)
    if spec is not None:
        try:
            from mtlkit.tasks import task_from_dict

            return task_from_dict(spec).main_metric
        except Exception:
            pass
    return available[0] if available else None


def inference_unit(summary: Summary | Mapping[str, Any]) -> str:
    summary = Summary.coerce(summary)
    unit = (summary.mtl.extra.get("inference_unit") if summary.mtl is not None else None) or summary.inference_unit
    return str(unit) if unit else "ms"


def selection_criterion(summary: Summary | Mapping[str, Any], monitor: str | None = None
                        ) -> tuple[str, str | None, str | None]:
    """What the trainer's validation score (:func:`mtlkit.training.loop.score`) measured, as
    ``(text, task, metric)``; ``task``/``metric`` are ``None`` when the score combines tasks.

    The score is the ``training.monitor`` metric (``TASK`` or ``TASK:METRIC``) when set, else
    the main metric of the single primary task, else the mean relative change of the primary
    tasks' validation main metrics from the first epoch's.

    >>> selection_criterion({"tasks": [{"name": "y", "kind": "regression"}], "main_metric": {"y": "mae"}})
    ('validation mae of task y', 'y', 'mae')
    """
    summary = Summary.coerce(summary)
    if monitor:
        task, _, metric = str(monitor).partition(":")
        metric = metric or main_metric(summary, task) or "main metric"
        return f"validation {metric} of task {task} (training.monitor)", task, metric
    names = task_names(summary)
    primary = [t for t in names if task_role(summary, t) != "auxiliary"] or names
    if len(primary) == 1:
        metric = main_metric(summary, primary[0]) or "main metric"
        return f"validation {metric} of task {primary[0]}", primary[0], metric
    mains = ", ".join(f"{main_metric(summary, t)} of {t}" for t in primary)
    return (f"mean relative change of the primary tasks' validation main metrics from epoch 1 "
            f"({mains})"), None, None


def kept_weights(summary: Summary | Mapping[str, Any], records: Sequence[EpochRecord] = (),
                 monitor: str | None = None) -> str | None:
    """Which epoch's weights the run kept and why, in words, e.g. ``"weights of epoch 8 of
    40: the best validation macro_f1 of task y (0.8123)"``; ``None`` when the summary does
    not say. ``monitor`` (the config's ``training.monitor``) defaults to the one the summary
    records (``mtl.selection.monitor``).

    >>> kept_weights({"tasks": [{"name": "y", "kind": "binary"}], "main_metric": {"y": "f1"},
    ...               "mtl": {"test": {}, "best_epoch": 8, "epochs_run": 40}})
    'weights of epoch 8 of 40: the best validation f1 of task y'
    """
    summary = Summary.coerce(summary)
    mtl = summary.mtl
    if mtl is None:
        return None
    sel = mtl.extra.get("selection")
    if monitor is None and isinstance(sel, Mapping):
        monitor = sel.get("monitor") or None
    total = mtl.epochs_run if isinstance(mtl.epochs_run, int) else (len(records) or None)
    best = mtl.best_epoch if isinstance(mtl.best_epoch, int) and not isinstance(mtl.best_epoch, bool) else None
    if best is None:
        if not total:
            return None
        return f"weights of the last epoch ({total} of {total}): no validation split, so no epoch was chosen"
    text, task, metric = selection_criterion(summary, monitor)
    shown = ""
    for r in records:
        if r.epoch != best:
            continue
        if task is not None and metric is not None:
            value = num(as_dict(as_dict(r.val).get(task)).get(metric))
            shown = f" ({fmt(value)})" if value is not None else ""
        elif (score := num(r.val_score)) is not None:
            shown = f" ({score * 100:+.3g} %)"
    of = f" of {total}" if total else ""
    return f"weights of epoch {best}{of}: the best {text}{shown}"
