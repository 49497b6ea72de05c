"""Distillation from an ensemble of text teachers (run folders of text models), from YAML (the
``mtlkit distill`` command) and from Python (``distill(cfg, {task: [run, run]})``)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import yaml
from _text_helpers import toy_frame
from typer.testing import CliRunner

pytest.importorskip("tokenizers")

from mtlkit.cli import get_app
from mtlkit.config import parse_config
from mtlkit.distill import distill
from mtlkit.inference import load_run
from mtlkit.run import prepare_from_config, run


def _config(path, trunk, tasks=("pos", "length")):
    kinds = {"pos": "binary", "length": "regression"}
    return {"name": "txt", "seed": 0,
            "data": {"path": str(path), "features": {"text": "text", "num": "numeric"},
                     "text": {"tokenizer": {"kind": "bpe", "vocab_size": 60}, "max_length": 10},
                     "split": {"train": 0.6, "val": 0.2, "test": 0.2}},
            "tasks": [{"name": t, "kind": kinds[t]} for t in tasks],
            "model": {"trunk": trunk}, "training": {"epochs": 1, "batch_size": 32}, "baselines": False}


TRANSFORMER = {"name": "transformer", "hidden": 8, "layers": 1, "heads": 2, "dropout": 0.0}


@pytest.fixture(scope="module")
def teachers(tmp_path_factory):
    """Two text teachers of 'pos' (a Transformer for both tasks, a TextCNN for 'pos' alone),
    trained on the same table, split and tokenizer as the student."""
    tmp = tmp_path_factory.mktemp("txt_distill")
    toy_frame(90).to_csv(tmp / "t.csv", index=False)
    runs = []
    for name, trunk, tasks in (("a", TRANSFORMER, ("pos", "length")),
                               ("b", {"name": "textcnn", "hidden": 8}, ("pos",))):
        cfg = parse_config(_config(tmp / "t.csv", trunk, tasks))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run(cfg, prepare_from_config(cfg), out_dir=tmp / name, progress=False, report=False)
        runs.append(tmp / name)
    (tmp / "student.yaml").write_text(yaml.safe_dump(_config(tmp / "t.csv", TRANSFORMER), sort_keys=False))
    return tmp, runs


def test_the_cli_distils_an_ensemble_of_text_teachers(teachers):
    tmp, (a, b) = teachers
    res = CliRunner().invoke(get_app(), ["distill", str(tmp / "student.yaml"), "--teachers", str(a), str(b),
                                         "--out", str(tmp / "cli"), "--no-compare", "--no-progress"])
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp / "cli" / "distill.json").read_text())
    assert summary["teachers"]["pos"]["source"] == f"{a}, {b}"  # an ensemble of the two
    assert summary["teachers"]["length"]["source"] == str(a)
    assert any(c["type"] == "text" for c in load_run(tmp / "cli" / "student").meta["preprocessing"]["columns"])


def test_python_distil_from_the_same_ensemble_gives_the_same_teacher_scores(teachers):
    tmp, (a, b) = teachers
    cfg = parse_config(_config(tmp / "t.csv", TRANSFORMER))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = distill(cfg, {"pos": [a, b], "length": a}, compare=False)
    pos = res.summary["teachers"]["pos"]
    assert pos["source"] == f"{a}, {b}"
    # the ensemble's test score: the two runs' probabilities averaged (T = 1), by hand
    prepared = prepare_from_config(cfg)
    probs = [load_run(d).predict_raw(prepared.test.x)["pos"] for d in (a, b)]
    avg = np.mean([1 / (1 + np.exp(-p.numpy().astype(np.float64))) for p in probs], axis=0)
    y = prepared.test.targets["pos"].numpy()
    assert pos["test"]["accuracy"] == pytest.approx(float(np.mean((avg > 0.5) == (y > 0.5))))
    assert res.summary["student"]["test"]["pos"]  # the student trained and was evaluated


def test_a_text_teacher_of_another_tokenizer_is_refused_with_advice(teachers, tmp_path):
    tmp, (a, _) = teachers
    other = _config(tmp / "t.csv", TRANSFORMER)
    other["data"]["text"]["max_length"] = 12  # another encoding of the same column
    cfg = parse_config(other)
    with pytest.raises(ValueError, match="another table preprocessing"):
        distill(cfg, [a], compare=False)


def test_a_teacher_whose_tokenizer_alone_differs_gets_the_tokenizer_advice(teachers):
    import copy

    from torch import nn

    from mtlkit.data.text import TextOptions, fit_tokenizer
    from mtlkit.distill import _InputAdapter

    tmp, (a, _) = teachers
    student = load_run(a).meta["preprocessing"]
    teacher = copy.deepcopy(student)
    col = next(c for c in teacher["columns"] if c["type"] == "text")
    other = fit_tokenizer(["another corpus of words entirely"] * 3, TextOptions(vocab_size=300)).to_str()
    assert other != col["tokenizer"]  # merges of other words (vocabulary 60 is the bytes alone)
    col["tokenizer"] = other
    with pytest.raises(ValueError, match=r"Only the tokenizer of text column\(s\) \['text'\] differs.*bpe"):
        _InputAdapter(nn.Identity(), student, teacher)
    teacher["options"]["standardize"] = not teacher["options"]["standardize"]  # more than the tokenizer differs
    with pytest.raises(ValueError, match="another table preprocessing") as info:
        _InputAdapter(nn.Identity(), student, teacher)
    assert "Only the tokenizer" not in str(info.value)
