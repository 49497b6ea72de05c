"""A tiny two-task table and a config with a search space (trials of well under a second)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

SEARCH = {"training.optimizer.lr": {"low": 1e-3, "high": 1e-1, "log": True},
          "training.weighting.name": {"choices": ["equal", "dwa"]},
          "training.weighting.temperature": {"low": 1.0, "high": 4.0, "when": {"training.weighting.name": "dwa"}},
          "tasks.z.weight": {"low": 0.1, "high": 1.0}}


@pytest.fixture(scope="session")
def table(tmp_path_factory):
    path = tmp_path_factory.mktemp("tune-data") / "d.csv"
    r = np.random.default_rng(0)
    df = pd.DataFrame(r.normal(size=(120, 4)), columns=["a", "b", "c", "d"])
    df["y"] = (df["a"] + df["b"] > 0).astype(int)
    df["z"] = df["c"] - 2 * df["d"] + 3.0
    df.to_csv(path, index=False)
    return path


def make_config(table, **changes):
    cfg = {"name": "tiny", "seed": 0, "data": {"path": str(table)},
           "tasks": [{"name": "y", "kind": "binary"}, {"name": "z", "kind": "regression"}],
           "model": {"trunk": {"name": "mlp", "hidden": [8]}},
           "training": {"epochs": 2, "batch_size": 32}, "search": dict(SEARCH)}
    cfg.update(changes)
    return cfg


@pytest.fixture(scope="session")
def make(table):
    """``make(**changes)``: the tiny config as a dict, with top-level keys changed."""
    return lambda **changes: make_config(table, **changes)


@pytest.fixture
def config_file(table, tmp_path):
    def write(**changes):
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump(make_config(table, **changes)))
        return path
    return write
