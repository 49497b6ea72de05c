"""The Python API with text and several inputs: ``fit(..., text=...)`` (the options of YAML's
``data.text``), ``fit(..., inputs=...)`` on a table, and ``fit`` on a dict of arrays with the
multimodal architecture."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from _text_helpers import toy_frame

pytest.importorskip("tokenizers")

from mtlkit import Task, fit
from mtlkit.data import MultiTaskData

TASKS = [Task("pos", "binary"), Task("length", "regression")]
TINY = {"name": "transformer", "hidden": 8, "layers": 1, "heads": 2, "dropout": 0.0}


def _fit(df, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit(df, TASKS, kw.pop("features", {"text": "text", "num": "numeric"}), epochs=1, batch_size=32,
                   baselines=False, **kw)


def _text_column(res):
    return next(c for c in res.prepared.preprocessing["columns"] if c["type"] == "text")


def test_text_options_reach_the_tokenizer_and_the_input_spec():
    res = _fit(toy_frame(80), trunk=TINY,
               text={"tokenizer": {"kind": "wordpiece", "vocab_size": 40, "lowercase": False}, "max_length": 6,
                     "truncation": "warn"})
    col = _text_column(res)
    assert col["max_length"] == 6 and col["truncation"] == "warn"
    assert '"WordPiece"' in col["tokenizer"]  # a WordPiece model, not the default BPE
    assert col["vocab"] <= 45  # capped near vocab_size (the trainer keeps every character it saw)
    assert res.prepared.input_shape == (1 + 6,)  # the numeric column, then 6 token slots
    spec = res.model.config["trunk"]["input"]["text"][0]
    assert (spec["max_length"], spec["vocab"]) == (6, col["vocab"])


def test_default_text_options_differ_from_the_given_ones():
    col = _text_column(_fit(toy_frame(80), trunk=TINY))
    assert col["max_length"] == 64 and '"BPE"' in col["tokenizer"]


def test_truncation_error_refuses_long_texts():
    with pytest.raises(ValueError, match="text"):
        _fit(toy_frame(80), trunk=TINY, text={"max_length": 3, "truncation": "error"})


def test_same_seed_same_numbers():
    a = _fit(toy_frame(80), trunk=TINY, text={"tokenizer": {"kind": "bpe", "vocab_size": 60}, "max_length": 10})
    b = _fit(toy_frame(80), trunk=TINY, text={"tokenizer": {"kind": "bpe", "vocab_size": 60}, "max_length": 10})
    assert a.summary["mtl"]["test"] == b.summary["mtl"]["test"]


@pytest.mark.parametrize("text,match", [
    ({"max_lenght": 8}, "max_lenght"),
    ({"tokenizer": {"kind": "sentencepiece"}}, "kind"),
    ({"max_length": 1}, "max_length"),
    ({"truncation": "drop"}, "truncation"),
    ("wordpiece", "mapping"),
])
def test_bad_text_options_are_named(text, match):
    with pytest.raises((ValueError, TypeError), match=match):
        _fit(toy_frame(40), trunk=TINY, text=text)


def test_text_options_need_a_table():
    x = np.zeros((20, 3), np.float32)
    with pytest.raises(ValueError, match="'text' parameter"):
        fit((x, {"pos": np.zeros(20)}), [Task("pos", "binary")], text={"max_length": 8})


def test_inputs_divide_a_table_for_a_multimodal_model():
    res = _fit(toy_frame(80), architecture="multimodal",
               architecture_params={"fusion": "attention", "encoders": {"words": {"name": "textcnn", "hidden": 8}}},
               inputs={"words": ["text"], "table": ["num"]}, text={"max_length": 8})
    assert res.prepared.input_shape == {"words": (8,), "table": (1,)}
    enc = res.model.config["encoders"]
    assert enc["words"]["name"] == "textcnn" and enc["table"]["name"] == "mlp"  # the default for dense columns
    out = res.predict(toy_frame(80).head(4))
    assert list(out.columns) == ["pos", "pos_proba", "length"] and len(out) == 4


def test_inputs_need_a_table():
    x = {"a": np.zeros((20, 3), np.float32)}
    with pytest.raises(ValueError, match="'inputs' parameter"):
        fit((x, {"pos": np.zeros(20)}), [Task("pos", "binary")], inputs={"a": ["x"]})


def _arrays(n=90, seed=0):
    r = np.random.default_rng(seed)
    x = {"accel": r.normal(size=(n, 3, 16)).astype("float32"), "table": r.normal(size=(n, 4)).astype("float32")}
    labels = {"a": (x["table"][:, 0] + x["accel"][:, 0].mean(1) > 0).astype(float), "b": x["accel"][:, 1].mean(1)}
    return x, labels


def test_fit_on_a_dict_of_arrays_with_the_multimodal_architecture():
    x, labels = _arrays()
    tasks = [Task("a", "binary"), Task("b", "regression")]
    kw = dict(architecture="multimodal", architecture_params={"fusion": "gated", "fusion_dim": 8}, epochs=1,
              batch_size=32, baselines=True)
    res = fit((x, labels), tasks, **kw)
    assert res.prepared.input_shape == {"accel": (3, 16), "table": (4,)}
    assert set(res.summary["baselines"]) == {"a", "b"}  # the baselines read the same two inputs
    out = res.predict({k: v[:5] for k, v in x.items()})
    assert out["a"].shape == (5,)
    with pytest.raises(KeyError, match=r"\['table'\]"):
        res.predict({"accel": x["accel"][:5]})
    again = fit((x, labels), tasks, **kw)  # same seed, same numbers
    assert again.summary["mtl"]["test"] == res.summary["mtl"]["test"]
    mt = MultiTaskData({k: torch.as_tensor(v) for k, v in x.items()},
                       {"a": torch.as_tensor(labels["a"]).float(), "b": torch.as_tensor(labels["b"]).float()[:, None]},
                       tasks=tasks)
    same = fit(mt, tasks, **kw)  # MultiTaskData of a dict: the same split and model
    assert same.summary["mtl"]["test"] == res.summary["mtl"]["test"]


def test_dict_of_arrays_with_different_row_counts_is_named():
    x, labels = _arrays()
    x["table"] = x["table"][:-1]
    with pytest.raises(ValueError, match="different numbers of samples"):
        fit((x, labels), [Task("a", "binary"), Task("b", "regression")], architecture="multimodal", epochs=1)
