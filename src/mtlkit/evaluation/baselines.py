"""Single-task baselines: one model per primary task, with the same trunk, budget and
optimiser as the multi-task model and no balancing method: the references of Δm (and of the
samplers and schedules that compare each task with its own reference).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from mtlkit.config import RunConfig
from mtlkit.run.build import count_parameters
from mtlkit.run.data import PreparedData
from mtlkit.run.folder import RunFolder
from mtlkit.run.summary import ModelResult
from mtlkit.run.train_one import inference_ms, train_into
from mtlkit.tasks import Task
from mtlkit.training import Trainer, seed_everything

__all__ = ["Baselines", "baseline_model", "train_baselines"]


@dataclass
class Baselines:
    """The trained single-task models: their results (``summary["baselines"]``), their
    confusion matrices on the test split and the models themselves, by task name."""

    results: dict[str, ModelResult] = field(default_factory=dict)
    confusion: dict[str, Any] = field(default_factory=dict)
    models: dict[str, nn.Module] = field(default_factory=dict)


def train_baselines(cfg: RunConfig, prepared: PreparedData, *, folder: RunFolder | None = None,
                    progress: bool = False, trainer_cls: type[Trainer] = Trainer, resume: bool = False,
                    builder: Callable[[Task], nn.Module] | None = None,
                    say: Callable[[str], None] | None = None) -> Baselines:
    """Train one single-task model per primary task (auxiliary tasks need no reference) into
    ``folder/baselines/<task>/`` (weights saved when the model has a stock trunk: a baseline
    is a loadable run folder, e.g. a distillation teacher), checkpoints in
    ``folder/checkpoints/stl-<task>``. ``builder(task)`` builds the model (default:
    :func:`baseline_model`)."""
    say = say or (lambda s: None)
    out = Baselines()
    for t in [t for t in prepared.tasks if t.role == "primary"]:
        say(f"Training the single-task baseline for {t.name!r} ...")
        single = dataclasses.replace(t, weight=1.0)
        seed_everything(cfg.seed)
        model = builder(single) if builder else baseline_model(cfg, prepared, single)
        done = train_into(cfg, model, [single], prepared, baseline=True, progress=progress,
                          folder=folder.baseline(t.name) if folder is not None else None,
                          checkpoint_dir=folder.checkpoint_dir(f"stl-{t.name}") if folder is not None else None,
                          trainer_cls=trainer_cls, resume=resume, save="stock")
        out.results[t.name] = ModelResult(test=done.test[t.name], params=count_parameters(model),
                                          inference_ms=inference_ms(model, prepared.test.x),
                                          fit_time_s=round(done.fit_time_s, 3),
                                          best_epoch=done.trainer.history.best_epoch)
        out.confusion[t.name] = done.confusion.get(t.name)
        out.models[t.name] = model
    return out


def baseline_model(cfg: RunConfig, prepared: PreparedData, task: Task) -> nn.Module:
    """The single-task reference: the same trunk and head design, trained on one task.

    For architectures other than hard sharing the reference is the hard-sharing model with
    the same trunk (a single task has nothing to share), as in the MTL literature, unless the
    architecture says otherwise (``single_task_config``: a siamese model reads pairs)."""
    from mtlkit._registry import ARCHITECTURES
    from mtlkit.architectures import build_model

    trunk = dict(cfg.model.trunk) if cfg.model.trunk else dict(prepared.default_trunk)
    if prepared.input_module and "input" not in trunk:  # a table's category embeddings
        trunk["input"] = prepared.input_module
    name, params = cfg.model.architecture.name, cfg.model.architecture.params()
    own = getattr(ARCHITECTURES.get(name), "single_task_config", None) if name in ARCHITECTURES else None
    spec = own(params, task) if own is not None else None
    if spec is None:
        spec = {"name": "hard_sharing", **(params if name == "hard_sharing" else {})}
    return build_model({**spec, "trunk": trunk}, [task], prepared.input_shape)
