"""Integration: every registered weighting trains a small model with mtlkit.Trainer, resumes
exactly, and the balancing methods keep a ×1000-smaller task learning where Equal stalls."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from mtlkit import HardSharing, Task, Trainer, from_arrays
from mtlkit._registry import WEIGHTINGS
from mtlkit.architectures.backbones import mlp
from mtlkit.weighting import DBMTL, DWA, FAMO, Equal, GradNorm, Uncertainty

NAMES = WEIGHTINGS.names()


def _trainer(tasks, name, epochs, **kw):
    torch.manual_seed(0)
    model = HardSharing(mlp(10, (16,)), tasks)
    return Trainer(model, tasks, weighting=WEIGHTINGS.build(name), epochs=epochs, batch_size=64,
                   lr=1e-2, progress=False, seed=0, **kw)


def _fit_args(name, data):
    """(train,) or (train, val) for a weighting that needs validation batches."""
    if not WEIGHTINGS.get(name).needs_validation_batch:
        return (data,)
    n = len(data)
    return data.subset(np.arange(0, n - 150)), data.subset(np.arange(n - 150, n))


@pytest.mark.parametrize("name", NAMES)
def test_every_weighting_trains_a_two_task_model(name, two_task_data):
    data, tasks = two_task_data
    hist = _trainer(tasks, name, epochs=5).fit(*_fit_args(name, data))
    first, last = hist.records[0]["train_loss"], hist.records[-1]["train_loss"]
    for t in ("a", "b"):
        assert last[t] < 0.9 * first[t], (name, t, first[t], last[t])
    for rec in hist.records:
        assert all(math.isfinite(v) and v >= 0 for v in rec["weights"].values())


@pytest.mark.parametrize("name", NAMES)
def test_trainer_resume_continues_exactly(name, two_task_data):
    data, tasks = two_task_data
    args = _fit_args(name, data)
    ref = _trainer(tasks, name, epochs=2)
    ref.fit(*args)
    state = copy.deepcopy(ref.state_dict())
    ref.epochs = 3
    ref.fit(*args)
    resumed = _trainer(tasks, name, epochs=3)
    resumed.setup(args[0])
    resumed.load_state_dict(state)
    resumed.fit(*args)
    a, b = ref.history.records[-1], resumed.history.records[-1]
    assert a["epoch"] == b["epoch"] == 3
    assert a["weights"] == b["weights"] and a["train_loss"] == b["train_loss"]


def test_built_from_a_config_entry():
    w = WEIGHTINGS.build("dwa", temperature=3.0)
    assert isinstance(w, DWA) and w.temperature == 3.0
    assert repr(w) == "DWA(temperature=3.0)"


# --------------------------------------------------------------------------- the ×1000 test
SCALE_STEPS = 300
SMALL_LEARNS = 0.5  # the small task's loss must fall below half its initial value ...
EQUAL_STALLS = 0.6  # ... while with Equal it stays above 60 % of it


def _scale_problem(seed: int = 0):
    """Two regression tasks on 16 features, a full batch of 1024 samples.

    * ``big``  = √1000 · (tanh(u·x) + 0.5·noise): its MSE is ~1000 times the other's, and its
      label noise keeps its gradient alive after it is fitted;
    * ``small`` = cos(2·v·x), u ⟂ v (disjoint input halves): an even function of a direction
      the big task does not use, which the small task's linear head cannot read from random
      trunk features — the shared trunk has to learn it.

    With Equal, the trunk's gradient is the big task's (×1000): the trunk learns u only and the
    small task's loss stalls. A balancing method gives the small task its share of the trunk.
    """
    r = np.random.default_rng(seed)
    n, d = 1024, 16
    x = r.normal(size=(n, d)).astype("float32")
    u, v = r.normal(size=d), r.normal(size=d)
    u[d // 2:], v[: d // 2] = 0.0, 0.0
    u, v = u / np.linalg.norm(u), v / np.linalg.norm(v)
    big = math.sqrt(1000.0) * (np.tanh(x @ u) + 0.5 * r.normal(size=n))
    small = np.cos(2.0 * (x @ v))
    tasks = [Task("big", "regression"), Task("small", "regression")]
    return from_arrays(x, {"big": big, "small": small}, tasks), tasks


def _loss_ratios(weighting, seed: int = 0) -> tuple[float, float]:
    data, tasks = _scale_problem(seed)
    torch.manual_seed(seed)
    model = HardSharing(mlp(16, (32,)), tasks)
    trainer = Trainer(model, tasks, weighting=weighting, lr=0.03, progress=False, seed=seed)
    trainer.setup(data)
    batch = data.batch(torch.arange(len(data)))
    before = trainer.loss_on(data)
    for _ in range(SCALE_STEPS):
        trainer.train_step(batch)
    after = trainer.loss_on(data)
    return after["small"] / before["small"], after["big"] / before["big"]


def test_scale_problem_is_scaled_by_a_thousand():
    data, _ = _scale_problem()
    ratio = float(data.targets["big"].var() / data.targets["small"].var())
    assert 500 < ratio < 2000


@pytest.fixture(scope="module")
def equal_ratios():
    return _loss_ratios(Equal())


def test_equal_lets_the_small_scale_task_stall(equal_ratios):
    small, big = equal_ratios
    assert big < 0.5  # the large task learns ...
    assert small > EQUAL_STALLS  # ... the small one does not


@pytest.mark.parametrize("make", [Uncertainty, GradNorm, DBMTL, FAMO], ids=lambda c: c.__name__)
def test_balancing_keeps_the_small_scale_task_learning(make, equal_ratios):
    small, big = _loss_ratios(make())
    assert small < SMALL_LEARNS, (small, equal_ratios[0])
    assert small < 0.6 * equal_ratios[0]
    assert big < 0.6  # and the large task still learns
