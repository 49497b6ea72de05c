"""mtlkit: multi-task learning for PyTorch and scikit-learn.

One model, one shared representation, several tasks: describe the tasks, bring a table,
arrays or a Dataset, and get a trained multi-task model, per-task metrics, single-task
baselines, Δm and a report.
"""

from mtlkit.api import fit
from mtlkit.architectures import HardSharing, MultiTaskModel, build_model
from mtlkit.data import MultiTaskData, from_arrays, from_dataframe, split
from mtlkit.evaluation import delta_m
from mtlkit.experiment import RunResult
from mtlkit.inference import load_run
from mtlkit.tasks import Task
from mtlkit.training import Trainer

__version__ = "0.1.0"

__all__ = ["HardSharing", "MultiTaskData", "MultiTaskModel", "RunResult", "Task", "Trainer",
           "__version__", "build_model", "delta_m", "fit", "from_arrays", "from_dataframe", "load_run",
           "split"]
