"""The training loop, schedules, checkpoints and distributed glue."""

from mtlkit.training.monitor import ConflictMonitor
from mtlkit.training.trainer import (
    History,
    NonFiniteLossError,
    Trainer,
    predict_raw,
    seed_everything,
)

__all__ = ["ConflictMonitor", "History", "NonFiniteLossError", "Trainer", "predict_raw", "seed_everything"]
