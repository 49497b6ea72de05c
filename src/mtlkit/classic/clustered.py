"""Clustered multi-task linear regression (Jacob, Bach & Vert 2008).

Jacob, Bach & Vert (2008), "Clustered Multi-Task Learning: A Convex Formulation", NIPS 21.
The T tasks have weight vectors W = [w_1 … w_T] (features x tasks) and are assumed to
fall into r clusters whose members have similar weights. With w̄ the mean of all w_t,
w̄_c the mean of cluster c and m_c its size, the penalty is

    Ω(W) = ε_M · T ||w̄||²                        (Ω_mean: how large the weights are)
         + ε_B · Σ_c m_c ||w̄_c − w̄||²             (Ω_between: spread of the clusters)
         + ε_W · Σ_c Σ_{t∈c} ||w_t − w̄_c||²       (Ω_within: spread inside clusters)
         = tr(W Q(E) Wᵀ),   Q(E) = ε_M U + ε_B (Π_E − U) + ε_W (I − Π_E),

U = 11ᵀ/T and Π_E = E(EᵀE)⁻¹Eᵀ for the T x r cluster-assignment matrix E. The objective
minimised here, over W, the unpenalised intercepts b and the assignment E, is

    J(W, b, E) = Σ_t 1/(2 n_t) ||y_t − X_t w_t − b_t||² + ½ Ω(W)

(n_t samples labelled for task t; missing targets, NaN, are left out of their task).

**Solver (our choice).** The paper writes ε_B Ω_between + ε_W Ω_within as
tr(W̃ Σ(E)⁻¹ W̃ᵀ) on the centred task space (W̃ = W(I − U)) with
Σ(E) = (Π_E − U)/ε_B + (I − Π_E)/ε_W, and relaxes the non-convex set of such Σ(E) to the
convex set {Σ ⪰ 0 : tr Σ = (r − 1)/ε_B + (T − r)/ε_W, 1/ε_W ⪯ Σ ⪯ 1/ε_B}; minimising
jointly over W and Σ is then convex and yields *soft* clusters. We keep *hard* clusters
and minimise J, the non-convex problem that the relaxation approximates, by
block-coordinate descent:

1. W-step, E fixed: J is a strictly convex quadratic in (W, b); its stationarity condition
   (1/n_t) X_tᵀX_t w_t + (W Q)_t = (1/n_t) X_tᵀ y_t (centred data) is solved exactly — as a
   Sylvester equation through two eigendecompositions when all tasks share their labelled
   rows, by conjugate gradients otherwise.
2. E-step, W fixed: Ω_between + Ω_within is the total spread Σ_t ||w_t − w̄||², fixed by W,
   so Ω(W) = const + (ε_W − ε_B) · within-cluster sum of squares: with ε_W ≥ ε_B the best
   assignment is exactly a k-means clustering of the task vectors w_t (scikit-learn's
   KMeans, ``n_init`` restarts; a new assignment is kept only if it lowers the
   within-cluster sum of squares).

J never increases, and the loop stops when the assignment no longer changes. The result
is a local minimum of the non-convex problem (the convex relaxation would give a global
one of a looser problem); it starts from the near-independent solution where every task
is its own cluster. Regression (squared loss) only.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.cluster import KMeans
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from mtlkit._checks import check_bool, check_float, check_int
from mtlkit.classic._common import (
    check_same_length,
    encode_targets,
    multitask_score,
    validate_X,
)

__all__ = ["ClusteredMultiTaskLinear"]


def penalty_matrix(
    labels: np.ndarray,
    n_clusters: int,
    mean_penalty: float,
    between_penalty: float,
    within_penalty: float,
) -> np.ndarray:
    """Q(E) = ε_M U + ε_B (Π_E − U) + ε_W (I − Π_E), so that Ω(W) = tr(W Q Wᵀ)."""
    T = len(labels)
    U = np.full((T, T), 1.0 / T)
    E = np.zeros((T, n_clusters))
    E[np.arange(T), labels] = 1.0
    sizes = E.sum(axis=0)
    E = E[:, sizes > 0]
    Pi = E @ np.diag(1.0 / E.sum(axis=0)) @ E.T
    return mean_penalty * U + between_penalty * (Pi - U) + within_penalty * (np.eye(T) - Pi)


def _within_ss(V: np.ndarray, labels: np.ndarray) -> float:
    total = 0.0
    for c in np.unique(labels):
        rows = V[labels == c]
        total += float(np.sum((rows - rows.mean(axis=0)) ** 2))
    return total


class _Data:
    """Centred per-task Gram matrices and moments."""

    def __init__(self, X, Y, fit_intercept):
        d = X.shape[1]
        T = Y.shape[1]
        self.masks = ~np.isnan(Y)
        self.shared = bool(np.all(self.masks == self.masks[:, :1]))
        self.x_mean = np.zeros((T, d))
        self.y_mean = np.zeros(T)
        self.C = []
        self.B = np.zeros((d, T))
        self.n = self.masks.sum(axis=0)
        for t in range(T):
            lab = self.masks[:, t]
            Xt, yt = X[lab], Y[lab, t]
            if fit_intercept:
                self.x_mean[t], self.y_mean[t] = Xt.mean(axis=0), yt.mean()
            Xc = Xt - self.x_mean[t]
            yc = yt - self.y_mean[t]
            if not self.shared or t == 0:
                self.C.append(Xc.T @ Xc / lab.sum())
            self.B[:, t] = Xc.T @ yc / lab.sum()
        if self.shared:
            self.evals, self.evecs = np.linalg.eigh(self.C[0])

    def solve(self, Q: np.ndarray, W0: np.ndarray) -> np.ndarray:
        """Solve C_t w_t + (W Q)_t = B_t for W."""
        if self.shared:
            lam, V = np.linalg.eigh(Q)
            Bt = self.evecs.T @ self.B @ V
            Wt = Bt / (self.evals[:, None] + lam[None, :])
            return self.evecs @ Wt @ V.T
        return self._cg(Q, W0)

    def _cg(self, Q, W0, tol=1e-12, max_iter=None):
        def op(W):
            out = W @ Q
            for t, C in enumerate(self.C):
                out[:, t] += C @ W[:, t]
            return out

        W = W0.copy()
        R = self.B - op(W)
        P = R.copy()
        rr = np.sum(R * R)
        b_norm = max(np.sum(self.B * self.B), 1e-300)
        for _ in range(max_iter or 10 * W.size):
            if rr <= tol * tol * b_norm:
                break
            AP = op(P)
            step = rr / np.sum(P * AP)
            W += step * P
            R -= step * AP
            rr_new = np.sum(R * R)
            P = R + (rr_new / rr) * P
            rr = rr_new
        return W


class ClusteredMultiTaskLinear(RegressorMixin, BaseEstimator):
    """Linear regressions for several tasks, pulled towards the mean of their task cluster.

    Jacob, Bach & Vert (2008), "Clustered Multi-Task Learning: A Convex Formulation": the
    penalty ε_M·Ω_mean + ε_B·Ω_between + ε_W·Ω_within on the task weight vectors, with a
    fixed number of clusters. Solved by alternating exact ridge-type solves for the weights
    and k-means for the clusters (block-coordinate descent on the hard-cluster problem, not
    the paper's convex relaxation); see :mod:`mtlkit.classic.clustered` for the objective
    and why the cluster step is exactly k-means.

    Args:
        n_clusters: number of task clusters r (<= number of tasks).
        mean_penalty: ε_M > 0, shrinks the mean weight vector.
        between_penalty: ε_B > 0, shrinks the cluster means towards the overall mean.
        within_penalty: ε_W >= ε_B, shrinks each task towards its cluster mean.
        fit_intercept: fit an unpenalised intercept per task.
        max_iter: maximum number of (W-step, cluster-step) rounds.
        n_init: k-means restarts per cluster step.
        random_state: seed of k-means.

    Attributes:
        coef_ (T, n_features), intercept_ (T,), clusters_ (T,) cluster of each task
        (clusters numbered by first appearance), cluster_centers_ (r, n_features) mean
        weight vector of each cluster, objective_ (J at the end), n_iter_.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 3))
    >>> W = np.array([[1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 0, 0]], dtype=float)
    >>> Y = X @ W + 0.01 * rng.normal(size=(200, 4))
    >>> ClusteredMultiTaskLinear(n_clusters=2, random_state=0).fit(X, Y).clusters_.tolist()
    [0, 0, 1, 1]
    """

    def __init__(
        self,
        *,
        n_clusters=2,
        mean_penalty=0.01,
        between_penalty=0.01,
        within_penalty=1.0,
        fit_intercept=True,
        max_iter=50,
        n_init=10,
        random_state=None,
    ):
        self.n_clusters = n_clusters
        self.mean_penalty = mean_penalty
        self.between_penalty = between_penalty
        self.within_penalty = within_penalty
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.n_init = n_init
        self.random_state = random_state

    def _check_params(self, n_tasks: int) -> None:
        check_int(type(self).__name__, "n_clusters", self.n_clusters, low=1)
        check_float(type(self).__name__, "mean_penalty", self.mean_penalty, low=0.0, low_open=True)
        check_float(
            type(self).__name__, "between_penalty", self.between_penalty, low=0.0, low_open=True
        )
        check_float(
            type(self).__name__, "within_penalty", self.within_penalty, low=0.0, low_open=True
        )
        check_bool(type(self).__name__, "fit_intercept", self.fit_intercept)
        check_int(type(self).__name__, "max_iter", self.max_iter, low=1)
        check_int(type(self).__name__, "n_init", self.n_init, low=1)
        if self.within_penalty < self.between_penalty:
            raise ValueError(
                f"The 'within_penalty' parameter of ClusteredMultiTaskLinear must be >= "
                f"'between_penalty' ({self.between_penalty!r}); otherwise clusters would "
                f"reward spread. Got {self.within_penalty!r}."
            )
        if self.n_clusters > n_tasks:
            raise ValueError(
                f"The 'n_clusters' parameter of ClusteredMultiTaskLinear must be <= the "
                f"number of tasks ({n_tasks}). Got {self.n_clusters!r}."
            )

    def _Q(self, labels):
        return penalty_matrix(
            labels, self.n_clusters, self.mean_penalty, self.between_penalty, self.within_penalty
        )

    def _objective(self, X, Y, W, b, Q) -> float:
        value = 0.0
        for t in range(Y.shape[1]):
            lab = ~np.isnan(Y[:, t])
            r = Y[lab, t] - X[lab] @ W[:, t] - b[t]
            value += 0.5 * np.dot(r, r) / lab.sum()
        return float(value + 0.5 * np.trace(W @ Q @ W.T))

    def fit(self, X, y):
        """Alternate exact weight solves and k-means cluster steps; ``y`` (n, T), NaN = missing."""
        X = validate_X(self, X, reset=True)
        targets = encode_targets(self, y, "regression")
        check_same_length(self, X, targets.Y)
        Y = targets.Y
        T = Y.shape[1]
        self._check_params(T)
        self._single = targets.single_output
        rs = check_random_state(self.random_state)
        data = _Data(X, Y, self.fit_intercept)

        # start: every task its own cluster (weak coupling, close to independent ridges)
        own = np.arange(T)
        Q_own = penalty_matrix(own, T, self.mean_penalty, self.between_penalty, self.within_penalty)
        W = data.solve(Q_own, np.zeros((X.shape[1], T)))
        labels = self._cluster(W, None, rs)
        n_iter = 0
        for n_iter in range(1, self.max_iter + 1):  # noqa: B007
            W = data.solve(self._Q(labels), W)
            new = self._cluster(W, labels, rs)
            if np.array_equal(new, labels):
                break
            labels = new
        b = data.y_mean - np.einsum("td,dt->t", data.x_mean, W)
        Q = self._Q(labels)
        self.coef_ = W.T.copy()
        self.intercept_ = b
        self.clusters_ = labels
        self.cluster_centers_ = np.vstack(
            [W[:, labels == c].mean(axis=1) for c in range(labels.max() + 1)]
        )
        self.objective_ = self._objective(X, Y, W, b, Q)
        self.n_iter_ = n_iter
        return self

    def _cluster(self, W, current, rs) -> np.ndarray:
        """k-means on the task vectors; keep ``current`` unless the new one is better."""
        V = W.T
        r = self.n_clusters
        if r == 1:
            new = np.zeros(len(V), dtype=np.intp)
        elif r == len(V):
            new = np.arange(len(V))
        else:
            km = KMeans(
                n_clusters=r, n_init=self.n_init, random_state=rs.randint(np.iinfo(np.int32).max)
            )
            new = km.fit(V).labels_
        new = _canonical(new)
        if current is not None and _within_ss(V, new) >= _within_ss(V, current) - 1e-12:
            return current
        return new

    def predict(self, X):
        check_is_fitted(self, "coef_")
        X = validate_X(self, X, reset=False)
        out = X @ self.coef_.T + self.intercept_
        return out[:, 0] if self._single else out

    def score(self, X, y, sample_weight=None):
        """Mean over tasks of R² on each task's labelled entries."""
        if sample_weight is not None:
            return super().score(X, y, sample_weight=sample_weight)
        check_is_fitted(self, "coef_")
        return multitask_score(self, X, y, ["regression"] * len(self.intercept_))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags


def _canonical(labels: np.ndarray) -> np.ndarray:
    """Renumber clusters by order of first appearance (0, 1, ...)."""
    _, first = np.unique(labels, return_index=True)
    order = np.argsort(first)
    remap = np.empty(len(order), dtype=np.intp)
    remap[np.unique(labels)[order]] = np.arange(len(order))
    return remap[labels]
