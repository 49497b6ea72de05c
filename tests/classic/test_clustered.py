"""Clustered multi-task linear regression (Jacob, Bach & Vert 2008)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from mtlkit.classic import ClusteredMultiTaskLinear
from mtlkit.classic.clustered import penalty_matrix


def _planted(n=60, d=10, T=12, K=3, spread=0.3, noise=1.0, seed=0):
    r = np.random.default_rng(seed)
    centers = 2 * r.normal(size=(K, d))
    truth = np.repeat(np.arange(K), T // K)
    r.shuffle(truth)
    W = (centers[truth] + spread * r.normal(size=(T, d))).T
    X = r.normal(size=(n, d))
    return X, X @ W + noise * r.normal(size=(n, T)) + 1.0, W, truth


def test_recovers_planted_task_clusters():
    X, Y, _, truth = _planted()
    model = ClusteredMultiTaskLinear(n_clusters=3, random_state=0).fit(X, Y)
    assert adjusted_rand_score(truth, model.clusters_) == 1.0
    assert model.cluster_centers_.shape == (3, 10)


def test_recovers_clusters_with_missing_targets():
    X, Y, _, truth = _planted(seed=1)
    Y[np.random.default_rng(1).random(Y.shape) < 0.2] = np.nan
    model = ClusteredMultiTaskLinear(n_clusters=3, random_state=0).fit(X, Y)
    assert adjusted_rand_score(truth, model.clusters_) == 1.0


def test_penalty_matrix_equals_the_three_terms():
    r = np.random.default_rng(2)
    W = r.normal(size=(5, 7))  # 5 features, 7 tasks
    labels = np.array([0, 0, 1, 2, 1, 0, 2])
    eM, eB, eW = 0.3, 0.7, 2.0
    mean = W.mean(axis=1)
    omega_mean = 7 * mean @ mean
    omega_between = sum(
        (labels == c).sum() * np.sum((W[:, labels == c].mean(axis=1) - mean) ** 2) for c in range(3)
    )
    omega_within = sum(
        np.sum((W[:, labels == c] - W[:, labels == c].mean(axis=1, keepdims=True)) ** 2)
        for c in range(3)
    )
    Q = penalty_matrix(labels, 3, eM, eB, eW)
    assert np.trace(W @ Q @ W.T) == pytest.approx(
        eM * omega_mean + eB * omega_between + eW * omega_within
    )


@pytest.mark.parametrize("missing", [False, True])
def test_weights_are_the_exact_minimiser_for_the_final_clusters(missing):
    """Gradient of J in W (and b) is zero at the returned solution, for its clusters."""
    X, Y, _, _ = _planted(seed=3)
    if missing:
        Y[np.random.default_rng(3).random(Y.shape) < 0.2] = np.nan
    model = ClusteredMultiTaskLinear(n_clusters=3, within_penalty=0.5, random_state=0).fit(X, Y)
    W, b = model.coef_.T, model.intercept_
    Q = penalty_matrix(model.clusters_, 3, 0.01, 0.01, 0.5)
    grad = W @ Q
    for t in range(Y.shape[1]):
        lab = ~np.isnan(Y[:, t])
        r = X[lab] @ W[:, t] + b[t] - Y[lab, t]
        grad[:, t] += X[lab].T @ r / lab.sum()
        assert abs(r.mean()) < 1e-8
    np.testing.assert_allclose(grad, 0, atol=1e-8)


def test_cluster_step_never_increases_the_objective():
    X, Y, _, _ = _planted(seed=4, spread=1.0)
    model = ClusteredMultiTaskLinear(n_clusters=3, random_state=0).fit(X, Y)
    for other in range(5):  # any other assignment does no better for the learned W
        labels = np.random.default_rng(other).integers(0, 3, 12)
        Q = penalty_matrix(labels, 3, 0.01, 0.01, 1.0)
        assert model._objective(X, Y, model.coef_.T, model.intercept_, Q) >= model.objective_ - 1e-9


def test_bad_parameters_are_named():
    X, Y, _, _ = _planted()
    with pytest.raises(ValueError, match=r"'within_penalty' parameter.*'between_penalty'"):
        ClusteredMultiTaskLinear(between_penalty=2.0, within_penalty=1.0).fit(X, Y)
    with pytest.raises(ValueError, match=r"'n_clusters' parameter.*number of tasks \(12\)"):
        ClusteredMultiTaskLinear(n_clusters=13).fit(X, Y)
