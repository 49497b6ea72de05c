"""The trainer defects of issue 15, each checked as it failed before the redesign:
task weights dropped by a named weighting, settings validated differently from the YAML path,
the step unusable before ``fit``, a second ``fit`` training nothing, a finished run that could
not be extended on resume; and the layout rules (one settings dataclass for both paths)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np
import pytest
import torch

from mtlkit import HardSharing, Task, Trainer, from_arrays
from mtlkit.aggregation import MGDA, UPGrad
from mtlkit.architectures import mlp
from mtlkit.config import ConfigError, TrainingConfig, parse_config
from mtlkit.training import TrainerSettings
from mtlkit.weighting import DWA, Equal, Static


def _data(n: int = 64):
    r = np.random.default_rng(0)
    x = r.normal(size=(n, 4)).astype("float32")
    tasks = [Task("a", "regression"), Task("b", "regression", weight=0.1)]
    labels = {"a": x[:, 0] + 0.1 * r.normal(size=n), "b": 3 * x[:, 1]}
    return from_arrays(x, labels, tasks), tasks


def _trainer(tasks, **kw):
    torch.manual_seed(0)
    return Trainer(HardSharing(mlp(4, (8,)), tasks), tasks, **{"batch_size": 16, "progress": False, "seed": 0, **kw})


# ---------------------------------------------------------------------------- defect 1
@pytest.mark.parametrize("weighting", [None, Equal(), Static(), DWA()], ids=str)
def test_task_weight_is_the_prior_for_every_weighting(weighting):
    data, tasks = _data()
    t = _trainer(tasks, weighting=weighting, epochs=2)
    t.fit(data)
    w = t.history.records[-1]["weights"]
    if isinstance(weighting, DWA):  # DWA's own weights (mean K) times the prior
        assert w["b"] < 0.2 and w["a"] > 0.5
    else:
        assert w == pytest.approx({"a": 1.0, "b": 0.1})


def test_task_weight_prior_scales_the_gradient_exactly():
    data, tasks = _data()
    t = _trainer(tasks, weighting=Equal(), epochs=1)
    t.setup(data)
    batch = next(iter(t._batches(data, 0)))
    losses, weights, _ = t.train_step(batch)
    # objective Σ λ_k L_k with λ = (1, 0.1): the logged weights are the effective λ_k w_k
    assert weights.tolist() == pytest.approx([1.0, 0.1])


# ---------------------------------------------------------------------------- settings
@pytest.mark.parametrize(("key", "value"), [("clip_grad_norm", -1.0), ("patience", 0), ("checkpoint_every", 0),
                                            ("epochs", 0), ("batch_size", 0), ("keep_checkpoints", 0),
                                            ("level", "params"), ("max_nonfinite_steps", 0)])
def test_python_and_yaml_reject_the_same_settings(key, value):
    data, tasks = _data()
    with pytest.raises(ValueError, match=f"'{key}'"):
        _trainer(tasks, **{key: value})
    with pytest.raises(ValueError, match=f"'{key}'"):
        TrainerSettings(**{key: value})
    cfg = {"data": {"dataset": "x"}, "training": {key: value}}
    with pytest.raises(ConfigError, match=rf"training\.{key}"):
        parse_config(cfg)


def test_the_yaml_training_section_is_generated_from_the_settings():
    yaml_keys = set(TrainingConfig.model_fields)
    hidden = {f.name for f in dataclasses.fields(TrainerSettings) if not f.metadata.get("yaml", True)}
    settings = {f.name for f in dataclasses.fields(TrainerSettings)}
    assert settings - hidden <= yaml_keys
    assert yaml_keys - settings == {"weighting", "aggregator", "schedule"}  # optimizer: nested there
    s = parse_config({"data": {"dataset": "x"}, "training": {"epochs": 3, "optimizer": {"lr": 0.01}}}
                     ).training.to_settings(seed=4)
    assert (s.epochs, s.lr, s.seed, s.monitor_conflicts) == (3, 0.01, 4, True)


def test_unknown_trainer_option_says_did_you_mean():
    _, tasks = _data()
    with pytest.raises(TypeError, match="did you mean 'patience'"):
        _trainer(tasks, patiance=3)


# ---------------------------------------------------------------------------- defect 3
@pytest.mark.parametrize("aggregator", [MGDA(), UPGrad()], ids=str)
def test_train_step_works_before_fit(aggregator):
    data, tasks = _data()
    t = _trainer(tasks, aggregator=aggregator)
    batch = data.batch(torch.arange(16))
    before = [p.detach().clone() for p in t.model.parameters()]
    res = t.train_step(batch)
    assert not res.skipped and res.aggregator_weights is not None
    assert any(not torch.equal(a, p) for a, p in zip(before, t.model.parameters()))


def test_second_fit_is_a_clear_error_and_raising_epochs_continues():
    data, tasks = _data()
    t = _trainer(tasks, epochs=2)
    t.fit(data)
    steps = t.step_count
    with pytest.raises(RuntimeError, match=r"already trained 2 epoch\(s\).*trainer.epochs = 4"):
        t.fit(data)  # used to return at once, having trained nothing
    t.epochs = 4
    t.fit(data)
    assert [r["epoch"] for r in t.history.records] == [1, 2, 3, 4]
    assert t.step_count == 2 * steps and t.epoch == 4


# ---------------------------------------------------------------------------- defect 4 (trainer side)
def test_resume_extends_a_finished_run(tmp_path):
    data, tasks = _data()
    a = _trainer(tasks, epochs=2, checkpoint_dir=tmp_path / "ck", run_dir=tmp_path)
    a.fit(data)
    b = _trainer(tasks, epochs=4, checkpoint_dir=tmp_path / "ck", run_dir=tmp_path)
    b.fit(data, resume=True)
    assert b.extended_from == 2
    assert [r["epoch"] for r in b.history.records] == [1, 2, 3, 4]
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 4
    # the same as training 4 epochs at once
    c = _trainer(tasks, epochs=4)
    c.fit(data)
    for p, q in zip(b.model.parameters(), c.model.parameters()):
        torch.testing.assert_close(p, q)


# ---------------------------------------------------------------------------- validation batches
def test_a_weighting_can_request_a_validation_batch_per_step():
    from mtlkit.weighting._base import WeightingResult

    class Probe(Equal):
        needs_validation_batch = True
        seen: ClassVar[list] = []

        def forward(self, losses, ctx):
            x, ys, _ = ctx.validation_batch
            plain = ctx.validation_losses()
            moved = {k: v + 1.0 for k, v in ctx.model.named_parameters()}
            shifted = ctx.validation_losses(moved)
            self.seen.append((x.shape[0], plain.shape, bool((shifted != plain).any())))
            return WeightingResult(losses.sum(), torch.ones_like(losses))

    data, tasks = _data()
    val, _ = _data(n=20)
    t = _trainer(tasks, weighting=Probe(), epochs=1)
    with pytest.raises(ValueError, match="needs_validation_batch"):
        t.fit(data)
    t.fit(data, val)
    assert Probe.seen and all(s == (16, torch.Size([2]), True) for s in Probe.seen)


def test_validation_data_without_a_task_is_a_clear_error():
    """Issue 20, item 10: it was a bare KeyError: 'b'."""
    data, tasks = _data()
    other = from_arrays(np.zeros((8, 4), "float32"), {"a": np.zeros(8)}, [tasks[0]])
    t = _trainer(tasks, epochs=1)
    with pytest.raises(ValueError, match=r"validation data has no labels for task\(s\) \['b'\]"):
        t.fit(data, other)
