"""Clear errors instead of hangs, and the single-process behaviour of the distributed glue."""

from __future__ import annotations

import doctest
import itertools

import numpy as np
import pytest

from mtlkit.training import distributed
from mtlkit.training.distributed import DistributedTrainer, _shard, init_from_env, torchrun_command

from . import _harness as h


def test_dead_worker_gives_a_clear_error_not_a_hang(job_dir):
    msg = (job_dir / "rank0-error.txt").read_text()
    assert msg.startswith("Rank 0 of 2: the ") and "another worker probably crashed" in msg


def test_non_gramian_aggregator_rejected_at_representation_level(job_dir):
    for r in (0, 1):
        msg = (job_dir / f"rejected-rank{r}.txt").read_text()
        assert "GradDrop" in msg and "gramian_based" in msg and "level='parameters'" in msg


def test_shards_are_disjoint_and_cover_the_batch():
    for n in range(0, 12):
        for size in (1, 2, 3):
            parts = [_shard(n, r, size) for r in range(size)]
            assert parts[0][0] == 0 and parts[-1][1] == n
            assert all(a[1] == b[0] for a, b in itertools.pairwise(parts))
            assert max(hi - lo for lo, hi in parts) - min(hi - lo for lo, hi in parts) <= 1


def test_single_process_is_a_plain_trainer(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert init_from_env() is False
    a = h.flat_params(h.train("mgda", distributed=True))
    b = h.flat_params(h.train("mgda", distributed=False))
    np.testing.assert_array_equal(a, b)


def test_init_from_env_needs_the_rendezvous_variables(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    with pytest.raises(RuntimeError, match="MASTER_ADDR"):
        init_from_env()


def test_bad_parameters_are_rejected():
    with pytest.raises(ValueError, match=r"'use_ddp' parameter of DistributedTrainer must be a bool\. Got 1"):
        DistributedTrainer(h.make_model(), h.TASKS, use_ddp=1)
    with pytest.raises(ValueError, match=r"'nproc_per_node' parameter must be a positive int\. Got 0"):
        torchrun_command(0, ["train", "c.yaml"])
    with pytest.raises(ValueError, match="'timeout'"):
        distributed.timeout_seconds(-1)


def test_docstring_examples_run():
    result = doctest.testmod(distributed, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 5 and result.failed == 0
