"""The demo ends with the verdict per task and, where multi-task learning does not help,
says so and gives the ``mtlkit tune`` command with a config it wrote; the verdict sentences
and the plain-text table over seeds."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

import mtlkit.cli.demo as demo_mod
from mtlkit.cli import get_app
from mtlkit.config import parse_config
from mtlkit.report.seeds import seeds_table, verdict_summary

runner = CliRunner()


def _record(verdicts: dict[str, str], n: int = 3) -> dict:
    return {"n": n, "seeds": list(range(n)), "confidence": 0.95, "delta_m": {"n": n, "mean": 1.0},
            "metrics": {}, "verdicts": {t: {"verdict": v, "main_metric": "accuracy",
                                            "delta_m_t": {"n": n, "mean": 1.0, "sd": 0.5, "ci_low": 0.2,
                                                          "ci_high": 1.8}, "p": 0.04}
                                        for t, v in verdicts.items()}}


def test_verdict_summary_names_tasks_and_points_to_tune_only_when_nothing_helps():
    helps = verdict_summary(_record({"a": "multi-task helps", "b": "no evidence at this budget"}))
    assert helps[0] == "Multi-task helps: a."
    assert not any("mtlkit tune" in line for line in helps)
    none = verdict_summary(_record({"a": "multi-task hurts", "b": "no evidence at this budget"}), "x.yaml")
    assert "Multi-task hurts: a." in none
    assert any("mtlkit affinity x.yaml" in line for line in none)  # negative transfer: try groups
    assert none[-1].startswith("Multi-task learning does not help any task at this budget (3 seeds)")
    assert none[-1].endswith("mtlkit tune x.yaml --trials 20")
    assert verdict_summary({"n": 1, "verdicts": {}}) == []


def test_seeds_table_ends_with_the_verdict():
    text = seeds_table(_record({"a": "no evidence at this budget"}, n=1), config="c.yaml")
    assert "Over 1 seed [0]" in text and "1 seeds" not in text
    lines = text.splitlines()
    assert lines[-3] == "Verdict per task:"
    assert lines[-1].strip().endswith("mtlkit tune c.yaml --trials 20")


def test_single_run_says_no_verdict_and_when_single_task_is_better(tmp_path):
    lines = demo_mod.single_run_verdict({"delta_m": 0.9}, tmp_path / "t.yaml")
    assert "none from one seed" in lines[0]
    assert "Δm +0.9 %" in lines[1] and f"mtlkit tune {tmp_path / 't.yaml'} --trials 20" in lines[1]
    assert len(demo_mod.single_run_verdict({"delta_m": -2.0}, tmp_path / "t.yaml")) == 1


def test_the_tune_config_the_demo_writes_is_a_valid_config_with_a_search(tmp_path):
    path = demo_mod.write_tune_config(True, tmp_path / "demo")
    assert path == tmp_path / "demo-tune.yaml"
    text = path.read_text(encoding="utf-8")
    assert text.startswith(f"# mtlkit tune {path} --trials 20")
    cfg = parse_config(yaml.safe_load(text))
    assert cfg.search and set(cfg.search) == set(demo_mod.DEMO_SEARCH)


@pytest.fixture
def tiny_demo(tmp_path, monkeypatch):
    """The demo's command with a tiny table instead of MultiMNIST."""
    r = np.random.default_rng(0)
    df = pd.DataFrame(r.normal(size=(90, 3)), columns=["a", "b", "c"])
    df["left"] = (df["a"] > 0).astype(int)
    df["right"] = (df["b"] - df["c"] > 0).astype(int)
    df.to_csv(tmp_path / "d.csv", index=False)
    cfg = {"name": "tiny-demo", "seed": 0, "data": {"path": str(tmp_path / "d.csv"), "features": ["a", "b", "c"]},
           "tasks": [{"name": "left", "kind": "binary"}, {"name": "right", "kind": "binary"}],
           "model": {"trunk": {"name": "mlp", "hidden": [8]}},
           "training": {"epochs": 2, "batch_size": 32}, "baselines": True}
    monkeypatch.setattr(demo_mod, "demo_config", lambda quick: json.loads(json.dumps(cfg)))
    monkeypatch.setattr("mtlkit.run.execute.write_report_safely", lambda run_dir, say: None)
    return tmp_path


def test_demo_over_seeds_ends_with_the_verdict(tiny_demo):
    out = tiny_demo / "demo"
    res = runner.invoke(get_app(), ["demo", "--seeds", "2", "--out", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    rec = json.loads((out / "seeds.json").read_text())
    assert rec["n"] == 2 and set(rec["verdicts"]) == {"left", "right"}
    tail = res.output[res.output.index("Verdict per task:"):]
    for task, v in rec["verdicts"].items():
        assert task in tail and v["verdict"][1:] in tail
    if all(v["verdict"] != "multi-task helps" for v in rec["verdicts"].values()):
        assert f"mtlkit tune {tiny_demo / 'demo-tune.yaml'} --trials 20" in tail
    assert "Run folder:" in tail  # after the verdict


def test_demo_refuses_a_bad_seed_count(tiny_demo):
    res = runner.invoke(get_app(), ["demo", "--seeds", "0", "--out", str(tiny_demo / "d")])
    assert res.exit_code == 2 and "--seeds" in res.output and "Got 0" in res.output
