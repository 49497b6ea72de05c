"""Every architecture runs end to end from YAML through ``mtlkit train`` with a gradient method,
and from Python through ``mtlkit.fit`` with Equal weighting (siamese, which reads pairs, has
its own end-to-end tests in test_siamese_contrastive.py)."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from typer.testing import CliRunner

from mtlkit import Task, fit
from mtlkit.cli import get_app
from mtlkit.run import load_model

runner = CliRunner()
TRUNK = {"name": "mlp", "hidden": [16, 12, 8]}
# the parameters each architecture takes on a 3-block MLP, and the gradient method it runs with
# (at the representation level where the architecture has one shared representation)
CASES = {
    "hard_sharing": ({"split_at": 2}, "upgrad", "representation"),
    "soft_sharing": ({"penalty": "l2", "strength": 0.01}, "pcgrad", "parameters"),
    "cross_stitch": ({"stitch_after": [0, 1]}, "cagrad", "parameters"),
    "mmoe": ({"num_experts": 3}, "mgda", "parameters"),
    "ple": ({"levels": 2}, "pcgrad", "parameters"),
    "adashare": ({"retrain": True}, "nash_mtl", "parameters"),
    "adversarial": ({"orthogonality_weight": 0.05}, "imtl_g", "parameters"),
    "fusion": ({"fuse_blocks": [0, 1, 2], "fusion_dim": 8}, "upgrad", "representation"),
    "deep_supervision": ({"attach": {"y2": 1}}, "pcgrad", "parameters"),
}


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("arch_e2e")
    r = np.random.default_rng(0)
    df = pd.DataFrame(r.normal(size=(240, 6)), columns=list("abcdef"))
    df["y1"] = (df["a"] + df["b"] > 0).astype(int)
    df["y2"] = df["a"] - df["c"]
    df.to_csv(tmp / "data.csv", index=False)
    return tmp, df


@pytest.mark.parametrize("arch", sorted(CASES))
def test_yaml_cli_run_with_a_gradient_method(arch, table):
    tmp, _ = table
    params, method, level = CASES[arch]
    cfg = tmp / f"{arch}.yaml"
    spec = {"name": arch, "seed": 0,
            "data": {"path": str(tmp / "data.csv"), "features": list("abcdef")},
            "tasks": [{"name": "y1", "kind": "binary"}, {"name": "y2", "kind": "regression"}],
            "model": {"trunk": TRUNK, "architecture": {"name": arch, **params}},
            "training": {"epochs": 2, "batch_size": 64, "aggregator": {"name": method}, "level": level},
            "baselines": False}
    cfg.write_text(f"# mtlkit train {arch}.yaml\n" + yaml.safe_dump(spec))
    out = tmp / f"run_{arch}"
    res = runner.invoke(get_app(), ["train", str(cfg), "--out", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    s = json.loads((out / "summary.json").read_text())
    # soft sharing has no shared parameters: the aggregator is degenerate, and the user is told
    # (the warning is kept in the summary whether or not the console showed it)
    told = any("has no shared parameters" in w["message"] for w in s["warnings"])
    assert told == (arch == "soft_sharing"), s["warnings"]
    assert np.isfinite(s["mtl"]["test"]["y1"]["roc_auc"]) and np.isfinite(s["mtl"]["test"]["y2"]["mae"])
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 2 and all(np.isfinite(v) for r in records for v in r["train_loss"].values())
    model, meta = load_model(out)
    assert meta["architecture"]["name"] == arch
    assert set(model(torch.zeros(3, 6))) == {"y1", "y2"}


@pytest.mark.parametrize("arch", sorted(CASES))
def test_python_fit_with_equal_weighting(arch, table):
    _, df = table
    params = CASES[arch][0]
    res = fit(df, [Task("y1", "binary"), Task("y2", "regression")], features=list("abcdef"),
              trunk=TRUNK, architecture=arch, architecture_params=params,
              weighting="equal", epochs=4, batch_size=32, lr=0.01, baselines=False)
    losses = [sum(r["train_loss"].values()) for r in res.trainer.history.records]
    assert np.isfinite(losses).all() and losses[-1] < losses[0], (arch, losses)
    assert res.trainer.history.records[-1]["weights"] == {"y1": 1.0, "y2": 1.0}
    assert set(res.summary["mtl"]["test"]) == {"y1", "y2"}
