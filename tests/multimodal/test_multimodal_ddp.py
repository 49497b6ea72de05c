"""2 processes × B/2 samples = 1 process × B samples for a two-input (dict batch) model: the
batches are sharded per named input, and the parameters after training agree to rounding."""

from __future__ import annotations

import numpy as np
import pytest

from distributed import _harness as h

from . import _ddp


@pytest.fixture(scope="module")
def job_dir(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("ddp_multimodal")
    h.run_job(_ddp.worker, out)
    return out


@pytest.mark.slow
def test_two_processes_equal_one_process_with_two_inputs(job_dir):
    """MGDA on the fused representation: the global Gramian from the shards' representation
    Jacobians, the batch norm of the series encoder synchronised, task b's counts per shard."""
    from mtlkit.aggregation import MGDA

    trainer = _ddp.train(distributed=False, aggregator=MGDA(), level="representation")
    ref = _ddp.flat_params(trainer)
    p0, p1 = (np.load(job_dir / f"mgda-rank{r}.npy") for r in (0, 1))
    assert np.array_equal(p0, p1), "the ranks' parameters must be bit-identical"
    np.testing.assert_allclose(p0, ref, rtol=0, atol=1e-5)
    start = _ddp.flat_params(type("T", (), {"model": _ddp.make_model()})())
    assert np.abs(ref - start).max() > 1e-3  # it trained
