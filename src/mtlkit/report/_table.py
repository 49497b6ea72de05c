"""The plain-text summary of a run for the terminal."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mtlkit._text import plural
from mtlkit.report._format import (
    NA,
    arrow,
    as_dict,
    fmt,
    fmt_signed,
    higher_is_better,
    inference_unit,
    kept_weights,
    num,
    task_names,
    task_role,
)
from mtlkit.run.summary import Summary


def summary_table(summary: Summary | Mapping[str, Any]) -> str:
    """A plain-text table of a run's ``summary.json``: task, metric, MTL, STL, Δ and the
    better model; then Δm (with its sign convention), parameters and inference times.

    >>> s = {"tasks": [{"name": "y", "kind": "regression", "role": "primary"}],
    ...      "mtl": {"test": {"y": {"mae": 0.9}}, "params": 100, "inference_ms": 1.0},
    ...      "baselines": {"y": {"test": {"mae": 1.0}, "params": 80, "inference_ms": 0.8}},
    ...      "delta_m": -10.0, "stl_params_total": 80, "stl_inference_ms_total": 0.8}
    >>> print(summary_table(s))  # doctest: +NORMALIZE_WHITESPACE
    task  metric  MTL  STL  Δ (MTL−STL)  better
    y     mae ↓   0.9  1    -0.1         MTL
    Δm (primary tasks): -10 %  (negative = the multi-task model is better)
    parameters: MTL 100 (1 model) vs single-task 80 (1 model)
    inference (ms): MTL 1 vs single-task 0.8 (total)
    """
    summary = Summary.coerce(summary)
    mtl = summary.mtl
    stl = summary.baselines if isinstance(summary.baselines, dict) else {}
    test = as_dict(mtl.test if mtl is not None else None)
    header = ["task", "metric", "MTL"] + (["STL", "Δ (MTL−STL)", "better"] if stl else [])
    rows: list[list[str]] = []
    for t in task_names(summary):
        m_mtl = as_dict(test.get(t))
        m_stl = as_dict(stl[t].test if t in stl else None)
        label = t + (" (aux)" if task_role(summary, t) == "auxiliary" else "")
        names = list(m_mtl) + [k for k in m_stl if k not in m_mtl]
        for i, metric in enumerate(names):
            hib = higher_is_better(summary, t, metric)
            row = [label if i == 0 else "", f"{metric} {arrow(hib)}", fmt(m_mtl.get(metric))]
            if stl:
                a, c = num(m_mtl.get(metric)), num(m_stl.get(metric))
                diff = a - c if a is not None and c is not None else None
                better = "" if diff is None or diff == 0 else ("MTL" if (diff > 0) == hib else "STL")
                row += [fmt(m_stl.get(metric)), fmt_signed(diff), better]
            rows.append(row)
    widths = [max(len(r[j]) for r in [header, *rows]) for j in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows]]
    if stl:
        dm = num(summary.delta_m)
        dm_txt = NA if dm is None else f"{fmt_signed(dm, 3)} %"
        lines.append(f"Δm (primary tasks): {dm_txt}  (negative = the multi-task model is better)")
        if any(task_role(summary, t) == "auxiliary" for t in task_names(summary)):
            dma = num(summary.delta_m_all_tasks)
            lines.append(f"Δm (all tasks, incl. auxiliary): "
                         f"{NA if dma is None else f'{fmt_signed(dma, 3)} %'}")
    else:
        lines.append("Δm: n/a (no single-task baselines)")
    p_mtl = mtl.params if mtl is not None else None
    if stl:
        p_stl = summary.stl_params_total
        if p_stl is None:
            vals = [v.params for v in stl.values()]
            ints = [v for v in vals if isinstance(v, int)]
            p_stl = sum(ints) if vals and len(ints) == len(vals) else None
        lines.append(f"parameters: MTL {fmt(p_mtl)} (1 model) vs single-task {fmt(p_stl)} "
                     f"({plural(len(stl), 'model')})")
    elif p_mtl is not None:
        lines.append(f"parameters: MTL {fmt(p_mtl)}")
    unit = inference_unit(summary)
    i_mtl = mtl.inference_ms if mtl is not None else None
    if stl:
        i_stl = summary.stl_inference_ms_total
        lines.append(f"inference ({unit}): MTL {fmt(i_mtl)} vs single-task {fmt(i_stl)} (total)")
    elif i_mtl is not None:
        lines.append(f"inference ({unit}): MTL {fmt(i_mtl)}")
    kept = kept_weights(summary)
    if kept is not None and summary.mtl is not None and summary.mtl.best_epoch is not None:
        lines.append(f"model kept: {kept}")
    gbdt = summary.gbdt if isinstance(summary.gbdt, dict) else {}
    if gbdt:
        lines += ["", gbdt_table(summary)]
    return "\n".join(lines)


def gbdt_table(summary: Summary | Mapping[str, Any]) -> str:
    """The multi-task model against both single-task references (neural and GBDT) of each
    primary task, and Δm against the GBDT models."""
    summary = Summary.coerce(summary)
    test = as_dict(summary.mtl.test if summary.mtl is not None else None)
    stl = summary.baselines if isinstance(summary.baselines, dict) else {}
    gbdt = summary.gbdt if isinstance(summary.gbdt, dict) else {}
    header = ["task", "metric", "MTL", "STL", "GBDT", "best"]
    rows: list[list[str]] = []
    for t in task_names(summary):
        if task_role(summary, t) == "auxiliary" or t not in gbdt:
            continue
        m_mtl, m_stl, m_gb = as_dict(test.get(t)), as_dict(stl[t].test if t in stl else None), as_dict(gbdt[t].test)
        for i, metric in enumerate(list(m_mtl) + [k for k in m_gb if k not in m_mtl]):
            hib = higher_is_better(summary, t, metric)
            vals = {"MTL": num(m_mtl.get(metric)), "STL": num(m_stl.get(metric)), "GBDT": num(m_gb.get(metric))}
            known = {k: v for k, v in vals.items() if v is not None}
            best = (max if hib else min)(known, key=lambda k: known[k]) if known else ""
            rows.append([t if i == 0 else "", f"{metric} {arrow(hib)}", fmt(m_mtl.get(metric)),
                         fmt(m_stl.get(metric)), fmt(m_gb.get(metric)), best])
    widths = [max(len(r[j]) for r in [header, *rows]) for j in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows]]
    dm = num(summary.delta_m_gbdt)
    lines.append(f"Δm vs GBDT (primary tasks): {NA if dm is None else f'{fmt_signed(dm, 3)} %'}  "
                 f"(negative = the multi-task model is better)")
    return "\n".join(lines)
