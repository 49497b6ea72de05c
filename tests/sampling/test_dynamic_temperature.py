"""The dynamic-temperature sampler's temperature: constant (Gottumukkala et al. 2020) or the
per-epoch linear schedule of Wang, Zhai & Hassan Awadalla (2020); state, log and resume."""

from __future__ import annotations

import json

import pytest
import torch

from mtlkit import HardSharing, Trainer
from mtlkit.architectures import mlp
from mtlkit.data.samplers import DynamicTemperature, size_probabilities
from mtlkit.training.schedules import Alternate

from ._data import combined

SIZES = {"a": 300, "b": 100}
REFS = {"a": 0.8, "b": 0.9}


def _linear(**kw):
    return DynamicTemperature(references=REFS, metric="accuracy", min_probability=0.05,
                              temperature_schedule="linear", initial_temperature=1.0,
                              temperature=3.0, warmup_epochs=2, **kw)


def _mix(q):
    """p = ε + (1 − Kε) q with ε = 0.05, K = 2."""
    return {t: 0.05 + 0.9 * v for t, v in q.items()}


def test_linear_temperature_follows_the_rule_over_a_sequence_of_validations():
    """T_k = T_0 + min(k, N)/N (T − T_0) with T_0 = 1, T = 3, N = 2: 1, 2, 3, 3, ... whatever the
    validation results; the gaps of the latest validation are sharpened by 1/T_k."""
    s = _linear()
    assert s.current_temperature == 1.0
    assert s.probabilities(SIZES) == pytest.approx(_mix({"a": 0.75, "b": 0.25}))  # ∝ n^{1/1}
    # epoch 0: gaps a (0.8 − 0.6)/0.8 = 0.25, b (0.9 − 0.45)/0.9 = 0.5; next epoch T_1 = 2
    s.on_epoch_end(0, {"val": {"a": {"accuracy": 0.6}, "b": {"accuracy": 0.45}}})
    assert s.current_temperature == 2.0
    z = 0.25 ** 0.5 + 0.5 ** 0.5
    assert s.probabilities(SIZES) == pytest.approx(_mix({"a": 0.5 / z, "b": 0.5 ** 0.5 / z}))
    # epoch 1 without validation: the gaps stay, the temperature still moves: T_2 = 3
    s.on_epoch_end(1, {"epoch": 2, "train_loss": {"a": 0.3, "b": 0.4}})
    assert s.current_temperature == 3.0
    z = 0.25 ** (1 / 3) + 0.5 ** (1 / 3)
    assert s.probabilities(SIZES) == pytest.approx(_mix({"a": 0.25 ** (1 / 3) / z, "b": 0.5 ** (1 / 3) / z}))
    # epoch 2: a reached its reference, b lags by 0.1; T stays at T = 3 from k = N on
    s.on_epoch_end(2, {"val": {"a": {"accuracy": 0.8}, "b": {"accuracy": 0.81}}})
    assert s.current_temperature == 3.0
    assert s.probabilities(SIZES) == pytest.approx({"a": 0.05, "b": 0.95})
    # epoch 3: nobody lags: back to the sizes, now at T = 3: p ∝ n^{1/3}
    s.on_epoch_end(3, {"val": {"a": {"accuracy": 0.9}, "b": {"accuracy": 0.95}}})
    z = 300 ** (1 / 3) + 100 ** (1 / 3)
    assert s.probabilities(SIZES) == pytest.approx(_mix({"a": 300 ** (1 / 3) / z, "b": 100 ** (1 / 3) / z}))
    # a second call for an epoch changes nothing
    s.on_epoch_end(3, {"val": {"a": {"accuracy": 0.1}, "b": {"accuracy": 0.1}}})
    assert s.current_temperature == 3.0 and s.epoch_summary()["gaps"] == {"a": 0.0, "b": 0.0}


def test_temperature_at_and_the_constant_default():
    s = _linear()
    assert [s.temperature_at(k) for k in range(5)] == [1.0, 2.0, 3.0, 3.0, 3.0]
    down = DynamicTemperature(temperature_schedule="linear", initial_temperature=5.0, temperature=1.0,
                              warmup_epochs=4)
    assert [down.temperature_at(k) for k in range(6)] == [5.0, 4.0, 3.0, 2.0, 1.0, 1.0]
    c = DynamicTemperature(references=REFS, metric="accuracy", temperature=0.5)
    for epoch in range(3):  # the default keeps T (Gottumukkala et al.'s sampler as before)
        c.on_epoch_end(epoch, {"val": {"a": {"accuracy": 0.5}, "b": {"accuracy": 0.5}}})
        assert c.current_temperature == 0.5 == c.temperature_at(epoch)


def test_epoch_summary_logs_the_temperature_the_epoch_was_drawn_at():
    s = _linear()
    g = torch.Generator().manual_seed(0)
    s.task_sequence(SIZES, 10, g)
    assert s.epoch_summary()["temperature"] == 1.0
    s.on_epoch_end(0, {})  # the next epoch's temperature is 2, the summary still tells epoch 0's
    assert s.current_temperature == 2.0 and s.epoch_summary()["temperature"] == 1.0
    s.task_sequence(SIZES, 10, g)
    assert s.epoch_summary()["temperature"] == 2.0
    assert s.epoch_summary()["probabilities"] == pytest.approx(_mix(size_probabilities(SIZES, 2.0)))


def test_state_dict_round_trip_continues_with_the_same_temperature():
    s = _linear()
    s.on_epoch_end(0, {"val": {"a": {"accuracy": 0.6}, "b": {"accuracy": 0.45}}})
    s.task_sequence(SIZES, 10, torch.Generator().manual_seed(0))
    state = json.loads(json.dumps(s.state_dict()))  # JSON-able, as a checkpoint holds it
    assert state["temperature"] == 2.0 and state["epoch_temperature"] == 2.0
    r = _linear()
    r.load_state_dict(state)
    assert r.current_temperature == 2.0 and r.epoch_summary() == s.epoch_summary()
    assert r.probabilities(SIZES) == s.probabilities(SIZES)
    for k in (1, 2):  # and both go on identically
        for x in (s, r):
            x.on_epoch_end(k, {"val": {"a": {"accuracy": 0.7}, "b": {"accuracy": 0.6}}})
        assert r.current_temperature == s.current_temperature == 3.0
        assert r.probabilities(SIZES) == s.probabilities(SIZES)
    # a checkpoint written before the temperature was state keeps the constructor's
    old = {k: v for k, v in state.items() if k not in ("temperature", "epoch_temperature")}
    o = _linear()
    o.load_state_dict(old)
    assert o.current_temperature == 1.0


def _trainer(sampler, ck=None, epochs=4):
    ds, tasks = combined((120, 60, 20))
    torch.manual_seed(0)
    t = Trainer(HardSharing(mlp(4, (8,)), tasks), tasks, sampler=sampler, schedule=Alternate(),
                epochs=epochs, batch_size=8, lr=1e-2, seed=0, progress=False, checkpoint_dir=ck,
                checkpoint_every=5 if ck is not None else None)
    return t, ds


def _linear_sampler(cls=DynamicTemperature):
    return cls(references={"t0": 0.99, "t1": 0.05, "t2": 0.95}, temperature_schedule="linear",
               initial_temperature=1.0, temperature=4.0, warmup_epochs=3)


def test_the_trainer_logs_each_epochs_temperature():
    t, ds = _trainer(_linear_sampler())
    hist = t.fit(ds)  # no validation data: the size distribution at T_k
    assert [r["sampling"]["temperature"] for r in hist.records] == [1.0, 2.0, 3.0, 4.0]
    for r in hist.records:
        assert r["sampling"]["probabilities"] == pytest.approx(size_probabilities(ds.sizes, r["sampling"]["temperature"]))


class _Crashing(DynamicTemperature):
    """Raises in the middle of epoch 3 once (a simulated crash)."""

    crash = True

    def batches(self, data, batch_size, generator, epoch):
        for i, b in enumerate(super().batches(data, batch_size, generator, epoch)):
            if self.crash and epoch == 2 and i == 7:
                raise KeyboardInterrupt
            yield b


def test_a_resumed_run_continues_with_the_same_temperature(tmp_path):
    ref, ds = _trainer(_linear_sampler(), tmp_path / "ref")
    ref.fit(ds, ds)
    t1, _ = _trainer(_linear_sampler(_Crashing), tmp_path / "run")
    with pytest.raises(KeyboardInterrupt):
        t1.fit(ds, ds)
    resumed = _linear_sampler(_Crashing)
    resumed.crash = False
    t2, _ = _trainer(resumed, tmp_path / "run")
    t2.fit(ds, ds, resume=True)
    assert t2.resumed_from is not None
    assert [r["sampling"]["temperature"] for r in t2.history.records] == [1.0, 2.0, 3.0, 4.0]
    for a, b in zip(ref.history.records, t2.history.records):
        assert a["sampling"] == b["sampling"] and a["train_loss"] == b["train_loss"]
    assert resumed.current_temperature == ref.sampler.current_temperature == 4.0


@pytest.mark.parametrize(("kw", "message"), [
    ({"temperature_schedule": "cosine"}, "The 'temperature_schedule' parameter of DynamicTemperature must be one of 'constant', 'linear'. Got 'cosine'."),
    ({"initial_temperature": 0.0}, "The 'initial_temperature' parameter of DynamicTemperature must be a positive float. Got 0.0."),
    ({"warmup_epochs": 0}, "The 'warmup_epochs' parameter of DynamicTemperature must be a positive integer. Got 0."),
    ({"warmup_epochs": 2.5}, "The 'warmup_epochs' parameter of DynamicTemperature must be a positive integer. Got 2.5."),
])
def test_bad_schedule_parameters_are_rejected(kw, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        DynamicTemperature(**kw)


def test_repr_shows_the_schedule():
    assert repr(DynamicTemperature()) == (
        "DynamicTemperature(references=None, metric=None, temperature=1.0, min_probability=0.0, "
        "epoch_budget='sum', exclusive=True, temperature_schedule='constant', "
        "initial_temperature=1.0, warmup_epochs=5)")
