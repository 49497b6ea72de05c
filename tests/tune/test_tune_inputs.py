"""Bad input to ``mtlkit tune``: each a clear error naming the wrong thing, before anything
runs; Optuna missing; the command line end to end."""

from __future__ import annotations

import base64
import builtins
import json
import re

import pytest
from typer.testing import CliRunner

from mtlkit.cli import get_app
from mtlkit.config import parse_config
from mtlkit.report.tune import write_tune_report
from mtlkit.tune import SearchSpace, SearchSpaceError, require_optuna, tune

runner = CliRunner()

BAD_SPACES = [
    ({}, "no searchable parameter"),
    ({"training.optimizer.lr": {"low": 1e-2, "high": 1e-4}}, r"training\.optimizer\.lr: the range is empty"),
    ({"training.optimizer.lr": {"low": 0.0, "high": 1e-2, "log": True}}, r"training\.optimizer\.lr: a log range "
                                                                          r"needs low > 0"),
    ({"training.weighting.name": {"choices": "dwa"}}, r"training\.weighting\.name: 'choices' must be a list"),
    ({"training.weighting.name": {"choices": []}}, r"training\.weighting\.name: 'choices' is empty"),
    ({"training.epochs": {"low": "one", "high": 3}}, r"training\.epochs: 'low' must be a number"),
    ({"training.epochs": {"low": 1, "high": 3, "step": 0}}, r"training\.epochs: 'step' must be a positive"),
    ({"training.epochs": {"low": 1, "high": 3, "lg": True}}, r"training\.epochs: unknown key\(s\) \['lg'\]"),
    ({"training.epochs": [1, 2]}, r"training\.epochs: must be a mapping"),
    ({"training.optimizer.lrr": {"low": 1e-4, "high": 1e-2}}, r"training\.optimizer\.lrr: unknown path.*no key 'lrr'"),
    ({"tasks.w.weight": {"low": 0.1, "high": 1.0}}, r"tasks\.w\.weight: unknown path: tasks has no entry 'w'"),
    ({"model.trunk.widths": {"choices": [[8], [16]]}}, None),  # an open component: checked by building it
    ({"data.split.train": {"low": 0.5, "high": 0.7}}, r"data\.split\.train: 'data' is not searchable"),
    ({"seed": {"choices": [0, 1]}}, r"seed: 'seed' is not searchable"),
    ({"training.weighting.name": {"choices": ["equal", "dwaa"]}},
     r"training\.weighting\.name: the value 'dwaa' gives an invalid config.*Unknown weighting 'dwaa'"),
    ({"training.epochs": {"low": 0, "high": 3}}, r"training\.epochs: the value 0 gives an invalid config"),
    ({"training.weighting.temperature": {"low": 1.0, "high": 2.0, "when": {"training.weighting.nam": "dwa"}}},
     r"training\.weighting\.temperature: when training\.weighting\.nam"),
]


@pytest.mark.parametrize(("search", "message"), BAD_SPACES, ids=lambda v: str(v)[:40])
def test_bad_search_space_names_the_parameter(make, search, message):
    cfg = parse_config(make(search=search))
    with pytest.raises(SearchSpaceError) as info:
        SearchSpace.from_config(cfg)
    if message is None:  # the trunk takes no 'widths': refused with the parameter named
        message = r"model\.trunk\.widths: the value \[8\] gives an invalid config"
    assert re.search(message, str(info.value), re.S), str(info.value)


def test_every_problem_is_reported_at_once(make):
    cfg = parse_config(make(search={"training.optimizer.lr": {"low": 1e-2, "high": 1e-4},
                                    "training.epochs": {"low": "a", "high": 2}}))
    with pytest.raises(SearchSpaceError, match=r"2 problems"):
        SearchSpace.from_config(cfg)


def test_bad_budget_and_seeds(make, tmp_path):
    pytest.importorskip("optuna")
    cfg = parse_config(make())
    for kw, message in (({"trials": 0}, "--trials"), ({"trials": 1, "timeout": -1}, "--timeout"),
                        ({"trials": 1, "seeds": 0}, "--seeds")):
        with pytest.raises(ValueError, match=message):
            tune(cfg, out_dir=tmp_path / "x", **kw)
    assert not (tmp_path / "x").exists()  # refused before anything was written


def test_bad_objective(make, tmp_path):
    pytest.importorskip("optuna")
    for section, message in (({"metric": "accuracy"}, "TASK/METRIC"), ({"direction": "up"}, "direction"),
                             ({"metrc": "y/accuracy"}, "unknown key"),
                             ({"direction": "maximize"}, "Δm is minimised")):
        with pytest.raises(ValueError, match=message):
            tune(parse_config(make(tune=section)), trials=1, out_dir=tmp_path / "x", seeds=None)


def test_missing_optuna_says_which_extra(monkeypatch, config_file):
    real_import = builtins.__import__

    def no_optuna(name, *args, **kwargs):
        if name == "optuna" or name.startswith("optuna."):
            raise ImportError("No module named 'optuna'")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(__import__("sys").modules, "optuna", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_optuna)
    with pytest.raises(ImportError, match=r"install mtlkit\[tune\]"):
        require_optuna()
    res = runner.invoke(get_app(), ["tune", str(config_file()), "--trials", "1"])
    assert res.exit_code == 2 and "mtlkit[tune]" in res.output


def test_cli_bad_space_exit_code(config_file):
    pytest.importorskip("optuna")
    path = config_file(search={"training.optimizer.lr": {"low": 1e-2, "high": 1e-4}})
    res = runner.invoke(get_app(), ["tune", str(path), "--trials", "2"])
    assert res.exit_code == 2 and "training.optimizer.lr: the range is empty" in res.output
    res = runner.invoke(get_app(), ["tune", str(path), "--trials", "0"])
    assert res.exit_code == 2 and "--trials" in res.output


def test_cli_tune(config_file, tmp_path):
    pytest.importorskip("optuna")
    out = tmp_path / "t"
    res = runner.invoke(get_app(), ["tune", str(config_file()), "--trials", "2", "--out", str(out), "--no-retrain"])
    assert res.exit_code == 0, res.output
    assert "Best trial" in res.output and (out / "best_config.yaml").exists()
    rec = json.loads((out / "tune.json").read_text())
    assert rec["trials"]["complete"] == 2 and "retrain" not in rec
    page = (out / "report.html").read_text()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert images and all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
    assert "mtlkit train best_config.yaml --seeds 5" in page  # no retrain: says how to get evidence


@pytest.mark.slow
def test_best_config_retrained_over_seeds(make, tmp_path):
    pytest.importorskip("optuna")
    cfg = parse_config(make())
    result = tune(cfg, trials=2, out_dir=tmp_path / "t", seeds=2, report=False)
    rec = json.loads((tmp_path / "t" / "best" / "seeds.json").read_text())
    assert rec["seeds"] == [0, 1] and rec["delta_m"]["n"] == 2 and set(rec["verdicts"]) == {"y", "z"}
    assert result.record["retrain"]["verdicts"] == {k: v["verdict"] for k, v in rec["verdicts"].items()}
    page = write_tune_report(tmp_path / "t").read_text()
    assert "Evidence over seeds" in page and 'href="best/seed-0/report.html"' in page
    logs = []
    tune(cfg, trials=2, out_dir=tmp_path / "t", seeds=2, log=logs.append, report=False)  # retrain reused
    assert any("already retrained" in line for line in logs)
