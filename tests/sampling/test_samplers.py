"""Task samplers: frequencies equal the formula, budgets, passes, adaptive updates, state."""

from __future__ import annotations

import math

import pytest
import torch

from mtlkit._registry import SAMPLERS
from mtlkit.data.samplers import (
    DynamicTemperature,
    Proportional,
    Temperature,
    Uniform,
    epoch_steps,
    size_probabilities,
)

from ._data import combined

STEPS = 200_000


def _draw(sampler, ds, steps=STEPS, seed=0):
    """The task of each of ``steps`` batches (only the task draws; cheap)."""
    return sampler.task_sequence(ds.sizes, steps, torch.Generator().manual_seed(seed))


def _batch_tasks(sampler, ds, steps, seed=0, batch_size=4, epoch=0):
    """The task of each batch the sampler yields (end to end)."""
    sampler.epoch_budget = steps
    tasks = []
    for _, _, ms in sampler.batches(ds, batch_size, torch.Generator().manual_seed(seed), epoch):
        present = [t for t, m in ms.items() if bool(m.any())]
        assert len(present) == 1  # exclusive: one task per batch
        tasks.append(present[0])
    return tasks


def _assert_frequencies(tasks, expected):
    """Each task's share within 4.5 binomial standard deviations of its probability
    (P(any of 3 tasks outside) < 2e-5 under the formula); with 200,000 draws that is
    ±0.0043 for p = 0.25."""
    n = len(tasks)
    for t, p in expected.items():
        share = tasks.count(t) / n
        sd = math.sqrt(p * (1 - p) / n)
        assert abs(share - p) <= 4.5 * sd + 1e-12, (t, share, p)


def _formula(sizes, temperature):
    w = {t: (n ** (1.0 / temperature) if math.isfinite(temperature) else 1.0) for t, n in sizes.items()}
    z = sum(w.values())
    return {t: v / z for t, v in w.items()}


@pytest.mark.parametrize(("sampler", "temperature"), [
    (Proportional(), 1.0), (Temperature(temperature=2.0), 2.0), (Temperature(temperature=5.0), 5.0),
    (Uniform(), math.inf),
])
def test_realised_frequencies_match_the_formula(sampler, temperature):
    ds, _ = combined((700, 250, 50))
    expected = _formula(ds.sizes, temperature)
    assert sampler.probabilities(ds.sizes) == pytest.approx(expected, rel=1e-12)
    _assert_frequencies(_draw(sampler, ds), expected)
    # the batches follow exactly these draws (same seed), and the summary logs their counts
    tasks = _batch_tasks(sampler, ds, 500, seed=7)
    assert tasks == _draw(sampler, ds, 500, seed=7)
    summary = sampler.epoch_summary()
    assert summary["counts"] == {t: tasks.count(t) for t in ds.task_names}
    assert summary["probabilities"] == pytest.approx(expected, rel=1e-12)


def test_a_much_smaller_task_still_appears_at_its_rate():
    ds, _ = combined((2000, 20))  # 100x fewer rows
    for sampler, temperature in ((Proportional(), 1.0), (Temperature(temperature=2.0), 2.0),
                                 (Uniform(), math.inf)):
        expected = _formula(ds.sizes, temperature)
        tasks = _draw(sampler, ds)
        _assert_frequencies(tasks, expected)
    # T = 2: sqrt(20) / (sqrt(2000) + sqrt(20)) = 1/11 of the steps
    assert _formula(ds.sizes, 2.0)["t1"] == pytest.approx(1 / 11)


def test_temperature_limits():
    sizes = {"a": 900, "b": 90, "c": 10}
    assert Temperature(temperature=1.0).probabilities(sizes) == pytest.approx(Proportional().probabilities(sizes))
    assert Temperature(temperature=1e9).probabilities(sizes) == pytest.approx(Uniform().probabilities(sizes))
    assert size_probabilities({"a": 10, "b": 0}, 2.0) == {"a": 1.0, "b": 0.0}


def test_same_seed_same_batches_and_different_seed_differs():
    ds, _ = combined((70, 25, 5))

    def run(seed):
        g = torch.Generator().manual_seed(seed)
        return [x.sum().item() for x, _, _ in Temperature(temperature=2.0).batches(ds, 8, g, 0)]

    assert run(3) == run(3)
    assert run(3) != run(4)


@pytest.mark.parametrize(("budget", "steps"), [("sum", math.ceil(1000 / 16)), ("largest", math.ceil(700 / 16)),
                                               (17, 17)])
def test_epoch_budget_rules(budget, steps):
    ds, _ = combined((700, 250, 50))
    s = Uniform(epoch_budget=budget)
    assert s.num_batches(ds, 16) == steps
    assert sum(1 for _ in s.batches(ds, 16, torch.Generator().manual_seed(0), 0)) == steps
    assert epoch_steps({"a": 5}, 16, "sum") == 1


def test_each_pass_visits_every_labelled_row_once():
    """A task's batches are consecutive slices of shuffled passes over its rows."""
    ds, _ = combined((60, 13))
    s = Uniform(epoch_budget=40)
    rows_small = []
    g = torch.Generator().manual_seed(0)
    for x, _, ms in s.batches(ds, 5, g, 0):
        if bool(ms["t1"].any()):
            rows_small += [int((ds.x == xi).all(1).nonzero()[0, 0]) for xi in x]
    small = set(ds.task_indices("t1").tolist())
    first_pass = rows_small[:13]  # batches of 5, 5, 3
    assert set(first_pass) == small and len(first_pass) == 13
    assert set(rows_small[13:26]) == small


def test_non_exclusive_batches_keep_other_labels():
    from mtlkit.data import MultiTaskData
    from mtlkit.data.multi import MultiTaskDataset

    x = torch.randn(20, 2)
    ds = MultiTaskDataset({"both": MultiTaskData(x, {"a": torch.ones(20), "b": torch.ones(20, 1)})})
    _, _, ms = next(iter(Proportional(exclusive=False).batches(ds, 4, torch.Generator(), 0)))
    assert bool(ms["a"].all()) and bool(ms["b"].all())
    assert Proportional(exclusive=False).max_tasks_per_batch is None
    assert Proportional().max_tasks_per_batch == 1


def test_dynamic_probabilities_recomputed_by_hand():
    """Gottumukkala et al. (2020): p_t ∝ max(0, (r_t − c_t)/|r_t|)^{1/T}, floor ε."""
    refs = {"t0": {"roc_auc": 0.90}, "t1": {"mae": 0.50}, "t2": {"accuracy": 0.80}}
    s = DynamicTemperature(references=refs, temperature=1.0)
    _, tasks = combined((10, 10, 10))
    s.setup(tasks)  # main metrics: roc_auc (higher), mae (lower), accuracy (higher)
    sizes = {"t0": 700, "t1": 250, "t2": 50}
    assert s.probabilities(sizes) == pytest.approx({"t0": 0.7, "t1": 0.25, "t2": 0.05})
    val = {"t0": {"roc_auc": 0.81, "accuracy": 0.0}, "t1": {"mae": 0.60}, "t2": {"accuracy": 0.84}}
    s.on_epoch_end(0, {"epoch": 1, "val": val})
    # gaps: t0 (0.90-0.81)/0.90 = 0.1; t1 (0.60-0.50)/0.50 = 0.2; t2 ahead -> 0
    assert s.probabilities(sizes) == pytest.approx({"t0": 1 / 3, "t1": 2 / 3, "t2": 0.0})
    assert s.epoch_summary()["gaps"] == pytest.approx({"t0": 0.1, "t1": 0.2, "t2": 0.0})
    # T = 0.5 squares the gaps; a floor ε = 0.05 mixes in: p = ε + (1 - 3ε) q
    s2 = DynamicTemperature(references=refs, temperature=0.5, min_probability=0.05)
    s2.setup(tasks)
    s2.on_epoch_end(0, {"val": val})
    q = {"t0": 0.01 / 0.05, "t1": 0.04 / 0.05, "t2": 0.0}
    assert s2.probabilities(sizes) == pytest.approx({t: 0.05 + 0.85 * v for t, v in q.items()})
    # every task at or above its reference: back to the size prior (T = 0.5: ∝ n²)
    s2.on_epoch_end(1, {"val": {"t0": {"roc_auc": 0.95}, "t1": {"mae": 0.4}, "t2": {"accuracy": 0.9}}})
    z = 700**2 + 250**2 + 50**2
    prior = {"t0": 700**2 / z, "t1": 250**2 / z, "t2": 50**2 / z}
    assert s2.probabilities(sizes) == pytest.approx({t: 0.05 + 0.85 * v for t, v in prior.items()})


def test_dynamic_realised_frequencies_follow_the_updated_probabilities():
    ds, tasks = combined((700, 250, 50))
    s = DynamicTemperature(references={"t0": 1.0, "t1": 1.0, "t2": 1.0}, metric="r2")
    s.on_epoch_end(0, {"val": {"t0": {"r2": 0.9}, "t1": {"r2": 0.7}, "t2": {"r2": 0.4}}})
    # gaps 0.1, 0.3, 0.6: the smallest data set lags most and now gets 60% of the steps
    expected = {"t0": 0.1, "t1": 0.3, "t2": 0.6}
    _assert_frequencies(_draw(s, ds), expected)
    assert _batch_tasks(s, ds, 300, epoch=1) == _draw(s, ds, 300)


def test_dynamic_needs_references_and_metric_and_second_call_is_ignored():
    s = DynamicTemperature()
    with pytest.raises(ValueError, match="needs a reference score per task"):
        s.on_epoch_end(0, {"val": {"a": {"accuracy": 0.5}}})
    s = DynamicTemperature(references={"a": 0.8})
    with pytest.raises(ValueError, match="which validation metric"):
        s.on_epoch_end(0, {"val": {"a": {"accuracy": 0.5}}})
    s = DynamicTemperature(references={"a": 0.8}, metric="accuracy")
    s.on_epoch_end(0, {"val": {"a": {"accuracy": 0.5}}})
    s.on_epoch_end(0, {"val": {"a": {"accuracy": 0.0}}})  # same epoch again: ignored
    assert s.epoch_summary()["gaps"] == pytest.approx({"a": 0.375})
    s.on_epoch_end(1, {"epoch": 2, "train_loss": {"a": 1.0}})  # no validation: unchanged
    assert s.epoch_summary()["gaps"] == pytest.approx({"a": 0.375})
    s.set_references({"a": 0.5})
    with pytest.raises(ValueError, match="no reference for task 'b'"):
        s.on_epoch_end(2, {"val": {"a": {"accuracy": 0.5}, "b": {"accuracy": 0.5}}})


def test_state_dict_resumes_the_same_batches():
    ds, _ = combined((70, 25, 5))
    s = Temperature(temperature=2.0, epoch_budget=30)
    g = torch.Generator().manual_seed(0)
    list(s.batches(ds, 8, g, 0))
    state, gstate = s.state_dict(), g.get_state()
    a = [x.sum().item() for x, _, _ in s.batches(ds, 8, g, 1)]
    s2 = Temperature(temperature=2.0, epoch_budget=30)
    s2.load_state_dict(state)
    g.set_state(gstate)
    b = [x.sum().item() for x, _, _ in s2.batches(ds, 8, g, 1)]
    assert a == b


@pytest.mark.parametrize(("factory", "message"), [
    (lambda: Temperature(temperature=0.0), "The 'temperature' parameter of Temperature must be a positive float. Got 0.0."),
    (lambda: Temperature(temperature=-1), "positive float. Got -1."),
    (lambda: Uniform(epoch_budget="all"), "The 'epoch_budget' parameter of Uniform must be 'sum', 'largest' or a positive integer"),
    (lambda: Proportional(epoch_budget=0), "Got 0."),
    (lambda: Proportional(exclusive="yes"), "The 'exclusive' parameter of Proportional must be a bool"),
    (lambda: DynamicTemperature(min_probability=1.5), "'min_probability' parameter of DynamicTemperature"),
    (lambda: DynamicTemperature(references=[0.5]), "'references' parameter of DynamicTemperature must be a mapping"),
])
def test_bad_parameters_are_rejected(factory, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        factory()


def test_min_probability_above_one_over_k_is_rejected_at_use():
    with pytest.raises(ValueError, match=r"at most 1/K = 0\.5"):
        DynamicTemperature(min_probability=0.6).probabilities({"a": 1, "b": 1})


def test_registry_builds_every_sampler_with_repr_and_paper():
    assert SAMPLERS.names() == ["dynamic_temperature", "proportional", "temperature", "uniform"]
    s = SAMPLERS.build("temperature", temperature=2)
    assert repr(s) == "Temperature(temperature=2.0, epoch_budget='sum', exclusive=True)"
    assert str(s) == "Temperature"
    for entry in SAMPLERS:
        assert entry.paper and entry.summary
