"""``mtlkit tune``: an Optuna search over what the config marks searchable, then the best
config retrained over seeds.

The run folder::

    <out>/study.db            the Optuna study (SQLite; absent with --storage)
    <out>/trials.csv, .json   one row per trial: number, state, value, parameters, epochs
    <out>/best_config.yaml    the best trial's config, runnable with ``mtlkit train``
    <out>/tune.json           the record: study, objective, best trial, importances, retrain
    <out>/best/               the best config over --seeds (``mtlkit train --seeds``'s folder)
    <out>/report.html         best trial, history and importance plots, trials, evidence
    <out>/.references/        the cached single-task references (shared with the retrain)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mtlkit.tune._optuna import require_optuna
from mtlkit.tune.objective import (
    DataCache,
    Objective,
    PruningCallback,
    build_trial,
    reference_val_metrics,
    train_trial,
)
from mtlkit.tune.space import SearchSpace, _plain
from mtlkit.tune.study import (
    INVALID_ATTR,
    count_done,
    fail_stale_trials,
    mask_url,
    open_study,
    sampler_for,
)

if TYPE_CHECKING:
    from mtlkit.config import RunConfig

__all__ = ["TuneResult", "tune"]

Log = Callable[[str], None]
TUNE_RECORD = "tune.json"
#: consecutive trials refused as invalid configs before the search stops
MAX_INVALID = 20


class TrialConfigError(ValueError):
    """A trial's combination of values gives a config that cannot be built."""


@dataclass
class TuneResult:
    """What :func:`tune` produced: the folder, the record (``tune.json``), the trials table,
    the best config and the retrain over seeds (``None`` without one)."""

    run_dir: Path
    record: dict[str, Any]
    trials: list[dict[str, Any]] = field(default_factory=list)
    best_config: Any = None
    seeds: Any = None


@dataclass
class _Study:
    """What every trial of one tuning process shares."""

    cfg: RunConfig
    space: SearchSpace
    base: dict[str, Any]
    objective: Objective
    refs: dict[str, dict[str, float]] | None
    data: DataCache
    prune: bool
    say: Log
    report: bool = True
    cache: Path | None = None


def tune(cfg: RunConfig, *, trials: int, out_dir: str | Path, storage: str | None = None,
         study_name: str | None = None, seeds: int | None = 3, timeout: float | None = None, prune: bool = True,
         log: Log | None = None, progress: bool = False, report: bool = True,
         cache_dir: str | Path | None = None) -> TuneResult:
    """Search ``cfg.search`` with Optuna until the study holds ``trials`` finished trials
    (resuming the study in ``out_dir`` or ``storage``), write the trials, the best config and
    the report into ``out_dir``, and retrain the best config over ``seeds`` seeds (``None``:
    no retrain) with :func:`mtlkit.run.run_seeds`. ``report=False`` skips the importances and
    the report page (their plots are the slow part of a small study). ``cache_dir``: the
    single-task reference cache (default ``out_dir/.references``; pass the folder ``mtlkit
    train --seeds`` uses, ``<runs>/.references``, to share references with earlier runs). See :mod:`mtlkit.tune` for the objective,
    the storage and the determinism guarantees."""
    from mtlkit.config import config_hash, parse_config
    from mtlkit.run.folder import RunLock
    from mtlkit.run.seeds import seeds_from_count

    optuna = require_optuna()
    _check_budget(trials, timeout)
    seed_list = seeds_from_count(seeds, start=cfg.seed) if seeds is not None else None
    space = SearchSpace.from_config(cfg)  # every problem of the search space, before anything runs
    objective = Objective.from_config(cfg.tune)
    base = _plain(cfg)
    base_cfg = parse_config(base, source="(the config without its search)")
    from mtlkit.run.build import validate

    validate(base_cfg)
    say = log or (lambda s: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with RunLock(out):
        data = DataCache()
        prepared = data.get(base_cfg)
        objective = Objective.from_config(cfg.tune, prepared.tasks)  # the names and direction, with the tasks
        url = storage or f"sqlite:///{(out / 'study.db').resolve()}"
        study = open_study(optuna, storage=_storage(optuna, url, shared=storage is not None),
                           name=study_name or f"mtlkit-{cfg.name}", direction=objective.direction,
                           config_hash=config_hash(cfg),
                           attrs={"mtlkit_config": cfg.model_dump(mode="json"), "objective": objective.label})
        if storage is None:
            stale = fail_stale_trials(optuna, study)
            if stale:
                say(f"Trial(s) {stale} were left running by an interrupted run: marked failed, run again.")
        cache = Path(cache_dir) if cache_dir is not None else out / ".references"
        refs = (reference_val_metrics(base_cfg, prepared, cache, say=say)
                if objective.metric is None else None)
        job = _Study(cfg, space, base, objective, refs, data, prune, say, report, cache)
        _optimize(optuna, study, job, trials, timeout)
        return _finish(optuna, study, job, out, url, seed_list, progress)


def _check_budget(trials: Any, timeout: Any) -> None:
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ValueError(f"The number of trials (--trials) must be a positive integer. Got {trials!r}.")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                or not math.isfinite(timeout) or timeout <= 0):
        raise ValueError(f"--timeout must be a positive number of seconds. Got {timeout!r}.")


def _storage(optuna: Any, url: str, *, shared: bool) -> Any:
    """Optuna's RDB storage for ``url``; a shared one with a heartbeat (a worker that dies
    has its running trial failed by the others after the grace period)."""
    if not url.startswith(("sqlite:", "postgresql", "mysql")):
        return url  # e.g. an in-memory or journal storage URL Optuna understands
    if shared:
        return optuna.storages.RDBStorage(url, heartbeat_interval=30, grace_period=120)
    return optuna.storages.RDBStorage(url)


def _optimize(optuna: Any, study: Any, job: _Study, trials: int, timeout: float | None) -> None:
    """Run trials one at a time, each with its seeded sampler, until ``trials`` are finished
    (or the timeout has passed)."""
    start = time.monotonic()
    startup = max(2, min(10, trials // 4))
    epochs = int(job.cfg.training.epochs)
    study.pruner = (optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=max(1, epochs // 3))
                    if job.prune else optuna.pruners.NopPruner())
    invalid_in_a_row = 0
    while True:
        done, invalid = count_done(optuna, study)
        if done >= trials:
            break
        if timeout is not None and time.monotonic() - start > timeout:
            job.say(f"Timeout: {done} of {trials} trials finished; run again to continue the study.")
            break
        study.sampler = sampler_for(optuna, job.cfg.seed, done + invalid, startup=startup)
        job.say(f"Trial {done + 1} of {trials} ...")
        study.optimize(lambda trial: _run_trial(optuna, trial, job), n_trials=1, catch=(TrialConfigError,))
        last = study.trials[-1]
        if last.state == optuna.trial.TrialState.FAIL and INVALID_ATTR in last.user_attrs:
            invalid_in_a_row += 1
            if invalid_in_a_row >= MAX_INVALID:
                raise ValueError(f"{MAX_INVALID} trials in a row gave invalid configs (the last: "
                                 f"{last.user_attrs[INVALID_ATTR]}); fix the search space.")
        else:
            invalid_in_a_row = 0


def _run_trial(optuna: Any, trial: Any, job: _Study) -> float:
    """The objective of one Optuna trial."""
    from mtlkit.config import ConfigError, parse_config

    data, chosen = job.space.apply(job.base, lambda p: p.suggest(trial))
    trial.set_user_attr("config_values", chosen)
    try:
        cfg = parse_config(data, source=f"(trial {trial.number})")
        prepared = job.data.get(cfg)
        built = build_trial(cfg, prepared)
    except (ConfigError, ValueError, KeyError, TypeError) as exc:
        trial.set_user_attr(INVALID_ATTR, str(exc))
        job.say(f"  trial {trial.number}: invalid config ({exc}); skipped.")
        raise TrialConfigError(str(exc)) from None
    cb = PruningCallback(trial, job.objective, job.refs, prepared.tasks, optuna.TrialPruned) if job.prune else None
    try:
        res = train_trial(cfg, prepared, job.objective, job.refs, built, cb)
    except optuna.TrialPruned:
        job.say(f"  trial {trial.number}: {_short(chosen)} -> pruned after {len(cb.reported) if cb else 0} "
                f"epoch(s)")
        raise
    trial.set_user_attr("val", res.val)
    trial.set_user_attr("delta_m_per_task", res.delta_m_per_task)
    trial.set_user_attr("epochs_run", res.epochs_run)
    trial.set_user_attr("best_epoch", res.best_epoch)
    trial.set_user_attr("fit_time_s", res.fit_time_s)
    job.say(f"  trial {trial.number}: {_short(chosen)} -> {job.objective.label} {res.value:.4g}")
    return res.value


def _short(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())


def trials_table(optuna: Any, study: Any) -> list[dict[str, Any]]:
    """One row per trial of the study (in number order)."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        steps = sorted(t.intermediate_values)
        rows.append({"number": t.number, "state": t.state.name.lower(),
                     "value": t.value if t.value is not None and math.isfinite(t.value) else None,
                     "params": t.user_attrs.get("config_values", {}),
                     "epochs_run": t.user_attrs.get("epochs_run", len(steps) or None),
                     "best_epoch": t.user_attrs.get("best_epoch"),
                     "fit_time_s": t.user_attrs.get("fit_time_s"),
                     "val": t.user_attrs.get("val"), "delta_m_per_task": t.user_attrs.get("delta_m_per_task"),
                     "intermediate": [t.intermediate_values[s] for s in steps],
                     "invalid_config": t.user_attrs.get(INVALID_ATTR)})
    return rows


def _finish(optuna: Any, study: Any, job: _Study, out: Path, url: str, seeds: list[int] | None,
            progress: bool) -> TuneResult:
    """The trials table, the best config, importances, the retrain over seeds, the report."""
    from mtlkit._io import write_json
    from mtlkit.tune.outputs import best_config, importances, retrain, write_trials

    rows = trials_table(optuna, study)
    write_trials(out, rows)
    complete = [r for r in rows if r["state"] == "complete" and r["value"] is not None]
    if not complete:
        raise RuntimeError(f"No trial of the study completed ({len(rows)} trial(s): "
                           f"{sorted({r['state'] for r in rows})}); nothing to retrain.")
    best = study.best_trial
    cfg_best = best_config(job, best.user_attrs.get("config_values", {}), out)
    record: dict[str, Any] = {
        "format_version": 1, "name": job.cfg.name, "study": study.study_name, "storage": mask_url(url),
        "objective": job.objective.label, "direction": job.objective.direction,
        "search_space": job.cfg.search, "references_val": job.refs,
        "trials": {"total": len(rows), **{s: sum(r["state"] == s for r in rows)
                                          for s in ("complete", "pruned", "fail", "running")}},
        "best": {"number": best.number, "value": best.value, "params": best.user_attrs.get("config_values"),
                 "val": best.user_attrs.get("val"), "delta_m_per_task": best.user_attrs.get("delta_m_per_task")},
        "importance": importances(optuna, study, job.cfg.seed) if job.report else None,
        "sampler": "TPE (seeded per trial), pruner: " + ("median" if job.prune else "none"),
    }
    seeds_result = (retrain(cfg_best, seeds, out, job.say, progress, job.report, cache_dir=job.cache)
                    if seeds is not None else None)
    if seeds_result is not None:
        record["retrain"] = {"folder": "best", "seeds": seeds_result.seeds, "delta_m": seeds_result.record.get(
            "delta_m"), "verdicts": seeds_result.verdicts}
    write_json(out / TUNE_RECORD, record)
    if not job.report:
        return TuneResult(out, record, rows, cfg_best, seeds_result)
    try:
        from mtlkit.report.tune import write_tune_report

        write_tune_report(out)
    except Exception as exc:  # a broken plot must not lose the study
        job.say(f"warning: the tuning report could not be written: {exc}")
    return TuneResult(out, record, rows, cfg_best, seeds_result)
