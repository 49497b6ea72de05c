"""Ranking metrics in a run: the binary tasks of the multi-task model and of its single-task
references, per user, on the same test split (``summary["ranking"]``).

A run computes them when it knows the user of each test row: ``data.user_column`` (a
feature name of the data, or a column of the table), or the ``user_column`` a built-in
dataset declares (MovieLens). For every binary task: AUC, GAUC (per-user AUC weighted by the
user's impressions), log loss, HR@K and NDCG@K for K in :data:`KS`, with the candidate set
stated — the user's rows of the test split: with the built-in MovieLens data, the held-out
(leave-one-out) movie plus sampled unrated movies; with a table, whatever rows it holds
(``data.candidates`` says what they are). A funnel task (``given``) also gets the conditional
AUC on its parent's positives (the CVR AUC on clicked impressions).

>>> import torch
>>> from mtlkit import Task
>>> t = [Task("click", "binary")]
>>> out = {"click": torch.tensor([2.0, -1.0, 0.5, 1.0])}
>>> y = {"click": torch.tensor([1.0, 0.0, 0.0, 1.0])}
>>> m = {"click": torch.ones(4, dtype=torch.bool)}
>>> r = task_ranking(t, out, y, m, [0, 0, 1, 1], ks=(1,), candidates="toy")
>>> r["click"]["gauc"], r["click"]["hr@1"]
(1.0, 1.0)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mtlkit.evaluation.ranking import ranking_metrics
from mtlkit.tasks import Task, check_funnels

__all__ = ["KS", "ranking_record", "ranking_table", "task_ranking", "user_groups"]

#: the cut-offs of HR@K and NDCG@K in a run
KS = (5, 10)
#: the columns of the terminal table and of the report's "Ranking" section
COLUMNS = ("auc", "gauc", "log_loss", "hr@10", "ndcg@10")
DEFAULT_CANDIDATES = "the user's rows of the test split, as the data holds them"


def task_ranking(tasks: Sequence[Task], outputs: Mapping[str, Tensor], targets: Mapping[str, Tensor],
                 masks: Mapping[str, Tensor], groups: Any, *, ks: Sequence[int] = KS,
                 candidates: str = DEFAULT_CANDIDATES) -> dict[str, dict[str, Any]]:
    """The ranking metrics of each binary task present in ``outputs`` (raw logits)."""
    parents = check_funnels(tasks) if all(t.given is None or t.given in outputs for t in tasks) else {}
    out: dict[str, dict[str, Any]] = {}
    for t in tasks:
        if t.kind != "binary" or t.name not in outputs:
            continue
        p = torch.sigmoid(outputs[t.name].detach().float().reshape(-1)).numpy()
        parent = parents.get(t.name)
        out[t.name] = ranking_metrics(
            p, targets[t.name].reshape(-1).numpy(), groups, mask=masks[t.name].reshape(-1).numpy(), ks=ks,
            candidates=candidates, parent=targets[parent].reshape(-1).numpy() if parent else None)
    return out


def user_groups(user_column: str | int | None, *, features: Sequence[str] | None, x: Tensor,
                frame: Any = None, rows: Any = None) -> np.ndarray:
    """The user of each row: a column of the raw table (``frame`` at ``rows``) or a column
    of the inputs ``x`` (a feature name, or an index). A name found nowhere is an error that
    lists the columns."""
    if user_column is None:
        raise ValueError("No user column: set data.user_column to the column that holds the user ID.")
    if frame is not None and isinstance(user_column, str) and user_column in frame.columns:
        return np.asarray(frame[user_column].iloc[np.asarray(rows)].astype(str))
    if isinstance(user_column, int) and not isinstance(user_column, bool):
        col = user_column
    elif features is not None and isinstance(user_column, str) and user_column in features:
        col = list(features).index(user_column)
    else:
        known = list(frame.columns) if frame is not None else list(features or [])
        raise ValueError(f"data.user_column: no column {user_column!r} in the data; the columns are {known}.")
    if x.dim() != 2 or not 0 <= col < x.shape[1]:
        raise ValueError(f"data.user_column: column {col} is outside the inputs of shape {tuple(x.shape)}.")
    return x[:, col].detach().cpu().numpy()


def ranking_record(tasks: Sequence[Task], test: Any, groups: np.ndarray, mtl: Mapping[str, Tensor],
                   stl: Mapping[str, Mapping[str, Tensor]], *, user_column: str | int,
                   candidates: str | None) -> dict[str, Any]:
    """``summary["ranking"]``: per binary task, the multi-task model's metrics (``mtl``) and
    its single-task reference's (``stl``, None without one), computed on the same rows."""
    cand = candidates or DEFAULT_CANDIDATES
    _, sizes = np.unique(groups, return_counts=True)
    single = bool(len(sizes)) and int(sizes.max()) < 2
    m = task_ranking(tasks, mtl, test.targets, test.masks, groups, candidates=cand)
    per: dict[str, Any] = {}
    for name, metrics in m.items():
        ref = None
        if name in stl:
            ref = task_ranking([t for t in tasks if t.name == name], stl[name], test.targets, test.masks,
                               groups, candidates=cand).get(name)
        per[name] = {"mtl": _clean(metrics, single), "stl": _clean(ref, single) if ref is not None else None}
    out = {"user_column": user_column, "candidates": cand, "ks": list(KS), "users": len(sizes), "tasks": per}
    if single:
        out["note"] = ("every user has a single test row: the per-user metrics (GAUC, HR@K, NDCG@K) are "
                       "undefined or trivial and are left out")
    return out


def _clean(d: Mapping[str, Any], single: bool = False) -> dict[str, Any]:
    """NaN -> None (JSON), everything else as it is; ``single``: the per-user metrics left out."""
    per_user = ("gauc", "hr@", "ndcg@", "groups_without")
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()
            if not (single and k.startswith(per_user))}


def ranking_table(summary: Mapping[str, Any]) -> str | None:
    """The terminal table of ``summary["ranking"]`` (None when the run has none)."""
    rk = summary.get("ranking")
    if not isinstance(rk, Mapping) or not isinstance(rk.get("tasks"), Mapping) or not rk["tasks"]:
        return None
    head = f"{'task':<14}{'model':<6}" + "".join(f"{c:>10}" for c in COLUMNS)
    lines = [f"Ranking (per user: {rk.get('user_column')}; candidates: {rk.get('candidates')})", head]
    if rk.get("note"):
        lines.insert(1, f"  note: {rk['note']}")
    for name, entry in rk["tasks"].items():
        for who in ("mtl", "stl"):
            vals = entry.get(who) if isinstance(entry, Mapping) else None
            if not isinstance(vals, Mapping):
                continue
            cells = "".join(f"{_fmt(vals.get(c)):>10}" for c in COLUMNS)
            lines.append(f"{str(name)[:13]:<14}{who:<6}{cells}")
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, (int, float)) and not isinstance(v, bool) else "-"


def run_ranking(cfg: Any, prepared: Any, model: torch.nn.Module,
                references: Mapping[str, torch.nn.Module]) -> dict[str, Any] | None:
    """``summary["ranking"]`` of a run (None without a user column or a binary task): the
    multi-task ``model`` and the single-task ``references`` scored on ``prepared.test``."""
    from mtlkit.training import predict_raw

    info = prepared.extra_meta.get("dataset_info") or {}
    column = getattr(cfg.data, "user_column", None)
    if column is None:
        column = info.get("user_column")
    tasks = [t for t in prepared.tasks if t.kind == "binary"]
    test = prepared.test
    if column is None or not tasks or len(test) == 0:
        return None
    table = prepared.table
    groups = user_groups(column, features=prepared.features, x=test.x,
                         frame=table.frame if table is not None else None,
                         rows=table.test_idx if table is not None else None)
    if isinstance(column, int) and prepared.features and 0 <= column < len(prepared.features):
        column = prepared.features[column]

    def scores(m: torch.nn.Module) -> dict[str, Tensor]:
        p = next(iter(m.parameters()), None)
        return predict_raw(m, test, device=p.device if p is not None else "cpu")

    stl = {name: scores(m) for name, m in references.items() if name in {t.name for t in tasks}}
    cand = getattr(cfg.data, "candidates", None) or info.get("candidates")
    return ranking_record(prepared.tasks, test, groups, scores(model), stl, user_column=column, candidates=cand)
