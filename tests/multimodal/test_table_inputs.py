"""``data.inputs`` on a user's table (CSV/Parquet): columns grouped into named inputs, one
encoder per input (a text group and a numeric group), reloaded and exported with the groups."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

pytest.importorskip("tokenizers")

from mtlkit import Task
from mtlkit.config import parse_config
from mtlkit.inference import load_run
from mtlkit.run import prepare_from_config, run
from mtlkit.run.data import divide_table, prepare_table, table_inputs

WORDS = ["great", "bad", "news", "fake", "media", "win", "today", "thank", "big", "rally"]


def _frame(n: int = 90, seed: int = 0) -> pd.DataFrame:
    r = np.random.default_rng(seed)
    texts = [" ".join(r.choice(WORDS, size=int(r.integers(2, 8)))) for _ in range(n)]
    df = pd.DataFrame({"tweet": texts, "followers": r.normal(size=n), "hour": r.integers(0, 24, n).astype(float),
                       "weekday": r.choice(["mon", "tue", "wed", "thu", "fri", "sat", "sun"], n)})
    df["pos"] = [int("great" in t.split()) for t in texts]
    df["score"] = df["followers"] + 0.1 * df["hour"]
    return df


def _config(path, inputs, **data):
    return parse_config({
        "name": "tt", "seed": 0,
        "data": {"path": str(path), "features": {"tweet": "text", "followers": "numeric", "hour": "numeric",
                                                 "weekday": "categorical"},
                 "inputs": inputs, "text": {"tokenizer": {"kind": "bpe", "vocab_size": 80}, "max_length": 12},
                 "categorical": {"onehot_max": 3, "min_count": 1}, **data},
        "tasks": [{"name": "pos", "kind": "binary"}, {"name": "score", "kind": "regression"}],
        "model": {"architecture": {"name": "multimodal", "fusion": "gated", "fusion_dim": 8,
                                   "encoders": {"text": {"name": "bilstm", "hidden": 8},
                                                "table": {"name": "mlp", "hidden": [8]}}}},
        "training": {"epochs": 1, "batch_size": 32}, "baselines": False})


GROUPS = {"text": ["tweet"], "table": ["followers", "hour", "weekday"]}


@pytest.fixture(scope="module")
def grouped_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tt")
    df = _frame()
    df.to_csv(tmp / "tweets.csv", index=False)
    cfg = _config(tmp / "tweets.csv", GROUPS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = prepare_from_config(cfg)
        res = run(cfg, prepared, out_dir=tmp / "run", progress=False, report=False)
    return res, tmp, df


def test_a_csv_with_a_text_group_and_a_numeric_group_trains(grouped_run):
    res, _, _ = grouped_run
    p = res.prepared
    # 12 token slots; followers, hour (standardised), weekday embedded (7 values > onehot_max 3): 3 columns
    assert p.input_shape == {"text": (12,), "table": (3,)}
    assert set(p.train.x) == {"text", "table"} and p.default_trunk == {}
    enc = res.model.config["encoders"]
    assert enc["text"]["name"] == "bilstm" and enc["text"]["input"]["text"][0]["column"] == "tweet"
    assert enc["table"]["input"]["columns"] == ["weekday"]  # the group's category embedding
    test = res.summary["mtl"]["test"]
    assert sorted(test) == ["pos", "score"] and all(np.isfinite(v) for m in test.values() for v in m.values())


def test_the_groups_are_the_encoded_table_divided(grouped_run):
    res, _, df = grouped_run
    pre = res.prepared.table.preprocessor
    x = torch.as_tensor(pre.transform(df))
    layout = table_inputs(pre, GROUPS)
    parts = divide_table(x, layout)
    assert sorted(layout["text"]["columns"] + layout["table"]["columns"]) == list(range(pre.width))
    np.testing.assert_array_equal(parts["text"].numpy(), pre.text_ids(pre.text[0], df["tweet"]))
    idx = res.prepared.table.test_idx
    assert torch.equal(res.prepared.test.x["table"], parts["table"][idx])


def test_reloaded_run_predicts_a_table_the_same(grouped_run):
    res, tmp, df = grouped_run
    loaded = load_run(tmp / "run")
    assert loaded.meta["preprocessing"]["inputs"]["table"]["columns"]  # the layout is in model.json
    feats = df.drop(columns=["pos", "score"]).head(7)
    a, b = res.predict(feats), loaded.predict(feats)
    np.testing.assert_allclose(a["score"].to_numpy(), b["score"].to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(a["pos_proba"].to_numpy(), b["pos_proba"].to_numpy(), rtol=1e-6)
    with pytest.raises(KeyError, match="hour"):
        loaded.predict(feats.drop(columns=["hour"]))


def test_same_seed_same_numbers(grouped_run):
    res, tmp, _ = grouped_run
    cfg = _config(tmp / "tweets.csv", GROUPS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = run(cfg, prepare_from_config(cfg), out_dir=None, progress=False, report=False)
    assert again.summary["mtl"]["test"] == res.summary["mtl"]["test"]


def test_onnx_export_of_the_text_and_table_model(grouped_run, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from mtlkit.export import export_model
    from mtlkit.inference import inputs_from_frame

    res, tmp, df = grouped_run
    loaded = load_run(tmp / "run")
    path = export_model(loaded.model, loaded.tasks, loaded.meta["input_shape"], tmp_path / "m.onnx", fmt="onnx")
    sess = ort.InferenceSession(str(path))
    assert [i.name for i in sess.get_inputs()] == ["text", "table"]
    for rows in (slice(0, 1), slice(3, 9), slice(10, 40)):  # batches of other lengths and paddings
        x = inputs_from_frame(loaded, df.iloc[rows])
        got = sess.run(None, {k: v.numpy() for k, v in x.items()})
        with torch.no_grad():
            want = loaded.model.eval()(x)
        for t, g in zip(loaded.tasks, got):
            np.testing.assert_allclose(g, want[t.name].numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("inputs,match", [
    ({"text": ["tweet"], "table": ["followers", "hour", "wekday"]}, r"data.inputs.table: unknown column 'wekday'"),
    ({"text": ["tweet", "hour"], "table": ["followers", "hour", "weekday"]},
     r"data.inputs.table: column 'hour' is already in input 'text'"),
    ({"text": ["tweet"], "table": []}, r"data.inputs.table is empty"),
    ({"text": ["tweet"], "table": ["followers", "hour"]}, r"feature column\(s\) \['weekday'\] are in no input"),
    ({"text": ["tweet"], "table": ["followers", "hour", "weekday", "score"]},
     r"data.inputs.table: column 'score' is a task's label"),
    ({"text": "tweet", "table": ["followers", "hour", "weekday"]}, r"data.inputs.text: a table's input is a list"),
])
def test_bad_groups_are_named(tmp_path, inputs, match):
    _frame(30).to_csv(tmp_path / "t.csv", index=False)
    try:
        cfg = _config(tmp_path / "t.csv", inputs)
    except Exception as exc:  # the config schema may refuse the shape first: it must name the field
        assert "inputs" in str(exc)
        return
    with pytest.raises(ValueError, match=match):
        prepare_from_config(cfg)


def test_groups_without_declared_features_infer_the_types():
    df = _frame(60)
    p = prepare_table(df, [Task("score", "regression")], None, inputs={"a": ["followers"], "b": ["hour", "weekday"]},
                      seed=0)
    assert p.input_shape["a"] == (1,) and set(p.train.x) == {"a", "b"}
    assert "tweet" not in p.features  # a column in no group is not a feature when none are declared


def test_a_single_input_model_on_grouped_data_is_refused(tmp_path):
    _frame(30).to_csv(tmp_path / "t.csv", index=False)
    cfg = _config(tmp_path / "t.csv", GROUPS)
    cfg = parse_config({**cfg.model_dump(exclude_none=True), "model": {"trunk": {"name": "mlp"}}})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = prepare_from_config(cfg)
        with pytest.raises(ValueError, match="multimodal"):
            run(cfg, prepared, out_dir=None, progress=False, report=False)


def test_raw_row_export_of_named_inputs_is_refused_with_advice(grouped_run, tmp_path):
    from mtlkit.export import export_table

    _, tmp, _ = grouped_run
    with pytest.raises(ValueError, match=r"named inputs.*export_model"):
        export_table(load_run(tmp / "run"), tmp_path / "raw.onnx")
