"""CLI smoke tests: mtlkit affinity, group (--train) and distill on a tiny CSV."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mtlkit.cli import get_app

runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_html_report(monkeypatch):
    """The HTML report (tested elsewhere) dominates the run time of these tiny runs."""
    monkeypatch.setattr("mtlkit.run.execute.write_report_safely", lambda run_dir, say: None)


@pytest.fixture
def table(tmp_path):
    r = np.random.default_rng(0)
    n = 240
    df = pd.DataFrame(r.normal(size=(n, 4)), columns=["a", "b", "c", "d"])
    df["up"] = (df["a"] + df["b"] > 0).astype(int)
    df["up2"] = df["up"]
    df["value"] = 2 * df["c"] - df["d"]
    df.to_csv(tmp_path / "data.csv", index=False)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        "# mtlkit affinity cfg.yaml\n"
        "name: t\n"
        f"data: {{path: {tmp_path / 'data.csv'}, features: [a, b, c, d]}}\n"
        "tasks:\n"
        "  - {name: up, kind: binary}\n"
        "  - {name: up2, kind: binary}\n"
        "  - {name: value, kind: regression}\n"
        "model: {trunk: {name: mlp, hidden: [16]}}\n"
        "training: {epochs: 2, batch_size: 32, optimizer: {lr: 0.01}}\n"
    )
    return tmp_path, cfg


def test_affinity_then_group_then_train(table):
    tmp, cfg = table
    out = tmp / "aff"
    res = runner.invoke(get_app(), ["affinity", str(cfg), "--every", "2", "--out", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "tag affinity" in res.output and "up2" in res.output
    for f in ("affinity.json", "affinity.csv", "affinity.png", "config.yaml"):
        assert (out / f).exists(), f
    saved = json.loads((out / "affinity.json").read_text())
    assert saved["method"] == "tag" and saved["task_names"] == ["up", "up2", "value"]
    assert saved["meta"]["steps_measured"] == 5  # 2 epochs x 5 batches of 32 (144 train rows), every 2

    res = runner.invoke(get_app(), ["group", str(out), "--networks", "2", "--train", "--no-progress"])
    assert res.exit_code == 0, res.output
    g = json.loads((out / "grouping-G2" / "grouping.json").read_text())
    assert set(g["serving"]) == {"up", "up2", "value"} and len(g["groups"]) <= 2
    comp = json.loads((out / "grouping-G2" / "groups_comparison.json").read_text())
    assert set(comp["delta_m"]) == {"all_in_one_vs_stl", "grouped_vs_stl", "grouped_vs_all_in_one"}
    assert all(np.isfinite(v) for v in comp["delta_m"].values())
    assert set(comp["stl"]) == {"up", "up2", "value"}
    assert "Δm grouped" in res.output and "all-in-one" in res.output
    assert (out / "grouping-G2" / "group_0" / "model.safetensors").exists()


def test_affinity_cosine_and_group_from_csv(table):
    tmp, cfg = table
    out = tmp / "cos"
    res = runner.invoke(get_app(), ["affinity", str(cfg), "--method", "cosine", "--out", str(out),
                                    "--no-progress", "--set", "training.epochs=1"])
    assert res.exit_code == 0, res.output
    assert "cosine affinity" in res.output
    res = runner.invoke(get_app(), ["group", str(out / "affinity.csv"), "--networks", "3", "--out",
                                    str(tmp / "g")])
    assert res.exit_code == 0, res.output
    assert (tmp / "g" / "grouping.json").exists() and "total predicted score" in res.output


def test_group_errors_are_clear(table):
    tmp, _ = table
    res = runner.invoke(get_app(), ["group", str(tmp / "missing.json"), "--networks", "2"])
    assert res.exit_code == 2 and "No affinity matrix" in res.output
    pd.DataFrame([[0, 1], [1, 0]], index=["x", "y"], columns=["x", "y"]).to_csv(tmp / "m.csv")
    res = runner.invoke(get_app(), ["group", str(tmp / "m.csv"), "--networks", "0"])
    assert res.exit_code == 2 and "'networks' parameter must be a positive int" in res.output
    res = runner.invoke(get_app(), ["group", str(tmp / "m.csv"), "--networks", "1", "--train"])
    assert res.exit_code == 2 and "--train needs the run config" in res.output
    res = runner.invoke(get_app(), ["affinity", str(tmp / "cfg.yaml"), "--method", "magic"])
    assert res.exit_code == 2 and "'method' parameter" in res.output


def test_distill_from_teacher_run_folders(table):
    tmp, cfg = table
    teachers = []
    for name, kind in (("up", "binary"), ("value", "regression")):
        d = tmp / f"teacher_{name}"
        res = runner.invoke(get_app(), ["train", str(cfg), "--out", str(d), "--no-baselines", "--no-progress",
                                        "--set", f"tasks=[{{name: {name}, kind: {kind}}}]"])
        assert res.exit_code == 0, res.output
        teachers.append(str(d))
    out = tmp / "dist"
    res = runner.invoke(get_app(), ["distill", str(cfg), "--teachers", *teachers, "--out", str(out),
                                    "--no-progress", "--temperature", "3", "--anneal"])
    assert res.exit_code == 0, res.output
    s = json.loads((out / "distill.json").read_text())
    assert set(s["teachers"]) == {"up", "value"}  # up2 has no teacher: labels only
    assert s["settings"] == {"alpha": 0.5, "temperature": 3.0, "anneal": True}
    assert set(s["student"]["test"]) == {"up", "up2", "value"} and s["plain"] is not None
    assert "No teacher for task(s) ['up2']" in res.output and "Δm student" in res.output
    assert (out / "student" / "model.safetensors").exists()
    from mtlkit.inference import load_run

    assert [t.name for t in load_run(out / "student").tasks] == ["up", "up2", "value"]
    # a teacher of no student task is refused with a clear message
    res = runner.invoke(get_app(), ["distill", str(cfg), "--teachers", str(out / "student"), "--out",
                                    str(tmp / "d2"), "--set", 'tasks=[{name: up2, kind: binary}]',
                                    "--no-progress", "--no-compare"])
    assert res.exit_code == 0, res.output  # the student run teaches up2
    res = runner.invoke(get_app(), ["distill", str(cfg), "--teachers", teachers[0], "--out", str(tmp / "d3"),
                                    "--set", 'tasks=[{name: up2, kind: binary}]', "--no-progress"])
    assert res.exit_code == 2 and "none is a task of the student" in res.output
