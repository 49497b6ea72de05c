"""Multi-task learning without neural networks, with the scikit-learn API.

* :class:`MultiTaskTreeClassifier`, :class:`MultiTaskTreeRegressor`, :class:`MultiTaskTree`
  (mixed task kinds): one decision tree whose splits serve all tasks.
* :class:`MultiTaskForestClassifier`, :class:`MultiTaskForestRegressor`,
  :class:`MultiTaskForest`: bagged multi-task trees with feature subsampling.
* :class:`MultiTaskGroupLasso`: per-task linear/logistic models coupled by the ℓ2,1 penalty
  (the tasks select the same features).
* :class:`ClusteredMultiTaskLinear`: linear regressions coupled by the clustered multi-task
  penalty (tasks are pulled towards the mean of their cluster).

Targets are a 2-D array (samples x tasks); NaN marks a missing label of one task.
"""

from mtlkit.classic.clustered import ClusteredMultiTaskLinear
from mtlkit.classic.forest import (
    MultiTaskForest,
    MultiTaskForestClassifier,
    MultiTaskForestRegressor,
)
from mtlkit.classic.group_lasso import MultiTaskGroupLasso
from mtlkit.classic.tree import MultiTaskTree, MultiTaskTreeClassifier, MultiTaskTreeRegressor

__all__ = [
    "ClusteredMultiTaskLinear",
    "MultiTaskForest",
    "MultiTaskForestClassifier",
    "MultiTaskForestRegressor",
    "MultiTaskGroupLasso",
    "MultiTaskTree",
    "MultiTaskTreeClassifier",
    "MultiTaskTreeRegressor",
]
