"""Multi-task feature selection with the ℓ2,1 (group-lasso) penalty, solved by FISTA.

Obozinski, Taskar & Jordan (2010), "Joint covariate selection and joint subspace selection
for multiple classification problems", Statistics and Computing 20(2):231-252: every task
has its own linear model, the coefficient matrix W (features x task columns) is penalised
by the sum over features of the Euclidean norm of its row, so a feature is kept or dropped
for all tasks together. The objective minimised here is

    Σ_t ℓ_t(W_t, b_t) + alpha · Σ_j ||W_j,:||_2

with, over the n_t samples labelled for task t (missing labels, NaN, are left out):

* regression:  ℓ_t = 1/(2 n_t) Σ_i (y_it − x_iᵀ w_t − b_t)²,
* binary:      ℓ_t = 1/n_t Σ_i log(1 + exp(−s_it (x_iᵀ w_t + b_t))), s ∈ {−1, +1},
* multiclass:  ℓ_t = 1/n_t Σ_i −log softmax(x_iᵀ W_t + b_t)_{y_it}, W_t with one column
  per class (all of a task's columns share the feature's group).

Without missing labels and with regression tasks only this is exactly scikit-learn's
``MultiTaskLasso`` objective, (1/(2n))||Y − XW − b||_F² + alpha ||W||_21, so both find the
same coefficients. Intercepts are not penalised. The paper solves its problem by a
blockwise path-following method; here the solver is FISTA (Beck & Teboulle 2009, "A fast
iterative shrinkage-thresholding algorithm for linear inverse problems") with the
proximal operator of the ℓ2,1 norm (row-wise group soft-thresholding), step 1/L with L an
upper bound of the gradient's Lipschitz constant (σ_max([X, 1])² · max_t c_t / n_t, c = 1
for squared loss, 1/4 logistic, 1/2 softmax), and the gradient-based adaptive restart of
O'Donoghue & Candès (2015). It stops when the gradient mapping L·||y_k − x_{k+1}||_∞ (zero
exactly at the optimum) falls below ``tol``.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from mtlkit._checks import check_bool, check_float, check_int
from mtlkit.classic._common import (
    check_same_length,
    encode_targets,
    has_classification_task,
    multitask_score,
    stack_predictions,
    validate_X,
)

__all__ = ["MultiTaskGroupLasso"]


def _softmax(Z: np.ndarray) -> np.ndarray:
    Z = Z - Z.max(axis=1, keepdims=True)
    E = np.exp(Z)
    return E / E.sum(axis=1, keepdims=True)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -z))


class _Problem:
    """The smooth part Σ_t ℓ_t: value and gradient with respect to (W, b)."""

    def __init__(self, X, Y, kinds, classes):
        self.X = X
        self.blocks = []  # (kind, columns slice, labelled mask, n_t, target)
        col = 0
        lipschitz_factor = 0.0
        for t, kind in enumerate(kinds):
            lab = ~np.isnan(Y[:, t])
            n_t = int(lab.sum())
            if kind == "regression":
                width, target, c = 1, Y[lab, t], 1.0
            elif len(classes[t]) <= 2:
                width, target, c = 1, Y[lab, t], 0.25
            else:
                k = len(classes[t])
                width, c = k, 0.5
                target = np.zeros((n_t, k))
                target[np.arange(n_t), Y[lab, t].astype(np.intp)] = 1.0
            kk = (
                "regression" if kind == "regression" else ("binary" if width == 1 else "multiclass")
            )
            self.blocks.append((kk, slice(col, col + width), lab, n_t, target))
            lipschitz_factor = max(lipschitz_factor, c / n_t)
            col += width
        self.n_columns = col
        Xa = np.hstack([X, np.ones((X.shape[0], 1))])
        sigma = np.linalg.norm(Xa, 2) if X.size else 1.0
        self.lipschitz = max(sigma * sigma * lipschitz_factor, 1e-12)

    def grad(self, W, b):
        """Value and gradient of the smooth loss at (W, b)."""
        Z = self.X @ W + b
        E = np.zeros_like(Z)
        value = 0.0
        for kind, cols, lab, n_t, target in self.blocks:
            z = Z[lab, cols]
            if kind == "regression":
                r = z[:, 0] - target
                value += 0.5 * np.dot(r, r) / n_t
                E[lab, cols] = (r / n_t)[:, None]
            elif kind == "binary":
                zz = z[:, 0]
                value += np.sum(np.logaddexp(0.0, zz) - target * zz) / n_t
                E[lab, cols] = ((_sigmoid(zz) - target) / n_t)[:, None]
            else:
                zmax = z.max(axis=1, keepdims=True)
                lse = zmax[:, 0] + np.log(np.exp(z - zmax).sum(axis=1))
                value += np.sum(lse - np.sum(target * z, axis=1)) / n_t
                E[lab, cols] = (_softmax(z) - target) / n_t
        return value, self.X.T @ E, E.sum(axis=0)


def _prox_l21(W: np.ndarray, threshold: float) -> np.ndarray:
    norms = np.sqrt(np.sum(W * W, axis=1, keepdims=True))
    scale = np.maximum(0.0, 1.0 - threshold / np.maximum(norms, 1e-300))
    return W * scale


class MultiTaskGroupLasso(BaseEstimator):
    """Linear / logistic models for several tasks that select the same features (ℓ2,1).

    Obozinski, Taskar & Jordan (2010), "Joint covariate selection and joint subspace
    selection for multiple classification problems"; see :mod:`mtlkit.classic.group_lasso`
    for the exact objective (it equals scikit-learn's ``MultiTaskLasso`` objective for
    regression tasks without missing labels) and the FISTA solver.

    Args:
        alpha: weight of the ℓ2,1 penalty (>= 0).
        task_kinds: ``"classification"``/``"regression"`` per column of ``y``; ``None``
            infers each column (continuous -> regression, else classification). A
            classification task with 2 classes uses the logistic loss, with more the
            softmax loss.
        fit_intercept: fit an unpenalised intercept per task column.
        max_iter: maximum FISTA iterations.
        tol: stop when the gradient mapping's largest entry is below ``tol``.

    Attributes:
        coef_: (n_columns, n_features), one row per task column (one per regression or
            binary task, one per class of a multiclass task), as scikit-learn's layout.
        intercept_: (n_columns,).
        task_columns_: per task, the slice of its rows in ``coef_``.
        support_: boolean mask of the features with a non-zero row.
        classes_: per task, its classes (``None`` for a regression task).
        task_kinds_, n_iter_, objective_, n_features_in_.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 6))
    >>> Y = np.column_stack([X[:, 0] - 2 * X[:, 1], (X[:, 0] + X[:, 1] > 0).astype(int)])
    >>> model = MultiTaskGroupLasso(alpha=0.05, task_kinds=["regression", "classification"])
    >>> model.fit(X, Y).support_.tolist()
    [True, True, False, False, False, False]
    """

    def __init__(self, *, alpha=1.0, task_kinds=None, fit_intercept=True, max_iter=5000, tol=1e-6):
        self.alpha = alpha
        self.task_kinds = task_kinds
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol

    def fit(self, X, y):
        """Minimise the objective by FISTA; ``y`` (n,) or (n, T), NaN = missing label."""
        check_float(type(self).__name__, "alpha", self.alpha, low=0.0)
        check_bool(type(self).__name__, "fit_intercept", self.fit_intercept)
        check_int(type(self).__name__, "max_iter", self.max_iter, low=1)
        check_float(type(self).__name__, "tol", self.tol, low=0.0, low_open=True)
        if isinstance(self.task_kinds, str):
            raise ValueError(
                f"The 'task_kinds' parameter of MultiTaskGroupLasso must be None or a list "
                f"with one entry per task. Got {self.task_kinds!r}."
            )
        X = validate_X(self, X, reset=True)
        targets = encode_targets(self, y, self.task_kinds)
        check_same_length(self, X, targets.Y)
        self.task_kinds_ = list(targets.kinds)
        self.classes_ = list(targets.classes)
        self._single = targets.single_output
        problem = _Problem(X, targets.Y, targets.kinds, targets.classes)
        d, q = X.shape[1], problem.n_columns
        step = 1.0 / problem.lipschitz
        W = np.zeros((d, q))
        b = np.zeros(q)
        W_y, b_y = W.copy(), b.copy()
        momentum = 1.0
        n_iter = 0
        for n_iter in range(1, self.max_iter + 1):  # noqa: B007
            _, gW, gb = problem.grad(W_y, b_y)
            W_new = _prox_l21(W_y - step * gW, step * self.alpha)
            b_new = b_y - step * gb if self.fit_intercept else b_y
            gap = (
                max(
                    np.max(np.abs(W_y - W_new), initial=0.0),
                    np.max(np.abs(b_y - b_new), initial=0.0),
                )
                / step
            )
            if gap <= self.tol:
                W, b = W_new, b_new
                break
            # adaptive restart: drop the momentum when it points uphill
            restart = np.sum((W_y - W_new) * (W_new - W)) + np.sum((b_y - b_new) * (b_new - b)) > 0
            if restart:
                momentum = 1.0
            m_next = (1.0 + np.sqrt(1.0 + 4.0 * momentum * momentum)) / 2.0
            beta = (momentum - 1.0) / m_next
            W_y = W_new + beta * (W_new - W)
            b_y = b_new + beta * (b_new - b)
            W, b, momentum = W_new, b_new, m_next
        value, _, _ = problem.grad(W, b)
        self.objective_ = float(value + self.alpha * np.sum(np.linalg.norm(W, axis=1)))
        self.n_iter_ = n_iter
        self.coef_ = W.T.copy()
        self.intercept_ = b.copy()
        self.task_columns_ = [blk[1] for blk in problem.blocks]
        self.support_ = np.any(W != 0, axis=1)
        return self

    def decision_function(self, X):
        """Linear scores (n, n_columns): values, logits or per-class scores."""
        check_is_fitted(self, "coef_")
        X = validate_X(self, X, reset=False)
        return X @ self.coef_.T + self.intercept_

    @available_if(has_classification_task)
    def predict_proba(self, X):
        """One (n, C) array of class probabilities per task (``None`` for regression)."""
        Z = self.decision_function(X)
        out = []
        for kind, cols, cls in zip(
            self.task_kinds_, self.task_columns_, self.classes_, strict=True
        ):
            if kind == "regression":
                out.append(None)
            elif len(cls) == 1:
                out.append(np.ones((len(Z), 1)))
            elif cols.stop - cols.start == 1:
                p1 = _sigmoid(Z[:, cols.start])
                out.append(np.column_stack([1.0 - p1, p1]))
            else:
                out.append(_softmax(Z[:, cols]))
        return out[0] if self._single else out

    def predict(self, X):
        """Values (regression) or labels (classification): (n, T), or (n,) for 1-D ``y``."""
        Z = self.decision_function(X)
        cols = []
        for kind, sl, cls in zip(self.task_kinds_, self.task_columns_, self.classes_, strict=True):
            if kind == "regression":
                cols.append(Z[:, sl.start])
            elif sl.stop - sl.start == 1:
                cols.append(
                    cls[(Z[:, sl.start] > 0).astype(np.intp)]
                    if len(cls) == 2
                    else np.repeat(cls[:1], len(Z))
                )
            else:
                cols.append(cls[np.argmax(Z[:, sl], axis=1)])
        return cols[0] if self._single else stack_predictions(cols)

    def score(self, X, y):
        """Mean over tasks of accuracy (classification) or R² (regression)."""
        check_is_fitted(self, "coef_")
        return multitask_score(self, X, y, self.task_kinds_)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags
