"""What one trial of ``mtlkit tune`` computes: the trial's config trained once (the config's
seed, its split), scored on the validation split, with per-epoch reports for pruning.

**The objective.** By default the validation Δm (Maninis et al. 2019; the metrics of
:func:`~mtlkit.evaluation.delta_m.delta_m_metrics`, primary tasks; lower is better) of the
trial's model against the single-task references of the *base* config (the config without
its search), trained once with the config's seed and cached
(:class:`~mtlkit.run.seeds.ReferenceCache`, the cache ``mtlkit train --seeds`` uses, with
their validation metrics added). The references stay fixed for the whole study even when
the search changes the learning rate or the budget: every trial is measured against one
yardstick (a choice of ours; the retrain over seeds compares the best config with its own
references). ``tune: {metric: TASK/METRIC}`` optimises one validation metric instead, in
the metric's own direction unless ``tune.direction`` says otherwise.

The model kept by a trial is the one the trainer keeps (its best-validation epoch); the
per-epoch value reported to the pruner is the same objective computed on each epoch's
validation metrics (Optuna's ``MedianPruner``, Akiba et al. 2019).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mtlkit.training.callbacks import Callback

if TYPE_CHECKING:
    from mtlkit.config import RunConfig
    from mtlkit.run.data import PreparedData
    from mtlkit.tasks import Task
    from mtlkit.training.trainer import Trainer

__all__ = ["DataCache", "Objective", "PruningCallback", "TrialResult", "build_trial", "reference_val_metrics",
           "train_trial"]

Log = Callable[[str], None]
Metrics = dict[str, dict[str, float]]


@dataclass(frozen=True)
class Objective:
    """How a trial is scored: Δm against the references (``metric is None``, minimised) or
    the validation ``task``/``metric`` in ``direction``."""

    task: str | None = None
    metric: str | None = None
    direction: str = "minimize"

    @property
    def label(self) -> str:
        return "validation Δm (%)" if self.metric is None else f"validation {self.task}/{self.metric}"

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None, tasks: Sequence[Task] | None = None) -> Objective:
        """``tune: {metric: TASK/METRIC, direction: ...}`` checked (``tasks``: the run's tasks,
        to check the names and read the metric's direction); none: Δm, minimised."""
        section = dict(section or {})
        unknown = sorted(set(section) - {"metric", "direction"})
        if unknown:
            raise ValueError(f"tune: unknown key(s) {unknown}; it takes 'metric' (TASK/METRIC) and 'direction'.")
        direction = section.get("direction")
        if direction is not None and direction not in ("minimize", "maximize"):
            raise ValueError(f"tune.direction must be 'minimize' or 'maximize'; got {direction!r}.")
        spec = section.get("metric")
        if spec is None or spec == "delta_m":
            if direction == "maximize":
                raise ValueError("tune.direction: Δm is minimised (negative Δm = multi-task better); drop "
                                 "'direction' or name a metric.")
            return cls()
        if not isinstance(spec, str) or spec.count("/") != 1 or not all(spec.split("/")):
            raise ValueError(f"tune.metric must be 'TASK/METRIC' (e.g. y/accuracy) or 'delta_m'; got {spec!r}.")
        task, metric = spec.split("/")
        if tasks is not None:
            by_name = {t.name: t for t in tasks}
            if task not in by_name:
                raise ValueError(f"tune.metric names unknown task {task!r}; tasks are {sorted(by_name)}.")
            names = [m.name for m in by_name[task].metrics]
            if metric not in names:
                raise ValueError(f"tune.metric: task {task!r} has no metric {metric!r}; it has {names}.")
            if direction is None:
                direction = "maximize" if by_name[task].metric(metric).higher_is_better else "minimize"
        return cls(task, metric, direction or "maximize")

    def value(self, val: Mapping[str, Mapping[str, float]], refs: Mapping[str, Mapping[str, float]] | None,
              tasks: Sequence[Task]) -> float:
        """The objective of validation metrics ``val`` (NaN when it cannot be computed)."""
        if self.metric is not None:
            v = (val.get(self.task or "") or {}).get(self.metric)
            return float(v) if v is not None else math.nan
        from mtlkit.evaluation.delta_m import delta_m, delta_m_metrics

        return float(delta_m(val, refs or {}, tasks, primary_only=True, metrics=delta_m_metrics(tasks)))


@dataclass
class TrialResult:
    """What a trial trained: its objective, validation metrics and budget."""

    value: float
    val: Metrics
    delta_m_per_task: dict[str, float]
    epochs_run: int
    best_epoch: int | None
    fit_time_s: float


class PruningCallback(Callback):
    """Reports the objective on each epoch's validation metrics to the Optuna trial and stops
    the trial (``optuna.TrialPruned``) when the pruner says so."""

    def __init__(self, trial: Any, objective: Objective, refs: Metrics | None, tasks: Sequence[Task],
                 pruned: type[BaseException]) -> None:
        self.trial, self.objective, self.refs, self.tasks, self.pruned = trial, objective, refs, list(tasks), pruned
        self.reported: list[float] = []

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        val = record.get("val")
        if not isinstance(val, dict):
            return
        value = self.objective.value(val, self.refs, self.tasks)
        if not math.isfinite(value):
            return
        step = int(record.get("epoch", len(self.reported) + 1))
        self.reported.append(value)
        self.trial.report(value, step)
        if self.trial.should_prune():
            raise self.pruned(f"pruned at epoch {step} ({self.objective.label} {value:.4g})")


@dataclass
class DataCache:
    """Prepared data by what it depends on (the data, tasks and auxiliary sections and the
    seed): a trial that changes only the method reuses the split of the one before."""

    entries: dict[str, PreparedData] = field(default_factory=dict)

    def get(self, cfg: RunConfig) -> PreparedData:
        from mtlkit.run.data import prepare_from_config

        dumped = cfg.model_dump(mode="json")
        key = json.dumps({k: dumped.get(k) for k in ("data", "tasks", "auxiliary", "seed")}, sort_keys=True)
        if key not in self.entries:
            self.entries.clear()  # one at a time: a search over λ would otherwise keep every copy
            self.entries[key] = prepare_from_config(cfg)
        return self.entries[key]


def reference_val_metrics(cfg: RunConfig, prepared: PreparedData, cache_dir: Path, *, say: Log) -> Metrics:
    """The single-task references' validation metrics for ``cfg`` (its seed): from the
    reference cache when an entry has them, else trained now and stored (with their test
    results, so ``mtlkit train --seeds`` reuses them too)."""
    from mtlkit.evaluation.baselines import train_baselines
    from mtlkit.run.seeds import ReferenceCache, reference_inputs, reference_key
    from mtlkit.run.summary import ModelResult
    from mtlkit.run.train_one import evaluate_outputs
    from mtlkit.training import predict_raw

    primary = [t for t in prepared.tasks if t.role == "primary"]
    cache = ReferenceCache(cache_dir)
    key = reference_key(cfg, prepared)
    hit = cache.get(key)
    if hit is not None:
        vals = {name: (entry.get("val") or {}).get(name) for name, entry in hit["baselines"].items()
                if isinstance(entry, dict)}
        if all(isinstance(vals.get(t.name), dict) for t in primary):
            say(f"Single-task references from the cache ({cache.path(key)}).")
            return {name: dict(v) for name, v in vals.items() if isinstance(v, dict)}
    say(f"Training the single-task references ({len(primary)} task(s)) once for the whole study ...")
    stl = train_baselines(cfg, prepared)
    by_name = {t.name: dataclasses.replace(t, weight=1.0) for t in primary}
    out: Metrics = {}
    results: dict[str, Any] = {}
    for name, model in stl.models.items():
        out[name] = evaluate_outputs([by_name[name]], predict_raw(model, prepared.val), prepared.val)[0][name]
        res: ModelResult = stl.results[name]
        res.val = {name: out[name]}
        results[name] = res.to_dict()
    cache.put(key, results, reference_inputs(cfg, prepared), None)
    return out


def build_trial(cfg: RunConfig, prepared: PreparedData) -> tuple[Any, dict[str, Any]]:
    """The trial's model and components (seeded as a run seeds them); a combination of values
    that cannot be built is a ``ValueError``/``TypeError``/``KeyError``."""
    from mtlkit.run.build import build_all, build_model_for
    from mtlkit.training import seed_everything

    built = build_all(cfg, tasks=prepared.tasks)
    seed_everything(cfg.seed)
    return build_model_for(cfg, prepared, prepared.tasks), built.components()


def train_trial(cfg: RunConfig, prepared: PreparedData, objective: Objective, refs: Metrics | None,
                built: tuple[Any, dict[str, Any]], callback: Callback | None = None) -> TrialResult:
    """Train the trial's model (``built``: :func:`build_trial`) once, no files written, and
    score its kept model on the validation split."""
    import time

    from mtlkit.evaluation.delta_m import delta_m_metrics, delta_m_per_task
    from mtlkit.run.build import make_trainer
    from mtlkit.run.train_one import evaluate_outputs
    from mtlkit.training import Trainer, predict_raw

    tasks = prepared.tasks
    model, components = built
    trainer = make_trainer(cfg, model, tasks, run_dir=None, progress=False, components=components,
                           trainer_cls=Trainer)
    if callback is not None:
        trainer.add_callback(callback)
    t0 = time.perf_counter()
    trainer.fit(prepared.train, prepared.val)
    fit_time = time.perf_counter() - t0
    model.cpu()
    val = evaluate_outputs(tasks, predict_raw(model, prepared.val), prepared.val)[0]
    per_task = delta_m_per_task(val, refs, tasks, delta_m_metrics(tasks)) if refs is not None else {}
    return TrialResult(objective.value(val, refs, tasks), val, per_task, len(trainer.history.records),
                       trainer.history.best_epoch, round(fit_time, 3))
