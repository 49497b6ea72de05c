"""Where the gradient-conflict monitor reads the task gradients: the shared representation
when the model has one, else the parameters of its last shared layer (MMoE, PLE, cross-stitch
...), and nowhere without shared parameters (soft sharing). The statistics of one full-batch
step are checked against gradients computed here by hand."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from mtlkit import Task, Trainer, from_arrays
from mtlkit.architectures import build_model

TASKS = [Task("a", "binary"), Task("b", "regression")]


@pytest.fixture(scope="module")
def data():
    r = np.random.default_rng(0)
    x = r.normal(size=(64, 5)).astype("float32")
    return x, from_arrays(x, {"a": (x[:, 0] > 0).astype(float), "b": x[:, 1] - x[:, 2]}, TASKS)


def _model(name, **params):
    torch.manual_seed(0)
    return build_model({"name": name, "trunk": {"name": "mlp", "hidden": [8, 6]}, **params}, TASKS, (5,))


def test_mmoe_conflicts_are_measured_on_its_last_shared_layer(data):
    x, ds = data
    model = _model("mmoe", num_experts=3)
    start = copy.deepcopy(model)
    # one step on the whole batch: the monitor sees the gradients at the initial parameters
    t = Trainer(model, TASKS, epochs=1, batch_size=64, progress=False, monitor_conflicts=True, seed=0)
    assert t.conflicts_at == "last_shared_parameters"
    rec = t.fit(ds).records[-1]["conflicts"]
    assert rec["measured_on"] == "last_shared_parameters"

    out = start(torch.from_numpy(x))
    ys = {"a": torch.from_numpy((x[:, 0] > 0).astype("float32")),
          "b": torch.from_numpy(x[:, 1] - x[:, 2])[:, None]}  # a regression target is (N, 1)
    last = list(start.last_shared_parameters())
    grads = []
    for task in TASKS:
        y = ys[task.name]
        assert out[task.name].shape == y.shape
        loss = task.compute_loss(out[task.name], y, torch.ones_like(y, dtype=torch.bool))
        g = torch.autograd.grad(loss, last, retain_graph=True, allow_unused=True)
        grads.append(torch.cat([(gi if gi is not None else torch.zeros_like(p)).reshape(-1)
                                for gi, p in zip(g, last)]).double())
    cos = float(grads[0] @ grads[1] / (grads[0].norm() * grads[1].norm()))
    norms = torch.stack([g.norm() for g in grads])
    ratio = (norms / norms.mean()).tolist()
    assert rec["cosine_matrix"][0][1] == pytest.approx(cos, abs=1e-6)
    assert rec["mean_cosine"] == pytest.approx(cos, abs=1e-6)
    assert rec["conflict_fraction"] == (1.0 if cos < 0 else 0.0)
    assert [rec["norm_ratio"][t.name] for t in TASKS] == pytest.approx(ratio, abs=1e-6)


def test_representation_when_there_is_one_and_none_without_shared_parameters(data):
    _, ds = data
    hard = Trainer(_model("hard_sharing"), TASKS, epochs=1, progress=False, monitor_conflicts=True)
    assert hard.conflicts_at == "representation"
    assert hard.fit(ds).records[-1]["conflicts"]["measured_on"] == "representation"
    soft = Trainer(_model("soft_sharing"), TASKS, epochs=1, progress=False, monitor_conflicts=True)
    assert soft.conflicts_at is None and "conflicts" not in soft.fit(ds).records[-1]
    off = Trainer(_model("mmoe"), TASKS, epochs=1, progress=False, monitor_conflicts=False)
    assert off.conflicts_at is None and "conflicts" not in off.fit(ds).records[-1]


def test_the_monitor_does_not_change_training(data):
    _, ds = data
    params = []
    for monitor in (False, True):
        model = _model("ple", levels=2)
        Trainer(model, TASKS, epochs=2, batch_size=16, progress=False, monitor_conflicts=monitor, seed=0).fit(ds)
        params.append(torch.cat([p.detach().reshape(-1) for p in model.parameters()]))
    assert torch.equal(params[0], params[1])
