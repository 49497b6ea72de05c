"""One run, end to end: data -> split -> model -> training -> single-task baselines -> Δm ->
run folder (config, metrics, weights, summary, report).

Used by ``mtlkit train`` / ``mtlkit demo`` and by :func:`mtlkit.fit`.
"""

from __future__ import annotations

import dataclasses
import math
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import torch
from torch import nn

from mtlkit._registry import AGGREGATORS, SAMPLERS, SCHEDULES, WEIGHTINGS
from mtlkit.config import ConfigError, RunConfig, config_diff, config_hash, dump_config
from mtlkit.data._dataset import MultiTaskData
from mtlkit.data._preprocess import Standardizer
from mtlkit.data._split import split
from mtlkit.evaluation.delta_m import delta_m, delta_m_per_task
from mtlkit.runs import FORMAT_VERSION, SUMMARY, atomic_write, save_model, write_json
from mtlkit.tasks import Task, check_tasks, task_from_dict
from mtlkit.training.trainer import Trainer, predict_raw, seed_everything

Log = Callable[[str], None]


@dataclass
class PreparedData:
    """Split, preprocessed data and what the model builder needs to know about it."""

    train: MultiTaskData
    val: MultiTaskData
    test: MultiTaskData
    tasks: list[Task]
    input_shape: tuple[int, ...]
    default_trunk: dict[str, Any]
    preprocessing: dict[str, Any] | None = None
    features: list[str] | None = None
    image_column: str | None = None
    source: str = ""
    extra_meta: dict[str, Any] = field(default_factory=dict)


def default_trunk_for(input_shape: Sequence[int]) -> dict[str, Any]:
    nd = len(input_shape)
    if nd == 1:
        return {"name": "mlp", "hidden": [128, 64]}
    if nd == 2:
        return {"name": "cnn1d"}
    if nd == 3:
        return {"name": "lenet"}
    raise ValueError(f"No stock trunk for inputs of shape {tuple(input_shape)}; pass your own trunk.")


def resolve_tasks(cfg_tasks: Sequence[Any] | None, available: Sequence[Task] | None) -> list[Task]:
    if cfg_tasks:
        tasks = [task_from_dict(t.model_dump() if hasattr(t, "model_dump") else dict(t)) for t in cfg_tasks]
    elif available:
        tasks = list(available)
    else:
        raise ValueError("No tasks: give 'tasks' in the config.")
    return check_tasks(tasks)


def prepare(data: MultiTaskData, tasks: Sequence[Task], *, test: MultiTaskData | None = None,
            fractions: Sequence[float] = (0.6, 0.25, 0.15), stratify: str | None = None, seed: int = 0,
            standardize: bool = True, default_trunk: dict[str, Any] | None = None,
            features: list[str] | None = None, image_column: str | None = None, source: str = ""
            ) -> PreparedData:
    """Split (seeded; a given ``test`` set is kept and train/val split in proportion) and fit
    the input standardisation on the training split (flat inputs only)."""
    tasks = check_tasks(tasks)
    if stratify is not None and stratify not in {t.name for t in tasks}:
        raise ValueError(f"split.stratify names unknown task {stratify!r}; tasks are {[t.name for t in tasks]}.")
    data = _restrict(data, tasks)
    if test is not None:
        test = _restrict(test, tasks)
        ftr, fva = fractions[0], fractions[1]
        tot = ftr + fva
        train, val, _ = split(data, (ftr / tot, fva / tot, 0.0), seed=seed, stratify=stratify)
    else:
        train, val, test = split(data, fractions, seed=seed, stratify=stratify)
    pre = None
    if standardize and train.x.dim() == 2 and train.x.is_floating_point():
        st = Standardizer().fit(train.x)
        for part in (train, val, test):
            part.x = st.transform(part.x)
        pre = st.to_dict()
    shape = tuple(int(s) for s in train.x.shape[1:])
    return PreparedData(train, val, test, list(tasks), shape, default_trunk or default_trunk_for(shape),
                        pre, features, image_column, source)


def _restrict(data: MultiTaskData, tasks: Sequence[Task]) -> MultiTaskData:
    from mtlkit.data._dataset import check_targets

    missing = [t.name for t in tasks if t.name not in data.targets]
    if missing:
        raise ValueError(f"No labels for task(s) {missing}; the data has {data.task_names}.")
    names = [t.name for t in tasks]
    check_targets(tasks, data.targets, data.masks)
    out = data.subset(np.arange(len(data)))
    out.targets = {k: data.targets[k] for k in names}
    out.masks = {k: data.masks[k] for k in names}
    out.tasks = list(tasks)
    return out


def prepare_from_config(cfg: RunConfig) -> PreparedData:
    """Load the config's data source (built-in dataset or file), add the configured
    auxiliary targets (computed once from the raw inputs), and prepare it."""
    from mtlkit.data._table import from_dataframe, read_table

    d = cfg.data
    fr = (d.split.train, d.split.val, d.split.test)
    gens = _auxiliary_generators(cfg)
    table_gens = [g for g in gens if g.input_kind == "table"]
    array_gens = [g for g in gens if g.input_kind != "table"]
    if d.dataset is not None:
        from mtlkit.datasets import load

        try:
            bundle = load(d.dataset, **d.options)
        except TypeError as exc:
            raise ValueError(f"data.options: {exc}") from None
        tasks = resolve_tasks(cfg.tasks, bundle.tasks)
        data, test, feats = bundle.data, bundle.test, bundle.feature_names
        if table_gens:
            if not feats:
                raise ValueError(f"Auxiliary generator(s) {[str(g) for g in table_gens]} need a table; the "
                                 f"dataset {d.dataset!r} has no named feature columns.")
            data, extra, feats = _table_aux(data, feats, table_gens)
            if test is not None:
                test, _, _ = _table_aux(test, bundle.feature_names or [], table_gens)
            tasks += extra
        data, test, extra = _array_aux(data, test, array_gens)
        return prepare(data, tasks + extra, test=test, fractions=fr, stratify=d.split.stratify,
                       seed=cfg.seed, standardize=d.standardize, default_trunk=bundle.default_trunk,
                       features=feats, source=f"dataset:{d.dataset}")
    assert d.path is not None
    tasks = resolve_tasks(cfg.tasks, None)
    df = read_table(d.path)
    aux_tasks: list[Task] = []
    aux_targets = []
    for g in table_gens:
        a = g.generate(df)
        df = a.inputs
        aux_tasks.append(a.task)
        aux_targets.append(dataclasses.replace(a, inputs=None))
    data, feats = from_dataframe(df, tasks, d.features, image_column=d.image_column, image_root=d.image_root,
                                 image_size=cast(tuple[int, int], tuple(d.image_size)) if d.image_size else None,
                                 grayscale=d.grayscale, source=repr(d.path))
    if aux_targets:
        from mtlkit.auxiliary import with_auxiliary

        data = with_auxiliary(data, aux_targets)
    data, _, extra = _array_aux(data, None, array_gens)
    return prepare(data, tasks + aux_tasks + extra, fractions=fr, stratify=d.split.stratify, seed=cfg.seed,
                   standardize=d.standardize, features=None if d.image_column else feats,
                   image_column=d.image_column, source=f"file:{d.path}")


def _auxiliary_generators(cfg: RunConfig) -> list[Any]:
    if not cfg.auxiliary:
        return []
    from mtlkit.auxiliary import build_generators

    try:
        return build_generators(cfg.auxiliary)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"auxiliary: {exc}") from None


def _array_aux(data: MultiTaskData, test: MultiTaskData | None, gens: Sequence[Any]
               ) -> tuple[MultiTaskData, MultiTaskData | None, list[Task]]:
    """Add targets computed from each sample's own raw input (no leakage across splits)."""
    if not gens:
        return data, test, []
    from mtlkit.auxiliary import with_auxiliary

    aux = [g.generate(data.x) for g in gens]
    data = with_auxiliary(data, aux)
    if test is not None:
        test = with_auxiliary(test, [_generate_like(g, test.x) for g in gens])
    return data, test, [a.task for a in aux]


def _generate_like(gen: Any, x: torch.Tensor) -> Any:
    """Targets for held-out inputs on the training targets' scale (a standardising generator
    reuses the mean and scale fitted on the training inputs)."""
    if not getattr(gen, "standardize", False) or not hasattr(gen, "target_mean_"):
        return gen.generate(x)
    mean, scale = gen.target_mean_, gen.target_scale_
    gen.standardize = False
    try:
        raw = gen.generate(x)
    finally:
        gen.standardize = True
    z = (raw.targets.double().numpy() - mean) / scale
    return dataclasses.replace(raw, targets=torch.as_tensor(z, dtype=raw.targets.dtype))


def _table_aux(data: MultiTaskData, feats: Sequence[str], gens: Sequence[Any]
               ) -> tuple[MultiTaskData, list[Task], list[str]]:
    """Privileged/quantisation columns of a tensor table: become targets, leave the inputs."""
    from mtlkit.auxiliary import with_auxiliary

    df = pd.DataFrame(data.x.numpy(), columns=list(feats))
    targets, tasks = [], []
    for g in gens:
        a = g.generate(df)
        df = a.inputs
        tasks.append(a.task)
        targets.append(dataclasses.replace(a, inputs=None))
    base = MultiTaskData(torch.as_tensor(df.to_numpy(dtype=np.float32)), data.targets, data.masks, data.tasks)
    return with_auxiliary(base, targets), tasks, list(df.columns)


def build_model_for(cfg: RunConfig, prepared: PreparedData, tasks: Sequence[Task]) -> nn.Module:
    from mtlkit.architectures import build_model

    trunk = dict(cfg.model.trunk) if cfg.model.trunk else dict(prepared.default_trunk)
    arch = {"name": cfg.model.architecture.name, **cfg.model.architecture.params(), "trunk": trunk}
    try:
        return build_model(arch, list(tasks), prepared.input_shape)
    except TypeError as exc:
        raise ValueError(f"model.architecture {cfg.model.architecture.name!r}: {exc}") from exc


def build_components(cfg: RunConfig) -> dict[str, Any]:
    """Weighting, aggregator, schedule and sampler objects named by the config."""
    t = cfg.training
    out: dict[str, Any] = {}
    for key, comp, reg in (("weighting", t.weighting, WEIGHTINGS), ("aggregator", t.aggregator, AGGREGATORS),
                           ("schedule", t.schedule, SCHEDULES), ("sampler", cfg.data.sampler, SAMPLERS)):
        if comp is None:
            out[key] = None
            continue
        try:
            out[key] = reg.build(comp.name, **comp.params())
        except (KeyError, TypeError, ValueError) as exc:
            where = "data.sampler" if key == "sampler" else f"training.{key}"
            raise ValueError(f"{where}: {exc}") from None
    return out


def make_trainer(cfg: RunConfig, model: nn.Module, tasks: Sequence[Task], *, run_dir: Path | None,
                 progress: bool, components: dict[str, Any] | None = None, baseline: bool = False,
                 checkpoint_dir: Path | None = None, trainer_cls: type[Trainer] = Trainer,
                 **trainer_kwargs: Any) -> Trainer:
    t = cfg.training
    comps = components if components is not None else build_components(cfg)
    from mtlkit.training.distributed import DistributedTrainer

    if issubclass(trainer_cls, DistributedTrainer):
        trainer_kwargs.setdefault("sync_batch_norm", t.sync_batch_norm)
    if baseline:  # single-task reference: same budget and optimiser, no balancing method
        comps = {"weighting": None, "aggregator": None, "schedule": None, "sampler": None}
    return trainer_cls(model, tasks, weighting=comps["weighting"], aggregator=comps["aggregator"],
                   level=t.level, optimizer=t.optimizer.name, lr=t.optimizer.lr,
                   weight_decay=t.optimizer.weight_decay, momentum=t.optimizer.momentum,
                   scheduler=t.scheduler, clip_grad_norm=t.clip_grad_norm, epochs=t.epochs,
                   batch_size=t.batch_size, patience=t.patience, monitor=None if baseline else t.monitor,
                   seed=cfg.seed, progress=progress, run_dir=run_dir,
                   monitor_conflicts=t.monitor_conflicts and not baseline and len(tasks) > 1,
                   sampler=comps["sampler"], schedule=comps["schedule"],
                   max_nonfinite_steps=t.max_nonfinite_steps, checkpoint_dir=checkpoint_dir,
                   checkpoint_every=t.checkpoint_every, keep_checkpoints=t.keep_checkpoints,
                   config_hash=config_hash(cfg), device=resolve_device(t.device), jacobian_engine=t.jacobian_engine,
                   **trainer_kwargs)


def resolve_device(name: str) -> torch.device:
    """The torch device named by ``training.device``; ``auto`` = cuda, else mps, else cpu. A
    device this torch build cannot use is an error that says so (never a silent CPU run).

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps is not None and mps.is_available())
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"training.device is {name!r}, but this torch build sees no CUDA GPU "
                             f"(torch {torch.__version__}, torch.cuda.is_available() is False); use 'cpu' or "
                             f"'auto'.")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"training.device is {name!r}, but there are only {torch.cuda.device_count()} "
                             f"CUDA device(s).")
    if dev.type == "mps" and not has_mps:
        raise ValueError(f"training.device is {name!r}, but MPS is not available here; use 'cpu' or 'auto'.")
    return dev


def count_parameters(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def inference_ms(model: nn.Module, x: torch.Tensor, *, repeats: int = 5, n: int = 1000) -> float:
    """Median wall time (ms) of predicting ``n`` samples (batch of up to 1000) in eval mode."""
    sample = x[:n] if x.shape[0] >= 1 else x
    if sample.shape[0] == 0:
        return float("nan")
    times = []
    was = model.training
    model.eval()
    with torch.no_grad():
        model(sample)
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(sample)
            times.append((time.perf_counter() - t0) * 1000.0)
    model.train(was)
    return float(np.median(times)) * (n / sample.shape[0])


def evaluate_outputs(tasks: Sequence[Task], out: dict[str, torch.Tensor], data: MultiTaskData
                     ) -> tuple[dict[str, dict[str, float]], dict[str, Any], dict[str, Any]]:
    """Metrics, confusion matrices and classification reports on a split."""
    from sklearn.metrics import confusion_matrix

    metrics, confusion, reports = {}, {}, {}
    for t in tasks:
        metrics[t.name] = t.evaluate(out[t.name], data.targets[t.name], data.masks[t.name])
        if t.kind in ("binary", "multiclass"):
            m = data.masks[t.name].numpy().astype(bool)
            y = data.targets[t.name].numpy()[m].astype(int)
            if t.kind == "binary":
                pred = (out[t.name].numpy()[m] >= 0).astype(int)
                labels = [0, 1]
            else:
                pred = out[t.name].numpy()[m].argmax(-1)
                labels = list(range(int(t.num_classes or 0)))
            confusion[t.name] = confusion_matrix(y, pred, labels=labels).tolist()
        rep = t.classification_report(out[t.name], data.targets[t.name], data.masks[t.name])
        if rep is not None:
            reports[t.name] = rep
    return metrics, confusion, reports


@dataclass
class RunResult:
    """What a run produced: the fitted model, its summary and where the files are."""

    run_dir: Path | None
    model: nn.Module
    tasks: list[Task]
    summary: dict[str, Any]
    trainer: Trainer
    prepared: PreparedData
    baselines: dict[str, nn.Module] = field(default_factory=dict)

    @property
    def delta_m(self) -> float | None:
        return self.summary.get("delta_m")

    @property
    def report_path(self) -> Path | None:
        return self.run_dir / "report.html" if self.run_dir else None

    def predict(self, x: Any) -> dict[str, torch.Tensor]:
        """Raw outputs per task for a DataFrame (feature columns), array or tensor of inputs."""
        if isinstance(x, pd.DataFrame):
            from mtlkit.data._table import features_from_frame

            if not self.prepared.features:
                raise ValueError("This model was not trained on named feature columns.")
            x = torch.as_tensor(features_from_frame(x, self.prepared.features, source="the input"))
        x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).float()
        if self.prepared.preprocessing:
            x = Standardizer.from_dict(self.prepared.preprocessing).transform(x)
        return predict_raw(self.model, x)


class WarningLog:
    """Collects the warnings shown while it is active (they are still shown as usual):
    ``entries()`` gives one entry per distinct message, numbers folded (``Step 3: ...`` and
    ``Step 7: ...`` are one entry with count 2), for ``summary.json`` and the report."""

    def __init__(self, limit: int = 20) -> None:
        self.limit = limit
        self._seen: dict[tuple[str, str], dict[str, Any]] = {}
        self._orig: Any = None

    def __enter__(self) -> WarningLog:
        import re
        import warnings

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
        import warnings

        warnings.showwarning = self._orig

    def entries(self) -> list[dict[str, Any]]:
        return [dict(e) for e in self._seen.values()]


def run(cfg: RunConfig, prepared: PreparedData, *, out_dir: str | Path | None, progress: bool = True,
        log: Log | None = None, model: nn.Module | None = None,
        components: dict[str, Any] | None = None,
        baseline_builder: Callable[[Task], nn.Module] | None = None, overwrite: bool = False,
        resume: bool = False, force: bool = False, report: bool = True) -> RunResult:
    """Train the multi-task model and (if ``cfg.baselines``) one single-task model per task,
    evaluate on the test split and write the run folder when ``out_dir`` is given.

    ``components`` overrides the weighting/aggregator/schedule/sampler objects named by the
    config (for objects built in Python); ``baseline_builder(task)`` builds the single-task
    reference model (default: hard sharing with the config's trunk). A folder that already
    holds a finished run is refused unless ``overwrite``.

    With ``resume``, every trainer (multi-task and baselines) continues from its newest good
    checkpoint in ``out_dir/checkpoints``; a config that differs from the run's is refused
    (listing the differing keys) unless ``force``.

    The warnings shown meanwhile are kept in ``summary["warnings"]`` (and the report)."""
    with WarningLog() as warned:
        return _run(cfg, prepared, out_dir=out_dir, progress=progress, log=log, model=model,
                    components=components, baseline_builder=baseline_builder, overwrite=overwrite,
                    resume=resume, force=force, report=report, warned=warned)


def _run(cfg: RunConfig, prepared: PreparedData, *, out_dir: str | Path | None, progress: bool,
         log: Log | None, model: nn.Module | None, components: dict[str, Any] | None,
         baseline_builder: Callable[[Task], nn.Module] | None, overwrite: bool, resume: bool, force: bool,
         report: bool, warned: WarningLog) -> RunResult:
    """The body of :func:`run`; ``warned`` collects the warnings shown meanwhile."""
    from mtlkit.training.distributed import (
        DistributedTrainer,
        init_from_env,
        is_distributed,
        is_main_process,
        world_size,
    )

    init_from_env()  # under torchrun (WORLD_SIZE > 1): start the process group, else nothing
    main = is_main_process()  # distributed: rank 0 alone writes the run folder and prints
    tcls = DistributedTrainer if is_distributed() else Trainer
    say = (log if main else None) or (lambda s: None)
    tasks = prepared.tasks
    run_dir = Path(out_dir) if out_dir is not None else None
    if resume and main:
        if run_dir is None or not (run_dir / "config.yaml").exists():
            raise FileNotFoundError(f"Nothing to resume: {str(run_dir)!r} holds no run (config.yaml).")
        import yaml

        old = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
        diff = config_diff(old, cfg)
        if diff and not force:
            raise ConfigError(f"The config differs from the checkpointed run's in {diff}; refusing to "
                              f"resume (pass --force to resume anyway).")
    if run_dir is not None and not resume and main:
        if (run_dir / "model.safetensors").exists() and not overwrite:
            raise FileExistsError(f"The run folder {str(run_dir)!r} already holds a finished run; "
                                  f"choose another --out or pass --overwrite.")
        run_dir.mkdir(parents=True, exist_ok=True)
        if not _writable(run_dir):
            raise PermissionError(f"The run folder {str(run_dir)!r} is not writable.")
        atomic_write(run_dir / "config.yaml", dump_config(cfg))
        metrics_file = run_dir / "metrics.jsonl"
        if metrics_file.exists():
            metrics_file.unlink()
        import shutil

        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    ck_root = run_dir / "checkpoints" if run_dir is not None else None
    def train_baselines() -> tuple[dict[str, Any], dict[str, nn.Module]]:
        """One single-task model per primary task, same budget and optimiser."""
        stl: dict[str, Any] = {}
        baseline_models: dict[str, nn.Module] = {}
        for t in [t for t in tasks if t.role == "primary"]:  # auxiliary tasks need no reference
            say(f"Training the single-task baseline for {t.name!r} ...")
            single = dataclasses.replace(t, weight=1.0)
            seed_everything(cfg.seed)
            bmodel = baseline_builder(single) if baseline_builder else _baseline_model(cfg, prepared, single)
            bdir = run_dir / "baselines" / t.name if run_dir is not None else None
            if bdir is not None and main:
                bdir.mkdir(parents=True, exist_ok=True)
                if not resume:
                    (bdir / "metrics.jsonl").unlink(missing_ok=True)
            btrainer = make_trainer(cfg, bmodel, [single], run_dir=bdir, progress=progress, baseline=True,
                                    trainer_cls=tcls,
                                    checkpoint_dir=ck_root / f"stl-{t.name}" if ck_root is not None else None)
            t1 = time.perf_counter()
            btrainer.fit(prepared.train, prepared.val, resume=resume)
            bmodel.cpu()  # evaluation, timing and saving on the CPU
            bfit = time.perf_counter() - t1
            bout = predict_raw(bmodel, prepared.test)
            if bdir is not None and main:  # a baseline is a run folder too (a distillation teacher)
                bmeta = model_meta(bmodel, dataclasses.replace(prepared, tasks=[single]))
                if bmeta is not None and bmeta.get("architecture") and bmeta["architecture"].get("trunk"):
                    save_model(bdir, bmodel, bmeta)
            bm, bconf, _ = evaluate_outputs([single], bout, prepared.test)
            stl[t.name] = {"test": bm[t.name], "params": count_parameters(bmodel),
                           "inference_ms": inference_ms(bmodel, prepared.test.x),
                           "fit_time_s": round(bfit, 3), "best_epoch": btrainer.history.best_epoch}
            stl[t.name]["_confusion"] = bconf.get(t.name)
            baseline_models[t.name] = bmodel
        return stl, baseline_models

    comps = build_components(cfg)
    comps.update(components or {})
    stl_early: tuple[dict[str, Any], dict[str, nn.Module]] | None = None
    needs_refs: list[Any] = [c for c in (comps.get("sampler"), comps.get("schedule"))
                  if getattr(c, "needs_references", False) and not getattr(c, "has_references", True)]
    if needs_refs:  # active / dynamic sampling compare each task with its single-task reference
        if not cfg.baselines:
            raise ValueError(f"{[str(c) for c in needs_refs]} need single-task references: give them "
                             f"'references' in the config or keep baselines on.")
        say("Training the single-task baselines first: they are the references of the task sampler/schedule.")
        stl_early = train_baselines()
        by_name = {t.name: t for t in tasks}
        refs = {name: evaluate_outputs([by_name[name]], predict_raw(bm, prepared.val), prepared.val)[0][name]
                for name, bm in stl_early[1].items()}
        for c in needs_refs:
            c.set_references(refs)
    seed_everything(cfg.seed)
    if model is None:
        model = build_model_for(cfg, prepared, tasks)
    trainer = make_trainer(cfg, model, tasks, run_dir=run_dir, progress=progress, components=comps,
                           trainer_cls=tcls, checkpoint_dir=ck_root / "mtl" if ck_root is not None else None)
    phase = ", phase 1 of 2: the policy search" if getattr(model, "retrain", False) else ""
    say(f"Training the multi-task model ({len(tasks)} tasks, {count_parameters(model):,} parameters{phase}) ...")
    t0 = time.perf_counter()
    trainer.fit(prepared.train, prepared.val, resume=resume)
    model.cpu()  # evaluation, timing and saving on the CPU, whatever training.device was
    if trainer.resumed_from:
        say(f"Resumed the multi-task model from checkpoint {trainer.resumed_from}.")
    fit_time = time.perf_counter() - t0
    search_phase: dict[str, Any] | None = None
    if getattr(model, "retrain", False) and callable(getattr(model, "retrain_model", None)):
        # a two-phase architecture (AdaShare): fix the searched policy, retrain a fresh model
        model, trainer, fit_time, search_phase = _retrain_phase(
            cfg, prepared, model, trainer, fit_time, run_dir=run_dir, ck_root=ck_root, main=main,
            progress=progress, comps=comps, user_components=components, trainer_cls=tcls, resume=resume,
            say=say)
    out_test = predict_raw(model, prepared.test)
    test_metrics, confusion, reports = evaluate_outputs(tasks, out_test, prepared.test)
    val_metrics = evaluate_outputs(tasks, predict_raw(model, prepared.val), prepared.val)[0] if len(prepared.val) else {}
    mtl = {"test": test_metrics, "val": val_metrics, "params": count_parameters(model),
           "inference_ms": inference_ms(model, prepared.test.x), "fit_time_s": round(fit_time, 3),
           "best_epoch": trainer.history.best_epoch, "epochs_run": len(trainer.history.records)}
    meta = model_meta(model, prepared)
    if run_dir is not None and meta is not None and main:
        save_model(run_dir, model, meta)
    summary: dict[str, Any] = {
        "format_version": FORMAT_VERSION, "name": cfg.name, "seed": cfg.seed, "source": prepared.source,
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "tasks": [t.to_dict() for t in tasks],
        "higher_is_better": {t.name: {m.name: m.higher_is_better for m in t.metrics} for t in tasks},
        "main_metric": {t.name: t.main_metric for t in tasks},
        "mtl": mtl, "baselines": None, "delta_m": None, "delta_m_per_task": {}, "delta_m_all_tasks": None,
        "sign_convention": "Δm = (1/T) Σ_t (1/|M_t|) Σ_m (−1)^{h_m} (M_mtl − M_stl)/M_stl × 100 over "
                           "primary tasks; negative means the multi-task model is better.",
        "confusion": {k: {"mtl": v, "stl": None} for k, v in confusion.items()},
        "classification_report": reports, "nonfinite_skipped": trainer.nonfinite_skipped,
        "sizes": {"train": len(prepared.train), "val": len(prepared.val), "test": len(prepared.test)},
        "inference_unit": "ms per 1000 samples",
        "environment": {"torch": torch.__version__, "python": platform.python_version(),
                        "threads": torch.get_num_threads(), "processes": world_size(),
                        "device": str(trainer.device)},
    }
    if world_size() > 1:  # batch norm over the global batch, or per rank (docs/scaling.md)
        summary["environment"]["sync_batch_norm"] = bool(getattr(trainer, "sync_batch_norm", False))
    if search_phase is not None:
        summary["search_phase"] = search_phase
    stl: dict[str, Any] | None = None
    baseline_models: dict[str, nn.Module] = {}
    if cfg.baselines and len(tasks) >= 1:
        stl, baseline_models = stl_early if stl_early is not None else train_baselines()
        for name, entry in stl.items():
            conf = entry.pop("_confusion", None)
            if conf is not None and name in summary["confusion"]:
                summary["confusion"][name]["stl"] = conf
        summary["baselines"] = stl
        stl_test = {k: v["test"] for k, v in stl.items()}
        summary["delta_m"] = delta_m(test_metrics, stl_test, tasks, primary_only=True)
        summary["delta_m_per_task"] = delta_m_per_task(test_metrics, stl_test, tasks)
        summary["delta_m_all_tasks"] = delta_m(test_metrics, stl_test, tasks, primary_only=False)
        summary["stl_params_total"] = sum(v["params"] for v in stl.values())
        summary["stl_inference_ms_total"] = sum(v["inference_ms"] for v in stl.values())
        if summary["delta_m"] is not None and not math.isfinite(summary["delta_m"]):
            summary["delta_m"] = None
    summary["warnings"] = warned.entries()  # what the console showed, kept with the run
    if run_dir is not None and main:
        write_json(run_dir / SUMMARY, summary)
        if report:
            write_report_safely(run_dir, say)
    return RunResult(run_dir, model, list(tasks), summary, trainer, prepared, baseline_models)


def _baseline_model(cfg: RunConfig, prepared: PreparedData, task: Task) -> nn.Module:
    """The single-task reference: the same trunk and head design, trained on one task.

    For architectures other than hard sharing the reference is the hard-sharing model with
    the same trunk (a single task has nothing to share), as in the MTL literature, unless the
    architecture says otherwise (``single_task_config``: a siamese model reads pairs)."""
    from mtlkit._registry import ARCHITECTURES
    from mtlkit.architectures import build_model

    trunk = dict(cfg.model.trunk) if cfg.model.trunk else dict(prepared.default_trunk)
    name, params = cfg.model.architecture.name, cfg.model.architecture.params()
    own = getattr(ARCHITECTURES.get(name), "single_task_config", None) if name in ARCHITECTURES else None
    spec = own(params, task) if own is not None else None
    if spec is None:
        spec = {"name": "hard_sharing", **(params if name == "hard_sharing" else {})}
    return build_model({**spec, "trunk": trunk}, [task], prepared.input_shape)


def model_meta(model: nn.Module, prepared: PreparedData) -> dict[str, Any] | None:
    cfg = getattr(model, "config", None)
    return {
        "architecture": cfg,
        "tasks": [t.to_dict() for t in prepared.tasks],
        "input_shape": list(prepared.input_shape),
        "preprocessing": prepared.preprocessing,
        "features": prepared.features,
        "image_column": prepared.image_column,
        "source": prepared.source,
    }


def write_report_safely(run_dir: Path, say: Log) -> None:
    try:
        from mtlkit.report import write_report
    except ImportError:  # the report package is optional during development
        return
    try:
        write_report(run_dir)
    except Exception as exc:  # a broken plot must not lose the run
        say(f"warning: the HTML report could not be written: {exc}")


def _writable(path: Path) -> bool:
    import os

    return os.access(path, os.W_OK)


def _retrain_phase(cfg: RunConfig, prepared: PreparedData, model: nn.Module, trainer: Trainer, search_fit_s: float,
                   *, run_dir: Path | None, ck_root: Path | None, main: bool, progress: bool,
                   comps: dict[str, Any], user_components: dict[str, Any] | None, trainer_cls: type[Trainer],
                   resume: bool, say: Log) -> tuple[nn.Module, Trainer, float, dict[str, Any]]:
    """The second phase of a two-phase architecture (AdaShare, Sun et al. 2020): the model
    just trained is the search; its policy is fixed (``fix_policy``, seeded by ``cfg.seed``)
    and a fresh model built with it (``retrain_model``) is trained with the same budget.

    Layout: phase 1 keeps ``checkpoints/mtl`` and its records move to ``search/metrics.jsonl``
    (with its weights in ``search/``); phase 2 is the run's model (``metrics.jsonl``,
    ``model.safetensors``, ``checkpoints/mtl-retrain``). Returns the phase-2 model, trainer and
    fit time (s) and the ``search_phase`` summary entry."""
    tasks = prepared.tasks
    contract = cast(Any, model)  # duck-typed: retrain_model / fix_policy / sharing_summary
    search_test, _, _ = evaluate_outputs(tasks, predict_raw(model, prepared.test), prepared.test)
    summary_fn = getattr(model, "sharing_summary", None)
    learned = summary_fn() if callable(summary_fn) else {}
    search_dir = run_dir / "search" if run_dir is not None else None
    if search_dir is not None and main:
        search_dir.mkdir(parents=True, exist_ok=True)
        records = run_dir / "metrics.jsonl" if run_dir is not None else None
        if records is not None and records.exists():  # metrics.jsonl is the final model's
            import os

            os.replace(records, search_dir / "metrics.jsonl")
        meta = model_meta(model, prepared)
        if meta is not None and meta.get("architecture") and meta["architecture"].get("trunk"):
            save_model(search_dir, model, meta)
    policy = contract.fix_policy(generator=torch.Generator().manual_seed(cfg.seed))
    blocks = learned.get("policy_blocks")
    say(f"Search phase done (test {_short_metrics(tasks, search_test)}). Fixed policy "
        f"(1 = select, 0 = skip{f'; blocks {blocks}' if blocks else ''}): {policy}.")
    seed_everything(cfg.seed)
    final = contract.retrain_model(policy)
    # fresh weighting/aggregator/schedule/sampler from the config; objects built in Python
    # or holding single-task references are reused (the trainer's setup() runs again)
    fresh = build_components(cfg)
    for key, obj in comps.items():
        if key in (user_components or {}) or getattr(obj, "needs_references", False):
            fresh[key] = obj
            if key == "aggregator" and obj is not None:
                obj.reset()
    say(f"Retraining a fresh multi-task model with the fixed policy ({count_parameters(final):,} parameters) ...")
    final_trainer = make_trainer(cfg, final, tasks, run_dir=run_dir, progress=progress, components=fresh,
                                 trainer_cls=trainer_cls,
                                 checkpoint_dir=ck_root / "mtl-retrain" if ck_root is not None else None)
    t0 = time.perf_counter()
    final_trainer.fit(prepared.train, prepared.val, resume=resume)
    final.cpu()
    if final_trainer.resumed_from:
        say(f"Resumed the retrained model from checkpoint {final_trainer.resumed_from}.")
    retrain_fit = time.perf_counter() - t0
    search = {"test": search_test, "policy": policy, "probabilities": learned.get("policy"),
              "policy_blocks": blocks, "policy_sampling": getattr(model, "policy_sampling", None),
              "fit_time_s": round(search_fit_s, 3), "epochs_run": len(trainer.history.records),
              "best_epoch": trainer.history.best_epoch}
    return final, final_trainer, retrain_fit, search


def _short_metrics(tasks: Sequence[Task], metrics: dict[str, dict[str, float]]) -> str:
    """``task main_metric=value`` for the log."""
    return ", ".join(f"{t.name} {t.main_metric}={metrics[t.name][t.main_metric]:.4f}" for t in tasks)
