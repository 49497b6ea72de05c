"""``mtlkit train CONFIG --nproc-per-node 2`` (which runs ``torchrun ... -m mtlkit train
CONFIG``) trains the multi-task model and the baselines data-parallel, rank 0 alone prints and
writes the run folder, and the result equals the single-process run of the same config."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml


@pytest.fixture(params=["pcgrad", "batch_norm"])
def config(tmp_path, request):
    """The plain MLP with PCGrad, and an MLP with batch norm, PCGrad and SGD (its batch norm is
    synchronised by default, through PCGrad's per-task backward passes; the baselines' too)."""
    r = np.random.default_rng(0)
    n = 150
    df = pd.DataFrame(r.normal(size=(n, 5)), columns=[f"f{i}" for i in range(5)])
    df["a"] = (df["f0"] + df["f1"] > 0).astype(int)
    df["b"] = df["f0"] - 2 * df["f2"] + r.normal(0, 0.1, n)
    df.loc[::4, "b"] = np.nan
    df.to_csv(tmp_path / "d.csv", index=False)
    cfg = {"name": "ddp", "seed": 1, "data": {"path": str(tmp_path / "d.csv")},
           "tasks": [{"name": "a", "kind": "binary"}, {"name": "b", "kind": "regression"}],
           "model": {"trunk": {"name": "mlp", "hidden": [16, 8]}},
           "training": {"epochs": 2, "batch_size": 16, "optimizer": {"lr": 0.01}, "checkpoint_every": 4,
                        "aggregator": {"name": "pcgrad"}}}
    if request.param == "batch_norm":
        cfg["model"]["trunk"]["batch_norm"] = True
        cfg["training"]["optimizer"] = {"name": "sgd", "lr": 0.05}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_nproc_per_node_trains_like_one_process(tmp_path, config, request):
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-m", "mtlkit", "train", str(config), "--out", str(out),
                          "--nproc-per-node", "2", "--no-progress", "--threads", "1"],
                         env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count("Run folder:") == 1 and res.stdout.count("Training the multi-task model") == 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["environment"]["processes"] == 2
    assert summary["environment"]["sync_batch_norm"] is (request.node.callspec.params["config"] == "batch_norm")
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
    assert sorted(p.name for p in (out / "baselines").iterdir()) == ["a", "b"]

    from mtlkit.config import load_config
    from mtlkit.run import prepare_from_config, run

    cfg = load_config(config, [])
    single = run(cfg, prepare_from_config(cfg), out_dir=None, progress=False, report=False).summary
    assert single["environment"]["processes"] == 1
    for task, metrics in single["mtl"]["test"].items():
        for name, v in metrics.items():
            assert summary["mtl"]["test"][task][name] == pytest.approx(v, abs=1e-5), (task, name)
    for task, b in single["baselines"].items():
        for name, v in b["test"].items():
            assert summary["baselines"][task]["test"][name] == pytest.approx(v, abs=1e-5), (task, name)
