"""Multi-task forests: bagging of the multi-task trees, averaged per task."""

from __future__ import annotations

import numpy as np
import pytest

from mtlkit.classic import (
    MultiTaskForest,
    MultiTaskForestClassifier,
    MultiTaskForestRegressor,
    MultiTaskTree,
    MultiTaskTreeClassifier,
)


def _data(n=150, seed=0):
    r = np.random.default_rng(seed)
    X = r.normal(size=(n, 6))
    Y = np.column_stack(
        [
            (X[:, 0] + 0.3 * r.normal(size=n) > 0),
            (X[:, 0] - X[:, 1] + 0.3 * r.normal(size=n) > 0),
            3 * X[:, 0] + r.normal(size=n),
        ]
    ).astype(float)
    Y[r.random(n) < 0.2, 1] = np.nan
    return X, Y


def test_without_bagging_and_subsampling_every_tree_is_the_single_tree():
    X, Y = _data()
    forest = MultiTaskForestClassifier(
        n_estimators=3, bootstrap=False, max_features=None, max_depth=4, random_state=0
    ).fit(X, Y[:, :2])
    tree = MultiTaskTreeClassifier(max_depth=4).fit(X, Y[:, :2])
    for est in forest.estimators_:
        assert np.array_equal(est.tree_.feature, tree.tree_.feature)
        assert np.array_equal(est.tree_.threshold, tree.tree_.threshold)
    for p_forest, p_tree in zip(forest.predict_proba(X), tree.predict_proba(X), strict=True):
        np.testing.assert_allclose(p_forest, p_tree)


def test_prediction_is_the_mean_of_the_trees():
    X, Y = _data()
    kinds = ["classification", "classification", "regression"]
    forest = MultiTaskForest(task_kinds=kinds, n_estimators=7, random_state=0).fit(X, Y)
    proba = forest.predict_proba(X[:20])
    trees = [est.predict_proba(X[:20]) for est in forest.estimators_]
    np.testing.assert_allclose(proba[0], np.mean([t[0] for t in trees], axis=0))
    assert proba[2] is None
    values = np.mean([est.predict(X[:20])[:, 2] for est in forest.estimators_], axis=0)
    np.testing.assert_allclose(forest.predict(X[:20])[:, 2].astype(float), values)


def test_seeded_and_thread_count_does_not_change_the_result():
    X, Y = _data()
    a = MultiTaskForestRegressor(n_estimators=6, random_state=3).fit(X, Y)
    b = MultiTaskForestRegressor(n_estimators=6, random_state=3, n_jobs=2).fit(X, Y)
    c = MultiTaskForestRegressor(n_estimators=6, random_state=4).fit(X, Y)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    assert not np.allclose(a.predict(X), c.predict(X))


def test_forest_beats_a_single_tree_on_noisy_data():
    X, Y = _data(n=400, seed=1)
    Xt, Yt = _data(n=400, seed=2)
    kinds = ["classification", "classification", "regression"]
    tree = MultiTaskTree(task_kinds=kinds, random_state=0).fit(X, Y)
    forest = MultiTaskForest(task_kinds=kinds, n_estimators=30, random_state=0).fit(X, Y)
    assert forest.score(Xt, Yt) > tree.score(Xt, Yt) + 0.05


def test_bad_parameters_are_named():
    X, Y = _data()
    with pytest.raises(ValueError, match="'n_estimators' parameter of MultiTaskForestRegressor"):
        MultiTaskForestRegressor(n_estimators=0).fit(X, Y)
    with pytest.raises(ValueError, match="'max_features' parameter"):
        MultiTaskForestRegressor(max_features=1.5).fit(X, Y)


def test_sorted_once_for_the_forest_equals_sorting_each_tree():
    """A forest sorts the features once; a tree on a row subset filters that order. The
    tree must be the one grown from scratch on those rows."""
    from mtlkit.classic._tree_builder import FeatureInfo, build_tree

    r = np.random.default_rng(4)
    X = np.column_stack([np.round(r.normal(size=(200, 3)), 1), r.random(200) < 0.3]).astype(
        np.float32
    )
    Y = np.column_stack([X[:, 0] + X[:, 3] > 0.5, X[:, 1] + r.normal(size=200)]).astype(float)
    keep = r.random(200) < 0.6
    kw = dict(
        kinds=["classification", "regression"],
        n_classes=[2, 0],
        sample_weight=None,
        task_weights=np.ones(2),
        criterion="gini",
        max_depth=None,
        min_samples_split=2,
        min_samples_leaf=1,
        max_features=2,
    )
    shared = build_tree(
        X[keep],
        Y[keep],
        **kw,
        rng=np.random.RandomState(0),
        features=FeatureInfo.build(X).subset(keep),
    )
    fresh = build_tree(X[keep], Y[keep], **kw, rng=np.random.RandomState(0))
    assert np.array_equal(shared.feature, fresh.feature)
    assert np.array_equal(shared.threshold, fresh.threshold)
