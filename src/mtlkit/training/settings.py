"""The Trainer's settings: one typed dataclass for the Python API and the YAML config.

:class:`TrainerSettings` declares every training option once: its type, default, bounds and
description. ``Trainer(..., lr=3e-3)`` and ``Trainer(..., settings=TrainerSettings(lr=3e-3))``
validate through :meth:`TrainerSettings.problems`, and the ``training:`` section of a YAML
config (:class:`mtlkit.config.TrainingConfig`) is generated from the same fields with the same
bounds (:func:`yaml_fields`), so a new option is one field here.

>>> TrainerSettings(epochs=3).epochs
3
>>> TrainerSettings(clip_grad_norm=-1.0)
Traceback (most recent call last):
...
ValueError: The 'clip_grad_norm' setting of the Trainer must be a positive number or None. Got -1.0.
"""

from __future__ import annotations

import dataclasses
import math
import random
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # torch loads where it is used: a config is validated without it
    import torch
    from torch import nn

__all__ = ["TrainerSettings", "make_optimizer", "make_scheduler", "seed_everything", "yaml_fields"]


def _opt(default: Any, *, ge: float | None = None, gt: float | None = None, doc: str = "",
         yaml: bool = True, yaml_default: Any = dataclasses.MISSING, error: str | None = None) -> Any:
    """A settings field: bounds (``ge``/``gt``), a description, how the YAML config shows it
    (``yaml=False``: not a key of ``training:``; ``yaml_default``: another default there) and,
    optionally, its own error message (``{value!r}`` is the rejected value)."""
    meta = {"ge": ge, "gt": gt, "doc": doc, "yaml": yaml, "yaml_default": yaml_default, "error": error}
    return field(default=default, metadata=meta)


@dataclass
class TrainerSettings:
    """Every option of the :class:`~mtlkit.training.Trainer` (see its docstring for what each
    does). Invalid values raise a ``ValueError`` naming the setting and the value."""

    epochs: int = _opt(10, ge=1, doc="epochs to train (a resumed run may be extended)")
    batch_size: int = _opt(64, ge=1, doc="samples per optimisation step")
    eval_batch_size: int = _opt(1024, ge=1, yaml=False, doc="samples per forward pass in evaluation")
    optimizer: Literal["adam", "adamw", "sgd"] = _opt(
        "adam", yaml=False, error="Unknown optimizer {value!r}; choose adam, adamw or sgd.")
    lr: float = _opt(1e-3, gt=0, yaml=False)
    weight_decay: float = _opt(0.0, ge=0, yaml=False)
    momentum: float = _opt(0.9, ge=0, yaml=False)
    scheduler: Literal["none", "cosine", "step"] | None = _opt(None, yaml_default="none",
                                                               doc="learning-rate schedule, stepped per epoch")
    clip_grad_norm: float | None = _opt(None, gt=0, doc="clip the global gradient norm to this value")
    patience: int | None = _opt(None, ge=1, doc="early stopping after this many epochs without improvement")
    monitor: str | None = _opt(None, doc="early-stopping criterion 'task' or 'task:metric'")
    level: Literal["parameters", "representation"] = _opt(
        "parameters", doc="where a gradient-space aggregator reads the task gradients",
        error="The 'level' must be 'parameters' or 'representation'. Got {value!r}.")
    jacobian_engine: Literal["loop", "batched", "two-stage"] = _opt(
        "loop", doc="how the parameter-level Jacobian is computed: loop (K backward passes, fastest on CPU), "
        "batched (vmapped) or two-stage (through the shared representation)")
    precision: Literal["fp32", "bf16", "fp16"] = _opt(
        "fp32", doc="fp32, or mixed precision: the forward pass and the losses autocast to bf16, or to fp16 "
        "with a gradient scaler (see docs/performance.md)",
        error="The 'precision' setting must be one of 'fp32', 'bf16', 'fp16'. Got {value!r}.")
    compile: bool = _opt(False, doc="torch.compile the model's forward (the first steps pay the compilation)")
    jacobian_block_size: int | None = _opt(
        None, ge=1, doc="parameter-level Gramian methods: hold the task Jacobian in blocks of at most this many "
        "parameter entries (K x block) instead of K x P; the Gramian is summed block by block and the "
        "direction is one more backward pass; an aggregator that consumes the rows one at a time (GradDrop, MoCo) "
        "then never holds the K x P Jacobian (null: the whole Jacobian at once; ignored at the representation "
        "level)")
    gramian_engine: Literal["auto", "jacobian", "layerwise"] = _opt(
        "auto", doc="parameter-level Gramian methods: auto takes the Gramian of a fully connected shared layer "
        "from its input and its output gradients when that is estimated cheaper than its per-task weight "
        "gradients (large K, layers wider than the batch; see mtlkit.autogram), jacobian always from the K x P "
        "Jacobian, layerwise every eligible layer from its input and output gradients. The same results up to "
        "float rounding; used in fp32 on one process with the loop engine, otherwise the Jacobian is used",
        error="The 'gramian_engine' setting must be one of 'auto', 'jacobian', 'layerwise'. Got {value!r}.")
    monitor_conflicts: bool = _opt(False, yaml_default=True, doc="log gradient-conflict statistics per epoch")
    max_nonfinite_steps: int = _opt(20, ge=1, doc="consecutive skipped non-finite steps before stopping")
    checkpoint_every: int | None = _opt(None, ge=1, doc="also checkpoint every N steps")
    keep_checkpoints: int = _opt(2, ge=1, doc="checkpoints kept")
    device: str = _opt("cpu", doc="cpu, cuda, cuda:N, mps or auto (the first of cuda, mps, cpu that this "
                                  "torch build can use)")
    sync_batch_norm: bool | None = _opt(
        None, doc="under torchrun: batch norm with the global batch's statistics, so that N processes "
        "compute what one does (null: on, except with GREAT)")
    seed: int = _opt(0, yaml=False, doc="seeds initialisation, shuffling and methods")
    progress: bool = _opt(True, yaml=False, doc="show a progress bar")

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ValueError(" ".join(msg for _, msg in problems))

    def problems(self) -> list[tuple[str, str]]:
        """Every invalid setting as ``(name, message)``; empty when all are valid."""
        hints = typing.get_type_hints(type(self))
        out = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            msg = _check(f, hints[f.name], value)
            if msg is not None:
                own = f.metadata.get("error")
                out.append((f.name, own.format(value=value) if own else
                            f"The '{f.name}' setting of the Trainer must be {msg}. Got {value!r}."))
        return out

    @classmethod
    def resolve(cls, settings: TrainerSettings | None, options: dict[str, Any]) -> TrainerSettings:
        """The settings object from ``settings=`` and/or keyword options (options win)."""
        if "device" in options and type(options["device"]).__name__ == "device":  # a torch.device
            options["device"] = str(options["device"])
        fields = cls.__dataclass_fields__
        unknown = sorted(set(options) - set(fields))
        if unknown:
            import difflib

            hints = [f"{u!r} (did you mean {m[0]!r}?)" if (m := difflib.get_close_matches(u, fields, 1)) else repr(u)
                     for u in unknown]
            raise TypeError(f"Unknown Trainer option(s) {', '.join(hints)}; the options are the fields of "
                            f"TrainerSettings: {', '.join(fields)}.")
        base = settings if settings is not None else cls()
        return base.replace(**options) if options else base

    def replace(self, **changes: Any) -> TrainerSettings:
        """A copy with some settings changed (validated)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _allowed(tp: Any) -> tuple[list[Any], list[type], bool]:
    """(Literal choices, plain types, None allowed) of a field's annotation."""
    args = typing.get_args(tp)
    origin = typing.get_origin(tp)
    if origin is Literal:
        return list(args), [], False
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        choices, types_, none = [], [], False
        for a in args:
            if a is type(None):
                none = True
                continue
            c, t, n = _allowed(a)
            choices += c
            types_ += t
            none = none or n
        return choices, types_, none
    return [], [tp], False


def _check(f: dataclasses.Field[Any], tp: Any, value: Any) -> str | None:
    """None if ``value`` fits the field, else what it must be (for the error message)."""
    choices, types_, none = _allowed(tp)
    tail = " or None" if none else ""
    if value is None:
        return None if none else _describe(f, choices, types_)
    if choices and value in choices and not isinstance(value, bool):
        return None
    if choices and not types_:
        return "one of " + ", ".join(repr(c) for c in choices) + tail
    if bool in types_:
        return None if isinstance(value, bool) else "a bool" + tail
    if int in types_ and (isinstance(value, bool) or not isinstance(value, int)):
        return _describe(f, choices, types_) + tail
    if float in types_ and (isinstance(value, bool) or not isinstance(value, (int, float))
                            or not math.isfinite(value)):
        return _describe(f, choices, types_) + tail
    if str in types_ and not isinstance(value, str):
        return "a string" + tail
    lo_ok = f.metadata.get("ge") is None or value >= f.metadata["ge"]
    gt_ok = f.metadata.get("gt") is None or value > f.metadata["gt"]
    return None if lo_ok and gt_ok else _describe(f, choices, types_) + tail


def _describe(f: dataclasses.Field[Any], choices: list[Any], types_: list[type]) -> str:
    if choices:
        return "one of " + ", ".join(repr(c) for c in choices)
    ge, gt = f.metadata.get("ge"), f.metadata.get("gt")
    kind = "integer" if int in types_ else "number" if float in types_ else "value"
    if (ge == 1 and kind == "integer") or gt == 0:
        return f"a positive {kind}"
    if ge == 0:
        return f"a non-negative {kind}"
    if ge is not None:
        return f"a {kind} >= {ge}"
    return f"a {kind}" if kind != "value" else "a string"


def yaml_fields(*, include_hidden: bool = False) -> dict[str, tuple[Any, Any]]:
    """``{name: (annotation, pydantic FieldInfo)}`` of the settings that are keys of the YAML
    ``training:`` section (``include_hidden``: all of them), with the same bounds, for
    :func:`pydantic.create_model`."""
    from pydantic import Field

    hints = typing.get_type_hints(TrainerSettings)
    out = {}
    for f in dataclasses.fields(TrainerSettings):
        if not f.metadata.get("yaml", True) and not include_hidden:
            continue
        default = f.metadata["yaml_default"] if f.metadata.get("yaml_default") is not dataclasses.MISSING \
            else f.default
        tp = hints[f.name]
        if f.name == "scheduler":
            tp = Literal["none", "cosine", "step"]
        bounds = {k: f.metadata[k] for k in ("ge", "gt") if f.metadata.get(k) is not None}
        out[f.name] = (tp, Field(default=default, description=f.metadata.get("doc") or None, **bounds))
    return out


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def make_optimizer(name: str, params: Iterable[nn.Parameter], *, lr: float, weight_decay: float = 0.0,
                   momentum: float = 0.9) -> torch.optim.Optimizer:
    """``adam`` | ``adamw`` | ``sgd`` (with ``momentum``) over ``params``."""
    import torch

    name = name.lower()
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"The learning rate 'lr' must be a positive float. Got {lr!r}.")
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay, momentum=momentum)
    raise ValueError(f"Unknown optimizer {name!r}; choose adam, adamw or sgd.")


def make_scheduler(name: str | None, optimizer: torch.optim.Optimizer, epochs: int, *,
                   step_size: int | None = None, gamma: float = 0.1) -> Any:
    """``none`` | ``cosine`` (over ``epochs``) | ``step`` (every ``epochs // 3``), stepped per epoch."""
    import torch

    if name in (None, "none"):
        return None
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs))
    if name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size or max(1, epochs // 3), gamma=gamma)
    raise ValueError(f"Unknown scheduler {name!r}; choose none, cosine or step.")
