"""Train one model into a folder: the one way the run package trains anything (the multi-task
model, each single-task baseline, the retrained phase of a two-phase architecture, the
student of a distillation), and the measures it takes of a trained model.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from mtlkit import _batch
from mtlkit.config import RunConfig
from mtlkit.data._dataset import MultiTaskData
from mtlkit.run.build import make_trainer
from mtlkit.run.data import PreparedData
from mtlkit.run.folder import RunFolder
from mtlkit.tasks import Task
from mtlkit.training import Trainer, predict_raw

__all__ = ["INFERENCE_TIMING", "Trained", "evaluate_outputs", "inference_ms", "model_meta", "train_into",
           "warm_up_imports"]

Log = Callable[[str], None]
#: which trained models are saved: every one, only those rebuilt from a stock trunk (a
#: baseline or a search phase: loadable run folders, e.g. distillation teachers), or none
Save = Literal["always", "stock", "never"]


@dataclass
class Trained:
    """A model trained by :func:`train_into` (on the CPU) and its test results."""

    model: nn.Module
    trainer: Trainer
    fit_time_s: float
    test: dict[str, dict[str, float]]
    confusion: dict[str, Any]
    reports: dict[str, Any]


def train_into(cfg: RunConfig, model: nn.Module, tasks: Sequence[Task], prepared: PreparedData, *,
               folder: RunFolder | None, checkpoint_dir: Path | None = None, progress: bool = False,
               components: Mapping[str, Any] | None = None, baseline: bool = False,
               trainer_cls: type[Trainer] = Trainer, resume: bool = False, save: Save = "always",
               wrap: Callable[[Trainer], Trainer] | None = None, label: str | None = None,
               say: Log | None = None) -> Trained:
    """Train ``model`` on ``prepared`` with the config's settings, its records going to
    ``folder`` (``metrics.jsonl``; ``None``: nowhere) and its checkpoints to
    ``checkpoint_dir``; continue from them with ``resume``. The model then moves to the CPU,
    is evaluated on the test split and (``save``) its weights are written to ``folder``.

    ``wrap`` turns the built trainer into another one (distillation); ``label`` names the
    model in the "Resumed ..." message."""
    trainer = make_trainer(cfg, model, tasks, run_dir=folder.path if folder is not None else None,
                           progress=progress, components=components, baseline=baseline,
                           checkpoint_dir=checkpoint_dir, trainer_cls=trainer_cls)
    if wrap is not None:
        trainer = wrap(trainer)
    warm_up_imports(trainer)  # one-off imports are not the model's fit time
    t0 = time.perf_counter()
    trainer.fit(prepared.train, prepared.val, resume=resume)
    model.cpu()  # evaluation, timing and saving on the CPU, whatever training.device was
    if trainer.resumed_from and label and say is not None:
        say(f"Resumed the {label} from checkpoint {trainer.resumed_from}.")
    fit_time = time.perf_counter() - t0
    test, confusion, reports = evaluate_outputs(tasks, predict_raw(model, prepared.test), prepared.test)
    if folder is not None and save != "never":
        meta = model_meta(model, prepared, tasks)
        arch = meta.get("architecture")
        if save == "always" or (arch and arch.get("trunk")):
            folder.save_model(model, meta)
    return Trained(model, trainer, fit_time, test, confusion, reports)


def model_meta(model: nn.Module, prepared: PreparedData, tasks: Sequence[Task] | None = None) -> dict[str, Any]:
    """What ``model.json`` records to rebuild ``model`` and read its inputs (``tasks``:
    the model's tasks, default all the data's)."""
    return {
        "architecture": getattr(model, "config", None),
        "tasks": [t.to_dict() for t in (prepared.tasks if tasks is None else tasks)],
        "input_shape": _batch.shape_json(prepared.input_shape),  # {name: shape} for several inputs
        "preprocessing": prepared.preprocessing,
        "features": prepared.features,
        "image_column": prepared.image_column,
        "source": prepared.source,
    }


def warm_up_imports(trainer: Any = None) -> None:
    """Pay the one-off imports of a first fit before its timer starts: torch imports
    ``torch._dynamo`` (2-6 s) when the first optimiser of the process is built, which would
    otherwise land in whichever model trains first (the multi-task model) and bias the fit-time
    comparison against it; the trainer's aggregator loads its compiled kernel, if it has one
    (``Aggregator.warm_up``)."""
    param = torch.zeros(1, requires_grad=True)
    torch.optim.Adam([param])
    warm = getattr(getattr(trainer, "aggregator", None), "warm_up", None)
    if callable(warm):
        warm()


#: how :func:`inference_ms` times a model (for the docs and the report)
INFERENCE_TIMING = ("median of {repeats} passes over {n} test samples (tiled when the split is smaller), "
                    "after {warmup} warm-up passes, in batches of {batch_size}, {threads} torch thread(s), CPU")


def inference_ms(model: nn.Module, x: _batch.Inputs, *, repeats: int = 7, n: int = 1000, batch_size: int = 256,
                 warmup: int = 2) -> float:
    """Milliseconds to predict 1,000 samples, measured: the test inputs tiled to ``n`` (at least
    1,000) samples, ``warmup`` untimed passes, then the median wall time of ``repeats`` passes in
    batches of ``batch_size``, in eval mode, with the process's torch threads
    (:data:`INFERENCE_TIMING`). Every model of a run is timed the same way, so the multi-task
    and single-task figures compare; NaN without test inputs."""
    if _batch.rows(x) == 0:  # x: a tensor or {name: tensor}
        return float("nan")
    n = max(int(n), 1000)
    sample = _batch.tile(x, n)
    batches = [_batch.take(sample, slice(s, s + batch_size)) for s in range(0, n, batch_size)]
    times = []
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            for i in range(warmup + repeats):
                t0 = time.perf_counter()
                for b in batches:
                    model(b)
                if i >= warmup:
                    times.append((time.perf_counter() - t0) * 1000.0)
    finally:
        model.train(was)
    return float(np.median(times)) * (1000.0 / n)


def evaluate_outputs(tasks: Sequence[Task], out: dict[str, torch.Tensor], data: MultiTaskData
                     ) -> tuple[dict[str, dict[str, float]], dict[str, Any], dict[str, Any]]:
    """Metrics, confusion matrices and classification reports on a split."""
    from sklearn.metrics import confusion_matrix

    metrics, confusion, reports = {}, {}, {}
    for t in tasks:
        metrics[t.name] = t.evaluate(out[t.name], data.targets[t.name], data.masks[t.name])
        cd = t.confusion_data(out[t.name], data.targets[t.name], data.masks[t.name])
        if cd is not None:  # a kind with one class per sample (binary, multiclass)
            y, pred, labels = cd
            confusion[t.name] = confusion_matrix(y, pred, labels=labels).tolist()
        rep = t.classification_report(out[t.name], data.targets[t.name], data.masks[t.name])
        if rep is not None:
            reports[t.name] = rep
    return metrics, confusion, reports

