"""Build and check every component a config names, before any data loads or any file is
written: :func:`build_all` (and :func:`validate`) report *all* problems at once in one
:class:`~mtlkit.config.ConfigError`, each line naming its field, with "did you mean" for
names and parameter keys. Then the model, the trainer and the device for a run.

>>> from mtlkit.config import parse_config
>>> cfg = parse_config({"data": {"dataset": "yeast"},
...                     "training": {"weighting": {"name": "dwa", "temperatur": 2},
...                                  "aggregator": {"name": "pcgrd"}}})
>>> validate(cfg)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
mtlkit.config.ConfigError: The config has 2 problems (nothing was loaded or written):
  - training.weighting.temperatur: weighting 'dwa' takes no parameter 'temperatur'; did you mean 'temperature'? It takes: temperature.
  - training.aggregator: Unknown aggregator 'pcgrd'. Did you mean 'pcgrad'? ...
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mtlkit._registry import (
    AGGREGATORS,
    ARCHITECTURES,
    DATASETS,
    SAMPLERS,
    SCHEDULES,
    WEIGHTINGS,
    Registry,
    unknown_name_message,
)
from mtlkit.config import RunConfig, config_hash
from mtlkit.run.precheck import Problems as _Problems
from mtlkit.run.precheck import (
    UnknownNamesError,
    contrastive_needs_pairs,
    representation_problems,
    task_name_problems,
    unknown_key_message,
)
from mtlkit.tasks import Task, check_tasks, task_from_dict
from mtlkit.training.trainer import Trainer

__all__ = ["Built", "UnknownNamesError", "build_all", "build_components", "build_model_for", "count_parameters",
           "make_trainer", "resolve_device", "validate"]

COMPONENT_KEYS = ("weighting", "aggregator", "schedule", "sampler")


@dataclass
class Built:
    """The components of a config, built and checked together. ``tasks`` are the config's
    tasks (``None`` when a built-in dataset brings its own)."""

    weighting: Any = None
    aggregator: Any = None
    schedule: Any = None
    sampler: Any = None
    tasks: list[Task] | None = None

    def components(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in COMPONENT_KEYS}


def validate(cfg: RunConfig, *, components: Mapping[str, Any] | None = None, model: nn.Module | None = None,
             tasks: Sequence[Task] | None = None) -> None:
    """Raise one :class:`~mtlkit.config.ConfigError` listing every problem of ``cfg`` (see
    :func:`build_all`); return quietly when there is none."""
    build_all(cfg, components=components, model=model, tasks=tasks)


def build_all(cfg: RunConfig, *, components: Mapping[str, Any] | None = None, model: nn.Module | None = None,
              tasks: Sequence[Task] | None = None) -> Built:
    """Build and check every part of ``cfg`` that needs no data: the weighting, aggregator,
    schedule and sampler (names and parameters), the architecture and trunk (names and
    parameter names: their sizes need the data), the tasks, the data source (dataset name and
    options, or the file), the auxiliary generators, the early-stopping monitor, the device,
    and whether the parts fit together. ``components`` are objects built in Python that
    replace the config's; ``model`` a model built in Python (the architecture is then not
    built). Every problem is reported at once, each naming its field.

    ``tasks``: the run's tasks once the data is there (auxiliary tasks included). Without
    them, a config whose built-in dataset brings its tasks has its architecture's parameter
    names checked later (:func:`~mtlkit.run.run` checks again with the data's tasks before
    writing anything): whether the architecture suits the tasks at all (a ``contrastive``
    task needs one that reads pairs) comes first."""
    p = _Problems()
    built = Built(**_components(cfg, p, components or {}))
    built.tasks = _tasks(cfg, p)
    known = list(tasks) if tasks is not None else built.tasks
    arch = _architecture(cfg, p, params=known is not None) if model is None else model
    _data_source(cfg, p)
    _auxiliary(cfg, p)
    _monitor(cfg, p, known, complete=tasks is not None or not cfg.auxiliary)
    p.attempt("training.device", lambda: resolve_device(cfg.training.device))
    _fit_together(cfg, p, built, arch, known)
    p.raise_all()
    return built


def build_components(cfg: RunConfig) -> dict[str, Any]:
    """The weighting, aggregator, schedule and sampler objects named by the config (``None``
    where it names none); every problem of them is reported at once."""
    p = _Problems()
    out = _components(cfg, p, {})
    p.raise_all()
    return out


# ---------------------------------------------------------------------------- the parts
def _components(cfg: RunConfig, p: _Problems, given: Mapping[str, Any]) -> dict[str, Any]:
    t = cfg.training
    out: dict[str, Any] = {}
    for key, comp, reg in (("weighting", t.weighting, WEIGHTINGS), ("aggregator", t.aggregator, AGGREGATORS),
                           ("schedule", t.schedule, SCHEDULES), ("sampler", cfg.data.sampler, SAMPLERS)):
        where = "data.sampler" if key == "sampler" else f"training.{key}"
        if key in given:
            out[key] = given[key]
        elif comp is None:
            out[key] = None
        else:
            out[key] = _component(p, where, reg, comp.name, comp.params())
    return out


def _component(p: _Problems, where: str, reg: Registry, name: str, params: dict[str, Any]) -> Any:
    cls = p.attempt(where, lambda: reg.get(name))
    if cls is None or not _known_keys(p, where, f"{reg.kind} {name!r}", cls, params):
        return None
    return p.attempt(where, lambda: reg.build(name, **params))


def _accepted(fn: Any, skip: Sequence[str] = ()) -> list[str] | None:
    """Keyword names ``fn`` takes (``None``: any, it has ``**kwargs`` or no signature; a class
    that keeps ``nn.Module``'s or ``object``'s constructor takes none)."""
    if isinstance(fn, type) and fn.__init__ in (object.__init__, nn.Module.__init__):  # type: ignore[misc]
        return []
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    if any(q.kind is q.VAR_KEYWORD for q in sig.parameters.values()):
        return None
    return [n for n, q in sig.parameters.items() if q.kind is not q.VAR_POSITIONAL and n not in skip]


def _known_keys(p: _Problems, where: str, what: str, fn: Any, params: Mapping[str, Any],
                skip: Sequence[str] = ()) -> bool:
    """Record each key of ``params`` that ``fn`` does not take; True when there is none."""
    accepted = _accepted(fn, skip)
    if accepted is None:
        return True
    unknown = [k for k in params if k not in accepted]
    for k in unknown:
        p.add(f"{where}.{k}", unknown_key_message(what, k, accepted))
    return not unknown


def _architecture(cfg: RunConfig, p: _Problems, *, params: bool) -> Any:
    """The architecture's class (its sizes need the data: only names are checked here;
    ``params``: its parameter names too)."""
    arch = cfg.model.architecture
    cls = p.attempt("model.architecture", lambda: ARCHITECTURES.get(arch.name))
    if cls is not None and params:
        _known_keys(p, "model.architecture", f"model.architecture {arch.name!r}", cls, arch.params(),
                    skip=("trunk", "tasks", "input_shape"))
    trunk = cfg.model.trunk
    if trunk is not None:
        from mtlkit.architectures.backbones import TRUNKS

        name = trunk.get("name")
        if name not in TRUNKS:
            p.add("model.trunk.name", unknown_name_message("trunk", str(name), TRUNKS), lookup=True)
        else:
            _known_keys(p, "model.trunk", f"trunk {name!r}", TRUNKS[name],
                        {k: v for k, v in trunk.items() if k != "name" and k != "decoder"})
            if "decoder" in trunk:  # the decoder of generation tasks (architectures.text_decoder)
                from mtlkit.architectures.text_decoder import check_decoder_settings

                p.attempt("model.trunk.decoder", lambda: check_decoder_settings(name, trunk["decoder"]))
    return cls


def _tasks(cfg: RunConfig, p: _Problems) -> list[Task] | None:
    if not cfg.tasks:
        return None
    tasks: list[Task | None] = [p.attempt(f"tasks.{i}", _task_builder(t.model_dump()))
                                for i, t in enumerate(cfg.tasks)]
    good = [t for t in tasks if t is not None]
    if len(good) < len(tasks):
        return None
    return p.attempt("tasks", lambda: check_tasks(good))


def _task_builder(spec: dict[str, Any]) -> Callable[[], Task]:
    return lambda: task_from_dict(spec)


def _data_source(cfg: RunConfig, p: _Problems) -> None:
    d = cfg.data
    if d.in_memory:
        return
    name = d.dataset
    if name is not None:
        loader = p.attempt("data.dataset", lambda: DATASETS.get(name))
        if loader is not None:
            _known_keys(p, "data.options", f"dataset {name!r}", loader, d.options)
    elif d.path is not None and not Path(d.path).exists():
        p.add("data.path", f"Data file not found: {d.path!r}.")


def _auxiliary(cfg: RunConfig, p: _Problems) -> None:
    if cfg.auxiliary:
        from mtlkit.auxiliary import build_generators

        p.attempt("auxiliary", lambda: build_generators(cfg.auxiliary))


def _monitor(cfg: RunConfig, p: _Problems, tasks: list[Task] | None, *, complete: bool) -> None:
    """The monitor and the stratified split name tasks: checked when the tasks are known and
    ``complete`` (auxiliary generators add tasks only once the data is there)."""
    if tasks is None or not complete:
        return
    metrics = {t.name: [m.name for m in t.metrics] for t in tasks}
    for where, msg in task_name_problems(cfg.training.monitor, cfg.data.split.stratify, metrics):
        p.add(where, msg)


def _fit_together(cfg: RunConfig, p: _Problems, built: Built, arch: Any, tasks: list[Task] | None) -> None:
    """Whether the parts that built fit together (the checks the Trainer makes, made early)."""
    from mtlkit.training.schedules import check_compatible

    t = cfg.training
    w, agg = built.weighting, built.aggregator
    if w is not None and agg is not None and not getattr(w, "aggregator_compatible", True):
        p.add("training.weighting", f"The weighting {w} cannot be combined with a gradient-space "
                                    f"aggregator ({agg}).")
    p.attempt("training.schedule" if built.schedule is not None else "data.sampler",
              lambda: check_compatible(built.schedule, w, agg, sampler=built.sampler))
    rep = _has_representation(arch)
    name = getattr(arch, "__name__", type(arch).__name__)
    for where, msg in representation_problems(
            level=t.level, jacobian_engine=t.jacobian_engine, aggregator=agg is not None,
            weighting=type(w).__name__ if w is not None else None, gradients_at=getattr(w, "gradients_at", None),
            representation=rep, model=name):
        p.add(where, msg)
    pairs = [t.name for t in tasks or [] if t.task_kind.pairwise]
    if pairs and isinstance(arch, type) and not getattr(arch, "reads_pairs", False):
        p.add("model.architecture", str(contrastive_needs_pairs(pairs[0])))
    refs = [c for c in (built.sampler, built.schedule)
            if getattr(c, "needs_references", False) and not getattr(c, "has_references", True)]
    if refs and not cfg.baselines:
        p.add("baselines", f"{[str(c) for c in refs]} need single-task references: give them 'references' in "
                           f"the config or keep baselines on.")


def _has_representation(arch: Any) -> bool | None:
    """Whether the model (or architecture class) has one shared representation; ``None``
    when only a built model can say (a property of the instance)."""
    if arch is None:
        return None
    value = getattr(arch, "has_representation", None)
    if isinstance(arch, nn.Module):
        return bool(value)
    return value if isinstance(value, bool) else None


# ---------------------------------------------------------------------------- model, trainer
def build_model_for(cfg: RunConfig, prepared: Any, tasks: Sequence[Task]) -> nn.Module:
    """The config's architecture around its trunk (default: the data's stock trunk)."""
    from mtlkit.architectures import build_model

    trunk = dict(cfg.model.trunk) if cfg.model.trunk else dict(prepared.default_trunk)
    if getattr(prepared, "input_module", None) and "input" not in trunk:  # a table's category embeddings
        trunk["input"] = prepared.input_module
    arch = {"name": cfg.model.architecture.name, **cfg.model.architecture.params(), "trunk": trunk}
    try:
        return build_model(arch, list(tasks), prepared.input_shape)
    except TypeError as exc:
        raise ValueError(f"model.architecture {cfg.model.architecture.name!r}: {exc}") from exc


def make_trainer(cfg: RunConfig, model: nn.Module, tasks: Sequence[Task], *, run_dir: Path | None,
                 progress: bool, components: Mapping[str, Any] | None = None, baseline: bool = False,
                 checkpoint_dir: Path | None = None, trainer_cls: type[Trainer] = Trainer,
                 **trainer_kwargs: Any) -> Trainer:
    """A trainer with the config's settings. ``baseline``: a single-task reference (same
    budget and optimiser, no balancing method, no early-stopping monitor)."""
    if baseline:
        comps: Mapping[str, Any] = dict.fromkeys(COMPONENT_KEYS)
    else:
        comps = components if components is not None else build_components(cfg)
    # every YAML training option travels in one object; only what depends on the run is set here
    settings = cfg.training.to_settings(
        seed=cfg.seed, progress=progress, device=str(resolve_device(cfg.training.device)),
        monitor=None if baseline else cfg.training.monitor,
        monitor_conflicts=cfg.training.monitor_conflicts and not baseline and len(tasks) > 1)
    return trainer_cls(model, tasks, **{k: comps[k] for k in ("weighting", "aggregator", "sampler", "schedule")},
                       settings=settings, run_dir=run_dir, checkpoint_dir=checkpoint_dir,
                       config_hash=config_hash(cfg), **trainer_kwargs)


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
    return int(sum(q.numel() for q in model.parameters()))

