"""Random forests of multi-task trees: bagging plus feature subsampling (Breiman 2001).

Each tree is a :mod:`mtlkit.classic.tree` multi-task tree grown on a bootstrap sample (drawn
as integer sample weights, as scikit-learn does; samples drawn zero times are left out of
the tree) with ``max_features`` features drawn at random at every node. The forest
averages the trees' per-task class fractions (classification) or values (regression);
a task is predicted from the trees that saw labels of it. Trees are grown in parallel with
joblib threads (``n_jobs``); the numpy kernels release the GIL for most of the work, the
numba kernels (optional, ``pip install mtlkit[fast]``) for all of theirs.

Reference: Breiman (2001), "Random Forests", Machine Learning 45:5-32; multi-target forests
of predictive clustering trees: Kocev, Vens, Struyf & Džeroski (2013), "Tree ensembles for
predicting structured outputs", Pattern Recognition 46(3):817-833.
"""

from __future__ import annotations

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import _check_sample_weight, check_is_fitted

from mtlkit._checks import check_bool, check_int
from mtlkit.classic._common import (
    check_same_length,
    encode_targets,
    has_classification_task,
    mixed_proba,
    multitask_score,
    resolve_max_features,
    resolve_task_weights,
    stack_predictions,
    validate_X,
)
from mtlkit.classic._tree_builder import FeatureInfo
from mtlkit.classic.tree import (
    MultiTaskTree,
    MultiTaskTreeClassifier,
    MultiTaskTreeRegressor,
    _labels_from_fractions,
)

__all__ = ["MultiTaskForest", "MultiTaskForestClassifier", "MultiTaskForestRegressor"]

_MAX_INT = np.iinfo(np.int32).max


def _grow(tree, X, Y, sample_weight, seed, bootstrap, features):
    n = X.shape[0]
    rng = np.random.RandomState(seed)
    w = np.ones(n) if sample_weight is None else sample_weight.copy()
    if bootstrap:
        w = w * np.bincount(rng.randint(0, n, n), minlength=n)
    return tree._fit_encoded(X, Y, sample_weight=w, rng=rng, features=features)


class _BaseMultiTaskForest(BaseEstimator):
    _tree_class: type = MultiTaskTree

    def __init__(
        self,
        *,
        n_estimators=100,
        criterion="gini",
        max_depth=None,
        min_samples_split=2,
        min_samples_leaf=1,
        max_features="sqrt",
        bootstrap=True,
        task_weights=None,
        n_jobs=None,
        random_state=None,
    ):
        self.n_estimators = n_estimators
        self.criterion = criterion
        self.max_depth = max_depth
        self.min_samples_split = min_samples_split
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.bootstrap = bootstrap
        self.task_weights = task_weights
        self.n_jobs = n_jobs
        self.random_state = random_state

    def _task_kinds_param(self):
        return self._tree_class._default_kind

    def _make_tree(self, seed):
        tree = self._tree_class(
            criterion=self.criterion,
            max_depth=self.max_depth,
            min_samples_split=self.min_samples_split,
            min_samples_leaf=self.min_samples_leaf,
            max_features=self.max_features,
            task_weights=self.task_weights,
            random_state=seed,
        )
        tree._check_params()
        return tree

    def fit(self, X, y, sample_weight=None):
        """Grow ``n_estimators`` trees on bootstrap samples; ``y`` (n,) or (n, T), NaN = missing."""
        check_int(type(self).__name__, "n_estimators", self.n_estimators, low=1)
        check_bool(type(self).__name__, "bootstrap", self.bootstrap)
        check_int(type(self).__name__, "n_jobs", self.n_jobs, none_ok=True)
        X = validate_X(self, X, reset=True, dtype=np.float32)
        targets = encode_targets(self, y, self._task_kinds_param())
        check_same_length(self, X, targets.Y)
        resolve_max_features(self, self.max_features, X.shape[1])
        resolve_task_weights(self, self.task_weights, targets.n_tasks)
        sw = None
        if sample_weight is not None:
            sw = _check_sample_weight(sample_weight, X, dtype=np.float64)
            if np.any(sw < 0):
                raise ValueError("Negative values in data passed to `sample_weight`.")
            if not np.any(sw > 0):
                raise ValueError("Sample weights must contain at least one non-zero number.")
        self.n_outputs_ = targets.n_tasks
        self.task_kinds_ = list(targets.kinds)
        self._classes = targets.classes
        self._single = targets.single_output
        self._set_class_attributes()
        rs = check_random_state(self.random_state)
        seeds = rs.randint(_MAX_INT, size=self.n_estimators)
        trees = []
        for seed in seeds:
            tree = self._make_tree(int(seed))
            tree._set_targets(targets)
            tree.n_features_in_ = X.shape[1]
            trees.append(tree)
        features = FeatureInfo.build(X)  # sorted once for all trees; each takes its rows
        self.estimators_ = Parallel(n_jobs=self.n_jobs, prefer="threads")(
            delayed(_grow)(tree, X, targets.Y, sw, int(seed), self.bootstrap, features)
            for tree, seed in zip(trees, seeds, strict=True)
        )
        return self

    def _set_class_attributes(self) -> None:
        pass

    def _raw(self, X) -> list[np.ndarray]:
        """Per task: the trees' mean class fractions (n, C) or mean values (n,)."""
        check_is_fitted(self, "estimators_")
        X = validate_X(self, X, reset=False, dtype=np.float32)
        sums: list[np.ndarray] | None = None
        counts: list[np.ndarray] | None = None
        for tree in self.estimators_:
            leaves = tree.tree_.apply(X)
            vals = [v[leaves] for v in tree.tree_.value]
            if sums is None or counts is None:
                sums = [np.zeros_like(v, dtype=float) for v in vals]
                counts = [np.zeros(v.shape[0]) for v in vals]
            for t, v in enumerate(vals):
                ok = ~np.isnan(v if v.ndim == 1 else v[:, 0])  # a tree without labels of t
                sums[t][ok] += v[ok]
                counts[t][ok] += 1
        assert sums is not None and counts is not None  # n_estimators >= 1
        out = []
        for s, c in zip(sums, counts, strict=True):
            c = np.where(c > 0, c, np.nan)
            out.append(s / (c if s.ndim == 1 else c[:, None]))
        return out

    @property
    def feature_importances_(self) -> np.ndarray:
        """Mean over trees of the trees' normalised split-score importances."""
        check_is_fitted(self, "estimators_")
        return np.mean([t.feature_importances_ for t in self.estimators_], axis=0)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags


class MultiTaskForestClassifier(ClassifierMixin, _BaseMultiTaskForest):
    """A random forest of :class:`~mtlkit.classic.MultiTaskTreeClassifier` trees.

    Breiman (2001), "Random Forests"; each tree's splits serve all tasks (see
    :mod:`mtlkit.classic.tree`). Missing labels (NaN) are ignored per task.

    With numba installed (``pip install mtlkit[fast]``) the trees grow through compiled
    kernels, into exactly the trees of the numpy path; the environment variable
    ``MTLKIT_NUMBA=0`` (read at every ``fit``) forces the numpy path.

    Args:
        n_estimators: number of trees.
        criterion, max_depth, min_samples_split, min_samples_leaf, task_weights: as the tree.
        max_features: features drawn per node (default ``"sqrt"``, as scikit-learn).
        bootstrap: grow each tree on a bootstrap sample (else on all samples).
        n_jobs: joblib threads (``None`` = 1, ``-1`` = all cores).
        random_state: seed of the bootstrap samples and feature draws.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 5))
    >>> Y = np.column_stack([X[:, 0] > 0, X[:, 0] + X[:, 1] > 0]).astype(int)
    >>> forest = MultiTaskForestClassifier(n_estimators=10, random_state=0).fit(X, Y)
    >>> forest.predict([[2.0, 2.0, 0, 0, 0], [-2.0, -2.0, 0, 0, 0]]).tolist()
    [[1, 1], [0, 0]]
    """

    _tree_class = MultiTaskTreeClassifier

    def _set_class_attributes(self) -> None:
        n = [len(c) for c in self._classes]
        self.classes_ = self._classes[0] if self._single else list(self._classes)
        self.n_classes_ = n[0] if self._single else n

    def predict_proba(self, X):
        """Mean class fractions of the trees: one (n, C) array, or a list per task."""
        raw = self._raw(X)
        return raw[0] if self._single else raw

    def predict(self, X):
        raw = self._raw(X)
        cols = [
            _labels_from_fractions(np.nan_to_num(r, nan=0.0), c)
            for r, c in zip(raw, self._classes, strict=True)
        ]
        return cols[0] if self._single else stack_predictions(cols)

    def score(self, X, y, sample_weight=None):
        """Mean over tasks of the accuracy on each task's labelled entries."""
        if sample_weight is not None:
            return super().score(X, y, sample_weight=sample_weight)
        return multitask_score(self, X, y, ["classification"] * self.n_outputs_)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MultiTaskForestRegressor(RegressorMixin, _BaseMultiTaskForest):
    """A random forest of :class:`~mtlkit.classic.MultiTaskTreeRegressor` trees.

    Breiman (2001), "Random Forests"; Kocev et al. (2013), "Tree ensembles for predicting
    structured outputs". Args as :class:`MultiTaskForestClassifier`, with
    ``criterion="squared_error"`` and ``max_features=1.0`` (all features, as scikit-learn's
    regression forest). numba kernels and ``MTLKIT_NUMBA``: as
    :class:`MultiTaskForestClassifier`.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 3))
    >>> Y = np.column_stack([X[:, 0], 10 * X[:, 0]])
    >>> f = MultiTaskForestRegressor(n_estimators=10, random_state=0).fit(X, Y)
    >>> bool(f.score(X, Y) > 0.9)
    True
    """

    _tree_class = MultiTaskTreeRegressor

    def __init__(
        self,
        *,
        n_estimators=100,
        criterion="squared_error",
        max_depth=None,
        min_samples_split=2,
        min_samples_leaf=1,
        max_features=1.0,
        bootstrap=True,
        task_weights=None,
        n_jobs=None,
        random_state=None,
    ):
        super().__init__(
            n_estimators=n_estimators,
            criterion=criterion,
            max_depth=max_depth,
            min_samples_split=min_samples_split,
            min_samples_leaf=min_samples_leaf,
            max_features=max_features,
            bootstrap=bootstrap,
            task_weights=task_weights,
            n_jobs=n_jobs,
            random_state=random_state,
        )

    def predict(self, X):
        raw = self._raw(X)
        return raw[0] if self._single else np.column_stack(raw)

    def score(self, X, y, sample_weight=None):
        """Mean over tasks of R² on each task's labelled entries."""
        if sample_weight is not None:
            return super().score(X, y, sample_weight=sample_weight)
        return multitask_score(self, X, y, ["regression"] * self.n_outputs_)


class MultiTaskForest(_BaseMultiTaskForest):
    """A random forest of mixed-task :class:`~mtlkit.classic.MultiTaskTree` trees.

    ``task_kinds`` as :class:`~mtlkit.classic.MultiTaskTree` (``None``: inferred per
    column); ``criterion`` applies to the classification tasks. ``predict`` returns an
    (n, T) array, ``predict_proba`` a list (``None`` for regression tasks), ``score`` the
    mean over tasks of accuracy / R². numba kernels and ``MTLKIT_NUMBA``: as
    :class:`MultiTaskForestClassifier`.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 3))
    >>> Y = np.column_stack([X[:, 0] > 0, 3 * X[:, 0]])
    >>> f = MultiTaskForest(task_kinds=["classification", "regression"], n_estimators=10,
    ...                     random_state=0).fit(X, Y)
    >>> f.predict([[2.0, 0.0, 0.0]]).round(1).tolist()[0][0]
    1.0
    """

    _tree_class = MultiTaskTree

    def __init__(
        self,
        *,
        task_kinds=None,
        n_estimators=100,
        criterion="gini",
        max_depth=None,
        min_samples_split=2,
        min_samples_leaf=1,
        max_features="sqrt",
        bootstrap=True,
        task_weights=None,
        n_jobs=None,
        random_state=None,
    ):
        super().__init__(
            n_estimators=n_estimators,
            criterion=criterion,
            max_depth=max_depth,
            min_samples_split=min_samples_split,
            min_samples_leaf=min_samples_leaf,
            max_features=max_features,
            bootstrap=bootstrap,
            task_weights=task_weights,
            n_jobs=n_jobs,
            random_state=random_state,
        )
        self.task_kinds = task_kinds

    def _task_kinds_param(self):
        return MultiTaskTree(task_kinds=self.task_kinds)._task_kinds_param()

    def _set_class_attributes(self) -> None:
        self.classes_ = list(self._classes)

    @available_if(has_classification_task)
    def predict_proba(self, X):
        """Per task its class probabilities (n, C), ``None`` for a regression task."""
        return mixed_proba(self._raw(X), self.task_kinds_, self._single)

    def predict(self, X):
        raw = self._raw(X)
        cols = [
            _labels_from_fractions(np.nan_to_num(r, nan=0.0), c) if k == "classification" else r
            for r, c, k in zip(raw, self._classes, self.task_kinds_, strict=True)
        ]
        return cols[0] if self._single else stack_predictions(cols)

    def score(self, X, y):
        """Mean over tasks of accuracy (classification) or R² (regression)."""
        check_is_fitted(self, "estimators_")
        return multitask_score(self, X, y, self.task_kinds_)
