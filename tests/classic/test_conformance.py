"""scikit-learn conformance of every classic estimator.

scikit-learn's own estimator checks run on every estimator (with small sizes); the checks
expected to fail are listed, with the reason, in ``EXPECTED_FAILURES`` and in
docs/classic.md. Then: Pipeline, GridSearchCV, pickling, "not fitted" errors and
parameters stored unchanged.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from mtlkit.classic import (
    ClusteredMultiTaskLinear,
    MultiTaskForest,
    MultiTaskForestClassifier,
    MultiTaskForestRegressor,
    MultiTaskGroupLasso,
    MultiTaskTree,
    MultiTaskTreeClassifier,
    MultiTaskTreeRegressor,
)

_FOREST_WEIGHTS = (
    "bootstrap samples are drawn from the row count, so integer sample weights are not "
    "equivalent to repeated rows (scikit-learn's RandomForest* fail it for the same reason)"
)
EXPECTED_FAILURES = {
    "MultiTaskForestClassifier": {"check_sample_weight_equivalence_on_dense_data": _FOREST_WEIGHTS},
    "MultiTaskForestRegressor": {"check_sample_weight_equivalence_on_dense_data": _FOREST_WEIGHTS},
    "MultiTaskForest": {"check_sample_weight_equivalence_on_dense_data": _FOREST_WEIGHTS},
    "ClusteredMultiTaskLinear": {
        "check_methods_sample_order_invariance": (
            "the check sets n_clusters=2 on any estimator with that attribute (it assumes a "
            "clusterer) while its y has a single task; n_clusters counts task clusters and "
            "must not exceed the number of tasks"
        )
    },
}


def _instances():
    return [
        MultiTaskTreeClassifier(random_state=0),
        MultiTaskTreeRegressor(random_state=0),
        MultiTaskTree(random_state=0),
        MultiTaskForestClassifier(n_estimators=5, random_state=0),
        MultiTaskForestRegressor(n_estimators=5, random_state=0),
        MultiTaskForest(n_estimators=5, random_state=0),
        MultiTaskGroupLasso(alpha=0.01),
        ClusteredMultiTaskLinear(n_clusters=1, random_state=0),
    ]


@parametrize_with_checks(
    _instances(), expected_failed_checks=lambda est: EXPECTED_FAILURES.get(type(est).__name__, {})
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def _multitask_data(n=90):
    r = np.random.default_rng(0)
    X = r.normal(size=(n, 5)) * [1, 10, 100, 1, 1]
    Yc = np.column_stack([X[:, 0] > 0, X[:, 1] + X[:, 0] > 0]).astype(float)
    Yr = np.column_stack([X[:, 0] + 0.1 * r.normal(size=n), 0.01 * X[:, 2]])
    Yc[:5, 1] = np.nan
    Yr[5:10, 0] = np.nan
    return X, Yc, Yr


CASES = [
    (MultiTaskTreeClassifier(max_depth=3), "c", {"max_depth": [1, 3]}),
    (MultiTaskTreeRegressor(max_depth=3), "r", {"min_samples_leaf": [1, 5]}),
    (
        MultiTaskTree(task_kinds=["classification", "regression"], max_depth=3),
        "m",
        {"max_depth": [2, 3]},
    ),
    (MultiTaskForestClassifier(n_estimators=5, random_state=0), "c", {"max_depth": [2, None]}),
    (MultiTaskForestRegressor(n_estimators=5, random_state=0), "r", {"max_features": [0.5, 1.0]}),
    (
        MultiTaskForest(
            task_kinds=["classification", "regression"], n_estimators=5, random_state=0
        ),
        "m",
        {"max_depth": [2, 4]},
    ),
    (MultiTaskGroupLasso(task_kinds=["classification", "regression"]), "m", {"alpha": [0.01, 0.1]}),
    (ClusteredMultiTaskLinear(n_clusters=1, random_state=0), "r", {"within_penalty": [0.1, 1.0]}),
]


def _target(kind, Yc, Yr):
    return {"c": Yc, "r": Yr, "m": np.column_stack([Yc[:, 0], Yr[:, 0]])}[kind]


@pytest.mark.parametrize(("estimator", "kind", "grid"), CASES, ids=lambda c: type(c).__name__)
def test_pipeline_gridsearch_pickle(estimator, kind, grid):
    X, Yc, Yr = _multitask_data()
    Y = _target(kind, Yc, Yr)
    pipe = make_pipeline(StandardScaler(), clone(estimator)).fit(X, Y)
    step = pipe.steps[-1][0]
    search = GridSearchCV(
        make_pipeline(StandardScaler(), clone(estimator)),
        {f"{step}__{k}": v for k, v in grid.items()},
        cv=KFold(3, shuffle=True, random_state=0),
    ).fit(X, Y)
    # (an explicit KFold: for classifiers scikit-learn's default cv calls type_of_target on
    # y to choose stratification, and that refuses NaN labels)
    assert np.isfinite(search.best_score_)
    restored = pickle.loads(pickle.dumps(pipe))
    pred = pipe.predict(X)
    assert pred.shape == Y.shape
    np.testing.assert_array_equal(restored.predict(X), pred)


def test_gridsearch_default_cv_for_a_classifier_without_missing_labels():
    X, Yc, _ = _multitask_data()
    Yc = np.nan_to_num(Yc, nan=0.0)
    search = GridSearchCV(MultiTaskTreeClassifier(), {"max_depth": [1, 3]}, cv=3).fit(X, Yc)
    assert search.best_params_ == {"max_depth": 3}


@pytest.mark.parametrize("estimator", _instances(), ids=lambda e: type(e).__name__)
def test_not_fitted_error_and_parameters_stored_unchanged(estimator):
    with pytest.raises(NotFittedError):
        estimator.predict(np.zeros((2, 3)))
    weights = [1.0, 2.0]
    est = clone(estimator)
    if "task_weights" in est.get_params():
        est.set_params(task_weights=weights)
        assert est.get_params()["task_weights"] is weights
    fitted_attrs = [k for k in vars(est) if k.endswith("_") and not k.startswith("_")]
    assert fitted_attrs == []
