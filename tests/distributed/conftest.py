"""One 2-process gloo job for the whole distributed suite (spawning processes costs more than
the training itself); the tests read what its workers saved."""

from __future__ import annotations

from pathlib import Path

import pytest

from . import _harness as h

#: the cases trained in 2 processes and compared with 1 process
CASES = ["equal", "equal_no_ddp", "equal_conflicts", "mmoe_conflicts", "uncertainty", "gradnorm", "mgda", "pcgrad", "cagrad",
         "mgda_representation", "cagrad_representation", "nash_mtl_representation", "sampler",
         "bn_equal", "bn_mgda_representation", "bn_pcgrad", "bn_mgda_sparse", "bn_gradnorm",
         "bn_equal_unsynced"]


@pytest.fixture(scope="session")
def job_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ddp_job")
    h.run_job(h.job_worker, out, CASES)
    return out
