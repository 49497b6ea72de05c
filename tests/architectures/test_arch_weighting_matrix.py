"""Every architecture trains with every registered loss weighting and aggregator (one short epoch on a tiny
MLP): the loss stays finite and every shared parameter moves, or the pair is refused with a
message naming what is missing (e.g. a shared representation)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from _arch_builders import build

from mtlkit import Task, Trainer, from_arrays
from mtlkit._registry import AGGREGATORS, WEIGHTINGS

ARCHS = ["hard_sharing", "soft_sharing", "cross_stitch", "mmoe", "ple", "adashare", "adversarial", "fusion",
         "deep_supervision"]
TASKS = [Task("a", "binary"), Task("b", "regression")]


@pytest.fixture(scope="module")
def data():
    r = np.random.default_rng(0)
    x = r.normal(size=(96, 5)).astype("float32")
    return from_arrays(x, {"a": (x[:, 0] > 0).astype(float), "b": x[:, 1] - x[:, 2]}, TASKS)


def _model(arch):
    torch.manual_seed(0)
    if arch == "hard_sharing":
        from mtlkit.architectures import build_model

        return build_model({"name": "hard_sharing", "trunk": {"name": "mlp", "hidden": [8, 6]}}, TASKS, (5,))
    return build(arch, "mlp", tasks=TASKS)


@pytest.mark.parametrize("weighting", WEIGHTINGS.names())
@pytest.mark.parametrize("arch", ARCHS)
def test_architecture_trains_with_weighting(arch, weighting, data):
    model = _model(arch)
    shared = [p for p in model.shared_parameters()]
    before = [p.detach().clone() for p in shared]
    try:
        trainer = Trainer(model, TASKS, weighting=WEIGHTINGS.build(weighting), epochs=1, batch_size=32, lr=1e-2,
                          progress=False, seed=0)
    except ValueError as exc:  # refused when built, never at the first step, saying why
        # soft sharing has no shared layer, so GradNorm and DB-MTL have nothing to measure; GREAT
        # needs the one representation that every head reads
        if weighting == "great":
            assert not model.has_representation and "has_representation is False" in str(exc), (arch, exc)
        else:
            assert arch == "soft_sharing" and not shared, (arch, weighting, exc)
            assert "no shared parameters" in str(exc) and "SoftSharing" in str(exc), exc
        return
    # a bilevel weighting (needs_validation_batch) learns from validation batches: give it some
    val = data if WEIGHTINGS.get(weighting).needs_validation_batch else None
    history = trainer.fit(data, val)
    losses = history.records[-1]["train_loss"]
    assert all(np.isfinite(v) for v in losses.values()), (arch, weighting, losses)
    moved = [not torch.equal(b, p.detach()) for b, p in zip(before, shared)]
    assert not shared or any(moved), (arch, weighting)


@pytest.mark.parametrize("aggregator", AGGREGATORS.names())
@pytest.mark.parametrize("arch", ARCHS)
def test_architecture_trains_with_aggregator(arch, aggregator, data):
    """Parameter level for every architecture; representation level where there is one."""
    for level in ("parameters", "representation"):
        model = _model(arch)
        if level == "representation" and not model.has_representation:
            with pytest.raises(ValueError, match="representation"):
                Trainer(model, TASKS, aggregator=AGGREGATORS.build(aggregator), level=level, epochs=1,
                        progress=False).fit(data)
            continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            trainer = Trainer(model, TASKS, aggregator=AGGREGATORS.build(aggregator), level=level, epochs=1,
                              batch_size=32, lr=1e-2, progress=False, seed=0)
        # no shared parameters (soft sharing): the aggregator has nothing to combine, and says so
        degenerate = any("has no shared parameters" in str(w.message) for w in caught)
        assert degenerate == (level == "parameters" and not any(True for _ in model.shared_parameters())), arch
        losses = trainer.fit(data).records[-1]["train_loss"]
        assert all(np.isfinite(v) for v in losses.values()), (arch, aggregator, level, losses)
