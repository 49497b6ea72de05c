"""Every example the README and docs point to still runs: each YAML config under examples/
trains for one epoch on its real built-in dataset (through the same ``run`` as ``mtlkit
train``), and each Python example script runs with its quick settings and prints its result.
This keeps the examples from rotting when an API or a config key changes."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mtlkit.config import load_config

ROOT = Path(__file__).resolve().parents[2]
# the RL example (`mtlkit rl`) is validated and trained by tests/rl/test_example.py
CONFIGS = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "examples").rglob("*.yaml")
                 if not p.relative_to(ROOT).as_posix().startswith("examples/rl/"))


def test_there_are_example_configs():
    assert len(CONFIGS) >= 15 and "examples/yeast.yaml" in CONFIGS


@pytest.mark.slow
@pytest.mark.parametrize("path", CONFIGS)
def test_example_config_trains_one_epoch(path):
    from mtlkit.run import prepare_from_config, run

    cfg = load_config(ROOT / path, ["training.epochs=1", "baselines=false"])
    prepared = prepare_from_config(cfg)
    summary = run(cfg, prepared, out_dir=None, progress=False, report=False).summary
    tested = summary["mtl"]["test"]
    assert sorted(tested) == sorted(t.name for t in prepared.tasks), path
    for task, metrics in tested.items():
        assert metrics and all(math.isfinite(v) for v in metrics.values()), (path, task, metrics)


#: script, quick arguments, a line its output must contain
SCRIPTS = [
    ("examples/architectures/adashare_two_phase.py", [], "phase 2 (retrained with the fixed policy) test accuracy"),
    ("examples/architectures/siamese_mnist.py", ["--pairs", "400", "--epochs", "1"], "verification ROC AUC"),
    ("examples/yeast_grouping/distill_yeast.py", ["--quick"], "| student, annealed α |"),
    ("examples/yeast_grouping/run_yeast_grouping.py", ["--quick"], "Groups chosen"),
    ("examples/yeast_sampling/run.py", ["--quick", "--out", "{tmp}/results.json"], "wrote "),
]


@pytest.mark.slow
@pytest.mark.parametrize("script,args,expect", SCRIPTS, ids=[Path(s).stem for s, _, _ in SCRIPTS])
def test_example_script_runs(tmp_path, script, args, expect):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    res = subprocess.run([sys.executable, str(ROOT / script), *[a.format(tmp=tmp_path) for a in args]],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert expect in res.stdout, res.stdout[-2000:]
