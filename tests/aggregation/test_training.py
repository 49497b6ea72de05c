"""Integration: every registered aggregator trains a tiny 2-task model through the Trainer,
at both levels, with falling loss."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from mtlkit import HardSharing, Task, Trainer, from_arrays
from mtlkit._registry import AGGREGATORS
from mtlkit.architectures.backbones import mlp


@pytest.fixture(scope="module")
def data():
    r = np.random.default_rng(0)
    x = r.normal(size=(256, 8)).astype("float32")
    a = (x[:, 0] - x[:, 1] > 0).astype(float)
    b = (x[:, 0] + 0.5 * x[:, 2] + 0.1 * r.normal(size=256)).astype(float)
    b[:20] = np.nan  # some missing labels
    tasks = [Task("a", "binary"), Task("b", "regression")]
    return from_arrays(x, {"a": a, "b": b}, tasks), tasks


def _total(record):
    return sum(record["train_loss"].values())


@pytest.mark.parametrize("level", ["parameters", "representation"])
@pytest.mark.parametrize("name", AGGREGATORS.names())
def test_aggregator_trains_with_falling_loss(data, name, level):
    train, tasks = data
    torch.manual_seed(0)
    model = HardSharing(mlp(8, (16,)), tasks)
    trainer = Trainer(model, tasks, aggregator=AGGREGATORS.build(name), level=level, epochs=6,
                      batch_size=64, lr=1e-2, progress=False, seed=0)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="NashMTL", category=RuntimeWarning)
        history = trainer.fit(train)
    first, last = _total(history.records[0]), _total(history.records[-1])
    assert np.isfinite(last)
    assert last < first, f"{name} at {level}: loss {first:.4f} -> {last:.4f}"
    if AGGREGATORS.get(name).gramian_based:
        assert "aggregator_weights" in history.records[-1]


YAML = """
name: yaml-aggregator
data: {dataset: multimnist}
training:
  epochs: 6
  batch_size: 64
  optimizer: {name: adam, lr: 0.01}
  aggregator: {name: %s}
  level: %s
  monitor_conflicts: true
"""


@pytest.mark.parametrize(("component", "level"), [("mgda, normalization: l2", "representation"),
                                                  ("pcgrad, seed: 3", "parameters"),
                                                  ("nash_mtl", "parameters")])
def test_aggregator_from_yaml(data, component, level):
    import yaml

    from mtlkit.config import parse_config
    from mtlkit.run import build_components, make_trainer

    train, tasks = data
    cfg = parse_config(yaml.safe_load(YAML % (component, level)))
    comps = build_components(cfg)
    assert type(comps["aggregator"]).__name__.lower().startswith(component.split(",")[0].split("_")[0])
    torch.manual_seed(0)
    model = HardSharing(mlp(8, (16,)), tasks)
    trainer = make_trainer(cfg, model, tasks, run_dir=None, progress=False, components=comps)
    history = trainer.fit(train)
    assert _total(history.records[-1]) < _total(history.records[0])
    assert "conflicts" in history.records[-1]  # the monitor runs alongside any method
