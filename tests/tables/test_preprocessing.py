"""Tables as they are: type inference, encoders, imputation, labels, target scaling, leakage."""

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from mtlkit import Task, fit
from mtlkit.data.embedding import TabularInput
from mtlkit.data.tabular import (
    TableOptions,
    TablePreprocessor,
    category_keys,
    fit_labels,
    infer_types,
    labels_from_frame,
    resolve_types,
)
from mtlkit.run.data import prepare_table


def _frame(n=200, seed=0):
    r = np.random.default_rng(seed)
    df = pd.DataFrame({
        "num": r.normal(10, 3, n),
        "colour": r.choice(["red", "green", "blue"], n),
        "flag": r.choice([True, False], n),
        "when": pd.date_range("2020-01-01", periods=n, freq="D").astype(str),
        "user": [f"u{i % 40}" for i in range(n)],
        "code": r.integers(0, 5, n),
    })
    df.loc[::7, "num"] = np.nan
    df.loc[::11, "colour"] = None
    df["label"] = np.where(df["num"].fillna(10) > 10, "high", "low")
    df["grams"] = 1000 + 300 * df["num"].fillna(10) + r.normal(0, 10, n)
    return df


def test_type_inference_and_declared_types():
    df = _frame()
    df["row_id"] = [f"id{i}" for i in range(len(df))]
    df["zip"] = ["0" + str(850 + i % 3) for i in range(len(df))]
    with pytest.warns(UserWarning) as seen:
        types = infer_types(df.drop(columns=["label", "grams"]))
    assert types == {"num": "numeric", "colour": "categorical", "flag": "boolean", "when": "datetime",
                     "user": "categorical", "code": "numeric", "row_id": "id", "zip": "numeric"}
    text = " ".join(str(w.message) for w in seen)
    assert "'code' holds integers with 5 distinct values" in text and "'row_id'" in text
    declared = resolve_types(df, {"zip": "categorical", "num": None}, ["label"])
    assert declared == {"zip": "categorical", "num": "numeric"}
    assert list(category_keys(pd.Series([850, 850.0, "850", None, ""], dtype=object))) == ["850", "850", "850",
                                                                                              None, None]


def test_numeric_imputation_median_and_indicator_and_standardisation():
    df = pd.DataFrame({"a": [1.0, np.nan, 3.0, 4.0, 100.0]})
    pre = TablePreprocessor({"a": "numeric"}).fit(df)
    col = pre.fitted[0]
    assert col.median == [3.5] and col.indicator
    x = pre.transform(df)
    filled = np.array([1.0, 3.5, 3.0, 4.0, 100.0])
    np.testing.assert_allclose(x[:, 0], (filled - filled.mean()) / filled.std(), rtol=1e-6)
    np.testing.assert_array_equal(x[:, 1], [0, 1, 0, 0, 0])
    # NaN at predict time never rejects a row; a column without NaN in training gets no indicator
    pre2 = TablePreprocessor({"a": "numeric"}).fit(df.dropna())
    assert not pre2.fitted[0].indicator
    assert pre2.transform(pd.DataFrame({"a": [np.nan]})).shape == (1, 1)


def test_onehot_unknown_bucket_counted_and_missing_category():
    df = pd.DataFrame({"c": ["a", "b", "a", None]})
    pre = TablePreprocessor({"c": "categorical"}).fit(df)
    assert pre.feature_names == ["c=<unknown>", "c=<missing>", "c=a", "c=b"]
    with pytest.warns(UserWarning, match=r"'c': 2 value\(s\) .* never seen in training \(e\.g\. 'zzz'\)"):
        x = pre.transform(pd.DataFrame({"c": ["zzz", "b", "zzz", np.nan]}))
    np.testing.assert_array_equal(x, [[1, 0, 0, 0], [0, 0, 0, 1], [1, 0, 0, 0], [0, 1, 0, 0]])


def test_embedding_min_count_unknown_bucket_and_input_module():
    df = pd.DataFrame({"u": ["x"] * 6 + ["y"] * 6 + [f"rare{i}" for i in range(20)]})
    pre = TablePreprocessor({"u": "categorical"}, TableOptions(onehot_max=4, min_count=5, embedding_dim=3)).fit(df)
    col = pre.fitted[0]
    assert col.encoding == "embedding" and col.categories == ["x", "y"] and col.dim == 3
    idx = pre.transform(pd.DataFrame({"u": ["x", "y", "rare0", "never", None]}))[:, 0]
    np.testing.assert_array_equal(idx, [2, 3, 0, 0, 1])  # rare and unseen share the unknown bucket
    spec = pre.input_spec
    layer = TabularInput(**spec)
    assert (layer.in_features, layer.out_features) == (1, 3)
    assert layer(torch.tensor([[2.0], [0.0]])).shape == (2, 3)


def test_fitted_on_the_training_split_only():
    df = _frame(300)
    tasks = [Task("label", "binary"), Task("grams", "regression")]
    prepared = prepare_table(df, tasks, ["num", "colour", "user"], seed=3,
                             options=TableOptions(onehot_max=4, min_count=2))
    tr = df.iloc[prepared.table.train_idx]
    col = prepared.table.preprocessor.fitted[0]
    assert col.median == [float(tr["num"].median())]
    filled = tr["num"].fillna(tr["num"].median())
    assert col.mean[0] == pytest.approx(filled.mean()) and col.std[0] == pytest.approx(filled.std(ddof=0))
    vocab = prepared.table.preprocessor.fitted[2].categories
    counts = tr["user"].value_counts()
    assert set(vocab) == set(counts[counts >= 2].index)
    grams = next(t for t in prepared.tasks if t.name == "grams")
    assert grams.target_mean[0] == pytest.approx(tr["grams"].mean())
    assert grams.target_std[0] == pytest.approx(tr["grams"].std(ddof=0))


def test_class_names_round_trip_and_positive_class():
    df = pd.DataFrame({"y": ["no", "yes", "yes", None], "k": ["cat", "dog", "emu", "dog"],
                       "s": ["b", "a", "a", "b"], "i": [3, 7, 7, 3]})
    tasks = fit_labels(df, [Task("y", "binary"), Task("k", "multiclass", num_classes=3),
                            Task("i", "binary", positive_class=3)])
    assert tasks[0].classes == ("no", "yes") and tasks[0].positive_class == "yes"
    assert tasks[1].classes == ("cat", "dog", "emu")
    assert tasks[2].classes == (7, 3)
    with pytest.warns(UserWarning, match=r"positive class inferred as 'b'"):
        (s,) = fit_labels(df, [Task("s", "binary")])
    targets, masks = labels_from_frame(df, tasks)
    assert targets["y"].tolist()[:3] == [0.0, 1.0, 1.0] and masks["y"].tolist() == [True, True, True, False]
    assert targets["k"].tolist() == [0, 1, 2, 1] and targets["i"].tolist() == [1.0, 0.0, 0.0, 1.0]
    restored = Task(**{**tasks[1].to_dict(), "classes": tuple(tasks[1].to_dict()["classes"])})
    assert restored == tasks[1]


@pytest.fixture(scope="module")
def fitted():
    df = _frame(400, seed=1)
    tasks = [Task("label", "binary"), Task("grams", "regression"), Task("colour", "multiclass", num_classes=3)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = fit(df, tasks, ["num", "flag", "when", "user"], epochs=3, baselines=False, seed=0)
    return df, res


def test_predictions_decoded_in_original_units(fitted):
    df, res = fitted
    pred = res.predict(df.head(5))
    assert list(pred.columns) == ["label", "label_proba", "grams", "colour", "colour_proba_blue",
                                  "colour_proba_green", "colour_proba_red"]
    assert pred["label"].isin(["high", "low"]).all() and pred["colour"].isin(["red", "green", "blue"]).all()
    raw = res.predict_raw(df.head(5))
    grams = next(t for t in res.tasks if t.name == "grams")
    np.testing.assert_allclose(pred["grams"], raw["grams"][:, 0].numpy() * grams.target_std[0]
                               + grams.target_mean[0], rtol=1e-6)
    assert pred["grams"].mean() > 100  # grams, not the standardised scale
    probs = pred[["colour_proba_blue", "colour_proba_green", "colour_proba_red"]].sum(axis=1)
    np.testing.assert_allclose(probs, 1.0, rtol=1e-5)


def test_metrics_in_original_units_equal_sklearn(fitted):
    from sklearn.metrics import accuracy_score, mean_absolute_error

    df, res = fitted
    test_rows = df.iloc[res.prepared.table.test_idx]
    pred = res.predict(test_rows)
    keep = test_rows["grams"].notna()
    got = res.summary["mtl"]["test"]
    assert got["grams"]["mae"] == pytest.approx(mean_absolute_error(test_rows["grams"][keep], pred["grams"][keep]),
                                                rel=1e-5)
    lab = test_rows["colour"].notna()
    assert got["colour"]["accuracy"] == pytest.approx(accuracy_score(test_rows["colour"][lab], pred["colour"][lab]))
    assert res.summary["classification_report"]["colour"].keys() >= {"blue", "green", "red"}


def test_unscaled_target_warns_when_scales_differ():
    df = _frame(200)
    df["tiny"] = df["grams"] / 1e6
    tasks = [Task("grams", "regression", standardize=False), Task("tiny", "regression", standardize=False)]
    with pytest.warns(UserWarning, match=r"left unstandardised .* more than 100x"):
        prepared = prepare_table(df, tasks, ["num"])
    assert all(t.target_mean is None for t in prepared.tasks)


def test_category_embeddings_start_small():
    """A table's learned embeddings start at N(0, INIT_STD²), not at nn.Embedding's N(0, 1)
    (benchmarks/embedding_init.py shows what the N(0, 1) start cost)."""
    from mtlkit.data.embedding import INIT_STD

    torch.manual_seed(0)
    m = TabularInput(dense=2, cardinalities=[3000, 400], dims=[8, 6])
    assert INIT_STD == 0.01
    for table in m.embeddings:
        w = table.weight.detach()
        assert abs(float(w.mean())) < 3 * INIT_STD / w.numel() ** 0.5
        assert 0.95 * INIT_STD < float(w.std()) < 1.05 * INIT_STD
