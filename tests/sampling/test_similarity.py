"""The similarity schedule: MultiDDS (Wang, Tsvetkov & Neubig 2020, the default rule: task sizes
and the gradient cosine with the primary task) and Du et al. 2018 (rule="gradient_cosine": the
running cosine alone), the floor that keeps every auxiliary trainable, and the seed-1 exact-copy
case of issue 21."""

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


def _copy_run(seed, epochs=3, rule="gradient_cosine", **kw):
    """A primary task and an exact copy of it (same rows, same labels) as the only auxiliary."""
    r = np.random.default_rng(0)
    x = torch.tensor(r.normal(size=(200, 4)).astype("float32"))
    y = (x[:, 0] > 0).float()
    tasks = [Task("main", "binary"), Task("copy", "binary")]
    data = MultiTaskData(x, {"main": y.clone(), "copy": y.clone()})
    torch.manual_seed(seed)
    schedule = Similarity(primary="main", rule=rule, **kw)
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
    s = Similarity(primary="a", rule="gradient_cosine", decay=0.5, min_probability=0.2)
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
    s = Similarity(primary="a", rule="gradient_cosine", decay=0.999999, min_probability=0.1)
    ctx = _ctx(rep, losses, seed=3)
    steps = 4_000
    hits = torch.zeros(3)
    for i in range(steps):
        hits += s.select(i, ALL, ctx).float()
    assert hits[0] == steps and hits[1] == steps  # primary always; b (cos 1) with p = 1
    p = 0.1  # c (cos -1) only through the floor
    assert abs(float(hits[2]) / steps - p) <= 4.5 * math.sqrt(p * (1 - p) / steps)


@pytest.mark.parametrize("rule", ["multidds", "gradient_cosine"])
def test_never_measured_auxiliary_is_optimised_and_state_round_trips(rule):
    rep = torch.ones(2, 2, requires_grad=True)
    losses = torch.stack([rep[:, 0].sum(), rep.sum(), -rep[:, 0].sum()])
    s = Similarity(primary="a", rule=rule, learning_rate=1.0)
    # primary absent: nothing to compare, every auxiliary is kept (p = 1 until measured; under
    # MultiDDS without sizes every n_t is equal, so P(a)/P(primary) = 1)
    out = s.select(0, torch.tensor([False, True, True]), _ctx(rep, losses))
    assert out.tolist() == [False, True, True]
    s.select(1, ALL, _ctx(rep, losses))
    assert s.probabilities()["c"] < 1.0
    s2 = Similarity(primary="a", rule=rule, learning_rate=1.0)
    s2.load_state_dict(s.state_dict())
    assert s2.similarities() == s.similarities()
    s2.setup([Task(n, "regression") for n in NAMES])
    assert s2.probabilities() == s.probabilities()


@pytest.mark.parametrize(("kw", "message"), [
    ({"min_probability": -0.1}, r"The 'min_probability' parameter of Similarity must be a float in \[0, 1\]\. Got -0\.1\."),
    ({"min_probability": 1.5}, r"The 'min_probability' parameter of Similarity must be a float in \[0, 1\]\. Got 1\.5\."),
    ({"min_probability": True}, r"The 'min_probability' parameter of Similarity must be a float in \[0, 1\]\. Got True\."),
    ({"decay": 1.0}, r"The 'decay' parameter of Similarity must be a float in \[0, 1\)\. Got 1\.0\."),
    ({"rule": "cosine"}, r"The 'rule' parameter of Similarity must be one of 'multidds', 'gradient_cosine'\. Got 'cosine'\."),
    ({"temperature": 0.0}, r"The 'temperature' parameter of Similarity must be a positive float\. Got 0\.0\."),
    ({"learning_rate": -1.0}, r"The 'learning_rate' parameter of Similarity must be a non-negative float\. Got -1\.0\."),
])
def test_bad_parameters_are_rejected(kw, message):
    with pytest.raises(ValueError, match=message):
        Similarity(primary="a", **kw)


def test_repr_shows_the_rule_and_the_floor():
    assert repr(Similarity(primary="a")) == (
        "Similarity(primary='a', rule='multidds', temperature=1.0, learning_rate=0.01, decay=0.9, "
        "min_probability=0.1)")


# ---------------------------------------------------------------- MultiDDS (the default rule)
SIZES = {"a": 100, "b": 400, "c": 100}


def _tasks():
    return [Task(n, "regression") for n in NAMES]


def test_multidds_starts_at_the_size_temperature_distribution():
    s = Similarity(primary="a", temperature=2.0)
    s.setup(_tasks(), task_sizes=SIZES)
    z = 10 + 20 + 10  # n^{1/2}
    assert s.distribution() == pytest.approx({"a": 10 / z, "b": 20 / z, "c": 10 / z})
    # p_aux = max(ε, min(1, P(aux) / P(primary))): b has 2x the primary's share (capped), c equal
    assert s.probabilities() == pytest.approx({"b": 1.0, "c": 1.0})


def test_multidds_two_steps_equal_the_papers_update_worked_out_by_hand():
    """ψ_j ← ψ_j + η (R_j − P(j) Σ_t R_t), R_t = cos(g_a, g_t), P = softmax(ψ), ψ₀ = log n / T."""
    eta, temp = 0.5, 2.0
    rep = torch.ones(2, 2, requires_grad=True)
    s = Similarity(primary="a", temperature=temp, learning_rate=eta, min_probability=0.05)
    s.setup(_tasks(), task_sizes=SIZES)
    psi = [math.log(100) / 2, math.log(400) / 2, math.log(100) / 2]

    def by_hand(psi, rewards):
        e = [math.exp(v) for v in psi]
        p = [v / sum(e) for v in e]
        total = sum(rewards)
        return [psi[j] + eta * (rewards[j] - p[j] * total) for j in range(3)]

    # step 1: a -> e1, b -> e1 + e2 (cos 1/√2), c -> -e1 (cos -1)
    s.select(0, ALL, _ctx(rep, torch.stack([rep[:, 0].sum(), rep.sum(), -rep[:, 0].sum()])))
    psi = by_hand(psi, [1.0, 1 / math.sqrt(2), -1.0])
    assert s.similarities() == pytest.approx({"b": 1 / math.sqrt(2), "c": -1.0})
    e = [math.exp(v) for v in psi]
    assert s.distribution() == pytest.approx({n: v / sum(e) for n, v in zip(NAMES, e)}, abs=1e-12)
    # step 2: b orthogonal (cos 0), c opposed again
    s.select(1, ALL, _ctx(rep, torch.stack([rep[:, 0].sum(), rep[:, 1].sum(), -rep[:, 0].sum()])))
    psi = by_hand(psi, [1.0, 0.0, -1.0])
    want = {n: max(0.05, min(1.0, math.exp(psi[k] - psi[0]))) for k, n in enumerate(NAMES) if k}
    assert s.probabilities() == pytest.approx(want, abs=1e-12)
    assert 0.05 < want["c"] < want["b"] < 1.0  # the values are not at the clips: a real check
    # an auxiliary absent from a step has no reward: it only loses the −η P(j) Σ R share
    s.select(2, torch.tensor([True, True, False]),
             _ctx(rep, torch.stack([rep[:, 0].sum(), rep[:, 0].sum(), -rep[:, 0].sum()])))
    psi = by_hand(psi, [1.0, 1.0, 0.0])
    assert s.distribution()["c"] == pytest.approx(math.exp(psi[2]) / sum(math.exp(v) for v in psi))


def test_multidds_more_training_samples_give_a_larger_probability():
    """Same similarity, different sizes: the larger auxiliary starts and stays ahead."""
    rep = torch.ones(2, 2, requires_grad=True)
    losses = torch.stack([rep[:, 0].sum(), rep.sum(), rep.sum()])  # b and c: same cosine
    s = Similarity(primary="a", learning_rate=0.2, min_probability=0.0)
    s.setup(_tasks(), task_sizes={"a": 400, "b": 200, "c": 50})
    assert s.probabilities() == pytest.approx({"b": 0.5, "c": 0.125})
    for i in range(20):
        s.select(i, ALL, _ctx(rep, losses, seed=i))
    p = s.probabilities()
    # equal rewards, but ∇ log P takes more from the larger shares (−η P(j) Σ R): b keeps its lead
    # over c while the ratio shrinks, and both gain on the primary, whose share is the largest
    assert 0.125 < p["c"] < p["b"] < 4 * p["c"]
    assert p["b"] > 0.5


def test_multidds_trainer_passes_the_task_sizes():
    r = np.random.default_rng(0)
    x = torch.tensor(r.normal(size=(120, 4)).astype("float32"))
    y = (x[:, 0] > 0).float()
    mask = torch.arange(120) < 90  # 90 labelled rows for the auxiliary
    tasks = [Task("main", "binary"), Task("aux", "binary")]
    s = Similarity(primary="main")
    t = Trainer(HardSharing(mlp(4, (8,)), tasks), tasks, schedule=s, epochs=1, batch_size=30,
                seed=0, progress=False)
    t.setup(MultiTaskData(x, {"main": y, "aux": y.clone()}, {"aux": mask}))
    assert s.distribution() == pytest.approx({"main": 120 / 210, "aux": 90 / 210})


@pytest.mark.parametrize("floor", [0.1, 0.0])
def test_multidds_exact_copy_of_the_primary_is_always_trained(floor):
    """Issue 21's seed-1 case under the default rule: the copy has the primary's size, so it
    starts at p = 1, and its probability never reaches 0 (floored, or a softmax ratio)."""
    s, hist = _copy_run(1, rule="multidds", min_probability=floor)
    for r in hist.records:
        assert r["schedule"]["probabilities"]["copy"] > 0
        assert r["schedule"]["probabilities"]["copy"] >= floor
        assert r["task_steps"]["copy"] > 0
    assert "distribution" in hist.records[-1]["schedule"]


def test_multidds_state_round_trips_through_a_resumed_trainer():
    s, _ = _copy_run(1, epochs=1, rule="multidds")
    s2 = Similarity(primary="main")
    s2.load_state_dict(s.state_dict())
    s2.setup([Task("main", "binary"), Task("copy", "binary")], task_sizes={"main": 1, "copy": 9})
    assert s2.distribution() == s.distribution()  # loaded ψ is kept, not re-initialised
    assert s2.probabilities() == s.probabilities()


def test_multidds_rejects_a_task_without_samples():
    s = Similarity(primary="a")
    with pytest.raises(ValueError, match=r"missing \['c'\], not positive \{'b': 0\}"):
        s.setup(_tasks(), task_sizes={"a": 3, "b": 0})
