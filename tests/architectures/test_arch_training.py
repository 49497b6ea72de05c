"""Each architecture trains with mtlkit.Trainer (Equal weighting; one gradient method) on tiny
synthetic data with a falling loss, and rebuilds from its config with identical outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from _arch_builders import ARCHS

from mtlkit import MultiTaskData, Task, Trainer
from mtlkit.aggregation.mean import Mean
from mtlkit.architectures import build_model
from mtlkit.architectures._base import MultiTaskModel
from mtlkit.architectures.siamese import make_pairs
from mtlkit.weighting.equal import Equal

SPEC = {"name": "mlp", "hidden": [16, 8]}
PARAMS = {
    "soft_sharing": {"strength": 1e-3},
    "cross_stitch": {},
    "mmoe": {"num_experts": 3},
    "ple": {"levels": 2, "num_shared_experts": 1, "num_task_experts": 1},
    "adashare": {"decay_every": 5},
    "adversarial": {},
    "fusion": {"fusion_dim": 8},
    "deep_supervision": {"attach": {"a": 0}},
    "siamese": {"pair_index": {"left": 0, "right": 1}},
}


def _siamese_data() -> tuple[MultiTaskData, list[Task]]:
    r = np.random.default_rng(0)
    centres = r.normal(size=(3, 10)) * 2
    y = r.integers(0, 3, size=200)
    feats = (centres[y] + r.normal(size=(200, 10))).astype("float32")
    p = make_pairs(feats, y, 300, seed=0)
    tasks = [Task("contrastive", "contrastive", margin=2.0), Task("left", "multiclass", num_classes=3),
             Task("right", "multiclass", num_classes=3)]
    data = MultiTaskData(p["x"], {"contrastive": p["same"], "left": p["label_a"].long(),
                                  "right": p["label_b"].long()}, None, tasks)
    return data, tasks


def _fit(arch, data, tasks, **trainer_kw):
    torch.manual_seed(0)
    model = build_model({"name": arch, "trunk": SPEC, **PARAMS[arch]}, tasks, data.input_shape)
    trainer = Trainer(model, tasks, epochs=3, batch_size=50, lr=1e-2, progress=False, seed=0, **trainer_kw)
    history = trainer.fit(data)
    return model, history


@pytest.mark.parametrize("arch", ARCHS)
def test_trains_with_equal_weighting_and_rebuilds(arch, two_task_data):
    data, tasks = _siamese_data() if arch == "siamese" else two_task_data
    model, history = _fit(arch, data, tasks, weighting=Equal())
    first = sum(history.records[0]["train_loss"].values())
    last = sum(history.records[-1]["train_loss"].values())
    assert np.isfinite(last) and last < first, f"{arch}: loss did not fall ({first:.4f} -> {last:.4f})"
    assert isinstance(model, MultiTaskModel)
    json.dumps(history.records[-1].get("sharing", {}))
    cfg = json.loads(json.dumps(model.config))
    rebuilt = build_model(cfg, tasks, data.input_shape)
    rebuilt.load_state_dict(model.state_dict())
    model.eval()
    rebuilt.eval()
    with torch.no_grad():
        a, b = model(data.x[:20]), rebuilt(data.x[:20])
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


@pytest.mark.parametrize(("arch", "level"), [("mmoe", "parameters"), ("cross_stitch", "parameters"),
                                              ("soft_sharing", "parameters"), ("adversarial", "parameters"),
                                              ("fusion", "representation"), ("siamese", "representation")])
def test_trains_with_a_gradient_method(arch, level, two_task_data):
    data, tasks = _siamese_data() if arch == "siamese" else two_task_data
    _, history = _fit(arch, data, tasks, aggregator=Mean(), level=level)
    first = sum(history.records[0]["train_loss"].values())
    last = sum(history.records[-1]["train_loss"].values())
    assert last < first


def test_sharing_is_logged_per_epoch(two_task_data):
    data, tasks = two_task_data
    _, history = _fit("mmoe", data, tasks)
    gates = history.records[-1]["sharing"]["gates"]
    assert set(gates) == {"a", "b"} and all(abs(sum(v) - 1) < 1e-6 for v in gates.values())
    _, history = _fit("adashare", data, tasks)
    assert set(history.records[-1]["sharing"]["policy"]) == {"a", "b"}
