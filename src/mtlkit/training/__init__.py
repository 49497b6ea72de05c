"""The training loop, schedules, checkpoints and distributed glue."""

from mtlkit.training.checkpoint import CheckpointError, CheckpointManager
from mtlkit.training.distributed import DistributedError, DistributedTrainer
from mtlkit.training.monitor import ConflictMonitor
from mtlkit.training.trainer import (
    History,
    NonFiniteLossError,
    Trainer,
    predict_raw,
    seed_everything,
)

__all__ = ["CheckpointError", "CheckpointManager", "ConflictMonitor", "DistributedError",
           "DistributedTrainer", "History", "NonFiniteLossError", "Trainer", "predict_raw", "seed_everything"]
