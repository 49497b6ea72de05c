"""Learning to Branch's second phase through the runner: the log names the learned tree (not
AdaShare's select/skip policy) and the report's search-phase section shows the tree."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mtlkit import Task
from mtlkit.architectures.learning_to_branch import LearningToBranch
from mtlkit.cli import get_app
from mtlkit.report.html import _tree_table

runner = CliRunner()


@pytest.fixture(scope="module")
def retrained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("l2b")
    r = np.random.default_rng(0)
    df = pd.DataFrame(r.normal(size=(240, 4)), columns=["f1", "f2", "f3", "f4"])
    df["up"] = (df["f1"] + df["f2"] > 0).astype(int)
    df["level"] = df["f1"] - df["f3"]
    df["far"] = (df["f4"] > 0).astype(int)
    df.to_csv(tmp / "data.csv", index=False)
    cfg = tmp / "cfg.yaml"
    cfg.write_text(
        "# mtlkit train cfg.yaml\n"
        "name: l2b\n"
        f"data: {{path: {tmp / 'data.csv'}, features: [f1, f2, f3, f4]}}\n"
        "tasks:\n"
        "  - {name: up, kind: binary}\n"
        "  - {name: level, kind: regression}\n"
        "  - {name: far, kind: binary}\n"
        "model:\n"
        "  trunk: {name: mlp, hidden: [8, 8, 8]}\n"
        "  architecture: {name: learning_to_branch, retrain: true}\n"
        "training: {epochs: 2, batch_size: 32, optimizer: {lr: 0.01}}\n"
        "baselines: false\n")
    out = tmp / "run"
    res = runner.invoke(get_app(), ["train", str(cfg), "--out", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    return out, res.output


def test_second_phase_prints_the_learned_tree(retrained):
    out, output = retrained
    sp = json.loads((out / "summary.json").read_text())["search_phase"]
    tree = sp["policy"]
    assert set(tree) == {"parents", "tasks"} and set(tree["tasks"]) == {"up", "level", "far"}
    assert "Learned tree (tasks sharing a node)" in output
    assert f"tasks {tree['tasks']}" in output and f"parents {tree['parents']}" in output
    assert "1 = select, 0 = skip" not in output  # AdaShare's wording is not L2B's


def test_report_search_phase_shows_the_tree(retrained):
    out, _ = retrained
    html = (out / "report.html").read_text()
    start = html.index("Search phase")
    assert "Learned tree used for retraining" in html[start:]
    assert "tasks sharing a node" in html[start:]


def test_tree_table_groups_the_tasks_by_node():
    tree = {"parents": [[0], [0, 0], [0, 1]], "tasks": {"a": 0, "b": 0, "c": 1}}
    html = _tree_table(tree)
    assert html is not None
    rows = html.split("<tr>")[2:]  # after the header
    assert "[a, b, c]" in rows[0] and "[a, b] [c]" in rows[1] and "[a, b] [c]" in rows[2]
    # it agrees with the model's own grouping
    tasks = [Task("a", "binary"), Task("b", "binary"), Task("c", "regression")]
    m = LearningToBranch({"name": "mlp", "hidden": [8, 8, 8]}, tasks, input_shape=(4,), tree=tree)
    assert m.sharing_summary()["task_groups"] == [[["a", "b", "c"]], [["a", "b"], ["c"]], [["a", "b"], ["c"]]]
    assert _tree_table({"policy": [1]}) is None and _tree_table({"parents": [[0]], "tasks": {"a": 5}}) is None
