"""Distillation and TAG affinity run under torchrun like any training (issue 15): a
DistillationTrainer / AffinityTrainer built with ``from_trainer`` from a DistributedTrainer
keeps its process group's communication object."""

from __future__ import annotations

import numpy as np

from . import _harness as h


def test_distillation_in_two_processes_equals_one_process(job_dir):
    ref = h.flat_params(h.hooked("distill", distributed=False))
    p0, p1 = (np.load(job_dir / f"hook-distill-rank{r}.npy") for r in (0, 1))
    assert np.array_equal(p0, p1)
    np.testing.assert_allclose(p0, ref, rtol=0, atol=1e-5)
    assert np.abs(ref - _plain()).max() > 1e-3  # the teacher term changed the training


def test_affinity_in_two_processes_agrees_across_ranks_and_leaves_training_unchanged(job_dir):
    m0, m1 = (np.load(job_dir / f"hook-affinity-matrix-rank{r}.npy") for r in (0, 1))
    assert np.array_equal(m0, m1)  # the look-ahead is averaged over ranks
    assert m0.shape == (3, 3) and np.isfinite(m0).all()
    # measuring does not change what is trained: the same parameters as plain training
    p0 = np.load(job_dir / "hook-affinity-rank0.npy")
    np.testing.assert_allclose(p0, _plain(), rtol=0, atol=1e-5)
    single = h.hooked("affinity", distributed=False)
    assert single.affinity_steps == h.EPOCHS * h.N // h.BATCH


def _plain() -> np.ndarray:
    from mtlkit.training import Trainer

    t = Trainer(h.make_model(), h.TASKS, epochs=h.EPOCHS, batch_size=h.BATCH, lr=0.01, seed=h.SEED,
                progress=False)
    t.fit(h.make_data(missing=False))
    return h.flat_params(t)
