"""Shared fixtures. Tests use one thread so that several suites can share 2 cores."""

from __future__ import annotations

import numpy as np
import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def two_task_data():
    """600 samples, 10 features: a binary task and a regression task (50 labels missing)."""
    from mtlkit import Task, from_arrays

    r = np.random.default_rng(0)
    x = r.normal(size=(600, 10)).astype("float32")
    a = (x[:, 0] + x[:, 1] > 0).astype(float)
    b = (2 * x[:, 0] - x[:, 2]).astype(float)
    b[:50] = np.nan
    tasks = [Task("a", "binary"), Task("b", "regression")]
    return from_arrays(x, {"a": a, "b": b}, tasks), tasks
