"""The two-input model of the multimodal DDP test: data, model and the worker that the spawned
processes import by name (see tests/distributed/_harness.py for the job runner)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from mtlkit.tasks import Task

N, BATCH, EPOCHS, SEED = 40, 10, 2, 5
TASKS = [Task("a", "binary"), Task("b", "regression"), Task("c", "multiclass", num_classes=3)]


def make_data():
    from mtlkit.data import MultiTaskData

    g = torch.Generator().manual_seed(0)
    accel, table = torch.randn(N, 3, 12, generator=g), torch.randn(N, 4, generator=g)
    b = accel.mean((1, 2)) * 3 + table[:, 1]
    mask_b = torch.arange(N) % 3 != 0  # task b lacks a third of its labels: the shards' counts differ
    return MultiTaskData({"accel": accel, "table": table},
                         {"a": (table[:, 0] > 0).float(), "b": b[:, None], "c": torch.randint(0, 3, (N,), generator=g)},
                         {"b": mask_b[:, None]}, TASKS)


def make_model(fusion: str = "attention") -> torch.nn.Module:
    from mtlkit.architectures import build_model
    from mtlkit.training import seed_everything

    seed_everything(SEED)
    return build_model({"name": "multimodal", "fusion": fusion,
                        "encoders": {"accel": {"name": "cnn1d", "channels": [4], "hidden": 8},
                                     "table": {"name": "mlp", "hidden": [8]}}},
                       TASKS, {"accel": (3, 12), "table": (4,)})


def train(*, distributed: bool, **extra: Any):
    from mtlkit.training import Trainer
    from mtlkit.training.distributed import DistributedTrainer

    cls: Any = DistributedTrainer if distributed else Trainer
    # SGD: a conv bias before batch norm has a gradient of zero up to rounding, which Adam would
    # blow up to steps of ~lr (see tests/distributed/_harness.py)
    t = cls(make_model(), TASKS, epochs=EPOCHS, batch_size=BATCH, lr=0.05, seed=SEED, progress=False,
            monitor_conflicts=False, optimizer="sgd", **extra)
    t.fit(make_data())
    return t


def flat_params(trainer: Any) -> np.ndarray:
    return torch.cat([p.detach().reshape(-1) for p in trainer.model.parameters()]).double().numpy()


def worker(rank: int, out: Path) -> None:
    from mtlkit.aggregation import MGDA

    np.save(out / f"mgda-rank{rank}.npy", flat_params(train(distributed=True, aggregator=MGDA(),
                                                           level="representation")))
