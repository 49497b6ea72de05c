"""A text table end to end: train, reload the run folder, predict, export to ONNX; YAML + LM auxiliary."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import yaml
from _text_helpers import toy_frame
from typer.testing import CliRunner

pytest.importorskip("tokenizers")

from mtlkit import Task, fit
from mtlkit.cli import get_app
from mtlkit.data.tabular import TablePreprocessor
from mtlkit.export import export_model
from mtlkit.inference import load_run, predict_frame

TRUNK = {"name": "transformer", "hidden": 16, "layers": 1, "heads": 2, "dropout": 0.0}


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    df = toy_frame(120)
    out = tmp_path_factory.mktemp("text") / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = fit(df, [Task("pos", "binary"), Task("length", "regression")], {"text": "text", "num": "numeric"},
                  trunk=TRUNK, epochs=1, batch_size=32, baselines=False, out_dir=out)
    return res, out, df


def test_run_folder_reload_predicts_the_same(text_run):
    res, out, df = text_run
    run = load_run(out)
    pre = run.meta["preprocessing"]
    assert pre["kind"] == "table" and any(c.get("tokenizer") for c in pre["columns"])  # the tokenizer's JSON
    feats = df.drop(columns=["pos", "length"])
    a, b = res.predict(feats), predict_frame(run, feats)
    np.testing.assert_allclose(a["length"].to_numpy(), b["length"].to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(a["pos_proba"].to_numpy(), b["pos_proba"].to_numpy(), rtol=1e-6)


def test_onnx_export_of_a_text_model(text_run, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    _, out, df = text_run
    run = load_run(out)
    x = TablePreprocessor.from_dict(run.meta["preprocessing"]).transform(df.iloc[:9]).astype("float32")
    path = export_model(run.model, run.tasks, run.meta["input_shape"], tmp_path / "m.onnx", fmt="onnx")
    got = ort.InferenceSession(str(path)).run(None, {"x": x})
    want = run.model.eval()(torch.from_numpy(x))
    for t, g in zip(run.tasks, got):
        np.testing.assert_allclose(g, want[t.name].detach().numpy(), rtol=1e-4, atol=1e-5)


def test_yaml_run_with_the_language_model_auxiliary(tmp_path):
    df = toy_frame(100, seed=1)
    df.to_csv(tmp_path / "t.csv", index=False)
    cfg = {"name": "t", "seed": 0,
           "data": {"path": "t.csv", "features": {"text": "text"},
                    "text": {"tokenizer": {"kind": "wordpiece", "vocab_size": 60, "min_frequency": 1},
                             "max_length": 10}},
           "tasks": [{"name": "pos", "kind": "binary"}],
           "auxiliary": [{"generator": "next_token", "weight": 0.5}, {"generator": "text_counts", "column": "text"}],
           "model": {"trunk": {**TRUNK, "token_states": True}},
           "training": {"epochs": 1, "batch_size": 32}, "baselines": False}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    r = CliRunner().invoke(get_app(), ["train", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "run")])
    assert r.exit_code == 0, r.output
    run = load_run(tmp_path / "run")
    kinds = {t.name: t.kind for t in run.tasks}
    assert kinds == {"pos": "binary", "aux_next_token": "next_token", "aux_text_counts": "regression"}
    lm = next(t for t in run.tasks if t.name == "aux_next_token")
    assert lm.out_shape == (10,)
    x = TablePreprocessor.from_dict(run.meta["preprocessing"]).transform(df.iloc[:4])
    assert run.model.eval()(torch.as_tensor(x))["aux_next_token"].shape == (4, lm.num_classes, 10)
