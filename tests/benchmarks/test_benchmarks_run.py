"""The benchmark scripts still run (smallest settings) and print their tables. Nothing here
looks at a time: the figures are for people to read (benchmarks/README.md), the suite only
keeps the scripts from rotting when an API they use changes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: script and its smallest arguments ({tmp}: a scratch folder)
CASES = {
    "overhead": ["--quick", "--threads", "1"],
    "weighting": ["--quick", "--threads", "1"],
    "step_time": ["--quick", "--ks", "2", "--no-lenet", "--no-torchjd", "--no-memory", "--repeats", "1"],
    "distributed": ["--steps", "6", "--warmup", "2", "--repeats", "1", "--ks", "2",
                    "--methods", "equal", "equal_bn"],
    "report_time": ["--only", "demo", "--repeats", "1", "--runs-dir", "{tmp}/runs"],
    "peers": ["--quick", "--ks", "4", "--methods", "mean", "upgrad", "--no-torchjd"],
    "startup": ["--runs", "1"],
    "rl": ["--quick", "--budgets", "500", "--episodes", "1", "--threads", "1"],
    "tabular": ["--quick", "--seeds", "1", "--epochs", "1"],
    "recommenders": ["--quick", "--archs", "esmm", "aitm"],
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_benchmark_script_runs_and_prints_a_table(name, tmp_path):
    args = [a.format(tmp=tmp_path) for a in CASES[name]]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / f"{name}.py"), *args], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    if name == "overhead":  # a plain-text table: one line per model with its ratio
        rows = [line for line in res.stdout.splitlines() if line.split()[:1] in (["mlp"], ["lenet"])]
        assert len(rows) == 2 and all(float(r.split()[-1]) > 0 for r in rows), res.stdout[-2000:]
        return
    rows = [line for line in res.stdout.splitlines() if line.startswith("|") and not line.startswith("|--")]
    assert len(rows) >= 2, res.stdout[-2000:]  # a header and at least one row of figures
