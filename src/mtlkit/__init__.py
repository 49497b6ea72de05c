"""mtlkit: multi-task learning for PyTorch and scikit-learn.

One model, one shared representation, several tasks: describe the tasks, bring a table,
arrays or a Dataset, and get a trained multi-task model, per-task metrics, single-task
baselines, Δm and a report.

The public names load on first use (PEP 562), so ``import mtlkit`` and ``mtlkit --help`` do
not pay for torch, scikit-learn and pandas until something needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> the module that defines it
_LAZY = {
    "fit": "mtlkit.api",
    "HardSharing": "mtlkit.architectures", "MultiTaskModel": "mtlkit.architectures",
    "build_model": "mtlkit.architectures",
    "MultiTaskData": "mtlkit.data", "from_arrays": "mtlkit.data", "from_dataframe": "mtlkit.data",
    "split": "mtlkit.data",
    "delta_m": "mtlkit.evaluation",
    "RunResult": "mtlkit.run",
    "load_run": "mtlkit.inference",
    "Task": "mtlkit.tasks",
    "Trainer": "mtlkit.training",
}

__all__ = ["HardSharing", "MultiTaskData", "MultiTaskModel", "RunResult", "Task", "Trainer",
           "__version__", "build_model", "delta_m", "fit", "from_arrays", "from_dataframe", "load_run",
           "split"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module), name)
    elif not name.startswith("__"):
        try:  # a submodule (mtlkit.tasks, mtlkit.run ...) reached as an attribute
            value = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module 'mtlkit' has no attribute {name!r}") from None
    else:
        raise AttributeError(f"module 'mtlkit' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(__all__) | set(globals()))


if TYPE_CHECKING:
    from mtlkit.api import fit
    from mtlkit.architectures import HardSharing, MultiTaskModel, build_model
    from mtlkit.data import MultiTaskData, from_arrays, from_dataframe, split
    from mtlkit.evaluation import delta_m  # type: ignore[no-redef]
    from mtlkit.inference import load_run
    from mtlkit.run import RunResult
    from mtlkit.tasks import Task
    from mtlkit.training import Trainer
