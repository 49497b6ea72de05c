"""The similarity schedule (Du et al. 2018): the running gradient cosine with the primary task,
the floor that keeps every auxiliary trainable, and the seed-1 exact-copy case of issue 21."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mtlkit import HardSharing, Task, Trainer
from mtlkit.architectures import mlp
from mtlkit.data import MultiTaskData
from mtlkit.jacobian import jacobian
from mtlkit.training.schedules import Similarity
from mtlkit.weighting._base import StepContext

NAMES = ["a", "b", "c"]
ALL = torch.ones(3, dtype=torch.bool)


def _ctx(rep, losses, seed=0):
    return StepContext(task_names=NAMES, representation=rep, grad_fn=lambda ls, wrt: jacobian(ls, wrt),
                       extra={"losses": losses}, generator=torch.Generator().manual_seed(seed))


def _copy_run(seed, epochs=3, **kw):
    """A primary task and an exact copy of it (same rows, same labels) as the only auxiliary."""
    r = np.random.default_rng(0)
    x = torch.tensor(r.normal(size=(200, 4)).astype("float32"))
    y = (x[:, 0] > 0).float()
    tasks = [Task("main", "binary"), Task("copy", "binary")]
    data = MultiTaskData(x, {"main": y.clone(), "copy": y.clone()})
    torch.manual_seed(seed)
    schedule = Similarity(primary="main", **kw)
    t = Trainer(HardSharing(mlp(4, (16,)), tasks), tasks, schedule=schedule, epochs=epochs,
                batch_size=16, lr=1e-2, seed=seed, progress=False)
    return schedule, t.fit(data)


def test_seed_1_exact_copy_of_the_primary_is_trained():
    """Issue 21: with seed 1 the two random heads start with a negative gradient cosine, so
    without a floor the copy had probability 0, was never trained, and its head (hence the
    cosine) never changed. The floor keeps it trainable."""
    s, hist = _copy_run(1)
    for r in hist.records:
        assert r["schedule"]["probabilities"]["copy"] > 0
    assert sum(r["task_steps"]["copy"] for r in hist.records) > 0
    # the initialisation is as unlucky as reported: a negative cosine after the first epoch,
    # so the copy was drawn through the floor alone
    first = hist.records[0]["schedule"]
    assert first["similarity"]["copy"] < 0
    assert first["probabilities"]["copy"] == s.min_probability > 0


def test_seed_1_exact_copy_is_locked_out_without_a_floor():
    """The defect, kept reproducible: Du et al.'s rule with no floor never trains the copy."""
    _, hist = _copy_run(1, min_probability=0.0)
    assert all(r["schedule"]["probabilities"]["copy"] == 0.0 for r in hist.records)
    assert all(r["task_steps"]["copy"] == 0 for r in hist.records)


def test_formula_by_hand_with_the_floor():
    """p_a = min(1, max(ε, s_a)), s_a ← β s_a + (1 − β) cos(g_primary, g_a)."""
    rep = torch.ones(2, 2, requires_grad=True)
    # gradients w.r.t. rep: a -> e1, b -> e1 + e2 (cos 1/√2), c -> -e1 (cos -1)
    losses = torch.stack([rep[:, 0].sum(), rep.sum(), -rep[:, 0].sum()])
    s = Similarity(primary="a", decay=0.5, min_probability=0.2)
    assert s.probabilities() is None  # before setup / the first step
    s.select(0, ALL, _ctx(rep, losses))
    assert s.similarities() == pytest.approx({"b": 1 / math.sqrt(2), "c": -1.0})
    assert s.probabilities() == pytest.approx({"b": 1 / math.sqrt(2), "c": 0.2})
    # a second batch: b orthogonal (cos 0), c opposed again -> s_b = 0.3536, s_c = -1
    losses2 = torch.stack([rep[:, 0].sum(), rep[:, 1].sum(), -rep[:, 0].sum()])
    s.select(1, ALL, _ctx(rep, losses2))
    assert s.similarities() == pytest.approx({"b": 0.5 / math.sqrt(2), "c": -1.0})
    assert s.probabilities() == pytest.approx({"b": 0.5 / math.sqrt(2), "c": 0.2})
    # the floor binds for b too once its similarity drops below it: s_b = 0.1768 < 0.2
    s.select(2, ALL, _ctx(rep, losses2))
    assert s.probabilities() == pytest.approx({"b": 0.2, "c": 0.2})


def test_floor_is_the_realised_frequency_of_an_opposed_auxiliary():
    rep = torch.ones(2, 2, requires_grad=True)
    losses = torch.stack([rep[:, 0].sum(), rep[:, 0].sum(), -rep[:, 0].sum()])  # b = a, c = -a
    s = Similarity(primary="a", decay=0.999999, min_probability=0.1)
    ctx = _ctx(rep, losses, seed=3)
    steps = 4_000
    hits = torch.zeros(3)
    for i in range(steps):
        hits += s.select(i, ALL, ctx).float()
    assert hits[0] == steps and hits[1] == steps  # primary always; b (cos 1) with p = 1
    p = 0.1  # c (cos -1) only through the floor
    assert abs(float(hits[2]) / steps - p) <= 4.5 * math.sqrt(p * (1 - p) / steps)


def test_never_measured_auxiliary_is_optimised_and_state_round_trips():
    rep = torch.ones(2, 2, requires_grad=True)
    losses = torch.stack([rep[:, 0].sum(), rep.sum(), -rep[:, 0].sum()])
    s = Similarity(primary="a")
    # primary absent: nothing to compare, every auxiliary is kept (p = 1 until measured)
    out = s.select(0, torch.tensor([False, True, True]), _ctx(rep, losses))
    assert out.tolist() == [False, True, True]
    s.select(1, ALL, _ctx(rep, losses))
    s2 = Similarity(primary="a")
    s2.load_state_dict(s.state_dict())
    assert s2.similarities() == s.similarities()
    s2.setup([Task(n, "regression") for n in NAMES])
    assert s2.probabilities() == s.probabilities()


@pytest.mark.parametrize(("kw", "message"), [
    ({"min_probability": -0.1}, r"The 'min_probability' parameter of Similarity must be a float in \[0, 1\]\. Got -0\.1\."),
    ({"min_probability": 1.5}, r"The 'min_probability' parameter of Similarity must be a float in \[0, 1\]\. Got 1\.5\."),
    ({"min_probability": True}, r"The 'min_probability' parameter of Similarity must be a float in \[0, 1\]\. Got True\."),
    ({"decay": 1.0}, r"The 'decay' parameter of Similarity must be a float in \[0, 1\)\. Got 1\.0\."),
])
def test_bad_parameters_are_rejected(kw, message):
    with pytest.raises(ValueError, match=message):
        Similarity(primary="a", **kw)


def test_repr_shows_the_floor():
    assert repr(Similarity(primary="a")) == "Similarity(primary='a', decay=0.9, min_probability=0.1)"
