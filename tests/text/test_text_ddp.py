"""2 processes × B/2 samples = 1 process × B samples for a text model: a table with a text
column (BPE fitted on the training split, token slots after a numeric column) read by a
Transformer trunk. Each rank trims its shard to the shard's longest sequence (per-batch padding),
so the check also says that the trimming never changes a gradient. Same helpers and tolerance as
tests/distributed and tests/multimodal/test_multimodal_ddp.py."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

pytest.importorskip("tokenizers")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests folder: its distributed helpers

from _text_helpers import toy_frame

from distributed import _harness as h
from mtlkit import Task

N, BATCH, EPOCHS, SEED = 48, 12, 2, 4
TRUNK = {"name": "transformer", "hidden": 8, "layers": 1, "heads": 2, "dropout": 0.0}  # no dropout: no RNG


def prepared():
    from mtlkit.data.tabular import TableOptions
    from mtlkit.run.data import prepare_table

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return prepare_table(toy_frame(N + 12, seed=3), [Task("pos", "binary"), Task("length", "regression")],
                             {"text": "text", "num": "numeric"}, fractions=(N / (N + 12), 12 / (N + 12), 0.0),
                             seed=0, options=TableOptions(text={"tokenizer": {"kind": "bpe", "vocab_size": 60},
                                                                "max_length": 10}))


def train(*, distributed: bool, **extra: Any):
    from mtlkit.architectures import build_model
    from mtlkit.training import Trainer, seed_everything
    from mtlkit.training.distributed import DistributedTrainer

    p = prepared()
    seed_everything(SEED)
    model = build_model({"name": "hard_sharing", "trunk": {**TRUNK, "input": p.input_module}}, p.tasks,
                        p.input_shape)
    cls: Any = DistributedTrainer if distributed else Trainer
    # SGD: the attention's key bias has a gradient of zero up to rounding (softmax ignores a score
    # added to every key), which Adam would blow up to steps of ~lr (see tests/distributed/_harness.py)
    t = cls(model, p.tasks, epochs=EPOCHS, batch_size=BATCH, lr=0.05, seed=SEED, progress=False,
            monitor_conflicts=False, optimizer="sgd", **extra)
    t.fit(p.train)
    return t


def flat_params(trainer: Any) -> np.ndarray:
    return torch.cat([q.detach().reshape(-1) for q in trainer.model.parameters()]).double().numpy()


def worker(rank: int, out: Path) -> None:
    from mtlkit.aggregation import MGDA

    np.save(out / f"equal-rank{rank}.npy", flat_params(train(distributed=True)))
    np.save(out / f"mgda-rank{rank}.npy", flat_params(train(distributed=True, aggregator=MGDA(),
                                                           level="representation")))


@pytest.fixture(scope="module")
def job_dir(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("ddp_text")
    h.run_job(worker, out)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("case", ["equal", "mgda"])
def test_two_processes_equal_one_process_with_a_text_trunk(job_dir, case):
    """Equal weights (DDP's averaged gradient) and MGDA on the pooled text representation (the
    global Gramian from the shards' Jacobians)."""
    from mtlkit.aggregation import MGDA

    extra: dict[str, Any] = {"aggregator": MGDA(), "level": "representation"} if case == "mgda" else {}
    ref = flat_params(train(distributed=False, **extra))
    p0, p1 = (np.load(job_dir / f"{case}-rank{r}.npy") for r in (0, 1))
    assert np.array_equal(p0, p1), "the ranks' parameters must be bit-identical"
    np.testing.assert_allclose(p0, ref, rtol=0, atol=1e-5)
    p = prepared()
    assert int(p.train.x.shape[0]) == N  # 2 ranks × 2 steps of 6 rows per epoch
    from mtlkit.architectures import build_model
    from mtlkit.training import seed_everything

    seed_everything(SEED)
    start = build_model({"name": "hard_sharing", "trunk": {**TRUNK, "input": p.input_module}}, p.tasks, p.input_shape)
    assert np.abs(ref - flat_params(type("T", (), {"model": start})())).max() > 1e-3  # it trained
