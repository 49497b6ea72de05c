"""Hooks: everything optional around the step and the loop.

A :class:`Callback` may implement any of the hook methods below; the trainer calls them at
fixed points and never asks what a callback is. The built-in ones: the progress bar
(:class:`ProgressBar`), the ``metrics.jsonl`` writer (:class:`MetricsFile`), crash-safe
checkpoints (:class:`Checkpoints`), the non-finite guard (:class:`NonFiniteGuard`) and the
gradient-conflict monitor (:class:`ConflictHook`); distillation's teacher term and TAG's
look-ahead (:mod:`mtlkit.distill`, :mod:`mtlkit.analysis.affinity`) are callbacks too.

Order of the hooks in one step and one epoch::

    on_fit_start
      on_epoch_start
        before_step -> forward -> task losses -> transform_losses -> weighting
          -> observe_gradients -> backward / aggregation -> optimiser -> after_step
      add_to_record -> on_epoch_end
    on_fit_end

A plain callable ``cb(trainer, record)`` passed in ``callbacks=`` runs at ``on_epoch_end``.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from mtlkit._io import atomic_write, to_jsonable

if TYPE_CHECKING:
    from rich.progress import Progress

    from mtlkit.training.trainer import Batch, Trainer

__all__ = ["Callback", "Checkpoints", "ConflictHook", "MetricsFile", "NonFiniteGuard", "NonFiniteLossError",
           "ProgressBar", "as_callback"]


class NonFiniteLossError(RuntimeError):
    """Training produced a non-finite loss or gradient too many steps in a row."""


class Callback:
    """Base class of the trainer's hooks: override the ones you need. ``state_key``: when
    set, :meth:`state_dict` is saved in checkpoints under it and restored on resume."""

    state_key: str | None = None

    def on_fit_start(self, trainer: Trainer) -> None: ...

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None: ...

    def before_step(self, trainer: Trainer, batch: Batch) -> None: ...

    def transform_losses(self, trainer: Trainer, out: dict[str, Tensor], ys: dict[str, Tensor],
                         ms: dict[str, Tensor], losses: list[Tensor], present: Tensor
                         ) -> tuple[list[Tensor], Tensor]:
        """Replace the per-task losses of the batch (e.g. add a distillation term)."""
        return losses, present

    def observe_gradients(self, trainer: Trainer, losses: Sequence[Tensor], present: Tensor,
                          representation: Tensor | None) -> None: ...

    def after_step(self, trainer: Trainer, result: Any) -> None: ...

    def add_to_record(self, trainer: Trainer, record: dict[str, Any]) -> None: ...

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None: ...

    def on_fit_end(self, trainer: Trainer) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class _EpochFunction(Callback):
    """A plain ``cb(trainer, record)`` run after each epoch."""

    def __init__(self, fn: Callable[[Trainer, dict[str, Any]], None]) -> None:
        self.fn = fn

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        self.fn(trainer, record)


def as_callback(obj: Any) -> Callback:
    """A :class:`Callback` as it is; a plain callable as an after-epoch callback."""
    if isinstance(obj, Callback):
        return obj
    if callable(obj):
        return _EpochFunction(obj)
    raise TypeError(f"A callback must be a mtlkit Callback or a callable cb(trainer, record). "
                    f"Got {type(obj).__name__}.")


# ---------------------------------------------------------------------------- non-finite guard
class NonFiniteGuard:
    """Skips a step whose loss or gradient is non-finite, counts it per task, warns once per
    run of bad steps and stops training after ``max_steps`` in a row."""

    def __init__(self, max_steps: int) -> None:
        self.max_steps = max_steps
        self.run = 0
        self.skipped = 0

    def skip(self, trainer: Trainer, tasks: list[str], what: str) -> None:
        self.run += 1
        self.skipped += 1
        ep = trainer.epoch_state
        if ep is not None:
            per_task = ep.setdefault("nonfinite_tasks", {})
            for name in tasks:
                per_task[name] = per_task.get(name, 0) + 1
        if self.run == 1 and self.run < self.max_steps:
            warnings.warn(f"Step {trainer.step_count}: non-finite {what} for task(s) {tasks}; the step is "
                          f"skipped (training stops after {self.max_steps} in a row).",
                          RuntimeWarning, stacklevel=4)
        trainer.step_count += 1
        if self.run >= self.max_steps:
            raise NonFiniteLossError(
                f"Non-finite {what} for task(s) {tasks} in {self.run} consecutive steps; "
                f"training stopped. Likely causes: a learning rate that is too high, or bad labels "
                f"(e.g. huge regression targets) for these tasks."
            )

    def ok(self) -> None:
        self.run = 0


# ---------------------------------------------------------------------------- conflict monitor
class ConflictHook(Callback):
    """Feeds the :class:`~mtlkit.training.ConflictMonitor` with the task gradients of each
    step: at the shared representation (``where="representation"``, cheap: the heads only) or
    at the last shared layer's parameters (``"last_shared_parameters"``, one small backward
    pass per task), and adds ``record["conflicts"]`` each epoch."""

    def __init__(self, monitor: Any, where: str) -> None:
        self.monitor = monitor
        self.where = where

    def observe_gradients(self, trainer: Trainer, losses: Sequence[Tensor], present: Tensor,
                          representation: Tensor | None) -> None:
        from mtlkit.jacobian import jacobian, representation_jacobian

        idx = present.nonzero()[:, 0].tolist()
        rows = [losses[k] for k in idx]
        if representation is not None:
            self.monitor.update(representation_jacobian(rows, representation).detach(), idx)
        elif self.where == "last_shared_parameters" and trainer.last_shared:
            # the plain loop engine: one small backward pass per task, never vmapped
            j_last = jacobian(rows, trainer.last_shared, engine="loop")
            self.monitor.update_parameters(j_last.detach(), idx)

    def add_to_record(self, trainer: Trainer, record: dict[str, Any]) -> None:
        record["conflicts"] = {**self.monitor.epoch_summary(), "measured_on": self.where}


# ---------------------------------------------------------------------------- progress
class ProgressBar(Callback):
    """A rich progress bar per epoch showing per-task running losses."""

    def __init__(self) -> None:
        self._p: Progress | None = None
        self._n = 0
        self.total: int | None = None

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.total, self._n = trainer.num_batches, 0
        self._p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                           TimeElapsedColumn(), TextColumn("{task.fields[losses]}"), transient=False)
        self._p.__enter__()
        self._id = self._p.add_task(f"epoch {epoch + 1}/{trainer.epochs}", total=self.total, losses="")

    def after_step(self, trainer: Trainer, result: Any) -> None:
        if self._p is None:
            return
        self._n += 1
        if self._n % 10 == 1 or self._n == self.total:
            ep = trainer.epoch_state or {}
            names = trainer.task_names
            means = (ep["loss_sum"] / ep["loss_n"].clamp_min(1)).tolist() if ep else []
            txt = " ".join(f"{n}={v:.3f}" for n, v in zip(names[:6], means[:6]))
            self._p.update(self._id, completed=self._n, losses=txt)

    def add_to_record(self, trainer: Trainer, record: dict[str, Any]) -> None:
        self.close()

    def on_fit_end(self, trainer: Trainer) -> None:
        self.close()

    def close(self) -> None:
        if self._p is not None:
            self._p.update(self._id, completed=self._n)
            self._p.__exit__(None, None, None)
            self._p = None


# ---------------------------------------------------------------------------- records
class MetricsFile(Callback):
    """Appends each epoch's record to ``<trainer.run_dir>/metrics.jsonl`` (one JSON line) on
    the process that writes files; on resume the file is rewritten with the records of the
    checkpoint (lines written after it go). Nothing is written while ``run_dir`` is None."""

    @staticmethod
    def path(trainer: Trainer) -> Path | None:
        if trainer.run_dir is None or not trainer.comm.is_writer:
            return None
        return Path(trainer.run_dir) / "metrics.jsonl"

    def on_fit_start(self, trainer: Trainer) -> None:
        path = self.path(trainer)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        if trainer.resumed_from is not None:
            atomic_write(path, "".join(json.dumps(to_jsonable(r)) + "\n" for r in trainer.history.records))

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        path = self.path(trainer)
        if path is not None:
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(to_jsonable(record)) + "\n")


# ---------------------------------------------------------------------------- checkpoints
class Checkpoints(Callback):
    """Crash-safe checkpoints (:class:`~mtlkit.training.CheckpointManager`) every ``every``
    steps; the loop also writes one at the end of every epoch, once the epoch's record and
    the early-stopping state are final."""

    def __init__(self, manager: Any, every: int | None) -> None:
        self.manager = manager
        self.every = every

    def after_step(self, trainer: Trainer, result: Any) -> None:
        if self.every and trainer.step_count % self.every == 0 and not _last_batch(trainer):
            trainer.checkpoint_now()

    def save(self, trainer: Trainer, state: dict[str, Any]) -> None:
        """Write ``state`` (the model's weights checked finite first)."""
        bad = [k for k, v in trainer.model.state_dict().items()
               if v.is_floating_point() and not torch.isfinite(v).all()]
        if bad:
            raise NonFiniteLossError(
                f"The model's weights became non-finite at step {trainer.step_count} (tensors {bad[:3]}); no "
                f"checkpoint is written and the previous ones are kept. Likely cause: a learning rate that "
                f"is too high."
            )
        self.manager.save(state, step=trainer.step_count, epoch=trainer.epoch)


def _last_batch(trainer: Trainer) -> bool:
    """The step just taken was the epoch's last: the epoch-end checkpoint follows at the same
    step, so a mid-epoch one there would only be superseded (one checkpoint per step)."""
    ep = trainer.epoch_state
    return ep is not None and trainer.num_batches is not None and ep["batch_index"] >= trainer.num_batches
