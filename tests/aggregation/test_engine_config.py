"""``training.jacobian_engine`` from a config: passed to the trainer, validated, and the three
engines train to the same model (they compute the same Jacobian); ``two-stage`` needs one
shared representation and is refused without it when the trainer is built."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from mtlkit import Task, Trainer
from mtlkit.architectures import build_model
from mtlkit.config import ConfigError, parse_config
from mtlkit.run import prepare_from_config, run


@pytest.fixture(scope="module")
def csv(tmp_path_factory):
    d = tmp_path_factory.mktemp("engine")
    r = np.random.default_rng(0)
    df = pd.DataFrame(r.normal(size=(120, 4)), columns=list("abcd"))
    df["y1"] = (df["a"] + df["b"] > 0).astype(int)
    df["y2"] = df["a"] - df["c"]
    df.to_csv(d / "d.csv", index=False)
    return d / "d.csv"


def _cfg(csv, engine):
    return parse_config({
        "name": "engine", "seed": 0, "data": {"path": str(csv), "features": list("abcd")},
        "tasks": [{"name": "y1", "kind": "binary"}, {"name": "y2", "kind": "regression"}],
        "model": {"trunk": {"name": "mlp", "hidden": [8, 6]}},
        "training": {"epochs": 2, "batch_size": 32, "aggregator": {"name": "mgda"}, "jacobian_engine": engine},
        "baselines": False})


def test_the_engines_train_the_same_model(csv):
    params = {}
    for engine in ("loop", "batched", "two-stage"):
        cfg = _cfg(csv, engine)
        result = run(cfg, prepare_from_config(cfg), out_dir=None, progress=False, report=False)
        assert result.trainer.jacobian_engine == engine
        params[engine] = torch.cat([p.detach().reshape(-1) for p in result.model.parameters()])
    torch.testing.assert_close(params["batched"], params["loop"], rtol=0, atol=1e-5)
    torch.testing.assert_close(params["two-stage"], params["loop"], rtol=0, atol=1e-5)


def test_unknown_engine_is_a_config_error(csv):
    with pytest.raises(ConfigError, match="jacobian_engine"):
        _cfg(csv, "fast")


def test_two_stage_needs_one_representation():
    tasks = [Task("a", "binary"), Task("b", "regression")]
    mmoe = build_model({"name": "mmoe", "trunk": {"name": "mlp", "hidden": [8]}}, tasks, (4,))
    with pytest.raises(ValueError, match=r"two-stage.*MMoE has none"):
        Trainer(mmoe, tasks, jacobian_engine="two-stage")
