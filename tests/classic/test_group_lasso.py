"""ℓ2,1-penalised multi-task linear/logistic models (Obozinski et al. 2010) by FISTA."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression, MultiTaskLasso

from mtlkit.classic import MultiTaskGroupLasso


def _regression(n=120, d=15, T=4, seed=0):
    r = np.random.default_rng(seed)
    X = r.normal(size=(n, d))
    W = np.zeros((d, T))
    W[:4] = r.normal(size=(4, T))
    return X, X @ W + 0.5 * r.normal(size=(n, T)) + 3.0


@pytest.mark.parametrize("alpha", [0.01, 0.1, 0.5])
def test_agrees_with_sklearn_multitask_lasso(alpha):
    X, Y = _regression()
    sk = MultiTaskLasso(alpha=alpha, tol=1e-12, max_iter=100_000).fit(X, Y)
    ours = MultiTaskGroupLasso(alpha=alpha, task_kinds=["regression"] * 4, tol=1e-10).fit(X, Y)
    np.testing.assert_allclose(ours.coef_, sk.coef_, atol=1e-7)
    np.testing.assert_allclose(ours.intercept_, sk.intercept_, atol=1e-7)


def test_zero_rows_are_shared_across_tasks():
    X, Y = _regression(seed=1)
    model = MultiTaskGroupLasso(alpha=0.2, task_kinds=["regression"] * 4).fit(X, Y)
    zero = np.all(model.coef_ == 0, axis=0)
    assert zero.sum() >= 5  # irrelevant features dropped ...
    assert np.all(np.all(model.coef_ != 0, axis=0) | zero)  # ... for every task at once
    assert np.array_equal(model.support_, ~zero)
    assert model.support_[:4].all()


def test_single_binary_task_is_l1_logistic_regression():
    """With one column the ℓ2,1 norm is the ℓ1 norm: sklearn's l1 logistic regression with
    C = 1 / (alpha n) minimises the same objective (times C n)."""
    r = np.random.default_rng(2)
    X = r.normal(size=(150, 8))
    y = (X[:, 0] - X[:, 1] + r.normal(size=150) > 0).astype(int)
    alpha = 0.02
    sk = LogisticRegression(
        l1_ratio=1.0, C=1 / (alpha * 150), solver="saga", tol=1e-12, max_iter=200_000
    ).fit(X, y)
    ours = MultiTaskGroupLasso(alpha=alpha, task_kinds=["classification"], tol=1e-10).fit(X, y)
    np.testing.assert_allclose(ours.coef_, sk.coef_, atol=1e-6)
    np.testing.assert_allclose(ours.intercept_, sk.intercept_, atol=1e-6)


def test_mixed_tasks_with_missing_labels_satisfy_the_optimality_conditions():
    """KKT of min f(W) + alpha Σ_j ||W_j||: ∇_j f = −alpha W_j/||W_j|| on kept rows and
    ||∇_j f|| <= alpha on zero rows; the intercept gradient is 0."""
    r = np.random.default_rng(3)
    n = 200
    X = r.normal(size=(n, 6))
    Y = np.column_stack(
        [
            X[:, 0] - 2 * X[:, 1] + r.normal(size=n),
            (X[:, 0] + X[:, 1] + r.normal(size=n) > 0),
            np.digitize(X[:, 1] + 0.5 * r.normal(size=n), [-0.5, 0.5]),
        ]
    ).astype(float)
    Y[r.random(n) < 0.25, 0] = np.nan
    Y[r.random(n) < 0.25, 2] = np.nan
    alpha = 0.05
    kinds = ["regression", "classification", "classification"]
    model = MultiTaskGroupLasso(alpha=alpha, task_kinds=kinds, tol=1e-10).fit(X, Y)
    assert model.coef_.shape == (1 + 1 + 3, 6)  # multiclass: one row per class
    from mtlkit.classic.group_lasso import _Problem

    problem = _Problem(X, _encoded(Y, model), kinds, model.classes_)
    _, gW, gb = problem.grad(model.coef_.T, model.intercept_)
    np.testing.assert_allclose(gb, 0, atol=1e-8)
    for j in range(6):
        w = model.coef_[:, j]
        if np.any(w != 0):
            np.testing.assert_allclose(gW[j], -alpha * w / np.linalg.norm(w), atol=1e-7)
        else:
            assert np.linalg.norm(gW[j]) <= alpha + 1e-8
    assert model.support_[:2].all()
    proba = model.predict_proba(X)
    assert proba[0] is None and proba[2].shape == (n, 3)
    np.testing.assert_allclose(proba[2].sum(axis=1), 1.0)


def _encoded(Y, model):
    out = Y.copy()
    for t, cls in enumerate(model.classes_):
        if cls is not None:
            lab = ~np.isnan(Y[:, t])
            out[lab, t] = np.searchsorted(cls, Y[lab, t])
    return out


def test_alpha_large_enough_zeroes_everything():
    X, Y = _regression()
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    alpha_max = np.max(np.linalg.norm(Xc.T @ Yc, axis=1)) / len(X)
    model = MultiTaskGroupLasso(alpha=alpha_max * 1.0001, task_kinds=["regression"] * 4).fit(X, Y)
    assert not model.support_.any()
    model = MultiTaskGroupLasso(alpha=alpha_max * 0.99, task_kinds=["regression"] * 4).fit(X, Y)
    assert model.support_.sum() == 1


def test_bad_parameters_are_named():
    X, Y = _regression()
    with pytest.raises(ValueError, match=r"'alpha' parameter of MultiTaskGroupLasso.*Got -1"):
        MultiTaskGroupLasso(alpha=-1).fit(X, Y)
    with pytest.raises(ValueError, match="'task_kinds' parameter"):
        MultiTaskGroupLasso(task_kinds=["regression"]).fit(X, Y)
