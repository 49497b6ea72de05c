"""The training loop, schedules, checkpoints and distributed glue.

Layout: :mod:`~mtlkit.training.settings` (every option, one dataclass),
:mod:`~mtlkit.training.step` (one optimisation step), :mod:`~mtlkit.training.loop` (epochs,
records, early stopping, resume), :mod:`~mtlkit.training.callbacks` (the optional parts as
hooks), :mod:`~mtlkit.training.comm` (what is shared between processes),
:mod:`~mtlkit.training.precision` (mixed precision), :mod:`~mtlkit.training.trainer` (the
Trainer that puts them together), :mod:`~mtlkit.training.distributed` (the process group's
comm object).

The public names load on first use (PEP 562): ``mtlkit.training.settings`` (what a run
config validates against) imports without torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: public name -> the module that defines it
_LAZY = {
    "Callback": "callbacks", "NonFiniteLossError": "callbacks",
    "CheckpointError": "checkpoint", "CheckpointManager": "checkpoint",
    "Comm": "comm",
    "DistributedError": "distributed", "DistributedTrainer": "distributed", "ProcessGroupComm": "distributed",
    "History": "loop",
    "ConflictMonitor": "monitor",
    "TrainerSettings": "settings", "seed_everything": "settings",
    "StepResult": "step",
    "Trainer": "trainer", "predict_raw": "trainer",
}

__all__ = ["Callback", "CheckpointError", "CheckpointManager", "Comm", "ConflictMonitor", "DistributedError",
           "DistributedTrainer", "History", "NonFiniteLossError", "ProcessGroupComm", "StepResult", "Trainer",
           "TrainerSettings", "predict_raw", "seed_everything"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(__all__) | set(globals()))


if TYPE_CHECKING:
    from mtlkit.training.callbacks import Callback, NonFiniteLossError
    from mtlkit.training.checkpoint import CheckpointError, CheckpointManager
    from mtlkit.training.comm import Comm
    from mtlkit.training.distributed import DistributedError, DistributedTrainer, ProcessGroupComm
    from mtlkit.training.loop import History
    from mtlkit.training.monitor import ConflictMonitor
    from mtlkit.training.settings import TrainerSettings, seed_everything
    from mtlkit.training.step import StepResult
    from mtlkit.training.trainer import Trainer, predict_raw
