"""Clear errors instead of raw tracebacks (issue 20, item 10) and strict config types (item 11).

Before: a truncated, binary or ``!!python``-tagged ``config.yaml`` of a resumed run gave a raw
YAML traceback (an unguarded ``yaml.safe_load``) or a UTF-8 error without the file's name;
``predict`` on a header-only CSV said ``Error: y``; YAML ``epochs: true`` trained one epoch.
(The Trainer with validation data lacking a task: ``tests/training/test_redesign_defects.py``.)"""

from __future__ import annotations

import pytest
import yaml
from _robust import tiny_frame
from typer.testing import CliRunner

from mtlkit.cli import get_app
from mtlkit.config import ConfigError, apply_overrides, load_config, parse_config

DAMAGED = {
    "truncated": b"name: r\nseed: 0\ndata: {path: 'd.csv'\ntasks: [",
    "binary": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe",
    "python-tag": b"name: !!python/object/apply:os.system ['touch PWNED']\ndata: {path: d.csv}\n",
}


@pytest.fixture(autouse=True)
def _no_report(monkeypatch):
    monkeypatch.setattr("mtlkit.run.execute.write_report_safely", lambda run_dir, say: None)


def _cli(*args):
    return CliRunner().invoke(get_app(), [*map(str, args)])


@pytest.fixture
def finished(tmp_path):
    tiny_frame(60).to_csv(tmp_path / "d.csv", index=False)
    cfg = {"name": "ce", "data": {"path": str(tmp_path / "d.csv")},
           "tasks": [{"name": "y", "kind": "multiclass", "num_classes": 3}, {"name": "z", "kind": "regression"}],
           "model": {"trunk": {"name": "mlp", "hidden": [4]}}, "training": {"epochs": 1}, "baselines": False}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert _cli("train", tmp_path / "c.yaml", "--out", tmp_path / "run", "--no-progress").exit_code == 0
    return tmp_path


@pytest.mark.parametrize("damage", list(DAMAGED))
@pytest.mark.parametrize("with_config", [False, True], ids=["resume-alone", "resume-with-config"])
def test_damaged_config_yaml_on_resume_is_a_clear_error(finished, monkeypatch, damage, with_config):
    monkeypatch.chdir(finished)
    run = finished / "run"
    (run / "config.yaml").write_bytes(DAMAGED[damage])
    args = ["train", *([finished / "c.yaml"] if with_config else []), "--resume", run, "--no-progress"]
    res = _cli(*args)
    assert res.exit_code == 2, (res.output, res.exception)
    assert res.output.startswith("Error: ") and str(run / "config.yaml") in res.output, res.output
    assert "Traceback" not in res.output
    assert not (finished / "PWNED").exists()


def test_predict_on_a_header_only_csv_is_a_clear_error(finished):
    tiny_frame(5).iloc[:0].to_csv(finished / "header.csv", index=False)
    res = _cli("predict", finished / "run", finished / "header.csv", "--out", finished / "p.csv")
    assert res.exit_code == 2
    assert "has no rows" in res.output and res.output.strip() not in ("Error: y", "Error: z"), res.output


# ---------------------------------------------------------------------------- item 11: strict types
BASE = {"data": {"path": "d.csv"}, "tasks": [{"name": "y", "kind": "binary"}]}
LENIENT = [
    ("training.epochs", True), ("training.epochs", 2.5), ("training.batch_size", "64"), ("seed", False),
    ("training.optimizer.lr", True), ("training.clip_grad_norm", "1.0"), ("baselines", 1),
    ("data.standardize", "yes"), ("training.monitor_conflicts", 0), ("tasks.0.num_classes", 2.0),
    ("data.split.train", True),
]


@pytest.mark.parametrize("key,value", LENIENT, ids=[f"{k}={v!r}" for k, v in LENIENT])
def test_a_value_of_the_wrong_type_is_refused(key, value):
    data = yaml.safe_load(yaml.safe_dump(BASE))
    node = data
    parts = key.split(".")
    for p in parts[:-1]:
        node = node[int(p)] if p.isdigit() else node.setdefault(p, {})
    node[parts[-1]] = value
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        parse_config(data)


def test_yaml_epochs_true_is_refused_from_a_file(tmp_path):
    (tmp_path / "c.yaml").write_text("data: {path: d.csv}\ntasks: [{name: y, kind: binary}]\ntraining: {epochs: true}\n")
    with pytest.raises(ConfigError, match=r"training\.epochs: Input should be a valid integer"):
        load_config(tmp_path / "c.yaml")


def test_numbers_still_read_as_numbers(tmp_path):
    """1e-3 is a float (PyYAML alone reads it as a string), an integer is a valid float."""
    (tmp_path / "c.yaml").write_text("data: {path: d.csv}\ntasks: [{name: y, kind: binary, weight: 1}]\n"
                                     "training: {optimizer: {lr: 1e-3}, clip_grad_norm: 5}\n")
    cfg = load_config(tmp_path / "c.yaml", ["training.optimizer.weight_decay=2E-4", "training.epochs=3"])
    assert cfg.training.optimizer.lr == 0.001 and cfg.training.optimizer.weight_decay == 0.0002
    assert cfg.training.epochs == 3 and cfg.training.clip_grad_norm == 5.0 and cfg.tasks[0].weight == 1.0
    assert apply_overrides({}, ["a=1e5"]) == {"a": 100000.0}
