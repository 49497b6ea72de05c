"""The training loop, schedules, checkpoints and distributed glue.

Layout: :mod:`~mtlkit.training.settings` (every option, one dataclass),
:mod:`~mtlkit.training.step` (one optimisation step), :mod:`~mtlkit.training.loop` (epochs,
records, early stopping, resume), :mod:`~mtlkit.training.callbacks` (the optional parts as
hooks), :mod:`~mtlkit.training.comm` (what is shared between processes),
:mod:`~mtlkit.training.trainer` (the Trainer that puts them together),
:mod:`~mtlkit.training.distributed` (the process group's comm object).
"""

from mtlkit.training.callbacks import Callback, NonFiniteLossError
from mtlkit.training.checkpoint import CheckpointError, CheckpointManager
from mtlkit.training.comm import Comm
from mtlkit.training.distributed import DistributedError, DistributedTrainer, ProcessGroupComm
from mtlkit.training.loop import History
from mtlkit.training.monitor import ConflictMonitor
from mtlkit.training.settings import TrainerSettings, seed_everything
from mtlkit.training.step import StepResult
from mtlkit.training.trainer import Trainer, predict_raw

__all__ = ["Callback", "CheckpointError", "CheckpointManager", "Comm", "ConflictMonitor", "DistributedError",
           "DistributedTrainer", "History", "NonFiniteLossError", "ProcessGroupComm", "StepResult", "Trainer",
           "TrainerSettings", "predict_raw", "seed_everything"]
