"""The epoch loop: epochs of steps, one record per epoch, validation, early stopping,
checkpoints and exact mid-epoch resume.

:func:`fit` is what :meth:`mtlkit.training.Trainer.fit` runs. A record (one line of
``metrics.jsonl``) holds, in this order: ``epoch``, ``train_loss``, ``weights``, ``steps``,
``task_steps``, ``lr``, ``time_s``, ``nonfinite_skipped`` and, when they apply,
``nonfinite_tasks``, ``penalties``, ``aggregator_weights``, ``conflicts``, ``sampling``,
``schedule``, ``sharing``, ``val``, ``val_loss``, ``val_score``.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from mtlkit.data._dataset import MultiTaskData
from mtlkit.tasks import Task
from mtlkit.training.settings import seed_everything

if TYPE_CHECKING:
    from mtlkit.training.step import StepResult
    from mtlkit.training.trainer import Trainer

__all__ = ["History", "fit", "score"]


@dataclass
class History:
    """Per-epoch records (the lines of ``metrics.jsonl``) and the chosen epoch."""

    records: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    stopped_early: bool = False

    def series(self, key: str, task: str, metric: str | None = None) -> list[float]:
        out = []
        for r in self.records:
            v = r.get(key, {}).get(task)
            if metric is not None and isinstance(v, dict):
                v = v.get(metric)
            out.append(float("nan") if v is None else float(v))
        return out


def min_last_batch(model: torch.nn.Module, processes: int) -> int:
    """The fewest rows of an epoch's last batch (a smaller one joins the batch before,
    :meth:`MultiTaskData.iter_batches`): 2 per process for a model with batch-norm layers,
    which refuse to train on one row; else 1."""
    bn = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
    return 2 * processes if bn else 1


def new_fit_state() -> dict[str, Any]:
    """Early stopping's state (checkpointed with the trainer)."""
    return {"best_score": -math.inf, "best_state": None, "bad_epochs": 0, "baseline_val": None, "done": False}


def new_epoch_state(tr: Trainer) -> dict[str, Any]:
    """The running sums of one epoch (checkpointed mid-epoch for an exact resume)."""
    k = len(tr.tasks)
    return {"gen_start": tr.generator.get_state(), "batch_index": 0, "loss_sum": torch.zeros(k),
            "loss_n": torch.zeros(k), "w_sum": torch.zeros(k), "agg_sum": torch.zeros(k, dtype=torch.float64),
            "agg_n": torch.zeros(k), "nonfinite_before": tr.nonfinite_skipped, "elapsed": 0.0, "monitor": None}


def fit(tr: Trainer, train: MultiTaskData, val: MultiTaskData | None, *, resume: bool) -> History:
    """Train until ``tr.epochs`` (or early stopping) and return the history; see
    :meth:`mtlkit.training.Trainer.fit`."""
    if len(train) == 0:
        raise ValueError("The training data is empty.")
    seed_everything(tr.settings.seed)
    if tr.optimizer is None:
        tr.setup(train)
    counts = train.labelled_counts() if hasattr(train, "labelled_counts") else {}
    empty = [t for t in tr.task_names if counts.get(t, 1) == 0]
    if empty:
        raise ValueError(f"Task(s) {empty} have no labelled training sample: every label is missing.")
    for name, part in (("training", train), ("validation", val)):
        missing = [t for t in tr.task_names if part is not None and t not in getattr(part, "targets", {})]
        if missing:
            raise ValueError(f"The {name} data has no labels for task(s) {missing}; it has "
                             f"{sorted(getattr(part, 'targets', {}))}. Give every task a label column "
                             f"(missing values are allowed, they are masked).")
    if getattr(tr.weighting, "needs_validation_batch", False) and (val is None or len(val) == 0):
        raise ValueError(f"The weighting {tr.weighting} learns from validation batches at every step "
                         f"(needs_validation_batch): pass validation data, fit(train, val).")
    tr.validation_data = val
    fit_state, ep = _start(tr, resume)
    tr.fit_state = fit_state
    tr.num_batches = tr._num_batches(train)
    for cb in tr.hooks:
        cb.on_fit_start(tr)
    try:
        with tr.comm.fit_context(tr):
            if not fit_state["done"]:
                _epochs(tr, train, val, fit_state, ep)
    finally:
        for cb in tr.hooks:
            cb.on_fit_end(tr)
    if fit_state["best_state"] is not None:
        tr.model.load_state_dict(fit_state["best_state"])
    return tr.history


def _start(tr: Trainer, resume: bool) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The fit state and the interrupted epoch's state: from the newest checkpoint when
    resuming, else fresh. A finished run whose ``epochs`` grew (and that did not stop early)
    continues to the new budget. ``epochs`` is the total: a ``fit`` on a trainer that has
    trained that many epochs already is an error that says how to continue."""
    if resume and tr.checkpoints is not None:
        found = tr.checkpoints.latest()
        if found is not None:
            state, entry = found
            tr.load_state_dict(state["trainer"])
            fit_state, ep = state["fit"], state.get("epoch_state")
            tr.resumed_from = entry["name"]
            if fit_state["done"] and not tr.history.stopped_early and tr.epoch < tr.epochs:
                fit_state["done"] = False
                tr.extended_from = tr.epoch
            return fit_state, ep
    if tr.epoch >= tr.epochs:  # a second fit() would train nothing: say so
        raise RuntimeError(f"This trainer has already trained {tr.epoch} epoch(s) and 'epochs' is "
                           f"{tr.epochs} (the total, not the epochs per call). To continue, raise it first, "
                           f"e.g. trainer.epochs = {tr.epoch + tr.epochs}; or build a new Trainer.")
    return new_fit_state(), None


def _epochs(tr: Trainer, train: MultiTaskData, val: MultiTaskData | None, fit_state: dict[str, Any],
            ep: dict[str, Any] | None) -> None:
    for epoch in range(tr.epoch, tr.epochs):
        tr.epoch = epoch
        tr.model.train()
        ep = _run_epoch(tr, train, epoch, ep)
        record = _record(tr, epoch, ep)
        tr.epoch_state = None
        ep = None
        if val is not None and len(val):
            _validate(tr, val, record, fit_state, epoch)
        for obj in (tr.sampler, tr.schedule):
            fn = getattr(obj, "on_epoch_end", None)
            if callable(fn):
                fn(epoch, record)
        tr.history.records.append(record)
        for cb in tr.hooks:
            cb.on_epoch_end(tr, record)
        tr.epoch = epoch + 1
        stop = tr.settings.patience is not None and fit_state["bad_epochs"] >= tr.settings.patience
        if stop:
            tr.history.stopped_early = True
        if stop or tr.epoch >= tr.epochs:
            fit_state["done"] = True
        if tr.checkpoints is not None:
            tr.checkpoint_now()
        if stop:
            break


def _run_epoch(tr: Trainer, train: MultiTaskData, epoch: int, ep: dict[str, Any] | None) -> dict[str, Any]:
    """The steps of one epoch; a resumed epoch replays its batch draws up to the checkpoint."""
    t0 = time.perf_counter()
    replay, rng_now = 0, None
    if ep is None:
        ep = new_epoch_state(tr)
    else:
        replay = int(ep["batch_index"])
        rng_now = tr.rng_states()
        tr.generator.set_state(ep["gen_start"])
        if ep.get("monitor") is not None and tr.conflict_hook is not None:
            tr.conflict_hook.monitor.load_state_dict(ep["monitor"])
    tr.epoch_state = ep
    for cb in tr.hooks:
        cb.on_epoch_start(tr, epoch)
    for i, batch in enumerate(tr._batches(train, epoch)):
        if i < replay:
            if i == replay - 1 and rng_now is not None:
                tr.set_rng_states(rng_now)
            continue
        result = tr.train_step(batch)
        _accumulate(ep, result, len(tr.tasks))
        ep["batch_index"] = i + 1
        ep["elapsed"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        for cb in tr.hooks:
            cb.after_step(tr, result)
    ep["elapsed"] += time.perf_counter() - t0
    return ep


#: the running sums of an epoch that live on the losses' device (no host read per step)
_DEVICE_SUMS = ("loss_sum", "loss_n", "w_sum")


def _accumulate(ep: dict[str, Any], r: StepResult, k: int) -> None:
    dev = r.losses.device
    if ep["loss_sum"].device != dev:
        for key in _DEVICE_SUMS:
            ep[key] = ep[key].to(dev)
    present = torch.zeros_like(r.present) if r.skipped else r.present  # a skipped step teaches nothing
    losses = r.losses.float()
    ep["loss_sum"] += torch.where(present, losses, torch.zeros_like(losses))
    ep["loss_n"] += present.float()
    ep["w_sum"] += r.weights.float()
    if r.aggregator_weights is not None:  # the exact methods read the device anyway (docs/performance.md)
        ep["agg_sum"][r.aggregator_tasks] += r.aggregator_weights.cpu().to(ep["agg_sum"])
        ep["agg_n"][r.aggregator_tasks] += 1
    if r.penalties:
        acc = ep.setdefault("extra_losses", {})
        for name, v in r.penalties.items():
            acc[name] = acc.get(name, 0.0) + v


def _record(tr: Trainer, epoch: int, ep: dict[str, Any]) -> dict[str, Any]:
    """The epoch's record (see the module docstring for its keys)."""
    names = tr.task_names
    steps = int(ep["batch_index"])
    mean_losses = (ep["loss_sum"] / ep["loss_n"].clamp_min(1)).cpu()
    tr.weighting.on_epoch_end(epoch, mean_losses)
    if tr.scheduler is not None:
        tr.scheduler.step()
    record: dict[str, Any] = {
        "epoch": epoch + 1, "train_loss": dict(zip(names, mean_losses.tolist())),
        "weights": dict(zip(names, (ep["w_sum"] / max(steps, 1)).tolist())), "steps": steps,
        "task_steps": dict(zip(names, ep["loss_n"].tolist())),
        "lr": tr.optimizer.param_groups[0]["lr"] if tr.optimizer else None,
        "time_s": round(ep["elapsed"], 4), "nonfinite_skipped": tr.nonfinite_skipped - int(ep["nonfinite_before"]),
    }
    if ep.get("nonfinite_tasks"):
        record["nonfinite_tasks"] = dict(ep["nonfinite_tasks"])
    if ep.get("extra_losses"):
        record["penalties"] = {k: float(v) / max(steps, 1) for k, v in ep["extra_losses"].items()}
    if tr.aggregator is not None and ep["agg_n"].sum() > 0:
        record["aggregator_weights"] = dict(zip(names, (ep["agg_sum"] / ep["agg_n"].clamp_min(1)).tolist()))
    for cb in tr.hooks:
        cb.add_to_record(tr, record)
    for name, obj in (("sampling", tr.sampler), ("schedule", tr.schedule)):
        fn = getattr(obj, "epoch_summary", None)
        if callable(fn):
            record[name] = fn()
    sharing = getattr(tr.model, "sharing_summary", None)
    if callable(sharing) and (summary := sharing()):
        record["sharing"] = summary
    return record


def _validate(tr: Trainer, val: MultiTaskData, record: dict[str, Any], fit_state: dict[str, Any],
              epoch: int) -> None:
    """Validation metrics and loss, the early-stopping score, the best weights so far."""
    metrics = tr.evaluate(val)
    record["val"] = metrics
    record["val_loss"] = tr.loss_on(val)
    if fit_state["baseline_val"] is None:
        fit_state["baseline_val"] = metrics
    s = tr.comm.agree(score(tr.tasks, tr.settings.monitor, metrics, fit_state["baseline_val"]))
    record["val_score"] = s
    if s > fit_state["best_score"] + 1e-12:
        fit_state["best_score"], fit_state["bad_epochs"] = s, 0
        fit_state["best_state"] = copy.deepcopy(tr.model.state_dict())
        tr.history.best_epoch = epoch + 1
    else:
        fit_state["bad_epochs"] += 1


def score(tasks: Sequence[Task], monitor: str | None, metrics: dict[str, dict[str, float]],
          base: dict[str, dict[str, float]]) -> float:
    """Higher is better: the monitored metric, else the single primary task's main metric,
    else the mean relative improvement of the primary tasks' main metrics over ``base``."""
    if monitor:
        task, _, metric = monitor.partition(":")
        t = next((t for t in tasks if t.name == task), None)
        if t is None:
            raise ValueError(f"monitor names unknown task {task!r}; tasks are {[t.name for t in tasks]}.")
        metric = metric or t.main_metric
        v = metrics[task][metric]
        return v if t.metric(metric).higher_is_better else -v
    primary = [t for t in tasks if t.role == "primary"] or list(tasks)
    if len(primary) == 1:
        t = primary[0]
        v = metrics[t.name][t.main_metric]
        if not math.isfinite(v):
            return -math.inf
        return v if t.metric(t.main_metric).higher_is_better else -v
    terms = []
    for t in primary:
        v, b = metrics[t.name][t.main_metric], base[t.name][t.main_metric]
        if not (math.isfinite(v) and math.isfinite(b)):
            continue
        sign = 1.0 if t.metric(t.main_metric).higher_is_better else -1.0
        terms.append(sign * (v - b) / (abs(b) if b != 0 else 1.0))
    return float(np.mean(terms)) if terms else -math.inf
