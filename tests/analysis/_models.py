"""Tiny models and data for the analysis tests."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from mtlkit import MultiTaskModel, Task


class SharedOutput(MultiTaskModel):
    """Every task reads the same shared output (no task parameters): a task whose target is
    the negation of another's is then in direct conflict with it."""

    def __init__(self, in_features: int, tasks, hidden: int = 8) -> None:
        super().__init__()
        self.tasks = list(tasks)
        self.config = {}
        self.net = nn.Sequential(nn.Linear(in_features, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def encode(self, x):
        return self.net(x)

    def decode(self, rep):
        return {t.name: rep for t in self.tasks}

    def shared_parameters(self):
        return self.net.parameters()

    def task_parameters(self, name):
        return iter(())


def regression_batch(n: int = 64, seed: int = 0):
    r = np.random.default_rng(seed)
    x = torch.as_tensor(r.normal(size=(n, 4)), dtype=torch.float32)
    y = (x[:, :1] - 0.5 * x[:, 1:2]) * 2.0
    return x, y


def planted_tasks():
    return [Task("a", "regression"), Task("same", "regression"), Task("neg", "regression")]
