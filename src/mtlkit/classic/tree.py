"""Multi-task decision trees: one tree whose every split is chosen for all tasks at once.

A split of node ``v`` into children ``L`` and ``R`` is scored by the weighted sum over
tasks of each task's impurity decrease, normalised by that task's impurity at the root so
that no task dominates through the scale of its targets:

    score(v → L, R) = Σ_t w_t · [n_t(v) I_t(v) − n_t(L) I_t(L) − n_t(R) I_t(R)] / (N_t I_t(root))

``n_t(·)`` is the weighted number of samples of the node *labelled for task t* (a sample
whose target of task ``t`` is missing, NaN, counts for the other tasks only), ``I_t`` the
impurity of task ``t`` on those samples (Gini or entropy for classification, variance for
regression), ``N_t``/``I_t(root)`` the same at the root, ``w_t`` the task weight. Each term
is scikit-learn's "weighted impurity decrease" of that task divided by its root impurity,
so with one task the best split is scikit-learn's best split. A task that is pure at the
root scores 0. Leaves predict, per task, the class fractions or the mean of the labelled
samples they hold (or their parent's prediction if they hold none).

This is the multi-objective tree idea of Blockeel, De Raedt & Ramon (1998), "Top-down
induction of clustering trees" (predictive clustering trees: one tree, impurity summed over
the target variables, each target's variance normalised) and of Caruana (1997),
"Multitask learning", Machine Learning 28:41-75 (section on decision trees: a split is
chosen by the average information gain of all tasks). The choices here (per-task root
normalisation, task weights, NaN-masked targets) are stated above; ties between splits of
equal score go to the lowest feature index, then the lowest threshold.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import _check_sample_weight, check_is_fitted

from mtlkit._checks import check_choice, check_int
from mtlkit.classic._common import (
    check_same_length,
    encode_targets,
    has_classification_task,
    mixed_proba,
    multitask_score,
    resolve_max_features,
    resolve_task_kinds,
    resolve_task_weights,
    stack_predictions,
    validate_X,
)
from mtlkit.classic._tree_builder import TreeArrays, build_tree

__all__ = ["MultiTaskTree", "MultiTaskTreeClassifier", "MultiTaskTreeRegressor"]

_CLASS_CRITERIA = ("gini", "entropy", "log_loss")


class _BaseMultiTaskTree(BaseEstimator):
    """Shared fit/predict machinery; subclasses fix how targets are read."""

    _default_kind: str | None = None

    def __init__(
        self,
        *,
        criterion="gini",
        max_depth=None,
        min_samples_split=2,
        min_samples_leaf=1,
        max_features=None,
        task_weights=None,
        random_state=None,
    ):
        self.criterion = criterion
        self.max_depth = max_depth
        self.min_samples_split = min_samples_split
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.task_weights = task_weights
        self.random_state = random_state

    # ------------------------------------------------------------------ params
    def _criteria(self) -> tuple[str, ...]:
        return _CLASS_CRITERIA

    def _check_params(self) -> None:
        check_choice(type(self).__name__, "criterion", self.criterion, options=self._criteria())
        check_int(type(self).__name__, "max_depth", self.max_depth, low=1, none_ok=True)
        check_int(type(self).__name__, "min_samples_split", self.min_samples_split, low=2)
        check_int(type(self).__name__, "min_samples_leaf", self.min_samples_leaf, low=1)

    def _task_kinds_param(self):
        return self._default_kind

    # ------------------------------------------------------------------ fit
    def fit(self, X, y, sample_weight=None):
        """Grow the tree on ``X`` (n, p) and targets ``y`` (n,) or (n, T); NaN = missing."""
        self._check_params()
        X = validate_X(self, X, reset=True, dtype=np.float32)
        targets = encode_targets(self, y, self._task_kinds_param())
        check_same_length(self, X, targets.Y)
        sw = None
        if sample_weight is not None:
            sw = _check_sample_weight(sample_weight, X, dtype=np.float64)
            if np.any(sw < 0):
                raise ValueError("Negative values in data passed to `sample_weight`.")
            if not np.any(sw > 0):
                raise ValueError("Sample weights must contain at least one non-zero number.")
        self._set_targets(targets)
        return self._fit_encoded(X, targets.Y, sample_weight=sw)

    def _set_targets(self, targets) -> None:
        self.n_outputs_ = targets.n_tasks
        self.task_kinds_ = list(targets.kinds)
        self._classes = targets.classes
        self._single = targets.single_output
        self._set_class_attributes()

    def _set_class_attributes(self) -> None:
        pass

    def _fit_encoded(self, X, Y, *, sample_weight, rng=None, features=None):
        """Fit on validated float32 X and encoded targets (used by the forests too).

        ``features``: a :class:`FeatureInfo` of ``X`` shared by the trees of a forest.
        """
        if sample_weight is not None:
            keep = sample_weight > 0
            if not keep.all():  # zero weight: the sample is not in the tree at all
                X, Y, sample_weight = X[keep], Y[keep], sample_weight[keep]
                features = None if features is None else features.subset(keep)
        self.max_features_ = resolve_max_features(self, self.max_features, X.shape[1])
        self.task_weights_ = resolve_task_weights(self, self.task_weights, Y.shape[1])
        criterion = "entropy" if self.criterion == "log_loss" else self.criterion
        if criterion not in ("gini", "entropy"):
            criterion = "gini"  # regression-only trees: unused
        rng = check_random_state(self.random_state) if rng is None else rng
        self.tree_: TreeArrays = build_tree(
            X,
            Y,
            self.task_kinds_,
            [len(c) if c is not None else 0 for c in self._classes],
            sample_weight=sample_weight,
            task_weights=self.task_weights_,
            criterion=criterion,
            max_depth=self.max_depth,
            min_samples_split=self.min_samples_split,
            min_samples_leaf=self.min_samples_leaf,
            max_features=self.max_features_,
            rng=rng,
            features=features,
        )
        return self

    # ------------------------------------------------------------------ predict
    def _validate_predict(self, X):
        check_is_fitted(self, "tree_")
        return validate_X(self, X, reset=False, dtype=np.float32)

    def apply(self, X):
        """Index of the leaf each sample ends in."""
        X = self._validate_predict(X)
        return self.tree_.apply(X)

    def _raw(self, X) -> list[np.ndarray]:
        """Per task: class fractions (n, C) or values (n,)."""
        X = self._validate_predict(X)
        leaves = self.tree_.apply(X)
        return [v[leaves] for v in self.tree_.value]

    def get_depth(self) -> int:
        check_is_fitted(self, "tree_")
        return self.tree_.max_depth

    def get_n_leaves(self) -> int:
        check_is_fitted(self, "tree_")
        return self.tree_.n_leaves

    @property
    def feature_importances_(self) -> np.ndarray:
        """Total split score per feature (see the module docstring), normalised to sum 1."""
        check_is_fitted(self, "tree_")
        imp = np.zeros(self.n_features_in_)
        inner = self.tree_.feature >= 0
        np.add.at(imp, self.tree_.feature[inner], self.tree_.improvement[inner])
        total = imp.sum()
        return imp / total if total > 0 else imp

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags


def _labels_from_fractions(fractions: np.ndarray, classes: np.ndarray) -> np.ndarray:
    return classes[np.argmax(fractions, axis=1)]


class MultiTaskTreeClassifier(ClassifierMixin, _BaseMultiTaskTree):
    """A decision tree for several classification tasks at once (one tree, shared splits).

    Every split maximises the weighted sum over tasks of each task's Gini (or entropy)
    decrease, normalised by the task's impurity at the root; a missing label (NaN) is
    ignored by its task only. See :mod:`mtlkit.classic.tree` for the exact score and
    Blockeel, De Raedt & Ramon (1998), "Top-down induction of clustering trees"; Caruana
    (1997), "Multitask learning".

    With numba installed (``pip install mtlkit[fast]``) the tree grows through compiled
    kernels, into exactly the trees of the numpy path; the environment variable
    ``MTLKIT_NUMBA=0`` (read at every ``fit``) forces the numpy path.

    Args:
        criterion: ``"gini"``, ``"entropy"`` or ``"log_loss"`` (= entropy).
        max_depth: maximum depth (root = 0), ``None`` for unlimited.
        min_samples_split: minimum number of samples (rows) to split a node.
        min_samples_leaf: minimum number of samples (rows) in each child.
        max_features: features drawn at random per node among the non-constant ones
            (``None`` = all, int, fraction, ``"sqrt"``, ``"log2"``).
        task_weights: one non-negative weight per task (default: all 1).
        random_state: seed of the feature draws.

    Attributes:
        tree_: the fitted :class:`~mtlkit.classic._tree_builder.TreeArrays`.
        classes_: the classes (one array per task, or one array when ``y`` is 1-D).
        n_outputs_, task_kinds_, n_features_in_, max_features_, task_weights_.

    >>> import numpy as np
    >>> X = np.array([[0.0], [1.0], [2.0], [3.0]])
    >>> Y = np.array([[0, 1], [0, 1], [1, 0], [1, np.nan]])
    >>> tree = MultiTaskTreeClassifier(max_depth=1).fit(X, Y)
    >>> float(tree.tree_.threshold[0]), tree.predict([[0.5], [2.5]]).tolist()
    (1.5, [[0.0, 1.0], [1.0, 0.0]])
    """

    _default_kind = "classification"

    def _set_class_attributes(self) -> None:
        n = [len(c) for c in self._classes]
        self.classes_ = self._classes[0] if self._single else list(self._classes)
        self.n_classes_ = n[0] if self._single else n

    def predict_proba(self, X):
        """Class fractions of the leaf: one (n, C) array, or a list of them per task."""
        raw = self._raw(X)
        return raw[0] if self._single else raw

    def predict(self, X):
        raw = self._raw(X)
        cols = [_labels_from_fractions(r, c) for r, c in zip(raw, self._classes, strict=True)]
        return cols[0] if self._single else stack_predictions(cols)

    def score(self, X, y, sample_weight=None):
        """Mean over tasks of the accuracy on the labelled entries of each task."""
        if sample_weight is not None:
            return super().score(X, y, sample_weight=sample_weight)
        return multitask_score(self, X, y, ["classification"] * self.n_outputs_)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MultiTaskTreeRegressor(RegressorMixin, _BaseMultiTaskTree):
    """A decision tree for several regression tasks at once (one tree, shared splits).

    Every split maximises the weighted sum over tasks of each task's variance reduction,
    normalised by the task's variance at the root (so targets on different scales count
    alike); a missing target (NaN) is ignored by its task only. See
    :mod:`mtlkit.classic.tree` and Blockeel, De Raedt & Ramon (1998), "Top-down induction of
    clustering trees".

    numba kernels and ``MTLKIT_NUMBA``: as :class:`MultiTaskTreeClassifier`.

    Args: as :class:`MultiTaskTreeClassifier`, with ``criterion="squared_error"``.

    >>> import numpy as np
    >>> X = np.array([[0.0], [1.0], [2.0], [3.0]])
    >>> Y = np.array([[0.0, 10.0], [0.0, 10.0], [1.0, 30.0], [1.0, np.nan]])
    >>> MultiTaskTreeRegressor(max_depth=1).fit(X, Y).predict([[0.0], [3.0]]).tolist()
    [[0.0, 10.0], [1.0, 30.0]]
    """

    _default_kind = "regression"

    def __init__(
        self,
        *,
        criterion="squared_error",
        max_depth=None,
        min_samples_split=2,
        min_samples_leaf=1,
        max_features=None,
        task_weights=None,
        random_state=None,
    ):
        super().__init__(
            criterion=criterion,
            max_depth=max_depth,
            min_samples_split=min_samples_split,
            min_samples_leaf=min_samples_leaf,
            max_features=max_features,
            task_weights=task_weights,
            random_state=random_state,
        )

    def _criteria(self) -> tuple[str, ...]:
        return ("squared_error",)

    def predict(self, X):
        raw = self._raw(X)
        return raw[0] if self._single else np.column_stack(raw)

    def score(self, X, y, sample_weight=None):
        """Mean over tasks of R² on the labelled entries of each task."""
        if sample_weight is not None:
            return super().score(X, y, sample_weight=sample_weight)
        return multitask_score(self, X, y, ["regression"] * self.n_outputs_)


class MultiTaskTree(_BaseMultiTaskTree):
    """A decision tree for a mix of classification and regression tasks (shared splits).

    ``task_kinds`` lists ``"classification"`` or ``"regression"`` per column of ``y``
    (``None``: a column is a regression task when scikit-learn's ``type_of_target`` calls
    its labelled values ``"continuous"``, else a classification task). The split score
    adds the normalised Gini/entropy decreases of the classification tasks and the
    normalised variance reductions of the regression tasks; the root normalisation makes
    them comparable (each task's term is a fraction of its root impurity). See
    :mod:`mtlkit.classic.tree`.

    numba kernels and ``MTLKIT_NUMBA``: as :class:`MultiTaskTreeClassifier`.

    Args: as :class:`MultiTaskTreeClassifier`, plus ``task_kinds``; ``criterion`` applies
    to the classification tasks.

    ``predict`` returns an (n, T) array (object dtype when class labels are strings);
    ``predict_proba`` a list with one (n, C) array per task, ``None`` for regression tasks;
    ``score`` the mean over tasks of accuracy / R².

    >>> import numpy as np
    >>> X = np.array([[0.0], [1.0], [2.0], [3.0]])
    >>> Y = np.array([[0, 0.5], [0, 0.7], [1, 3.1], [1, 2.9]])
    >>> tree = MultiTaskTree(task_kinds=["classification", "regression"], max_depth=1)
    >>> tree.fit(X, Y).predict([[0.0], [3.0]]).round(2).tolist()
    [[0.0, 0.6], [1.0, 3.0]]
    """

    def __init__(
        self,
        *,
        task_kinds=None,
        criterion="gini",
        max_depth=None,
        min_samples_split=2,
        min_samples_leaf=1,
        max_features=None,
        task_weights=None,
        random_state=None,
    ):
        super().__init__(
            criterion=criterion,
            max_depth=max_depth,
            min_samples_split=min_samples_split,
            min_samples_leaf=min_samples_leaf,
            max_features=max_features,
            task_weights=task_weights,
            random_state=random_state,
        )
        self.task_kinds = task_kinds

    def _task_kinds_param(self):
        if isinstance(self.task_kinds, str):  # a list is required (checked per column later)
            resolve_task_kinds(self, self.task_kinds, 1)
        return self.task_kinds

    def _set_class_attributes(self) -> None:
        self.classes_ = list(self._classes)

    @available_if(has_classification_task)
    def predict_proba(self, X):
        """Per task its class probabilities (n, C), ``None`` for a regression task."""
        return mixed_proba(self._raw(X), self.task_kinds_, self._single)

    def predict(self, X):
        raw = self._raw(X)
        cols = [
            _labels_from_fractions(r, c) if k == "classification" else r
            for r, c, k in zip(raw, self._classes, self.task_kinds_, strict=True)
        ]
        return cols[0] if self._single else stack_predictions(cols)

    def score(self, X, y):
        """Mean over tasks of accuracy (classification) or R² (regression)."""
        check_is_fitted(self, "tree_")
        return multitask_score(self, X, y, self.task_kinds_)
