"""benchmarks/tune.py still runs (``--quick`` on one dataset) and prints its table; nothing
here looks at a figure."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_tune_benchmark_quick_prints_a_table(tmp_path):
    pytest.importorskip("optuna")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "tune.py"), "--quick", "--datasets", "adult",
                          "--out", str(tmp_path / "runs")], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    rows = [line for line in res.stdout.splitlines() if line.startswith("| adult")]
    assert [r.split("|")[2].strip() for r in rows] == ["default", "tuned"], res.stdout[-2000:]
    assert (tmp_path / "runs" / "adult" / "tuned" / "best" / "seeds.json").exists()
