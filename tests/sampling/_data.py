"""Small per-task datasets of very different sizes, shared by the sampling tests."""

from __future__ import annotations

import numpy as np
import torch

from mtlkit import Task
from mtlkit.data import MultiTaskData
from mtlkit.data.multi import MultiTaskDataset


def per_task_datasets(sizes=(700, 250, 50), features=4, seed=0):
    """One dataset per task ``t0, t1, ...``: binary, regression, multiclass in turn."""
    r = np.random.default_rng(seed)
    kinds = [Task("t0", "binary"), Task("t1", "regression"), Task("t2", "multiclass", num_classes=3)]
    tasks, parts = [], {}
    for i, n in enumerate(sizes):
        spec = kinds[i % 3]
        t = Task(f"t{i}", spec.kind, num_classes=spec.num_classes)
        x = r.normal(size=(n, features)).astype("float32")
        if t.kind == "binary":
            y = torch.tensor((x[:, 0] > 0).astype("float32"))
        elif t.kind == "regression":
            y = torch.tensor(x[:, :1] * 2.0)
        else:
            y = torch.tensor(np.digitize(x[:, 1], [-0.5, 0.5]), dtype=torch.long)
        parts[f"d{i}"] = MultiTaskData(torch.tensor(x), {t.name: y})
        tasks.append(t)
    return parts, tasks


def combined(sizes=(700, 250, 50), features=4, seed=0):
    parts, tasks = per_task_datasets(sizes, features, seed)
    return MultiTaskDataset(parts, tasks), tasks
