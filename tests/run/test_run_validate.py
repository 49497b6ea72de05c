"""Defect 2: a broken config is found before any data loads or any file is written, with
every problem in one error naming its field ("did you mean" for names and keys)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from mtlkit import Task, from_arrays
from mtlkit.cli import get_app
from mtlkit.config import ConfigError, parse_config
from mtlkit.run import build_all, check, prepare, run, validate

BROKEN = {"name": "broken", "data": {"dataset": "multimnist"},  # a data set that takes long to load
          "training": {"epochs": 1, "weighting": {"name": "dwa", "temperature": -1.0},
                       "aggregator": {"name": "pcgrd"}}}


@pytest.fixture
def no_data(monkeypatch):
    """Loading any data fails the test."""
    import mtlkit.data._table
    import mtlkit.datasets

    def boom(*args, **kwargs):
        raise AssertionError("data was loaded before the config was checked")

    monkeypatch.setattr(mtlkit.datasets, "load", boom)
    monkeypatch.setattr(mtlkit.data._table, "read_table", boom)


def _both_named(msg: str) -> None:
    assert "training.weighting" in msg and "temperature" in msg and "DWA" in msg
    assert "training.aggregator" in msg and re.search(r"did you mean 'pcgrad'", msg, re.I)
    assert "2 problems" in msg


def test_run_reports_every_problem_before_loading_or_writing(tmp_path, no_data):
    out = tmp_path / "out"
    with pytest.raises(ConfigError) as e:
        check(parse_config(BROKEN), out)
    _both_named(str(e.value))
    assert not out.exists()


def test_run_checks_first_and_writes_nothing(tmp_path):
    r = np.random.default_rng(0)
    x = r.normal(size=(60, 3))
    tasks = [Task("y", "binary"), Task("z", "regression")]
    prepared = prepare(from_arrays(x, {"y": (x[:, 0] > 0).astype(float), "z": x[:, 1]}, tasks), tasks)
    cfg = parse_config({**BROKEN, "data": {"in_memory": True}, "tasks": [t.to_dict() for t in tasks]})
    out = tmp_path / "out"
    with pytest.raises(ConfigError) as e:
        run(cfg, prepared, out_dir=out, progress=False)
    _both_named(str(e.value))
    assert not out.exists()


def test_cli_reports_every_problem_and_leaves_no_file(tmp_path, no_data):
    path = tmp_path / "cfg.yaml"
    path.write_text("# mtlkit train cfg.yaml\n" + yaml.safe_dump(BROKEN))
    out = tmp_path / "P"
    res = CliRunner().invoke(get_app(), ["train", str(path), "--out", str(out), "--no-progress"])
    assert res.exit_code != 0
    assert "Traceback" not in res.output
    _both_named(res.output)
    assert not out.exists() or not any(out.iterdir())


def test_unknown_parameter_keys_get_a_suggestion_and_their_field():
    cfg = parse_config({"data": {"dataset": "yeast", "options": {"n_trian": 3}},
                        "tasks": [{"name": "y", "kind": "binary"}],
                        "model": {"architecture": {"name": "mmoe", "num_expertz": 3}},
                        "training": {"weighting": {"name": "dwa", "temperatur": 2.0}}})
    with pytest.raises(ConfigError) as e:
        validate(cfg)
    msg = str(e.value)
    assert "training.weighting.temperatur: weighting 'dwa' takes no parameter 'temperatur'; " \
           "did you mean 'temperature'?" in msg
    assert "model.architecture.num_expertz:" in msg and "did you mean 'num_experts'?" in msg
    assert "data.options.n_trian:" in msg


def test_components_that_do_not_fit_together_are_found_without_data():
    cfg = parse_config({"data": {"dataset": "yeast"},
                        "model": {"architecture": {"name": "mmoe"}},
                        "training": {"weighting": {"name": "great"}, "aggregator": {"name": "pcgrad"},
                                     "level": "representation", "schedule": {"name": "alternate"}}})
    with pytest.raises(ConfigError) as e:
        validate(cfg)
    msg = str(e.value)
    assert "training.weighting: The weighting GREAT cannot be combined with a gradient-space aggregator" in msg
    assert "training.level: level='representation' needs a model with a shared representation; MMoE" in msg
    assert "training.schedule: The schedule Alternate" in msg


def test_a_valid_config_builds_every_component_once():
    cfg = parse_config({"data": {"dataset": "yeast", "sampler": {"name": "temperature", "exclusive": False}},
                        "training": {"weighting": {"name": "dwa"}, "aggregator": {"name": "pcgrad"}}})
    built = build_all(cfg)
    assert type(built.weighting).__name__ == "DWA" and type(built.aggregator).__name__ == "PCGrad"
    assert built.tasks is None  # the dataset brings its tasks
    assert set(built.components()) == {"weighting", "aggregator", "schedule", "sampler"}


def test_only_unknown_names_is_also_a_key_error():
    cfg = parse_config({"data": {"dataset": "yeest"}, "model": {"architecture": {"name": "hard_shraing"}}})
    with pytest.raises(KeyError, match="Did you mean 'yeast'"):
        validate(cfg)
