"""mtlkit: multi-task learning for PyTorch and scikit-learn."""

from mtlkit.architectures import HardSharing, build_model
from mtlkit.data import MultiTaskData, from_arrays, from_dataframe, split
from mtlkit.evaluation import delta_m
from mtlkit.tasks import Task
from mtlkit.training import Trainer

__version__ = "0.1.0"

__all__ = ["HardSharing", "MultiTaskData", "Task", "Trainer", "__version__", "build_model",
           "delta_m", "from_arrays", "from_dataframe", "split"]
