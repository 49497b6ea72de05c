"""The evidence over repeated seeds (``seeds.json``, :func:`mtlkit.run.run_seeds`): the
verdict per task, Δm and Δm_t with their intervals, and every metric's mean ± sd and
interval next to the paired test, as a terminal table (:func:`seeds_table`) and as the first
section of the report (:func:`seeds_section`, :func:`write_seeds_report`).

>>> rec = {"n": 1, "seeds": [0], "confidence": 0.95, "delta_m": {"n": 1, "mean": 1.5},
...        "delta_m_per_task": {}, "verdicts": {}, "metrics": {}}
>>> "Δm" in seeds_table(rec)
True
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mtlkit._text import plural
from mtlkit.report._format import NA, esc, fmt, num

__all__ = ["SEEDS_SECTION_ID", "TUNE_HINT", "load_seeds", "seeds_section", "seeds_table", "verdict_summary",
           "write_seeds_report"]

SEEDS_SECTION_ID = "evidence"


def load_seeds(run_dir: str | Path) -> dict[str, Any] | None:
    """``run_dir/seeds.json`` as a dict, or ``None`` when it is absent or unreadable."""
    try:
        data = json.loads((Path(run_dir) / "seeds.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _interval(d: Mapping[str, Any] | None, digits: int = 4, pct: bool = False) -> tuple[str, str]:
    """``mean ± sd`` and ``[lo, hi]`` as text."""
    if not isinstance(d, Mapping) or num(d.get("mean")) is None:
        return NA, NA
    unit = " %" if pct else ""
    mean = f"{d['mean']:+.2f}" if pct else fmt(d["mean"], digits)
    sd = num(d.get("sd"))
    left = f"{mean} ± {sd:.2f}{unit}" if pct and sd is not None else (
        f"{mean} ± {fmt(sd, digits)}" if sd is not None else f"{mean}{unit}")
    lo, hi = num(d.get("ci_low")), num(d.get("ci_high"))
    if lo is None or hi is None:
        return left, NA
    right = f"[{lo:+.2f}, {hi:+.2f}]{unit}" if pct else f"[{fmt(lo, digits)}, {fmt(hi, digits)}]"
    return left, right


def _p(test: Mapping[str, Any] | None) -> str:
    p = num(test.get("p")) if isinstance(test, Mapping) else None
    return NA if p is None else f"{p:.3g}"


#: where to go when multi-task learning does not help at the budget tried
TUNE_HINT = "mtlkit tune CONFIG.yaml --trials 20"


def verdict_summary(rec: Mapping[str, Any], config: str | None = "CONFIG.yaml") -> list[str]:
    """The verdicts of a ``seeds.json`` record in plain sentences, the tasks grouped by
    verdict; when multi-task learning helps no task, a sentence that says so and the
    ``mtlkit tune`` command to try (``config=None``: no such command, e.g. after a tune).

    >>> rec = {"n": 3, "verdicts": {"a": {"verdict": "multi-task hurts"},
    ...                             "b": {"verdict": "no evidence at this budget"}}}
    >>> for line in verdict_summary(rec, "my.yaml"): print(line)
    Multi-task hurts: a.
    No evidence at this budget (the interval holds 0, or the paired test does not agree): b.
    Negative transfer for a: try task groups chosen from the task affinity (mtlkit affinity my.yaml, then mtlkit group <its folder> --networks 2).
    Multi-task learning does not help any task at this budget (3 seeds). Search the weighting or aggregator, the task weights (λ) and the learning rate: mtlkit tune my.yaml --trials 20
    """
    by: dict[str, list[str]] = {}
    for task, v in (rec.get("verdicts") or {}).items():
        by.setdefault(str(v.get("verdict")), []).append(str(task))
    notes = {"no evidence at this budget": " (the interval holds 0, or the paired test does not agree)"}
    lines = [f"{v[0].upper()}{v[1:]}{notes.get(v, '')}: {', '.join(ts)}." for v, ts in by.items()]
    if "multi-task hurts" in by:
        lines.append(f"Negative transfer for {', '.join(by['multi-task hurts'])}: try task groups chosen from the "
                     f"task affinity (mtlkit affinity {config or 'CONFIG.yaml'}, then mtlkit group <its folder> "
                     f"--networks 2).")
    if by and "multi-task helps" not in by and config is not None:
        n = rec.get("n")
        count = f" ({_seeds_count(rec)})" if isinstance(n, int) else ""
        lines.append(f"Multi-task learning does not help any task at this budget{count}. Search the weighting "
                     f"or aggregator, the task weights (λ) and the learning rate: "
                     f"{TUNE_HINT.replace('CONFIG.yaml', config)}")
    return lines


def kept_per_seed(rec: Mapping[str, Any]) -> str | None:
    """Which epoch's weights each seed kept, and by which validation score, in words.

    >>> kept_per_seed({"seeds": [0, 1], "best_epoch": [8, 5], "epochs_run": [10, 10],
    ...                "tasks": [{"name": "y", "kind": "binary"}], "main_metric": {"y": "f1"}})
    'each seed keeps the weights of its epoch with the best validation f1 of task y: seed 0 epoch 8 of 10, seed 1 epoch 5 of 10'
    """
    from mtlkit.report._format import selection_criterion

    best, runs = rec.get("best_epoch"), rec.get("epochs_run")
    seeds = rec.get("seeds") or []
    if not isinstance(best, list) or len(best) != len(seeds) or all(b is None for b in best):
        return None
    runs = runs if isinstance(runs, list) and len(runs) == len(seeds) else [None] * len(seeds)
    sel = rec.get("selection")
    monitor = sel.get("monitor") if isinstance(sel, Mapping) else None
    summary = {"tasks": rec.get("tasks") or [], "main_metric": rec.get("main_metric") or {}}
    text = selection_criterion(summary, monitor)[0]
    each = ", ".join(f"seed {s} epoch {b}" + (f" of {n}" if n else "") if b is not None else f"seed {s} last epoch"
                     for s, b, n in zip(seeds, best, runs))
    return f"each seed keeps the weights of its epoch with the best {text}: {each}"


def _seeds_count(rec: Mapping[str, Any]) -> str:
    n = rec.get("n")
    return plural(n, "seed") if isinstance(n, int) and not isinstance(n, bool) else f"{n} seeds"


def _conf(rec: Mapping[str, Any]) -> int:
    return round(float(rec.get("confidence") or 0.95) * 100)


def seeds_table(rec: Mapping[str, Any], config: str | None = "CONFIG.yaml") -> str:
    """The plain-text table of a ``seeds.json`` record (what ``mtlkit train --seeds`` prints),
    ending with the verdict per task (:func:`verdict_summary`; ``config`` is the file named in
    the ``mtlkit tune`` command it suggests when multi-task learning helps no task)."""
    conf = _conf(rec)
    lines = [f"Over {_seeds_count(rec)} {rec.get('seeds')} (mean ± sd, {conf} % t-interval; "
             f"negative Δm = multi-task better):"]
    dm, ci = _interval(rec.get("delta_m"), pct=True)
    lines.append(f"  Δm (primary tasks)  {dm}  {conf} % CI {ci}")
    for task, v in (rec.get("verdicts") or {}).items():
        d, c = _interval(v.get("delta_m_t"), pct=True)
        lines.append(f"  {task}: {v.get('verdict')}  (Δm_t {d}, CI {c}; paired test on {v.get('main_metric')} "
                     f"p = {_p({'p': v.get('p')})})")
    rows = [("task", "metric", "multi-task", "single-task", "p (paired)")]
    for task, per in (rec.get("metrics") or {}).items():
        for metric, e in per.items():
            m, mc = _interval(e.get("mtl"))
            s, sc = _interval(e.get("stl")) if e.get("stl") else ("-", "")
            rows.append((task, metric, f"{m} {mc}", f"{s} {sc}".strip(), _p(e.get("paired"))))
    if len(rows) > 1:
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    kept = kept_per_seed(rec)
    if kept:
        lines.append(f"  Model kept: {kept}.")
    verdicts = verdict_summary(rec, config)
    if verdicts:
        lines += ["Verdict per task:", *("  " + line for line in verdicts)]
    return "\n".join(lines)


_VERDICT_CLASS = {"multi-task helps": "good", "multi-task hurts": "bad"}


def seeds_section(rec: Mapping[str, Any], config: str | None = "CONFIG.yaml") -> tuple[str, str, str]:
    """``(id, title, html)`` of the report's first section for a ``seeds.json`` record."""
    conf = _conf(rec)
    verdict = "".join(f"<li>{esc(line)}</li>" for line in verdict_summary(rec, config))
    parts = [f'<div class="verdict"><b>Verdict</b><ul>{verdict}</ul></div>' if verdict else ""]
    parts += [f"<p>{esc(_seeds_count(rec))} ({esc(rec.get('seeds'))}); mean ± sd and the {conf} % "
             f"Student-t interval across seeds; each task's paired test compares the multi-task and "
             f"single-task models seed by seed ({esc(rec.get('test') or 'paired t-test')}). "
             f"<b>Negative Δm means the multi-task model is better.</b></p>"]
    rows = []
    for task, v in (rec.get("verdicts") or {}).items():
        d, c = _interval(v.get("delta_m_t"), pct=True)
        cls = _VERDICT_CLASS.get(str(v.get("verdict")), "")
        rows.append(f'<tr><td>{esc(task)}</td><td class="{cls}"><b>{esc(v.get("verdict"))}</b></td>'
                    f"<td>{esc(d)}</td><td>{esc(c)}</td><td>{esc(v.get('main_metric'))}</td>"
                    f"<td>{esc(_p({'p': v.get('p')}))}</td></tr>")
    dm, ci = _interval(rec.get("delta_m"), pct=True)
    parts.append(f"<p>Δm (primary tasks): <b>{esc(dm)}</b>, {conf} % CI {esc(ci)}.</p>")
    if rows:
        parts.append("<table><tr><th>task</th><th>verdict</th><th>Δm<sub>t</sub> mean ± sd</th>"
                     f"<th>{conf} % CI</th><th>paired test on</th><th>p</th></tr>{''.join(rows)}</table>")
    neg = rec.get("negative_transfer") or []
    if neg:
        parts.append(f'<p class="warn">Negative transfer: {esc(", ".join(neg))} (the multi-task model is '
                     f"worse than the single-task one). Try another task grouping (mtlkit affinity / group) "
                     f"or another weighting or aggregator.</p>")
    mrows = []
    for task, per in (rec.get("metrics") or {}).items():
        for metric, e in per.items():
            m, mc = _interval(e.get("mtl"))
            s, sc = _interval(e.get("stl")) if e.get("stl") else ("-", "")
            mrows.append(f"<tr><td>{esc(task)}</td><td>{esc(metric)}</td><td>{esc(m)}</td><td>{esc(mc)}</td>"
                         f"<td>{esc(s)}</td><td>{esc(sc)}</td><td>{esc(_p(e.get('paired')))}</td></tr>")
    if mrows:
        parts.append("<table><tr><th>task</th><th>metric</th><th>multi-task</th><th>CI</th><th>single-task</th>"
                     f"<th>CI</th><th>p (paired)</th></tr>{''.join(mrows)}</table>")
    entered = rec.get("delta_m_metrics")
    if isinstance(entered, Mapping) and entered:
        parts.append("<p>Metrics entering Δm: " + esc("; ".join(f"{t}: {', '.join(m)}" for t, m in entered.items()))
                     + " (references bounded away from zero; R² and F1 are left out).</p>")
    kept = kept_per_seed(rec)
    if kept:
        parts.append(f'<p class="kept"><b>Model kept</b>: {esc(kept)}.</p>')
    runs = rec.get("runs") or {}
    if runs:
        parts.append("<p>Each seed's own report: " + " ".join(
            f'<a href="{esc(p)}/report.html">seed {esc(s)}</a>' for s, p in runs.items()) + "</p>")
    return SEEDS_SECTION_ID, "Evidence over seeds: does multi-task learning help?", "".join(parts)


def write_seeds_report(run_dir: str | Path) -> Path:
    """``run_dir/report.html`` for a folder written by :func:`mtlkit.run.run_seeds`: the
    evidence section first (the rest of each seed's report is in ``seed-<s>/report.html``)."""
    from mtlkit._io import atomic_write
    from mtlkit.report.html import render_report

    rec = load_seeds(run_dir)
    if rec is None:
        raise FileNotFoundError(f"{str(run_dir)!r} holds no seeds.json.")
    summary = {"name": rec.get("name"), "tasks": rec.get("tasks") or [],
               "higher_is_better": rec.get("higher_is_better") or {}, "main_metric": rec.get("main_metric") or {}}
    page = render_report(summary, seeds=rec)
    return atomic_write(Path(run_dir) / "report.html", page)
