"""2 processes × B/2 samples = 1 process × B samples for ESMM on ID features (a click ->
conversion funnel with entire-space labels): the parameters after training agree to float
rounding, and the two ranks hold identical parameters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mtlkit import Task

from . import _harness as h

TASKS = [Task("click", "binary"), Task("buy", "binary", given="click")]
N, BATCH, EPOCHS, SEED = 48, 16, 2, 5
SPEC = {"name": "mlp", "hidden": [8],
        "input": {"dense": 1, "fields": [{"name": "user", "vocab": 7, "dim": 3}, {"name": "item", "vocab": 9, "dim": 3},
                                         {"name": "hist", "share": "item", "dim": 3, "length": 2}]}}


def make_data():
    from mtlkit.data import from_arrays

    r = np.random.default_rng(1)
    x = np.zeros((N, 5), dtype="float32")
    x[:, 0] = r.normal(size=N)
    x[:, 1] = r.integers(1, 7, N)
    x[:, 2] = r.integers(1, 9, N)
    x[:, 3:5] = r.integers(-1, 9, (N, 2))
    click = (x[:, 0] + 0.3 * (x[:, 2] > 4) + 0.3 * r.normal(size=N) > 0).astype(float)
    buy = click * (r.random(N) < 0.5)
    return from_arrays(x, {"click": click, "buy": buy}, TASKS)


def train(*, distributed: bool):
    from mtlkit.architectures import build_model
    from mtlkit.training import Trainer, seed_everything
    from mtlkit.training.distributed import DistributedTrainer

    seed_everything(SEED)
    model = build_model({"name": "esmm", "trunk": SPEC, "tower_hidden": [4]}, TASKS, (5,))
    cls = DistributedTrainer if distributed else Trainer
    t = cls(model, TASKS, epochs=EPOCHS, batch_size=BATCH, lr=0.01, seed=SEED, progress=False,
            monitor_conflicts=False)
    t.fit(make_data())
    return t


def flat(trainer) -> np.ndarray:
    return torch.cat([p.detach().reshape(-1) for p in trainer.model.parameters()]).double().numpy()


def esmm_worker(rank: int, out: Path) -> None:
    np.save(out / f"esmm-rank{rank}.npy", flat(train(distributed=True)))


@pytest.mark.slow
def test_esmm_two_processes_equal_one_process(tmp_path):
    h.run_job(esmm_worker, tmp_path)
    p0, p1 = (np.load(tmp_path / f"esmm-rank{r}.npy") for r in (0, 1))
    assert np.array_equal(p0, p1), "the ranks' parameters must be bit-identical"
    ref = flat(train(distributed=False))
    np.testing.assert_allclose(p0, ref, rtol=0, atol=1e-5)
    assert np.abs(ref - flat_untrained()).max() > 1e-3  # the training moved the parameters


def flat_untrained() -> np.ndarray:
    from mtlkit.architectures import build_model
    from mtlkit.training import seed_everything

    seed_everything(SEED)
    m = build_model({"name": "esmm", "trunk": SPEC, "tower_hidden": [4]}, TASKS, (5,))
    return torch.cat([p.detach().reshape(-1) for p in m.parameters()]).double().numpy()
