"""Top-K recommendation from a trained run: score every candidate item for each user of a
table and keep the K best (``mtlkit predict RUN USERS.csv --top-k K``).

* The *candidates* are the items seen in the training data (the ``item_column`` values of
  its rows), minus the items of the user's own training rows unless ``include_seen``.
* Each user's context is the **last** row of that user in the input table (user-side
  features, e.g. demographics and history); for each candidate, the *item-side* columns of
  that row are replaced by the candidate's values from the training data. The item-side
  columns are given, or inferred as the feature columns that are constant within every item
  of the training data (the item ID itself, the release year, the genre slots ...).
* The score is the chosen task's prediction: a binary task's probability, a regression
  task's value; ties are broken by the item value (ascending), so the ranking is
  deterministic.

The training data is re-built from the run's ``config.yaml`` (same seed, same split, nothing
imported from the run folder), or read from a table given with ``--train``.

>>> import pandas as pd
>>> train = pd.DataFrame({"user": [1, 1, 2, 2], "item": [10, 11, 11, 12], "year": [3, 4, 4, 5]})
>>> item_side_columns(train, "item", ["user", "item", "year"])
['item', 'year']
>>> candidate_rows(pd.DataFrame({"user": [1], "item": [10], "year": [3]}), train, user_column="user",
...                item_column="item", item_columns=["item", "year"], include_seen=False)[["user", "item", "year"]]
   user  item  year
0     1    12     5
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["candidate_rows", "item_side_columns", "top_k", "training_frame"]


def item_side_columns(train: pd.DataFrame, item_column: str, features: Sequence[str]) -> list[str]:
    """The feature columns determined by the item: constant within each item of ``train``."""
    nunique = train.groupby(item_column, sort=False)[[c for c in features if c != item_column]].nunique(dropna=False)
    return [item_column] + [c for c in nunique.columns if int(nunique[c].max()) <= 1]


def candidate_rows(users: pd.DataFrame, train: pd.DataFrame, *, user_column: str, item_column: str,
                   item_columns: Sequence[str], include_seen: bool) -> pd.DataFrame:
    """One row per (user, candidate item): the user's last row of ``users`` with its
    item-side columns replaced by the candidate's."""
    for name, frame in (("the input", users), ("the training data", train)):
        for col in (user_column, item_column):
            if col not in frame.columns:
                raise ValueError(f"--top-k: no column {col!r} in {name}; its columns are {list(frame.columns)[:30]}.")
    items = train.drop_duplicates(item_column, keep="first")[list(item_columns)]
    items = items.sort_values(item_column, kind="stable").reset_index(drop=True)
    seen = train.groupby(user_column)[item_column].agg(set).to_dict()
    parts = []
    for user, ctx in users.groupby(user_column, sort=True):
        row = ctx.iloc[[-1]]
        cand = items if include_seen else items[~items[item_column].isin(seen.get(user, set()))]
        if cand.empty:
            continue
        rep = pd.concat([row] * len(cand), ignore_index=True)
        for c in item_columns:
            rep[c] = cand[c].to_numpy()
        parts.append(rep)
    if not parts:
        raise ValueError("--top-k: no candidate items left for any user (every training item is already theirs; "
                         "use --include-seen).")
    return pd.concat(parts, ignore_index=True)


def top_k(score: Callable[[pd.DataFrame], np.ndarray], users: pd.DataFrame, train: pd.DataFrame, *, k: int,
          user_column: str, item_column: str, item_columns: Sequence[str] | None = None,
          features: Sequence[str] | None = None, include_seen: bool = False) -> pd.DataFrame:
    """The ``k`` best candidates per user: columns ``user_column``, ``rank`` (1 = best),
    ``item_column`` and ``score``."""
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"--top-k must be a positive integer. Got {k!r}.")
    if item_columns is None:
        feats = list(features) if features is not None else [c for c in train.columns if c != user_column]
        item_columns = item_side_columns(train, item_column, [c for c in feats if c in train.columns])
    rows = candidate_rows(users, train, user_column=user_column, item_column=item_column,
                          item_columns=item_columns, include_seen=include_seen)
    s = np.asarray(score(rows), dtype=np.float64).reshape(-1)
    out = pd.DataFrame({user_column: rows[user_column].to_numpy(), item_column: rows[item_column].to_numpy(),
                        "score": s})
    out = out.sort_values([user_column, "score", item_column], ascending=[True, False, True], kind="stable")
    out["rank"] = out.groupby(user_column).cumcount() + 1
    out = out[out["rank"] <= k]
    for c in (user_column, item_column):  # IDs read as floats (an ID column of the inputs) print as integers
        v = out[c]
        if pd.api.types.is_float_dtype(v) and len(v) and bool(np.all(np.mod(v.to_numpy(), 1) == 0)):
            out[c] = v.astype(np.int64)
    return out[[user_column, "rank", item_column, "score"]].reset_index(drop=True)


def training_frame(run_dir: str | Path, features: Sequence[str]) -> pd.DataFrame:
    """The training rows of a run, re-built from its ``config.yaml`` (same seed and split),
    as a table of its raw feature columns. Refused when the config imports user code."""
    from mtlkit.config import code_references, load_config

    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"--top-k needs the training data: no {path}. Pass it with --train TABLE.")
    cfg = load_config(path)
    if code_references(cfg) or cfg.auxiliary:
        raise ValueError("--top-k: this run's config has auxiliary generators; re-building its training data is "
                         "not done from a run folder. Pass the training table with --train TABLE.")
    if cfg.data.in_memory or (cfg.data.path is None and cfg.data.dataset is None):
        raise ValueError("--top-k: this run was trained on data passed from Python, which its folder does not "
                         "hold; pass the training table with --train TABLE.")
    from mtlkit.run import prepare_from_config

    prepared = prepare_from_config(cfg)
    if prepared.table is not None:
        t = prepared.table
        return t.frame.iloc[t.train_idx].reset_index(drop=True)
    x: Any = prepared.train.x
    if x.dim() != 2 or x.shape[1] != len(features) or prepared.preprocessing is not None:
        raise ValueError("--top-k: the run's training inputs are not its raw feature columns (standardised or not "
                         "a table); pass the training table with --train TABLE.")
    return pd.DataFrame(x.numpy(), columns=list(features))


def recommend(run: Any, run_dir: str | Path, users: pd.DataFrame, *, k: int, user_column: str = "user",
              item_column: str = "item", task: str | None = None, include_seen: bool = False,
              train: pd.DataFrame | None = None) -> pd.DataFrame:
    """:func:`top_k` for a loaded run (:func:`mtlkit.inference.load_run`): scores with the
    run's model on the table-encoded candidate rows."""
    import torch

    from mtlkit.inference import inputs_from_frame, predict_raw

    names = [t.name for t in run.tasks]
    if task is None:
        prim = run.primary_tasks
        task = next((t.name for t in prim if t.kind == "binary"), prim[0].name)
    elif task not in names:
        raise ValueError(f"--task {task!r} is not a task of this run; its tasks are {names}.")
    spec = next(t for t in run.tasks if t.name == task)
    if spec.kind not in ("binary", "regression"):
        raise ValueError(f"--top-k ranks by a binary or regression task; {task!r} is {spec.kind}.")
    pre = run.preprocessor
    features = list(pre.features) if pre is not None else list(run.meta.get("features") or [])
    if train is None:
        train = training_frame(run_dir, features)

    def score(rows: pd.DataFrame) -> np.ndarray:
        out = predict_raw(run.model, inputs_from_frame(run, rows, source="the candidate rows"))[task]
        out = out.reshape(len(rows), -1)[:, 0]
        if spec.kind == "binary":
            return torch.sigmoid(out).numpy()
        mean, std = spec.target_mean, spec.target_std  # back to the target's units
        return out.numpy() * _first(std, 1.0) + _first(mean, 0.0)

    return top_k(score, users, train, k=k, user_column=user_column, item_column=item_column,
                 features=features, include_seen=include_seen)


def _first(v: Any, default: float) -> float:
    """A task's (per-column) target scale or mean as one number (the first column's)."""
    if v is None:
        return default
    return float(v[0]) if isinstance(v, (list, tuple)) else float(v)
