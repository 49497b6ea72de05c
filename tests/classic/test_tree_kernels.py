"""The numba kernels of the tree builder grow exactly the numpy path's trees.

Every array of every tree is compared for equality (bit for bit: the kernels keep the numpy
path's order of floating-point operations), over the cases that change the arithmetic or
the tie rules: Gini / entropy / variance, binary, multi-class, regression and mixed tasks,
missing labels, integer (bootstrap) and fractional sample weights, feature draws, ties
between features (continuous and two-valued), depth and leaf-size limits.
"""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest

from mtlkit import _numba

pytest.importorskip("numba")

from mtlkit.classic import (
    MultiTaskForest,
    MultiTaskForestClassifier,
    MultiTaskForestRegressor,
    MultiTaskTree,
    MultiTaskTreeClassifier,
    _kernels,
    _tree_builder,
)

ARRAYS = (
    "children_left",
    "children_right",
    "feature",
    "threshold",
    "n_node_samples",
    "weighted_n_labelled",
    "impurity",
    "improvement",
    "depth",
)
KINDS = ["classification", "classification", "regression", "classification"]


def _data(n=240, seed=0):
    """Continuous, rounded (tied), two-valued and duplicated features; a binary, a 3-class,
    a regression and a binary task, with missing labels."""
    r = np.random.default_rng(seed)
    X = r.normal(size=(n, 10))
    X[:, 3] = r.integers(0, 2, n)  # two-valued
    X[:, 4] = np.round(X[:, 4])  # many ties
    X[:, 5] = r.integers(0, 3, n) == 0  # two-valued (bool)
    X[:, 6] = X[:, 0]  # equal splits in two features: the lower index wins
    X[:, 7] = X[:, 3]  # the same for two-valued features
    X[:, 8] = 10 * X[:, 3] + r.random(n)  # continuous, its best cut is feature 3's split
    X[:, 9] = 1.0  # constant
    Y = np.column_stack(
        [
            X[:, 0] + 0.5 * r.normal(size=n) > 0,
            (X[:, 1] > 0).astype(int) + (X[:, 4] > 0),
            2 * X[:, 2] + X[:, 3] + r.normal(size=n),
            X[:, 3] + r.normal(size=n) > 0.5,
        ]
    ).astype(float)
    Y[r.random(n) < 0.2, 1] = np.nan
    Y[r.random(n) < 0.1, 2] = np.nan
    return X, Y


def _fit_both(make, X, Y, monkeypatch, **fit_kw):
    monkeypatch.setenv("MTLKIT_NUMBA", "0")
    slow = make().fit(X, Y, **fit_kw)
    monkeypatch.delenv("MTLKIT_NUMBA")
    fast = make().fit(X, Y, **fit_kw)
    return fast, slow


def _trees(model):
    return [e.tree_ for e in getattr(model, "estimators_", [model])]


def assert_same_trees(fast, slow):
    trees_fast, trees_slow = _trees(fast), _trees(slow)
    assert len(trees_fast) == len(trees_slow)
    for a, b in zip(trees_fast, trees_slow, strict=True):
        for name in ARRAYS:
            assert np.array_equal(getattr(a, name), getattr(b, name)), name
        for va, vb in zip(a.value, b.value, strict=True):
            assert np.array_equal(va, vb, equal_nan=True), "value"


@pytest.fixture
def kernel_calls(monkeypatch):
    """Counts the calls of the compiled search (to show which path a fit took)."""
    calls = []
    search = _kernels.search_level

    def counting(*args):
        calls.append(1)
        return search(*args)

    monkeypatch.setattr(_kernels, "search_level", counting)
    return calls


@pytest.mark.parametrize("criterion", ["gini", "entropy"])
@pytest.mark.parametrize("max_features", [None, "sqrt", 4])
@pytest.mark.parametrize("weights", ["none", "fractional"])
def test_mixed_forest_equals_numpy_path(criterion, max_features, weights, monkeypatch):
    X, Y = _data()
    w = None if weights == "none" else np.random.default_rng(1).random(len(X)) * 2

    def make():
        return MultiTaskForest(
            task_kinds=KINDS,
            n_estimators=2,
            criterion=criterion,
            max_features=max_features,
            min_samples_leaf=2,
            random_state=3,
        )

    fast, slow = _fit_both(make, X, Y, monkeypatch, sample_weight=w)
    assert_same_trees(fast, slow)


@pytest.mark.parametrize("criterion", ["gini", "entropy"])
def test_binary_tasks_forest_equals_numpy_path(criterion, monkeypatch, kernel_calls):
    """All tasks binary with bootstrap counts: the exact-count path and the written-out
    binary Gini proxy of the kernel."""
    X, Y = _data(seed=2)
    Yb = Y[:, [0, 3]]

    def make():
        return MultiTaskForestClassifier(n_estimators=3, criterion=criterion, random_state=0)

    fast, slow = _fit_both(make, X, Yb, monkeypatch)
    assert kernel_calls  # the numba path did run
    assert_same_trees(fast, slow)


def test_binary_tasks_with_missing_labels_equal_numpy_path(monkeypatch):
    X, Y = _data(seed=4)
    Yb = Y[:, [0, 3]].copy()
    Yb[::7, 1] = np.nan  # two labelling patterns: two groups of statistics

    def make():
        return MultiTaskForestClassifier(n_estimators=2, max_features=3, random_state=1)

    fast, slow = _fit_both(make, X, Yb, monkeypatch)
    assert_same_trees(fast, slow)


def test_regression_forest_equals_numpy_path(monkeypatch):
    X, Y = _data(seed=5)

    def make():
        return MultiTaskForestRegressor(n_estimators=2, max_features=0.5, random_state=2)

    fast, slow = _fit_both(make, X, Y[:, [2, 2]] * [1.0, -3.0], monkeypatch)
    assert_same_trees(fast, slow)


@pytest.mark.parametrize(
    "params",
    [
        {"max_depth": 3},
        {"min_samples_split": 30, "min_samples_leaf": 5},
        {"max_features": 2, "random_state": 7},
    ],
)
def test_tree_limits_equal_numpy_path(params, monkeypatch):
    X, Y = _data(seed=6)
    w = np.random.default_rng(0).integers(0, 4, len(X)).astype(float)  # counts, with zeros

    def make():
        return MultiTaskTree(task_kinds=KINDS, **params)

    fast, slow = _fit_both(make, X, Y, monkeypatch, sample_weight=w)
    assert_same_trees(fast, slow)
    if "max_depth" in params:
        assert fast.get_depth() == 3


@pytest.mark.parametrize("numba_flag", ["0", "1"])
def test_ties_between_features_go_to_the_lowest_index(numba_flag, monkeypatch):
    """With integer statistics (counts) equal splits score exactly equal. (With float
    sums, e.g. a regression task, the running sums of two copies of a feature round
    differently, in both paths alike.)"""
    monkeypatch.setenv("MTLKIT_NUMBA", numba_flag)
    X, Y = _data(seed=8)
    tree = MultiTaskTreeClassifier(random_state=0).fit(X, Y[:, [0, 1, 3]])
    used = set(tree.tree_.feature[tree.tree_.feature >= 0].tolist())
    assert {0, 3} <= used
    assert not used & {6, 7, 9}  # copies of features 0 and 3, and the constant one


def test_forced_off_uses_the_numpy_path(monkeypatch, kernel_calls):
    X, Y = _data()
    monkeypatch.setenv("MTLKIT_NUMBA", "0")
    assert _tree_builder._compiled_kernels() is None
    model = MultiTaskForest(task_kinds=KINDS, n_estimators=2, random_state=0).fit(X, Y)
    assert not kernel_calls
    assert model.predict(X).shape == Y.shape
    monkeypatch.setenv("MTLKIT_NUMBA", "1")
    MultiTaskForest(task_kinds=KINDS, n_estimators=2, random_state=0).fit(X, Y)
    assert kernel_calls


def test_without_numba_the_numpy_path_runs_silently(monkeypatch):
    """numba not importable: no error, no warning, the same trees."""
    X, Y = _data()
    with_numba = MultiTaskForest(task_kinds=KINDS, n_estimators=2, random_state=0).fit(X, Y)
    monkeypatch.setitem(sys.modules, "numba", None)  # `import numba` raises ImportError
    monkeypatch.delitem(sys.modules, "mtlkit.classic._kernels")
    monkeypatch.delattr(sys.modules["mtlkit.classic"], "_kernels")
    _numba._imported.cache_clear()  # the import is retried (and fails)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert _tree_builder._compiled_kernels() is None
            without = MultiTaskForest(task_kinds=KINDS, n_estimators=2, random_state=0).fit(X, Y)
    finally:
        _numba._imported.cache_clear()  # forget the failure: numba is back after the test
    assert_same_trees(with_numba, without)


@pytest.mark.parametrize("max_features", [None, 3])
def test_float_sums_in_several_blocks_equal_numpy_path(max_features, monkeypatch):
    """Float statistics (regression, fractional weights) searched in several blocks of
    features: the running sums restart at each block in both paths alike."""
    monkeypatch.setattr(_tree_builder, "_BLOCK_ELEMENTS", 3000)
    X, Y = _data(seed=9)
    w = np.random.default_rng(2).random(len(X)) + 0.5

    def make():
        return MultiTaskTree(task_kinds=KINDS, max_features=max_features, random_state=4)

    fast, slow = _fit_both(make, X, Y, monkeypatch, sample_weight=w)
    assert_same_trees(fast, slow)


def test_draws_among_many_constant_features_equal_numpy_path(monkeypatch):
    """Most features constant: a node scans its priorities past the first few and sorts
    the rest (the kernel's second stage), as the numpy draw does."""
    X, Y = _data(seed=10)
    Xw = np.hstack([X[:, :4], np.ones((len(X), 36))])
    Xw[:, 20] = X[:, 8]

    def make():
        return MultiTaskForest(task_kinds=KINDS, n_estimators=2, max_features=1, random_state=5)

    fast, slow = _fit_both(make, Xw, Y, monkeypatch)
    assert_same_trees(fast, slow)
