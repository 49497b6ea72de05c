"""Task schedules: exact round-robin, subset frequencies, active/similarity by hand,
incompatible combinations."""

from __future__ import annotations

import math

import pytest
import torch

from mtlkit import Task
from mtlkit._registry import SCHEDULES
from mtlkit.aggregation.mean import Mean
from mtlkit.data.samplers import Proportional
from mtlkit.jacobian import jacobian
from mtlkit.training.schedules import (
    Active,
    Alternate,
    IncompatibleComponentsError,
    Joint,
    RandomSubset,
    Similarity,
    check_compatible,
)
from mtlkit.weighting._base import StepContext
from mtlkit.weighting.equal import Equal

NAMES = ["a", "b", "c"]
ALL = torch.ones(3, dtype=torch.bool)


def _ctx(epoch=0, seed=0, **kw):
    return StepContext(task_names=NAMES, epoch=epoch, generator=torch.Generator().manual_seed(seed), **kw)


def _chosen(schedule, present, steps, ctx=None):
    ctx = ctx or _ctx()
    return [tuple(schedule.select(i, present, ctx).nonzero()[:, 0].tolist()) for i in range(steps)]


def test_joint_keeps_every_present_task():
    present = torch.tensor([True, False, True])
    assert _chosen(Joint(), present, 3) == [(0, 2)] * 3


def test_alternate_order_is_exact():
    assert _chosen(Alternate(), ALL, 7) == [(0,), (1,), (2,), (0,), (1,), (2,), (0,)]
    assert _chosen(Alternate(order=["c", "a", "b"]), ALL, 4) == [(2,), (0,), (1,), (2,)]
    assert _chosen(Alternate(steps_per_task=2), ALL, 7) == [(0,), (0,), (1,), (1,), (2,), (2,), (0,)]


def test_alternate_skips_absent_tasks_without_stalling():
    s, ctx = Alternate(), _ctx()
    seq = [torch.tensor(p) for p in ([True, True, True], [True, False, True], [True, True, False],
                                     [False, False, False], [True, True, True])]
    got = [tuple(s.select(i, p, ctx).nonzero()[:, 0].tolist()) for i, p in enumerate(seq)]
    # a; b absent -> c; then a; nothing present -> nothing; then b
    assert got == [(0,), (2,), (0,), (), (1,)]


def test_alternate_state_resumes_the_cycle():
    s = Alternate()
    _chosen(s, ALL, 2)
    s2 = Alternate()
    s2.load_state_dict(s.state_dict())
    assert _chosen(s2, ALL, 2) == [(2,), (0,)]


def test_random_subset_draws_k_tasks_uniformly():
    s, ctx = RandomSubset(num_tasks=2), _ctx(seed=1)
    steps = 4_000
    picks = _chosen(s, ALL, steps, ctx)
    assert all(len(p) == 2 for p in picks)
    for k in range(3):  # each task in a subset w.p. 2/3
        share = sum(k in p for p in picks) / steps
        assert abs(share - 2 / 3) <= 4.5 * math.sqrt(2 / 9 / steps)
    # fewer present tasks than k: all of them
    assert _chosen(RandomSubset(num_tasks=2), torch.tensor([False, True, False]), 3) == [(1,)] * 3
    # same seed, same subsets
    assert _chosen(RandomSubset(num_tasks=1), ALL, 50, _ctx(seed=3)) == \
        _chosen(RandomSubset(num_tasks=1), ALL, 50, _ctx(seed=3))


def test_active_probabilities_recomputed_by_hand():
    """Sharma et al. (2017) A5C: m_t = (ta_t − ca_t)/ta_t, p = softmax(m / τ)."""
    tasks = [Task("a", "binary"), Task("b", "regression"), Task("c", "multiclass", num_classes=3)]
    targets = {"a": {"roc_auc": 0.8}, "b": {"mae": 0.5}, "c": {"accuracy": 0.6}}
    s = Active(targets=targets, temperature=0.5)
    s.setup(tasks)
    assert s.probabilities() == pytest.approx({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3})  # before validation
    s.on_epoch_end(0, {"val": {"a": {"roc_auc": 0.6}, "b": {"mae": 0.55}, "c": {"accuracy": 0.66}}})
    m = [(0.8 - 0.6) / 0.8, (0.55 - 0.5) / 0.5, (0.6 - 0.66) / 0.6]  # 0.25, 0.1, -0.1
    e = [math.exp(v / 0.5) for v in m]
    want = {k: v / sum(e) for k, v in zip("abc", e)}
    assert s.probabilities() == pytest.approx(want, rel=1e-12)
    assert s.epoch_summary()["probabilities"] == pytest.approx(want, rel=1e-12)
    # realised choice frequencies follow p (one task per step)
    steps = 4_000
    picks = _chosen(s, ALL, steps, _ctx(seed=2))
    for k, t in enumerate("abc"):
        share = sum(p == (k,) for p in picks) / steps
        assert abs(share - want[t]) <= 4.5 * math.sqrt(want[t] * (1 - want[t]) / steps)
    # restricted to the present tasks, renormalised: b absent -> a w.p. pa / (pa + pc)
    picks = _chosen(s, torch.tensor([True, False, True]), steps, _ctx(seed=3))
    pa = want["a"] / (want["a"] + want["c"])
    share = sum(p == (0,) for p in picks) / steps
    assert abs(share - pa) <= 4.5 * math.sqrt(pa * (1 - pa) / steps)


def test_active_needs_targets_and_validates():
    s = Active(metric="accuracy")
    with pytest.raises(ValueError, match="needs a reference score per task"):
        s.on_epoch_end(0, {"val": {"a": {"accuracy": 0.5}}})
    with pytest.raises(ValueError, match=r"The 'temperature' parameter of Active must be a positive float\. Got 0"):
        Active(temperature=0)
    with pytest.raises(ValueError, match=r"The 'num_tasks' parameter of Active must be a positive integer\. Got 0"):
        Active(num_tasks=0)
    s = Active(targets={"a": 0.0}, metric="accuracy")
    with pytest.raises(ValueError, match="must be finite and non-zero"):
        s.on_epoch_end(0, {"val": {"a": {"accuracy": 0.5}}})


def _similarity_ctx(rep, losses, seed=0):
    return StepContext(task_names=NAMES, representation=rep, grad_fn=lambda ls, wrt: jacobian(ls, wrt),
                       extra={"losses": losses}, generator=torch.Generator().manual_seed(seed))


def test_similarity_running_cosine_by_hand():
    rep = torch.ones(2, 2, requires_grad=True)  # the "representation" of a batch of 2
    # gradients w.r.t. rep: a -> e1 (both rows), b -> e1 + e2, c -> -e1
    losses = torch.stack([rep[:, 0].sum(), rep.sum(), -rep[:, 0].sum()])
    s = Similarity(primary="a", rule="gradient_cosine", decay=0.5, min_probability=0.0)  # Du et al.'s rule, no floor
    s.select(0, ALL, _similarity_ctx(rep, losses))
    assert s.probabilities() == pytest.approx({"b": 1 / math.sqrt(2), "c": 0.0})
    # a second batch where b is orthogonal to a: s_b = 0.5 * 0.7071 + 0.5 * 0
    losses2 = torch.stack([rep[:, 0].sum(), rep[:, 1].sum(), -rep[:, 0].sum()])
    s.select(1, ALL, _similarity_ctx(rep, losses2))
    assert s.probabilities() == pytest.approx({"b": 0.5 / math.sqrt(2), "c": 0.0})
    # the primary is always optimised, c (opposed) never, b at rate 0.3536
    steps, hits = 4_000, 0
    ctx = _similarity_ctx(rep, losses2, seed=5)
    s.decay = 0.999999  # freeze the estimate while counting
    for i in range(steps):
        out = s.select(i, torch.tensor([False, True, True]), ctx)  # primary absent: no update
        assert not out[2]
        hits += int(out[1])
    p = 0.5 / math.sqrt(2)
    assert abs(hits / steps - p) <= 4.5 * math.sqrt(p * (1 - p) / steps)
    assert s.select(0, ALL, _similarity_ctx(rep, losses))[0]


def test_similarity_errors():
    with pytest.raises(ValueError, match="The 'primary' task 'z' of Similarity is not among the tasks"):
        Similarity(primary="z").select(0, ALL, _ctx())
    with pytest.raises(RuntimeError, match=r"ctx.extra\['losses'\]"):
        Similarity(primary="a").select(0, ALL, _ctx())
    with pytest.raises(ValueError, match=r"The 'decay' parameter of Similarity must be a float in \[0, 1\). Got 1.0"):
        Similarity(primary="a", decay=1.0)
    assert Similarity.needs_representation and not Joint.needs_representation


def test_schedule_counts_per_epoch():
    s = Alternate()
    _chosen(s, ALL, 5, _ctx(epoch=0))
    assert s.epoch_summary() == {"counts": {"a": 2, "b": 2, "c": 1}}
    _chosen(s, ALL, 3, _ctx(epoch=1))
    assert s.epoch_summary() == {"counts": {"a": 1, "b": 1, "c": 1}}


class _GradNormLike:
    needs_gradients = True

    def __str__(self) -> str:
        return "GradNormLike"


def test_meaningless_combinations_are_rejected():
    with pytest.raises(IncompatibleComponentsError, match="The schedule Alternate optimises at most 1 task per step, but the aggregator Mean"):
        check_compatible(Alternate(), Equal(), Mean())
    with pytest.raises(IncompatibleComponentsError, match="RandomSubset optimises at most 1 task"):
        check_compatible(RandomSubset(num_tasks=1), None, Mean())
    with pytest.raises(IncompatibleComponentsError, match="the weighting GradNormLike balances at least 2 tasks"):
        check_compatible(Active(num_tasks=1), _GradNormLike(), None)
    with pytest.raises(IncompatibleComponentsError, match=r"The sampler Proportional \(exclusive=True: one task per batch\)"):
        check_compatible(None, Equal(), Mean(), sampler=Proportional())
    with pytest.raises(IncompatibleComponentsError, match="The schedule Similarity compares at least 2 tasks"):
        check_compatible(Similarity(primary="a"), None, None, sampler=Proportional())
    # meaningful ones pass
    check_compatible(Joint(), _GradNormLike(), Mean())
    check_compatible(RandomSubset(num_tasks=2), Equal(), Mean())
    check_compatible(Alternate(), Equal(), None, sampler=Proportional())
    check_compatible(Joint(), Equal(), Mean(), sampler=Proportional(exclusive=False))
    check_compatible(Similarity(primary="a"), _GradNormLike(), Mean())
    check_compatible(Similarity(primary="a"), None, None, sampler=Proportional(exclusive=False))


def test_registry_builds_every_schedule_with_repr_and_paper():
    assert SCHEDULES.names() == ["active", "alternate", "joint", "random_subset", "similarity"]
    s = SCHEDULES.build("random_subset", num_tasks=2)
    assert repr(s) == "RandomSubset(num_tasks=2)" and str(s) == "RandomSubset"
    assert repr(SCHEDULES.build("alternate")) == "Alternate(order=None, steps_per_task=1)"
    for entry in SCHEDULES:
        assert entry.paper and entry.summary
    with pytest.raises(ValueError, match=r"The 'num_tasks' parameter of RandomSubset must be a positive integer\. Got 1\.5"):
        RandomSubset(num_tasks=1.5)
    with pytest.raises(ValueError, match="The 'order' parameter of Alternate repeats a task"):
        Alternate(order=["a", "a"])


def test_references_can_be_set_after_construction():
    from mtlkit.data.samplers import DynamicTemperature

    for obj in (Active(metric="accuracy"), DynamicTemperature(metric="accuracy")):
        assert obj.needs_references and not obj.has_references
        obj.set_references({"a": {"accuracy": 0.8}})
        assert obj.has_references
        obj.on_epoch_end(0, {"val": {"a": {"accuracy": 0.4}}})
        assert obj.state_dict()["gaps"] == {"a": 0.5}
