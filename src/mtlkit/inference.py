"""Using a finished run: load it (no pickle), turn a table into model inputs, predict.

A table goes in as it is (the run's fitted preprocessing encodes it: see
:mod:`mtlkit.data.tabular`) and a table comes out: per task the decoded label (the class
name) and its probabilities, or the value in original units; the input's index and its ID
columns are carried through.

>>> import numpy as np, pandas as pd
>>> from mtlkit import Task, fit
>>> r = np.random.default_rng(0)
>>> df = pd.DataFrame({"a": r.normal(size=200), "colour": r.choice(["red", "blue"], 200)})
>>> df["big"] = np.where(df["a"] > 0, "yes", "no")
>>> res = fit(df, [Task("big", "binary")], epochs=2, baselines=False)
>>> list(res.predict(df.head(3)).columns)
['big', 'big_proba']
>>> res.predict(df.head(3))["big"].isin(["yes", "no"]).all()
np.True_
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pandas as pd
import torch
from torch import nn

from mtlkit import _batch
from mtlkit._batch import Inputs
from mtlkit.data._dataset import MultiTaskData
from mtlkit.data._preprocess import Standardizer
from mtlkit.data._table import features_from_frame, load_images, targets_from_frame
from mtlkit.data.tabular import TablePreprocessor, is_table_preprocessing, labels_from_frame
from mtlkit.data.tagging import is_tagging, tag_targets, word_tag_strings
from mtlkit.run.folder import load_model
from mtlkit.tasks import Task, task_from_dict
from mtlkit.training.trainer import predict_raw as _predict_raw


@dataclass
class LoadedRun:
    """A trained model with what it needs to read a table: ``model.json``'s metadata
    (``meta``: preprocessing, features, tasks with their class names and target scales).

    ``predict(df)`` -> a DataFrame; ``predict_raw(df)`` -> the raw outputs (tensors);
    ``evaluate(df)`` -> metrics on a labelled table."""

    run_dir: Path | None
    model: nn.Module
    meta: dict[str, Any]
    tasks: list[Task]

    @property
    def primary_tasks(self) -> list[Task]:
        return [t for t in self.tasks if t.role == "primary"] or self.tasks

    @property
    def preprocessor(self) -> TablePreprocessor | None:
        pre = self.meta.get("preprocessing")
        return TablePreprocessor.from_dict(cast(dict[str, Any], pre)) if is_table_preprocessing(pre) else None

    def predict(self, df: pd.DataFrame, *, all_tasks: bool = False) -> pd.DataFrame:
        """Predictions as a table (see :func:`predict_frame`)."""
        return predict_frame(self, df, all_tasks=all_tasks)

    def predict_raw(self, x: pd.DataFrame | torch.Tensor | Any) -> dict[str, torch.Tensor]:
        """Raw outputs (logits, standardised values) per task for a table or encoded inputs
        (a tensor, or ``{name: tensor}`` for a model with several inputs: a missing input is an
        error naming it)."""
        if isinstance(x, pd.DataFrame):
            return _predict_raw(self.model, check_inputs(self.meta, inputs_from_frame(self, x)))
        # encoded inputs: standardised as in training (as RunResult.predict_raw does)
        return _predict_raw(self.model, standardized_inputs(self.meta.get("preprocessing"),
                                                            check_inputs(self.meta, x)))

    def evaluate(self, df: pd.DataFrame) -> dict[str, dict[str, float]]:
        return evaluate_frame(self, df)


def load_run(run_dir: str | Path) -> LoadedRun:
    """A finished run folder (or an exported safetensors folder) as a :class:`LoadedRun`."""
    model, meta = load_model(run_dir)
    return LoadedRun(Path(run_dir), model, meta, [task_from_dict(t) for t in meta["tasks"]])


def standardized_inputs(pre: Mapping[str, Any] | None, x: Inputs) -> Inputs:
    """Encoded inputs standardised as in training, for a run without table preprocessing
    (``pre``: the run's recorded ``preprocessing``): each flat named input with its own fitted
    statistics (``kind: inputs``), or the one tensor with the run's; unchanged otherwise (a
    table's encoding already holds its scaling).

    >>> import torch
    >>> standardized_inputs({"mean": [1.0], "std": [2.0]}, torch.tensor([[3.0]]))
    tensor([[1.]])
    """
    if not pre or is_table_preprocessing(dict(pre)):
        return x
    if isinstance(x, Mapping):
        fitted = pre.get("inputs", {}) if pre.get("kind") == "inputs" else {}
        return {k: Standardizer.from_dict(fitted[k]).transform(v) if k in fitted else v for k, v in x.items()}
    if pre.get("kind") == "inputs":
        return x
    return Standardizer.from_dict(dict(pre)).transform(x)


def check_inputs(meta: dict[str, Any], x: Any, *, source: str = "the inputs") -> Inputs:
    """``x`` as model inputs (float32 where floating), checked against the run's recorded input
    shape: for a model of several named inputs, a dict with each of them (a missing one, or one
    of another per-sample shape, is an error naming it); else one tensor.

    >>> meta = {"input_shape": {"accel": [3, 8], "gyro": [3, 8]}}
    >>> check_inputs(meta, {"accel": torch.zeros(2, 3, 8)})
    Traceback (most recent call last):
    ...
    KeyError: "The model needs the input(s) ['gyro'], missing from the inputs ['accel']; it reads ['accel', 'gyro']."
    """
    want = meta.get("input_shape")
    x = _batch.float_inputs(_batch.as_inputs(x, source=source))
    if isinstance(want, Mapping):
        names = list(want)
        if not _batch.is_multi(x):
            raise TypeError(f"The model reads several named inputs {names}; {source} are a single "
                            f"{type(x).__name__}. Pass a dict {{name: tensor}}.")
        missing = [k for k in names if k not in x]
        if missing:
            raise KeyError(f"The model needs the input(s) {missing}, missing from {source} {sorted(x)}; "
                           f"it reads {names}.")
        got = _batch.shape_of(x)
        for k in names:
            if list(got[k]) != list(want[k]):  # type: ignore[index]
                raise ValueError(f"Input {k!r} has per-sample shape {got[k]}; the model was trained on "  # type: ignore[index]
                                 f"{tuple(want[k])}.")
        return {k: x[k] for k in names}  # type: ignore[index]
    if _batch.is_multi(x):
        raise TypeError(f"The model reads one input tensor; {source} are a dict {sorted(x)}.")
    return x


def inputs_from_frame(run: LoadedRun, df: pd.DataFrame, *, source: str = "the input") -> Inputs:
    """Model inputs from a table: the training feature columns (or image paths), encoded
    as during training. Label and privileged columns are not needed."""
    meta = run.meta
    pre = meta.get("preprocessing")
    layout = cast(dict[str, Any], pre).get("inputs") if is_table_preprocessing(pre) else None
    if isinstance(meta.get("input_shape"), Mapping) and not layout:
        raise ValueError(f"This run's model reads several named inputs {list(meta['input_shape'])}, not a table: "
                         f"predict on a dict of tensors (LoadedRun.predict_raw({{name: tensor}})).")
    if len(df) == 0:  # a header-only file: no samples to predict (was a bare KeyError)
        raise ValueError(f"{source} is empty: it has no rows.")
    if is_table_preprocessing(pre):
        x = torch.as_tensor(TablePreprocessor.from_dict(cast(dict[str, Any], pre)).transform(df, source=source))
        if layout:  # a table divided into named inputs (data.inputs): divided again the same way
            from mtlkit.run.data import divide_table

            return divide_table(x, layout)
        return x
    if meta.get("image_column"):
        col = meta["image_column"]
        if col not in df.columns:
            raise KeyError(f"Image column {col!r} not found in {source}.")
        x = torch.as_tensor(load_images(df[col].astype(str).tolist(), root=meta.get("image_root")))
    elif meta.get("features"):
        x = torch.as_tensor(features_from_frame(df, meta["features"], source=source))
    else:
        raise ValueError("This run was not trained on a table (no feature columns recorded); "
                         "predict on tensors with the Python API instead.")
    if pre:
        x = Standardizer.from_dict(pre).transform(x)
    return x


def prediction_table(tasks: Sequence[Task], out: dict[str, torch.Tensor], index: Any = None) -> pd.DataFrame:
    """The prediction columns of raw outputs: per task the decoded label and its
    probabilities (classification) or the values in original units (regression)."""
    cols: dict[str, Any] = {}
    for t in tasks:
        if t.task_kind.dense and not getattr(t.task_kind, "text_output", False):  # maps: use predict_raw
            continue
        # class and probability, the pair distance and decision, or the values, by kind
        cols.update(t.task_kind.prediction_columns(t, out[t.name]))
    return pd.DataFrame(cols, index=index)


def predict_frame(run: LoadedRun, df: pd.DataFrame, *, all_tasks: bool = False) -> pd.DataFrame:
    """One or more columns per task (decoded class and probabilities, or values in original
    units), the primary tasks by default; the input's ID columns come first and its index is
    kept."""
    x = inputs_from_frame(run, df)
    out = _predict_raw(run.model, x)
    pred = prediction_table(run.tasks if all_tasks else run.primary_tasks, out, index=df.index)
    pre = run.preprocessor
    for t in run.tasks if all_tasks else run.primary_tasks:
        if is_tagging(t) and pre is not None:  # per-word tags, space-separated, in the tag column's terms
            pred[t.name] = word_tag_strings(pre, df, t, out[t.name])
    ids = [c for c in (pre.ids if pre is not None else []) if c in df.columns and c not in pred.columns]
    if ids:
        pred = pd.concat([df[ids], pred], axis=1)
    return pred


def data_from_frame(run: LoadedRun, df: pd.DataFrame, *, source: str = "the data",
                    tasks: Sequence[Task] | None = None) -> MultiTaskData:
    """Inputs and labels (for evaluation) from a table with the run's columns; a class label
    that training never saw is an error naming it and its task. ``tasks``: the run's tasks
    whose labels to read (default all of them)."""
    x = inputs_from_frame(run, df, source=source)
    pre = run.preprocessor
    chosen = list(run.tasks if tasks is None else tasks)
    if pre is not None:
        targets, masks = labels_from_frame(df, [t for t in chosen if not is_tagging(t)], source=source)
        for t in chosen:
            if is_tagging(t):
                _, targets[t.name], masks[t.name] = tag_targets(pre, df, t, source=source)
            elif getattr(t.task_kind, "targets_from_inputs", False):  # generation: the decoder input slots
                from mtlkit.data.text import generation_targets

                targets[t.name], masks[t.name] = generation_targets(x, pre.input_spec or {}, t.name)
    else:
        targets, masks = targets_from_frame(df, chosen, source=source)
    return MultiTaskData(x, targets, masks, chosen, source=source)


def scored_tasks(run: LoadedRun, df: pd.DataFrame) -> list[Task]:
    """The tasks :func:`evaluate_frame` scores on ``df``: every primary task (a missing label
    column is an error naming it) and each auxiliary task whose label columns the table has —
    an auxiliary task generated from the inputs during training (``auxiliary:`` generators)
    has none, and is left out instead of failing."""
    def has_labels(t: Task) -> bool:
        return bool(getattr(t.task_kind, "targets_from_inputs", False)) or all(c in df.columns for c in t.label_columns)

    return [t for t in run.tasks if t.role != "auxiliary" or has_labels(t)]


def evaluate_frame(run: LoadedRun, df: pd.DataFrame) -> dict[str, dict[str, float]]:
    """The metrics (original units) of every task the labelled table can score
    (:func:`scored_tasks`: the primary tasks and the auxiliary ones with label columns)."""
    tasks = scored_tasks(run, df)
    data = data_from_frame(run, df, tasks=tasks)
    out = _predict_raw(run.model, data)
    return {t.name: t.evaluate(out[t.name], data.targets[t.name], data.masks[t.name]) for t in tasks}


def predict_raw(model: nn.Module, data: MultiTaskData | Inputs, **kwargs: Any) -> dict[str, torch.Tensor]:
    """Raw outputs per task (logits, standardised regression values) of encoded inputs."""
    return _predict_raw(model, data, **kwargs)


__all__ = ["LoadedRun", "check_inputs", "data_from_frame", "evaluate_frame", "inputs_from_frame", "load_run", "predict_frame",
           "predict_raw", "prediction_table", "scored_tasks", "standardized_inputs"]
