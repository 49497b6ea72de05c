"""Gradient-boosted trees as single-task references (``baselines: [neural, gbdt]``).

Each primary task is also fitted with scikit-learn's ``HistGradientBoostingClassifier`` /
``HistGradientBoostingRegressor`` on the run's training split, reading the same fitted
preprocessing as the neural models (:meth:`~mtlkit.data.tabular.TablePreprocessor.gbdt_matrix`:
numbers raw with their missing values, categories as the training vocabulary's codes, native
categorical splits), and evaluated on the same test split with the same metrics. Tabular
users then weigh the multi-task model against a strong non-neural reference.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import torch

from mtlkit.run.data import PreparedData
from mtlkit.run.summary import ModelResult
from mtlkit.run.train_one import evaluate_outputs
from mtlkit.tasks import Task

__all__ = ["GBDTBaselines", "gbdt_supports", "train_gbdt"]


@dataclass
class GBDTBaselines:
    """The fitted boosted-tree references: results (``summary["gbdt"]``), confusion
    matrices, and the estimators (one per task; a list for a multi-output regression)."""

    results: dict[str, ModelResult] = field(default_factory=dict)
    confusion: dict[str, Any] = field(default_factory=dict)
    models: dict[str, Any] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def gbdt_supports(task: Task) -> bool:
    """Binary, multiclass and (multi-output) regression tasks on one row each."""
    kind = task.task_kind
    return not kind.dense and not kind.pairwise and (kind.class_per_sample or not kind.is_classification)


def _matrices(prepared: PreparedData) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """(train X, test X, categorical mask or None) on the run's split."""
    table = prepared.table
    if table is not None:
        x, cat = table.preprocessor.gbdt_matrix(table.frame, source="the table")
        return x[table.train_idx], x[table.test_idx], x[table.val_idx], cat if cat.any() else None
    parts = [p.x for p in (prepared.train, prepared.test, prepared.val)]
    if not all(isinstance(x, torch.Tensor) and x.dim() == 2 for x in parts):
        raise ValueError("GBDT baselines need flat (tabular) inputs; this run's inputs have shape "
                         f"{prepared.train.input_shape}.")
    tr, te, va = (cast(torch.Tensor, x).double().numpy() for x in parts)
    return tr, te, va, None


def train_gbdt(prepared: PreparedData, tasks: Sequence[Task] | None = None, *, seed: int = 0,
               say: Callable[[str], None] | None = None, max_iter: int = 200) -> GBDTBaselines:
    """Fit and evaluate one boosted-tree model per primary task (see the module docstring)."""
    say = say or (lambda s: None)
    out = GBDTBaselines()
    tasks = [t for t in (tasks if tasks is not None else prepared.tasks) if t.role == "primary"]
    from threadpoolctl import threadpool_limits

    xtr, xte, _, cat = _matrices(prepared)
    train, test = prepared.train, prepared.test
    # OpenMP threads cost more than they give on small tables (and on a busy machine)
    with threadpool_limits(1 if len(xtr) < 20_000 else None):
        _fit_all(out, tasks, train, test, xtr, xte, cat, seed, max_iter, say)
    return out


def _fit_all(out: GBDTBaselines, tasks: Sequence[Task], train: Any, test: Any, xtr: np.ndarray, xte: np.ndarray,
             cat: np.ndarray | None, seed: int, max_iter: int, say: Callable[[str], None]) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    for t in tasks:
        if not gbdt_supports(t):
            out.skipped[t.name] = f"{t.kind} tasks have no GBDT reference"
            continue
        say(f"Fitting the GBDT baseline for {t.name!r} ...")
        y = train.targets[t.name].numpy()
        m = train.masks[t.name].numpy().astype(bool)
        common = {"random_state": seed, "categorical_features": cat, "max_iter": max_iter}
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            if t.task_kind.class_per_sample:
                est: Any = HistGradientBoostingClassifier(**common).fit(xtr[m], y[m].astype(np.int64))
            else:
                y2, m2 = y.reshape(len(y), -1), m.reshape(len(m), -1)
                est = [HistGradientBoostingRegressor(**common).fit(xtr[m2[:, j]], y2[m2[:, j], j])
                       for j in range(y2.shape[1])]
        fit_s = time.perf_counter() - t0
        raw = _raw_outputs(t, est, xte)
        t1 = time.perf_counter()
        _raw_outputs(t, est, xte[:1000])
        ms = (time.perf_counter() - t1) * 1000.0 * (1000 / max(1, min(1000, len(xte))))
        metrics, confusion, _ = evaluate_outputs([t], {t.name: raw}, test)
        out.results[t.name] = ModelResult(test=metrics[t.name], params=None, inference_ms=ms,
                                          fit_time_s=round(fit_s, 3), best_epoch=None)
        out.confusion[t.name] = confusion.get(t.name)
        out.models[t.name] = est


def _raw_outputs(task: Task, est: Any, x: np.ndarray) -> torch.Tensor:
    """The estimator's predictions as the task's raw outputs (logits, log-probabilities or
    standardised values), so the task's own metrics read them as the neural model's."""
    if task.task_kind.class_per_sample:
        proba = est.predict_proba(x)
        eps = 1e-12
        if task.task_kind.binary_targets:
            p = np.clip(proba[:, list(est.classes_).index(1)] if 1 in est.classes_ else np.zeros(len(x)), eps, 1 - eps)
            return torch.as_tensor(np.log(p) - np.log1p(-p), dtype=torch.float32)
        full = np.full((len(x), int(task.num_classes or 0)), eps)
        full[:, np.asarray(est.classes_, dtype=np.int64)] = proba
        return torch.as_tensor(np.log(np.clip(full, eps, 1.0)), dtype=torch.float32)
    y = np.stack([e.predict(x) for e in est], axis=1)
    if task.target_mean is not None and task.target_std is not None:
        y = (y - np.asarray(task.target_mean)) / np.asarray(task.target_std)
    return torch.as_tensor(y, dtype=torch.float32)
