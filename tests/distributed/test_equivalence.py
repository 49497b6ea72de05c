"""2 processes × B/2 samples = 1 process × B samples (same seed): the parameters after every
step agree to float rounding, for loss-space weightings (Equal, Uncertainty, GradNorm) and
gradient-space aggregators (MGDA, PCGrad with its seeded order, CAGrad) at parameter level,
Gramian-based aggregators at representation level, and a task sampler. Task b lacks labels on a
third of the rows, so the shards' label counts differ and the count-weighted loss reduction is
exercised."""

from __future__ import annotations

import json

import numpy as np
import pytest

from . import _harness as h
from .conftest import CASES


@pytest.fixture(scope="module")
def equal_reference() -> np.ndarray:
    return h.flat_params(h.train("equal", distributed=False))


@pytest.mark.parametrize("case", [c for c in CASES if c != "bn_equal_unsynced"])
def test_two_processes_equal_one_process(job_dir, equal_reference, case):
    ref = h.train(case, distributed=False)
    ref_params = h.flat_params(ref)
    p0, p1 = (np.load(job_dir / f"{case}-rank{r}.npy") for r in (0, 1))
    assert np.array_equal(p0, p1), "the ranks' parameters must be bit-identical"
    np.testing.assert_allclose(p0, ref_params, rtol=0, atol=1e-5)
    assert (job_dir / f"{case}-patched-rank0.txt").read_text() == "0"
    if case not in ("equal", "equal_no_ddp", "equal_conflicts") and not case.startswith(("bn_", "mmoe_")):
        # the method changed the training
        assert np.abs(ref_params[:equal_reference.size] - equal_reference).max() > 1e-3
    # the logged epoch records are global: the same numbers as one process logs
    recs = json.loads((job_dir / f"{case}-rank0.json").read_text())
    assert recs == json.loads((job_dir / f"{case}-rank1.json").read_text())
    assert len(recs) == len(ref.history.records) == h.EPOCHS
    for mine, theirs in zip(recs, ref.history.records):
        for key in ("train_loss", "weights", "aggregator_weights"):
            assert (key in mine) == (key in theirs)
            if key in mine:  # e.g. a wrong Gramian scaling changes Nash-MTL's weights
                for task, v in theirs[key].items():
                    assert mine[key][task] == pytest.approx(v, abs=1e-5), (key, task)
        assert ("conflicts" in mine) == ("conflicts" in theirs) == case.endswith("_conflicts")
        if "conflicts" in theirs:
            assert mine["conflicts"]["measured_on"] == theirs["conflicts"]["measured_on"]
            assert mine["conflicts"]["mean_cosine"] == pytest.approx(theirs["conflicts"]["mean_cosine"], abs=1e-5)
            for task, v in theirs["conflicts"]["norm_ratio"].items():
                assert mine["conflicts"]["norm_ratio"][task] == pytest.approx(v, abs=1e-5)


def test_batch_norm_with_shard_statistics_differs_from_one_process(job_dir):
    """The contrast that makes the "bn_" cases above meaningful: with sync_batch_norm=False
    each rank normalises its 8 rows with their own mean and variance, and two processes no
    longer compute what one does."""
    ref = h.flat_params(h.train("bn_equal", distributed=False))
    unsynced = np.load(job_dir / "bn_equal_unsynced-rank0.npy")
    synced = np.load(job_dir / "bn_equal-rank0.npy")
    assert np.abs(synced - ref).max() < 1e-5 < 1e-3 < np.abs(unsynced - ref).max()
    comm = json.loads((job_dir / "bn_equal-comm-rank0.json").read_text())
    layers, steps = 2, h.EPOCHS * (h.N // h.BATCH)  # the MLP trunk's two BatchNorm1d
    assert comm["calls"]["batch-norm statistics"] == layers * steps
    assert comm["calls"]["batch-norm gradients"] == layers * steps


def test_communication_is_bucketed(job_dir):
    """One all-reduce of the losses per step; parameter level: one Jacobian all-reduce per step
    (K × P_shared floats); representation level: one K × K Gramian all-reduce per step."""
    steps = h.EPOCHS * (h.N // h.BATCH)
    k, shared = len(h.TASKS), sum(p.numel() for p in h.make_model().shared_parameters())
    mgda = json.loads((job_dir / "mgda-comm-rank0.json").read_text())
    assert mgda["calls"]["losses"] == steps and mgda["bytes"]["losses"] == steps * 2 * k * 8
    assert mgda["calls"]["jacobian"] == steps and mgda["bytes"]["jacobian"] == steps * k * shared * 4
    assert mgda["calls"]["gradients"] == steps  # the heads: one flattened bucket
    rep = json.loads((job_dir / "mgda_representation-comm-rank0.json").read_text())
    assert rep["calls"]["gramian"] == steps and rep["bytes"]["gramian"] == steps * k * k * 4
    assert "jacobian" not in rep["calls"]
    equal = json.loads((job_dir / "equal-comm-rank0.json").read_text())
    assert "jacobian" not in equal["calls"] and "gradients" not in equal["calls"]  # DDP's own all-reduce
