"""Multi-task trees: the split score of the paper-style definition, checked against hand
computations, a brute-force search, and scikit-learn's single-task trees."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from mtlkit.classic import MultiTaskTree, MultiTaskTreeClassifier, MultiTaskTreeRegressor

# ----------------------------------------------------------------------------- helpers


def _impurity(y: np.ndarray, w: np.ndarray, kind: str, criterion: str) -> float:
    """n·I of the labelled samples (weighted), straight from the definition."""
    if len(y) == 0 or w.sum() == 0:
        return 0.0
    n = w.sum()
    if kind == "regression":
        mean = np.sum(w * y) / n
        return float(np.sum(w * (y - mean) ** 2))
    p = np.array([w[y == c].sum() for c in np.unique(y)]) / n
    if criterion == "gini":
        return float(n * (1.0 - np.sum(p**2)))
    return float(-n * np.sum(p * np.log2(p)))


def _score(Y, w, left, kinds, weights, criterion, root_norm):
    """Σ_t w_t [nI_t(node) − nI_t(L) − nI_t(R)] / (N_t I_t(root)) on one node's samples."""
    total = 0.0
    for t, kind in enumerate(kinds):
        lab = ~np.isnan(Y[:, t])
        parts = [
            _impurity(Y[m & lab, t], w[m & lab], kind, criterion)
            for m in (np.ones(len(Y), bool), left, ~left)
        ]
        if root_norm[t] > 0:
            total += weights[t] * (parts[0] - parts[1] - parts[2]) / root_norm[t]
    return total


def _brute_force(X, Y, w, kinds, weights, criterion, min_samples_leaf, root_norm):
    """Best (score, feature, threshold) by looping over every feature and threshold."""
    best = (-np.inf, None, None)
    for j in range(X.shape[1]):
        values = np.unique(X[:, j])
        for lo, hi in itertools.pairwise(values):
            thr = lo / 2 + hi / 2
            left = X[:, j] <= thr
            if left.sum() < min_samples_leaf or (~left).sum() < min_samples_leaf:
                continue
            s = _score(Y, w, left, kinds, weights, criterion, root_norm)
            if s > best[0] + 1e-12:
                best = (s, j, thr)
    return best


def _node_members(tree, X):
    """Boolean (n_nodes, n_samples): which training samples pass through each node."""
    t = tree.tree_
    member = np.zeros((t.node_count, len(X)), dtype=bool)
    for i, x in enumerate(X.astype(np.float32)):
        node = 0
        while True:
            member[node, i] = True
            if t.feature[node] < 0:
                break
            node = (
                t.children_left[node]
                if x[t.feature[node]] <= t.threshold[node]
                else t.children_right[node]
            )
    return member


def _mixed_data(seed=0, n=80):
    r = np.random.default_rng(seed)
    X = np.round(r.normal(size=(n, 4)), 2)  # rounding creates ties in the features
    # two-valued features take the one-hot path of the search; one is constant
    X = np.column_stack([X, r.random(n) < 0.4, np.where(r.random(n) < 0.5, -1.5, 2.0), np.ones(n)])
    Y = np.column_stack(
        [
            (X[:, 0] + 0.5 * r.normal(size=n) > 0).astype(float),
            r.integers(0, 2, n).astype(float) + (X[:, 1] > 0) + 2 * X[:, 4],
            10.0 * X[:, 2] + 8.0 * (X[:, 5] > 0) + r.normal(size=n),
        ]
    )
    Y[r.random(n) < 0.2, 1] = np.nan
    Y[r.random(n) < 0.3, 2] = np.nan
    return X, Y


# ----------------------------------------------------------------------------- hand-worked


X6 = np.arange(1.0, 7.0).reshape(-1, 1)
Y6 = np.array(
    [[0, 1.0], [0, 2.0], [1, np.nan], [0, 4.0], [1, 8.0], [1, 9.0]]
)  # task A: classes; task B: values, one missing


def test_split_score_matches_hand_computation_on_six_samples():
    # Root: A has 3 + 3 -> Gini 1/2, n·I = 3. B labelled {1, 2, 4, 8, 9}: mean 4.8, Σ(y−ȳ)² = 50.8.
    # Best split x <= 4.5: A left {0,0,1,0} n·I = 4·(1 − 1/16 − 9/16) = 1.5, right {1,1} = 0;
    # B left {1,2,4} (sample 3 missing) Σ(y−7/3)² = 42/9, right {8, 9} = 0.5.
    hand = (3 - 1.5 - 0) / 3 + (50.8 - 42 / 9 - 0.5) / 50.8
    tree = MultiTaskTree(task_kinds=["classification", "regression"], max_depth=1).fit(X6, Y6)
    assert tree.tree_.threshold[0] == 4.5
    assert tree.tree_.improvement[0] == pytest.approx(hand, rel=1e-12)
    # the other thresholds score lower (by hand): 1.5 -> 0.2 + 18.05/50.8, 2.5 -> 0.5 + 36.3/50.8
    assert hand > 0.5 + 36.3 / 50.8 > 0.2 + 18.05 / 50.8
    # task weights scale each task's term
    weighted = MultiTaskTree(
        task_kinds=["classification", "regression"], max_depth=1, task_weights=[2.0, 0.5]
    ).fit(X6, Y6)
    assert weighted.tree_.improvement[0] == pytest.approx(
        2.0 * 0.5 + 0.5 * (50.8 - 42 / 9 - 0.5) / 50.8, rel=1e-12
    )


def test_leaf_values_ignore_missing_targets():
    tree = MultiTaskTree(task_kinds=["classification", "regression"], max_depth=1).fit(X6, Y6)
    pred = tree.predict(np.array([[1.0], [6.0]]))
    assert pred[0, 1] == pytest.approx(7 / 3)  # mean of 1, 2, 4 (the NaN is ignored)
    assert pred[1, 1] == pytest.approx(8.5)
    proba = tree.predict_proba(np.array([[1.0]]))
    assert proba[0].tolist() == [[0.75, 0.25]] and proba[1] is None


def test_leaf_without_labels_inherits_parent_value():
    X = np.arange(4.0).reshape(-1, 1)
    Y = np.array([[0.0, 1.0], [0.0, 3.0], [1.0, np.nan], [1.0, np.nan]])
    tree = MultiTaskTreeRegressor(max_depth=1, task_weights=[1.0, 0.0]).fit(X, Y)
    assert tree.tree_.threshold[0] == 1.5
    assert tree.predict([[3.0]]).tolist() == [[1.0, 2.0]]  # task 2 unlabelled there: root mean


# ----------------------------------------------------------------------------- defining properties


def test_root_split_uses_the_feature_that_decides_all_tasks():
    r = np.random.default_rng(1)
    X = r.normal(size=(300, 8))
    decide = X[:, 5] > 0.3
    Y = np.column_stack(
        [decide, np.where(decide, 2, r.integers(0, 2, 300)), 100 * decide + r.normal(size=300)]
    ).astype(float)
    X[:, 2] = X[:, 2] > 0  # a one-hot column among the continuous ones
    tree = MultiTaskTree(task_kinds=["classification", "classification", "regression"]).fit(X, Y)
    assert tree.tree_.feature[0] == 5
    assert abs(tree.tree_.threshold[0] - 0.3) < 0.05
    assert np.argmax(tree.feature_importances_) == 5


@pytest.mark.parametrize("weights_kind", ["unit", "integer", "float"])
@pytest.mark.parametrize("criterion", ["gini", "entropy"])
def test_vectorised_search_equals_brute_force_at_every_node(criterion, weights_kind):
    X, Y = _mixed_data()
    kinds = ["classification", "classification", "regression"]
    r = np.random.default_rng(3)
    w = {
        "unit": np.ones(len(X)),
        "integer": r.integers(1, 4, len(X)).astype(float),
        "float": r.uniform(0.2, 3.0, len(X)),
    }[weights_kind]
    weights = np.array([1.0, 0.5, 2.0])
    tree = MultiTaskTree(
        task_kinds=kinds, criterion=criterion, max_depth=3, min_samples_leaf=3, task_weights=weights
    ).fit(X, Y, sample_weight=w)
    root_norm = []
    for t, kind in enumerate(kinds):
        lab = ~np.isnan(Y[:, t])
        root_norm.append(_impurity(Y[lab, t], w[lab], kind, criterion))
    members = _node_members(tree, X)
    inner = np.flatnonzero(tree.tree_.feature >= 0)
    assert len(inner) >= 5
    for node in inner:
        m = members[node]
        score, feat, thr = _brute_force(X[m], Y[m], w[m], kinds, weights, criterion, 3, root_norm)
        assert tree.tree_.improvement[node] == pytest.approx(score, rel=1e-9, abs=1e-12)
        assert (tree.tree_.feature[node], tree.tree_.threshold[node]) == (feat, pytest.approx(thr))


def test_regression_targets_scale_free_and_zero_weight_drops_a_task():
    X, Y = _mixed_data(seed=4)
    kinds = ["classification", "classification", "regression"]
    kw = dict(task_kinds=kinds, max_depth=4, min_samples_leaf=5)  # no tiny nodes: no exact ties
    base = MultiTaskTree(**kw).fit(X, Y)
    Ys = Y.copy()
    Ys[:, 2] = 1000.0 * Ys[:, 2] - 7.0
    scaled = MultiTaskTree(**kw).fit(X, Ys)
    assert np.array_equal(base.tree_.feature, scaled.tree_.feature)
    np.testing.assert_allclose(base.tree_.threshold, scaled.tree_.threshold)
    np.testing.assert_allclose(base.tree_.improvement, scaled.tree_.improvement, atol=1e-12)
    only_first = MultiTaskTree(**{**kw, "task_weights": [1, 0, 0]}).fit(X, Y)
    single = MultiTaskTreeClassifier(max_depth=4, min_samples_leaf=5).fit(X, Y[:, 0])
    assert np.array_equal(only_first.tree_.feature, single.tree_.feature)
    assert np.array_equal(only_first.tree_.threshold, single.tree_.threshold)


def test_controls_depth_leaf_size_and_seeded_feature_draws():
    X, Y = _mixed_data(seed=5, n=200)
    kinds = ["classification", "classification", "regression"]
    tree = MultiTaskTree(task_kinds=kinds, max_depth=3, min_samples_leaf=7).fit(X, Y)
    t = tree.tree_
    assert tree.get_depth() <= 3
    assert t.n_node_samples[t.feature < 0].min() >= 7
    a = MultiTaskTree(task_kinds=kinds, max_features=2, random_state=0).fit(X, Y)
    b = MultiTaskTree(task_kinds=kinds, max_features=2, random_state=0).fit(X, Y)
    c = MultiTaskTree(task_kinds=kinds, max_features=2, random_state=1).fit(X, Y)
    assert np.array_equal(a.tree_.feature, b.tree_.feature)
    assert np.array_equal(a.tree_.threshold, b.tree_.threshold)
    assert not np.array_equal(a.tree_.feature, c.tree_.feature)


# ----------------------------------------------------------------------------- scikit-learn


def _sklearn_has_no_ties(make, X, y):
    """scikit-learn visits features in a seed-dependent order and keeps the first best
    split: the same tree for several seeds means no two splits tie."""
    trees = [make(random_state=s).fit(X, y).tree_ for s in range(5)]
    return all(
        np.array_equal(trees[0].feature, t.feature)
        and np.array_equal(trees[0].threshold, t.threshold)
        for t in trees[1:]
    )


@pytest.mark.parametrize("criterion", ["gini", "entropy"])
def test_single_task_classifier_equals_sklearn(criterion):
    r = np.random.default_rng(2)
    X = r.normal(size=(1000, 5))
    y = (X[:, 0] + X[:, 1] ** 2 + 0.5 * r.normal(size=1000) > 1).astype(int) + (X[:, 2] > 1)
    kw = dict(criterion=criterion, max_depth=4, min_samples_leaf=30)
    sk = DecisionTreeClassifier(**kw, random_state=0).fit(X, y)
    assert _sklearn_has_no_ties(
        lambda random_state: DecisionTreeClassifier(**kw, random_state=random_state), X, y
    )
    ours = MultiTaskTreeClassifier(**kw).fit(X, y)
    Xt = r.normal(size=(2000, 5))
    assert np.array_equal(ours.predict(Xt), sk.predict(Xt))
    np.testing.assert_allclose(ours.predict_proba(Xt), sk.predict_proba(Xt), atol=1e-12)
    assert ours.tree_.node_count == sk.tree_.node_count


def test_single_task_regressor_equals_sklearn():
    r = np.random.default_rng(1)
    X = r.normal(size=(300, 4))
    y = 2 * X[:, 0] + np.sin(3 * X[:, 1]) + 0.1 * r.normal(size=300)
    kw = dict(max_depth=6, min_samples_leaf=4)
    assert _sklearn_has_no_ties(
        lambda random_state: DecisionTreeRegressor(**kw, random_state=random_state), X, y
    )
    sk = DecisionTreeRegressor(**kw, random_state=0).fit(X, y)
    ours = MultiTaskTreeRegressor(**kw).fit(X, y)
    Xt = r.normal(size=(2000, 4))
    np.testing.assert_allclose(ours.predict(Xt), sk.predict(Xt), rtol=1e-12, atol=1e-12)


def test_single_feature_full_depth_equals_sklearn():
    """One feature: no split can tie with another feature's; grow to purity."""
    r = np.random.default_rng(2)
    x = r.normal(size=(250, 1))
    y = np.sin(3 * x[:, 0]) + 0.3 * r.normal(size=250)
    sk = DecisionTreeRegressor(random_state=0).fit(x, y)
    ours = MultiTaskTreeRegressor().fit(x, y)
    grid = np.linspace(-4, 4, 5001).reshape(-1, 1)
    assert ours.tree_.node_count == sk.tree_.node_count
    np.testing.assert_allclose(ours.predict(grid), sk.predict(grid), rtol=1e-12, atol=1e-12)


def test_a_side_without_labels_of_a_task_scores_zero_for_it():
    """Regression test: with unlabelled samples at the ends of a feature's order, a side with
    no label of the regression task must contribute 0 (not rounding residue / 0)."""
    r = np.random.default_rng(0)
    X = r.normal(size=(300, 5))
    Y = np.column_stack([X[:, 0] > 0, 10 * X[:, 0] + r.normal(size=300)]).astype(float)
    Y[:50, 1] = np.nan
    kinds = ["classification", "regression"]
    tree = MultiTaskTree(task_kinds=kinds, max_depth=1).fit(X, Y)
    best = max(
        (MultiTaskTree(task_kinds=kinds, max_depth=1).fit(X[:, [j]], Y).tree_.improvement[0], j)
        for j in range(5)
    )
    assert (tree.tree_.feature[0], tree.tree_.improvement[0]) == (best[1], pytest.approx(best[0]))
    assert tree.tree_.feature[0] == 0


def test_single_task_tree_with_one_hot_features_equals_sklearn():
    r = np.random.default_rng(5)
    n = 1500
    cont = r.normal(size=(n, 2))
    cat = r.integers(0, 5, n)
    onehot = np.eye(5)[cat]
    X = np.column_stack([cont, onehot])
    y = (cont[:, 0] + (cat == 2) - (cat == 4) + 0.5 * r.normal(size=n) > 0.3).astype(int)
    kw = dict(max_depth=4, min_samples_leaf=40)
    assert _sklearn_has_no_ties(
        lambda random_state: DecisionTreeClassifier(**kw, random_state=random_state), X, y
    )
    sk = DecisionTreeClassifier(**kw, random_state=0).fit(X, y)
    ours = MultiTaskTreeClassifier(**kw).fit(X, y)
    assert set(ours.tree_.feature[ours.tree_.feature >= 0]) & {2, 3, 4, 5, 6}  # uses one-hots
    Xt = np.column_stack([r.normal(size=(500, 2)), np.eye(5)[r.integers(0, 5, 500)]])
    np.testing.assert_allclose(ours.predict_proba(Xt), sk.predict_proba(Xt), atol=1e-12)
