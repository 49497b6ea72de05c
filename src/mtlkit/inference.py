"""Using a finished run: load it (no pickle), turn a table into model inputs, predict."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from mtlkit.data._dataset import MultiTaskData
from mtlkit.data._preprocess import Standardizer
from mtlkit.data._table import features_from_frame, load_images, targets_from_frame
from mtlkit.run.folder import load_model
from mtlkit.tasks import Task, task_from_dict
from mtlkit.training.trainer import predict_raw


@dataclass
class LoadedRun:
    run_dir: Path
    model: nn.Module
    meta: dict[str, Any]
    tasks: list[Task]

    @property
    def primary_tasks(self) -> list[Task]:
        return [t for t in self.tasks if t.role == "primary"] or self.tasks


def load_run(run_dir: str | Path) -> LoadedRun:
    model, meta = load_model(run_dir)
    return LoadedRun(Path(run_dir), model, meta, [task_from_dict(t) for t in meta["tasks"]])


def inputs_from_frame(run: LoadedRun, df: pd.DataFrame, *, source: str = "the input") -> torch.Tensor:
    """Model inputs from a table: the training feature columns (or image paths),
    standardised as during training. Label and privileged columns are not needed."""
    meta = run.meta
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
    if meta.get("preprocessing"):
        x = Standardizer.from_dict(meta["preprocessing"]).transform(x)
    return x


def predict_frame(run: LoadedRun, df: pd.DataFrame, *, all_tasks: bool = False) -> pd.DataFrame:
    """One or more columns per task: class and probability (classification) or value(s)."""
    x = inputs_from_frame(run, df)
    out = predict_raw(run.model, x)
    cols: dict[str, Any] = {}
    for t in (run.tasks if all_tasks else run.primary_tasks):
        if t.task_kind.dense:  # maps do not fit a table: use the Python API (predict_raw)
            continue
        # class and probability, the pair distance and decision, or the values, by kind
        cols.update(t.task_kind.prediction_columns(t, out[t.name]))
    return pd.DataFrame(cols, index=df.index)


def data_from_frame(run: LoadedRun, df: pd.DataFrame, *, source: str = "the data") -> MultiTaskData:
    """Inputs and labels (for evaluation) from a table with the run's columns."""
    x = inputs_from_frame(run, df, source=source)
    targets, masks = targets_from_frame(df, run.tasks, source=source)
    return MultiTaskData(x, targets, masks, run.tasks, source=source)


def evaluate_frame(run: LoadedRun, df: pd.DataFrame) -> dict[str, dict[str, float]]:
    data = data_from_frame(run, df)
    out = predict_raw(run.model, data)
    return {t.name: t.evaluate(out[t.name], data.targets[t.name], data.masks[t.name]) for t in run.tasks}


__all__ = ["LoadedRun", "data_from_frame", "evaluate_frame", "inputs_from_frame", "load_run", "predict_frame"]
