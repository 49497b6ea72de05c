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


def _level(r, n=120, A=5):
    """A random tree level: features with ties, a constant and a two-valued column, nodes
    as contiguous segments of a shuffled sample list (one node constant in feature 0)."""
    from mtlkit.classic._tree_builder import FeatureInfo

    X = np.column_stack(
        [np.round(r.normal(size=(n, 4)), 1), r.random(n) < 0.4, np.ones(n), r.normal(size=n)]
    ).astype(np.float32)
    members = r.permutation(n).astype(np.int32)
    seg_len = np.array([30, 2, 40, 18, 30])[:A]
    seg_start = np.cumsum(seg_len) - seg_len
    X[members[seg_start[1] : seg_start[1] + seg_len[1]], 0] = 0.5  # constant in node 1
    return X, FeatureInfo.build(X), members, seg_len, seg_start


def test_lazy_feature_draw_equals_drawing_among_all_non_constant_features():
    """Constancy is checked only for the features in priority order until enough are
    found: the same features as ranking the priorities of all non-constant features."""
    from mtlkit.classic._tree_builder import FEATURE_THRESHOLD, _draw_features

    r = np.random.default_rng(7)
    X, info, members, seg_len, seg_start = _level(r)
    p = X.shape[1]
    nodes = [members[s : s + k] for s, k in zip(seg_start, seg_len, strict=True)]
    lo = np.array([X[m].min(axis=0) for m in nodes])
    hi = np.array([X[m].max(axis=0) for m in nodes]).astype(np.float64)
    nonconst = hi > lo + FEATURE_THRESHOLD
    n_low = np.array([(X[m][:, info.bin_ids] == X[:, info.bin_ids].min(0)).sum(0) for m in nodes])
    assert not nonconst[:, 5].any() and not nonconst[1, 0]
    for k in range(1, p + 1):
        got = _draw_features(np.random.RandomState(k), k, seg_len, seg_start, members, info, n_low)
        prio = np.where(nonconst, np.random.RandomState(k).random_sample((len(nodes), p)), np.inf)
        want = np.zeros_like(got)
        np.put_along_axis(want, np.argpartition(prio, k - 1, axis=1)[:, :k], True, axis=1)
        assert np.array_equal(got, want & nonconst), k


def test_search_of_drawn_features_by_rank_equals_search_of_sorted_orders():
    """Sorting only the drawn (feature, node) segments by their ranks gives the split that
    the sorted orders of all features, stably partitioned per node, give."""
    from mtlkit.classic._tree_builder import _Layout, _search

    r = np.random.default_rng(8)
    X, info, members, seg_len, seg_start = _level(r)
    Y = np.column_stack([X[:, 0] + X[:, 6] > 0, X[:, 1] + r.normal(size=len(X))]).astype(float)
    Y[r.random(Y.shape) < 0.1] = np.nan
    layout = _Layout(Y, ["classification", "regression"], [2, 0], np.ones(len(X)), "gini")
    layout.prepare_split(np.array([1.0, 0.5]))
    pos_node = np.repeat(np.arange(len(seg_len)), seg_len)
    S = layout.split_stats[:, members]
    node_tot = np.add.reduceat(S, seg_start, axis=1)
    segs = [members[pos_node == a] for a in range(len(seg_len))]
    # per feature: each node's samples in the feature's order (ranks are distinct)
    order = np.array(
        [np.concatenate([m[np.argsort(info.rank[j, m])] for m in segs]) for j in range(5)]
    )
    assert len(info.cont_ids) == 5  # 4 rounded normals with ties and one normal
    args = (seg_len, seg_start, pos_node, node_tot)
    by_order = _search(layout, info.XTc, order, *args, None, 1)
    everything = np.ones((len(seg_len), 5), dtype=bool)
    by_rank = _search(layout, info.XTc, (info.rank, info.n_rank, members), *args, everything, 1)
    for a, b in zip(by_order, by_rank, strict=True):
        assert np.array_equal(a, b)
    # a drawn subset: each node's split is its best among its drawn features
    drawn = r.random(everything.shape) < 0.5
    drawn[:, 4] = True
    val, feat, _ = _search(layout, info.XTc, (info.rank, info.n_rank, members), *args, drawn, 1)
    for j in range(5):
        alone = np.zeros_like(drawn)
        alone[:, j] = drawn[:, j]
        v_j = _search(layout, info.XTc, (info.rank, info.n_rank, members), *args, alone, 1)[0]
        # (float sums restart per segment by subtraction: equal up to rounding)
        assert np.all((val >= v_j) | np.isclose(val, v_j, rtol=1e-12, atol=0))
        assert np.all(~np.isclose(val, v_j, rtol=1e-12, atol=0) | (feat <= j) | ~drawn[:, j])
    assert np.isfinite(val).sum() >= 3


def test_first_priority_columns_by_partition_equal_the_full_sort():
    """With many features, the first columns in priority order come from a partition
    (`np.argpartition`), the rest from a full sort only when a node needs them: the same
    features as sorting all priorities."""
    from mtlkit.classic._tree_builder import FeatureInfo, _draw_features

    r = np.random.default_rng(11)
    n, p = 90, 40
    X = np.round(r.normal(size=(n, p)), 1).astype(np.float32)
    X[:, 5] = 1.0  # constant everywhere
    members = r.permutation(n).astype(np.int32)
    seg_len = np.array([3, 2, 40, 45])  # tiny nodes: many features constant in them
    seg_start = np.cumsum(seg_len) - seg_len
    X[members[:3], :30] = 0.25  # node 0 varies in 10 features only: a second sort is needed
    info = FeatureInfo.build(X)
    nodes = [members[s : s + k] for s, k in zip(seg_start, seg_len, strict=True)]
    nonconst = np.array([X[m].max(axis=0) > X[m].min(axis=0) for m in nodes])
    low = X[:, info.bin_ids].min(axis=0)
    n_low = np.array([(X[m][:, info.bin_ids] == low).sum(axis=0) for m in nodes])
    for k in (1, 3, 9, 15):
        got = _draw_features(np.random.RandomState(k), k, seg_len, seg_start, members, info, n_low)
        prio = np.where(nonconst, np.random.RandomState(k).random_sample((len(nodes), p)), np.inf)
        want = np.zeros_like(got)
        np.put_along_axis(want, np.argsort(prio, axis=1)[:, :k], True, axis=1)
        assert np.array_equal(got, want & nonconst), k
        assert np.array_equal(got.sum(axis=1), np.minimum(k, nonconst.sum(axis=1)))


@pytest.mark.parametrize("max_features", [2, 6])
def test_exact_count_shortcuts_equal_the_general_sums(monkeypatch, max_features):
    """With integer weights (bootstrap counts) node totals are read from the node sums and
    a right child's sums are its parent's minus the left child's; without the shortcut the
    sums are taken over the samples. Both grow the same tree."""
    from mtlkit.classic import _tree_builder as tb

    X, Y = _data(n=300, seed=5)
    Y = Y[:, :2]
    w = np.random.default_rng(5).integers(0, 4, len(X)).astype(float)
    kw = dict(
        kinds=["classification", "classification"],
        n_classes=[2, 2],
        sample_weight=w,
        task_weights=np.ones(2),
        criterion="gini",
        max_depth=None,
        min_samples_split=2,
        min_samples_leaf=1,
        max_features=max_features,
    )
    X32 = X.astype(np.float32)
    fast = tb.build_tree(X32, Y, **kw, rng=np.random.RandomState(0))
    seen = []
    prepare = tb._Layout.prepare_split

    def general(self, coef):
        prepare(self, coef)
        seen.append(self.exact)
        self.exact = False

    monkeypatch.setattr(tb._Layout, "prepare_split", general)
    slow = tb.build_tree(X32, Y, **kw, rng=np.random.RandomState(0))
    assert seen == [True]
    for name in ("feature", "threshold", "children_left", "n_node_samples", "impurity"):
        assert np.array_equal(getattr(fast, name), getattr(slow, name)), name
    assert np.array_equal(fast.weighted_n_labelled, slow.weighted_n_labelled)
    for a, b in zip(fast.value, slow.value, strict=True):
        assert np.array_equal(a, b, equal_nan=True)
    assert fast.node_count > 20
