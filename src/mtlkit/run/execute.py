"""One run, end to end: check everything -> run folder -> multi-task model (and the second
phase of a two-phase architecture) -> single-task baselines -> Δm -> summary and report.

Used by ``mtlkit train`` / ``mtlkit demo`` and by :func:`mtlkit.fit`.
"""

from __future__ import annotations

import contextlib
import math
import platform
import re
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import torch
from torch import nn

from mtlkit._text import plural
from mtlkit.config import RunConfig, code_references
from mtlkit.evaluation.baselines import Baselines, train_baselines
from mtlkit.evaluation.delta_m import (
    delta_m,
    delta_m_metrics,
    delta_m_per_task,
    small_reference_warnings,
)
from mtlkit.run.build import Built, build_all, build_components, build_model_for, count_parameters
from mtlkit.run.data import PreparedData
from mtlkit.run.folder import RunFolder, check_name, data_fingerprint
from mtlkit.run.summary import ModelResult, Summary
from mtlkit.run.train_one import Trained, evaluate_outputs, inference_ms, model_meta, train_into
from mtlkit.tasks import Task
from mtlkit.training import Trainer, predict_raw, seed_everything

__all__ = ["RunResult", "WarningLog", "baseline_kinds", "check", "run", "set_delta_m", "write_report_safely"]

Log = Callable[[str], None]


@dataclass
class RunResult:
    """What a run produced: the fitted model, its summary and where the files are.

    ``summary`` is the content of ``summary.json`` as a dict; :attr:`record` reads it as a
    typed :class:`~mtlkit.run.summary.Summary`."""

    run_dir: Path | None
    model: nn.Module
    tasks: list[Task]
    summary: dict[str, Any]
    trainer: Trainer
    prepared: PreparedData
    baselines: dict[str, nn.Module] = field(default_factory=dict)

    @property
    def record(self) -> Summary:
        return Summary.from_dict(self.summary)

    @property
    def delta_m(self) -> float | None:
        return self.summary.get("delta_m")

    @property
    def report_path(self) -> Path | None:
        return self.run_dir / "report.html" if self.run_dir else None

    def loaded(self) -> Any:
        """The run's model with its metadata as a :class:`~mtlkit.inference.LoadedRun`."""
        from mtlkit.inference import LoadedRun
        from mtlkit.run.train_one import model_meta

        return LoadedRun(self.run_dir, self.model, model_meta(self.model, self.prepared, self.tasks), list(self.tasks))

    def predict(self, x: Any, *, all_tasks: bool = False) -> Any:
        """Predictions for a table as a DataFrame: per task the decoded label (class name)
        and its probabilities, or the value in original units; the index and ID columns are
        carried through (see :func:`mtlkit.inference.predict_frame`). Arrays and tensors of
        encoded inputs give the raw outputs, as :meth:`predict_raw` does."""
        if isinstance(x, pd.DataFrame):
            return self.loaded().predict(x, all_tasks=all_tasks)
        return self.predict_raw(x)

    def predict_raw(self, x: Any) -> dict[str, torch.Tensor]:
        """Raw outputs (logits, standardised values) per task for a DataFrame, an array or a
        tensor of inputs (arrays and tensors: encoded as the model reads them, before the
        input standardisation of a run without table preprocessing)."""
        from mtlkit.inference import standardized_inputs

        if isinstance(x, pd.DataFrame):
            return self.loaded().predict_raw(x)
        if isinstance(x, dict):  # several named inputs: each flat one standardised as in training
            from mtlkit import _batch

            inputs: Any = _batch.float_inputs(_batch.as_inputs(x, source="the inputs"))
        else:
            inputs = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).float()
        return predict_raw(self.model, standardized_inputs(self.prepared.preprocessing, inputs))


class WarningLog:
    """Collects the warnings shown while it is active (they are still shown as usual):
    ``entries()`` gives one entry per distinct message, numbers folded (``Step 3: ...`` and
    ``Step 7: ...`` are one entry with count 2), for ``summary.json`` and the report."""

    def __init__(self, limit: int = 20) -> None:
        self.limit = limit
        self._seen: dict[tuple[str, str], dict[str, Any]] = {}
        self._orig: Any = None

    def __enter__(self) -> WarningLog:
        self._orig = warnings.showwarning

        def show(message: Any, category: type[Warning], filename: str, lineno: int, file: Any = None,
                 line: str | None = None) -> None:
            text = str(message)
            key = (category.__name__, re.sub(r"\d+(\.\d+)?", "#", text))
            entry = self._seen.get(key)
            if entry is None and len(self._seen) < self.limit:
                self._seen[key] = {"category": category.__name__, "message": text, "count": 1}
            elif entry is not None:
                entry["count"] += 1
            self._orig(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        return self

    def __exit__(self, *exc: Any) -> None:
        warnings.showwarning = self._orig

    def entries(self) -> list[dict[str, Any]]:
        return [dict(e) for e in self._seen.values()]


@dataclass
class _Job:
    """What every step of one run shares."""

    cfg: RunConfig
    prepared: PreparedData
    folder: RunFolder | None
    built: Built
    progress: bool
    say: Log
    trainer_cls: type[Trainer]
    resume: bool
    user_components: dict[str, Any]
    baseline_builder: Callable[[Task], nn.Module] | None
    #: the tracking callbacks of ``cfg.tracking`` (TensorBoard, MLflow: :mod:`mtlkit.tracking`)
    trackers: list[Any] = field(default_factory=list)

    @property
    def tasks(self) -> list[Task]:
        return self.prepared.tasks

    def track(self, trainer: Trainer) -> Trainer:
        """``trainer`` with the tracking callbacks added (the multi-task model's)."""
        for cb in self.trackers:
            trainer.add_callback(cb)
        return trainer

    def close_trackers(self, record: dict[str, Any] | None) -> None:
        """Log the final summary (``None``: the run failed) and end the tracking runs."""
        for cb in self.trackers:
            try:
                if record is not None:
                    cb.log_summary(record)
                cb.close("FINISHED" if record is not None else "FAILED")
            except Exception as exc:  # a tracking server that fails at the end must not lose the run
                warnings.warn(f"Tracking ({type(cb).__name__}) failed at the end of the run: {exc}", stacklevel=2)

    def checkpoints(self, name: str) -> Path | None:
        return self.folder.checkpoint_dir(name) if self.folder is not None else None

    def baselines(self) -> Baselines:
        return train_baselines(self.cfg, self.prepared, folder=self.folder, progress=self.progress,
                               trainer_cls=self.trainer_cls, resume=self.resume, builder=self.baseline_builder,
                               say=self.say)


def check(cfg: RunConfig, out_dir: str | Path | None = None, *, resume: bool = False, overwrite: bool = False,
          force: bool = False, model: nn.Module | None = None, components: dict[str, Any] | None = None) -> Built:
    """Everything :func:`run` checks before it loads data or writes a file: every component
    of ``cfg`` (:func:`~mtlkit.run.build.build_all`, all problems in one error), whether
    another process is writing ``out_dir`` (its lock), and whether the run may start in (or
    resume from) ``out_dir``. Returns the built components."""
    from mtlkit.training.distributed import is_main_process

    built = build_all(cfg, components=components, model=model)
    if cfg.tracking is not None:  # a tracking location that cannot be written: refused now
        from mtlkit.tracking import check_tracking

        check_tracking(cfg.tracking)
    folder = RunFolder(out_dir, writer=is_main_process()) if out_dir is not None else None
    if folder is not None:
        folder.check_unlocked()
    if resume:
        if folder is None:
            raise FileNotFoundError("Nothing to resume: None holds no run (config.yaml).")
        folder.check_resume(cfg, force=force)
    elif folder is not None:
        folder.check_new(overwrite=overwrite)
    return built


def run(cfg: RunConfig, prepared: PreparedData, *, out_dir: str | Path | None, progress: bool = True,
        log: Log | None = None, model: nn.Module | None = None,
        components: dict[str, Any] | None = None,
        baseline_builder: Callable[[Task], nn.Module] | None = None, overwrite: bool = False,
        resume: bool = False, force: bool = False, report: bool = True,
        allow_data_change: bool = False) -> RunResult:
    """Train the multi-task model and (if ``cfg.baselines``) one single-task model per task,
    evaluate on the test split and write the run folder when ``out_dir`` is given.

    Every component is built and checked first (all problems in one error), before any file
    is written. ``components`` overrides the weighting/aggregator/schedule/sampler objects
    named by the config (for objects built in Python); ``baseline_builder(task)`` builds the
    single-task reference model (default: hard sharing with the config's trunk). A folder
    that holds an earlier run is refused unless ``overwrite``: the new run is then written
    beside the earlier one and replaces it only when it has succeeded, the earlier run moving
    to ``replaced/`` (:class:`~mtlkit.run.folder.RunFolder`: nothing is ever deleted). The
    folder is locked while the run writes it: a second run on it fails at once.

    With ``resume``, every trainer (multi-task and baselines) continues from its newest good
    checkpoint in ``out_dir/checkpoints``; a config that differs from the run's is refused
    (listing the differing keys) unless ``force`` or only the budget changed (more
    ``training.epochs`` extend a finished run; the change is kept in ``summary["resumed"]``).
    Data that differs from the run's (its fingerprint in ``run.json``) is refused unless
    ``allow_data_change`` (then a warning, recorded in ``run.json``).

    The warnings shown meanwhile are kept in ``summary["warnings"]`` (and the report)."""
    with WarningLog() as warned:
        return _run(cfg, prepared, out_dir=out_dir, progress=progress, log=log, model=model,
                    components=components, baseline_builder=baseline_builder, overwrite=overwrite,
                    resume=resume, force=force, report=report, warned=warned,
                    allow_data_change=allow_data_change)


def _run(cfg: RunConfig, prepared: PreparedData, *, out_dir: str | Path | None, progress: bool,
         log: Log | None, model: nn.Module | None, components: dict[str, Any] | None,
         baseline_builder: Callable[[Task], nn.Module] | None, overwrite: bool, resume: bool, force: bool,
         report: bool, warned: WarningLog, allow_data_change: bool = False) -> RunResult:
    """The body of :func:`run`; ``warned`` collects the warnings shown meanwhile."""
    from mtlkit.training.distributed import (
        DistributedTrainer,
        init_from_env,
        is_distributed,
        is_main_process,
    )

    init_from_env()  # under torchrun (WORLD_SIZE > 1): start the process group, else nothing
    main = is_main_process()  # distributed: rank 0 alone writes the run folder and prints
    # every problem, before any write (the data's tasks known now: see build_all)
    built = build_all(cfg, components=components, model=model, tasks=prepared.tasks)
    if out_dir is not None:  # task names become folder names (baselines/<task>, checkpoints/stl-<task>)
        for t in prepared.tasks:
            check_name(t.name, "task name")
    from mtlkit.tracking import trackers_for

    trackers = trackers_for(cfg) if main else []  # checked (writable) before anything trains
    if model is None:  # built now, so that a model that cannot be built is refused before any write
        seed_everything(cfg.seed)
        model = build_model_for(cfg, prepared, prepared.tasks)
    folder = RunFolder(out_dir, writer=main) if out_dir is not None else None
    # held from the first write to the last: a second run on the folder fails at once
    lock = folder.lock() if folder is not None and main else contextlib.nullcontext()
    with lock:
        job = _Job(cfg, prepared, folder, built, progress, (log if main else None) or (lambda s: None),
                   DistributedTrainer if is_distributed() else Trainer, resume, dict(components or {}),
                   baseline_builder, trackers)
        resumed = _open_folder(job, overwrite=overwrite, force=force, allow_data_change=allow_data_change)
        try:
            final, stl, record = _train_and_record(job, model, resumed, warned, report=report, main=main)
        except BaseException:
            job.close_trackers(None)
            if folder is not None and job.folder is not None and job.folder.path != folder.path:
                job.say(f"The run failed; the earlier run in {str(folder.path)!r} is untouched. The new run's "
                        f"files so far are in {str(job.folder.path)!r}: --resume {str(folder.path)!r} continues "
                        f"it, --overwrite starts it again.")
            raise
        if folder is not None and job.folder is not None:
            aside = folder.commit(job.folder)  # an overwrite: the new run replaces the earlier one now
            if aside is not None:
                job.say(f"The earlier run in {str(folder.path)!r} was moved to {str(aside)!r}.")
    return RunResult(folder.path if folder is not None else None, final.model, list(job.tasks), record,
                     final.trainer, prepared, stl.models if stl is not None else {})


def _train_and_record(job: _Job, model: nn.Module, resumed: list[dict[str, Any]], warned: WarningLog, *,
                      report: bool, main: bool) -> tuple[Any, Any, dict[str, Any]]:
    """Train the multi-task model and the references, write the summary (and report) and close
    the trackers. Returns the trained model's record, the references and the summary."""
    early = _references_first(job)
    final, search_phase = _train_multi_task(job, model)
    summary = _summarise(job, final, search_phase)
    summary.resumed = resumed or None
    kinds = baseline_kinds(job.cfg)
    stl = (early or job.baselines()) if "neural" in kinds and job.tasks else None
    if stl is not None:
        _add_baselines(summary, stl, job.tasks, final.test)
    if "gbdt" in kinds and job.tasks:
        _add_gbdt(summary, job, final.test)
    from mtlkit.evaluation.ranking_run import run_ranking  # per-user ranking metrics (recommenders)

    rk = run_ranking(job.cfg, job.prepared, final.model, stl.models if stl is not None else {})
    if rk is not None:
        summary.extra["ranking"] = rk
    summary.warnings = warned.entries()  # what the console showed, kept with the run
    record = summary.to_dict()
    if job.folder is not None and main:
        job.folder.write_summary(record)
        if report:
            write_report_safely(job.folder.path, job.say)
    job.close_trackers(record)
    return final, stl, record


def _open_folder(job: _Job, *, overwrite: bool, force: bool, allow_data_change: bool = False
                 ) -> list[dict[str, Any]]:
    """Start (or resume) the run in its folder (holding its lock) and point ``job.folder`` at
    the folder the run writes (``.next/`` beside an earlier run for an ``overwrite``); the
    run's list of resumes that changed the config (see :meth:`RunFolder.resume`)."""
    from mtlkit.user_code import records_for

    folder = job.folder
    if job.resume and folder is None:
        raise FileNotFoundError("Nothing to resume: None holds no run (config.yaml).")
    if folder is None:
        return []
    fingerprint = data_fingerprint(job.prepared) if folder.writer else None
    code = records_for(code_references(job.cfg))
    if not job.resume:
        job.folder = folder.start(job.cfg, overwrite=overwrite, record={"data": fingerprint, "code": code})
        if job.folder is not folder:
            job.say(f"Writing the new run beside the earlier one (in {str(job.folder.path)!r}); it replaces the "
                    f"earlier run when it has succeeded.")
        return []
    target, entries, changed = folder.resume(job.cfg, force=force, data=fingerprint, code=code,
                                             allow_data_change=allow_data_change)
    job.folder = target
    if target is not folder:
        job.say(f"Continuing the unfinished --overwrite run in {str(target.path)!r}.")
    if changed:
        what = ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in changed.items())
        job.say(f"Resuming with a changed config ({what}); config.yaml updated.")
    return entries


def _references_first(job: _Job) -> Baselines | None:
    """Active / dynamic sampling compare each task with its single-task reference: then the
    baselines train first and their validation metrics become the references."""
    comps = job.built.components()
    needs = [c for c in (comps["sampler"], comps["schedule"])
             if getattr(c, "needs_references", False) and not getattr(c, "has_references", True)]
    if not needs:
        return None
    job.say("Training the single-task baselines first: they are the references of the task sampler/schedule.")
    stl = job.baselines()
    by_name = {t.name: t for t in job.tasks}
    val = job.prepared.val
    refs = {name: evaluate_outputs([by_name[name]], predict_raw(m, val), val)[0][name]
            for name, m in stl.models.items()}
    for c in needs:
        c.set_references(refs)
    return stl


def _train_multi_task(job: _Job, model: nn.Module) -> tuple[Trained, dict[str, Any] | None]:
    """The multi-task model; a two-phase architecture (AdaShare) then retrains a fresh model
    with the policy it searched. Returns the run's model and the search phase's entry."""
    cfg, tasks = job.cfg, job.tasks
    two_phase = bool(getattr(model, "retrain", False)) and callable(getattr(model, "retrain_model", None))
    phase = ", phase 1 of 2: the policy search" if getattr(model, "retrain", False) else ""
    job.say(f"Training the multi-task model ({plural(len(tasks), 'task')}, "
            f"{plural(count_parameters(model), 'parameter')}{phase}) ...")
    first = train_into(cfg, model, tasks, job.prepared, folder=job.folder, checkpoint_dir=job.checkpoints("mtl"),
                       progress=job.progress, components=job.built.components(), trainer_cls=job.trainer_cls,
                       resume=job.resume, save="never" if two_phase else "always", label="multi-task model",
                       say=job.say, wrap=job.track if job.trackers else None)
    if not two_phase:
        return first, None
    return _retrain_phase(job, first)


def _retrain_phase(job: _Job, search: Trained) -> tuple[Trained, dict[str, Any]]:
    """The second phase of a two-phase architecture (AdaShare, Sun et al. 2020): the model
    just trained is the search; its policy is fixed (``fix_policy``, seeded by ``cfg.seed``)
    and a fresh model built with it (``retrain_model``) is trained with the same budget.

    Layout: phase 1 keeps ``checkpoints/mtl`` and its records move to ``search/metrics.jsonl``
    (with its weights in ``search/``); phase 2 is the run's model (``metrics.jsonl``,
    ``model.safetensors``, ``checkpoints/mtl-retrain``)."""
    cfg, tasks, prepared = job.cfg, job.tasks, job.prepared
    contract = cast(Any, search.model)  # duck-typed: retrain_model / fix_policy / sharing_summary
    summary_fn = getattr(search.model, "sharing_summary", None)
    learned = summary_fn() if callable(summary_fn) else {}
    if job.folder is not None:  # metrics.jsonl is the final model's
        job.folder.move_records_to(job.folder.search)
        meta = model_meta(search.model, prepared)
        if meta.get("architecture") and meta["architecture"].get("trunk"):
            job.folder.search.save_model(search.model, meta)
    policy = contract.fix_policy(generator=torch.Generator().manual_seed(cfg.seed))
    blocks = learned.get("policy_blocks")
    describe = getattr(search.model, "describe_policy", None)  # the architecture's own words (a tree, a policy)
    fixed = describe(policy) if callable(describe) else f"Fixed policy{f' (blocks {blocks})' if blocks else ''}: {policy}"
    job.say(f"Search phase done (test {_short_metrics(tasks, search.test)}). {fixed}.")
    seed_everything(cfg.seed)
    final = contract.retrain_model(policy)
    job.say(f"Retraining a fresh multi-task model with the fixed policy ({count_parameters(final):,} "
            f"parameters) ...")
    done = train_into(cfg, final, tasks, prepared, folder=job.folder, checkpoint_dir=job.checkpoints("mtl-retrain"),
                      progress=job.progress, components=_fresh_components(job), trainer_cls=job.trainer_cls,
                      resume=job.resume, label="retrained model", say=job.say)
    history = search.trainer.history
    entry = {"test": search.test, "policy": policy, "probabilities": learned.get("policy"),
             "policy_blocks": blocks, "policy_sampling": getattr(search.model, "policy_sampling", None),
             "fit_time_s": round(search.fit_time_s, 3), "epochs_run": len(history.records),
             "best_epoch": history.best_epoch}
    return done, entry


def _fresh_components(job: _Job) -> dict[str, Any]:
    """Fresh weighting/aggregator/schedule/sampler from the config for a second phase;
    objects built in Python or holding single-task references are reused (the trainer's
    setup() runs again)."""
    fresh = build_components(job.cfg)
    for key, obj in job.built.components().items():
        if key in job.user_components or getattr(obj, "needs_references", False):
            fresh[key] = obj
            if key == "aggregator" and obj is not None:
                obj.reset()
    return fresh


def _summarise(job: _Job, final: Trained, search_phase: dict[str, Any] | None) -> Summary:
    """The summary of the multi-task model (the baselines are added by :func:`_add_baselines`)."""
    from mtlkit.training.distributed import world_size

    tasks, prepared, model, trainer = job.tasks, job.prepared, final.model, final.trainer
    val = evaluate_outputs(tasks, predict_raw(model, prepared.val), prepared.val)[0] if len(prepared.val) else {}
    mtl = ModelResult(test=final.test, val=val, params=count_parameters(model),
                      inference_ms=inference_ms(model, prepared.test.x), fit_time_s=round(final.fit_time_s, 3),
                      best_epoch=trainer.history.best_epoch, epochs_run=len(trainer.history.records))
    # which epoch's weights are kept, and by which validation score (mtlkit.report kept_weights)
    mtl.extra["selection"] = {"monitor": job.cfg.training.monitor or None, "validated": bool(len(prepared.val))}
    env = {"torch": torch.__version__, "python": platform.python_version(), "threads": torch.get_num_threads(),
           "processes": world_size(), "device": str(trainer.device)}
    if world_size() > 1:  # batch norm over the global batch, or per rank (docs/scaling.md)
        env["sync_batch_norm"] = bool(getattr(trainer, "sync_batch_norm", False))
    return Summary(
        name=job.cfg.name, seed=job.cfg.seed, source=prepared.source, created=time.strftime("%Y-%m-%d %H:%M:%S"),
        tasks=[t.to_dict() for t in tasks],
        higher_is_better={t.name: {m.name: m.higher_is_better for m in t.metrics} for t in tasks},
        main_metric={t.name: t.main_metric for t in tasks}, mtl=mtl,
        confusion={k: {"mtl": v, "stl": None} for k, v in final.confusion.items()},
        classification_report=final.reports, nonfinite_skipped=trainer.nonfinite_skipped,
        sizes={"train": len(prepared.train), "val": len(prepared.val), "test": len(prepared.test)},
        environment=env, search_phase=search_phase)


def _add_baselines(summary: Summary, stl: Baselines, tasks: Sequence[Task],
                   mtl_test: dict[str, dict[str, float]]) -> None:
    """The baselines' results, their confusion matrices and Δm against them."""
    confusion = summary.confusion or {}
    for name, conf in stl.confusion.items():
        if conf is not None and name in confusion:
            confusion[name]["stl"] = conf
    summary.baselines = stl.results
    stl_test: dict[str, dict[str, float]] = {k: v.test or {} for k, v in stl.results.items()}
    set_delta_m(summary, mtl_test, stl_test, tasks)
    summary.stl_params_total = sum(v.params or 0 for v in stl.results.values())
    summary.stl_inference_ms_total = sum(v.inference_ms or 0.0 for v in stl.results.values())


def set_delta_m(summary: Summary, mtl_test: dict[str, dict[str, float]], stl_test: dict[str, dict[str, float]],
                tasks: Sequence[Task]) -> None:
    """Δm, Δm_t and Δm over all tasks against the single-task results, over the metrics of
    :func:`~mtlkit.evaluation.delta_m.delta_m_metrics` (references bounded away from zero;
    recorded in ``summary["delta_m_metrics"]``); a term dominated by a small reference is a
    warning (``summary["delta_m_warnings"]``)."""
    chosen = delta_m_metrics(tasks)
    dm = delta_m(mtl_test, stl_test, tasks, primary_only=True, metrics=chosen)
    summary.delta_m = dm if dm is not None and math.isfinite(dm) else None
    summary.delta_m_per_task = delta_m_per_task(mtl_test, stl_test, tasks, chosen)
    summary.delta_m_all_tasks = delta_m(mtl_test, stl_test, tasks, primary_only=False, metrics=chosen)
    summary.extra["delta_m_metrics"] = {t.name: chosen[t.name] for t in tasks if t.name in stl_test}
    primary = [t for t in tasks if t.role == "primary"]
    notes = small_reference_warnings(mtl_test, stl_test, primary, chosen)
    for note in notes:
        warnings.warn(note, stacklevel=2)
    if notes:
        summary.extra["delta_m_warnings"] = notes
    else:
        summary.extra.pop("delta_m_warnings", None)


def baseline_kinds(cfg: RunConfig) -> set[str]:
    """The single-task references a config asks for: ``baselines: true`` -> neural."""
    value = cfg.baselines
    if isinstance(value, bool):
        return {"neural"} if value else set()
    return set(value)


def _add_gbdt(summary: Summary, job: _Job, mtl_test: dict[str, dict[str, float]]) -> None:
    """The boosted-tree references (``baselines: [..., gbdt]``) and Δm against them."""
    from mtlkit.evaluation.gbdt import train_gbdt

    gb = train_gbdt(job.prepared, job.tasks, seed=job.cfg.seed, say=job.say)
    for name, why in gb.skipped.items():
        warnings.warn(f"No GBDT baseline for task {name!r}: {why}.", stacklevel=2)
    summary.gbdt = gb.results
    confusion = summary.confusion or {}
    for name, conf in gb.confusion.items():
        if conf is not None and name in confusion:
            confusion[name]["gbdt"] = conf
    with_gbdt = [t for t in job.tasks if t.name in gb.results]
    dm = delta_m(mtl_test, {k: v.test or {} for k, v in gb.results.items()}, with_gbdt, primary_only=True,
                 metrics=delta_m_metrics(with_gbdt))
    summary.delta_m_gbdt = dm if dm is not None and math.isfinite(dm) else None


def write_report_safely(run_dir: Path, say: Log) -> None:
    """Write ``report.html``; a failure is a warning line, never a lost run."""
    try:
        from mtlkit.report import write_report
    except ImportError:  # the report package is optional during development
        return
    try:
        write_report(run_dir)
    except Exception as exc:  # a broken plot must not lose the run
        say(f"warning: the HTML report could not be written: {exc}")


def _short_metrics(tasks: Sequence[Task], metrics: dict[str, dict[str, float]]) -> str:
    """``task main_metric=value`` for the log."""
    return ", ".join(f"{t.name} {t.main_metric}={metrics[t.name][t.main_metric]:.4f}" for t in tasks)
