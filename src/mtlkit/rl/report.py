"""The report of a multi-task RL run: a self-contained ``report.html`` (plots as base64 PNGs
drawn by :mod:`mtlkit.report.plots`) and the plain-text table the CLI prints.

>>> print(rl_table({"tasks": [{"name": "a"}], "methods": ["single"],
...                 "results": {"single": {"tasks": {"a": {"mean": 200.0, "sd": 5.0}},
...                                        "mean_return": {"mean": 200.0, "sd": 5.0}, "delta_m": {},
...                                        "env_steps_per_s": {"mean": 5000.0}, "parameters": 9000}}}))
| method | a | mean return | Δm vs single % (↑) | Δm vs shared % (↑) | params | env steps/s |
|---|---|---|---|---|---|---|
| single | 200.0 ± 5.0 | 200.0 ± 5.0 | – | – | 9,000 | 5,000 |
"""

from __future__ import annotations

import html
import json
import math
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mtlkit._text import plural

REPORT = "report.html"
METHOD_LABELS = {"single": "single (one agent per task)", "shared": "shared (one-hot task input)",
                 "distral": "Distral 2col", "care": "CARE"}


def _num(v: Any, digits: int = 1) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:,.{digits}f}"


def _pm(entry: Mapping[str, Any] | None, digits: int = 1) -> str:
    if not entry or entry.get("mean") is None:
        return "–"
    sd = entry.get("sd")
    return _num(entry["mean"], digits) + ("" if sd is None else f" ± {_num(sd, digits)}")


def rl_table(summary: Mapping[str, Any]) -> str:
    """Markdown table: mean evaluation return per task (mean ± sd over seeds), Δm against
    ``single`` and ``shared`` (higher is better), parameters, env steps/s."""
    tasks = [t["name"] for t in summary.get("tasks", [])]
    head = ["method", *tasks, "mean return", "Δm vs single % (↑)", "Δm vs shared % (↑)", "params", "env steps/s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method in summary.get("methods", []):
        r = summary.get("results", {}).get(method)
        if r is None:
            continue
        dm = r.get("delta_m", {})
        cells = [method, *[_pm(r["tasks"].get(t)) for t in tasks], _pm(r.get("mean_return")),
                 "–" if method == "single" else _pm(dm.get("single"), 1),
                 "–" if method == "shared" else _pm(dm.get("shared"), 1),
                 f"{r.get('parameters', 0):,}", _num(r.get("env_steps_per_s", {}).get("mean"), 0)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- reading the folder
def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line:
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue
    return rows


def _curves(run_dir: Path, method: str, seeds: Sequence[int]) -> list[list[dict[str, Any]]]:
    return [_read_jsonl(run_dir / method / f"seed-{s}" / "curves.jsonl") for s in seeds]


def _mean_curve(per_seed: list[list[dict[str, Any]]], task: str, key: str) -> tuple[list[float], list[Any]]:
    """x = env steps per task, y = mean over seeds of ``key`` (None where no seed has it)."""
    by_x: dict[int, list[float]] = {}
    for rows in per_seed:
        for r in rows:
            if r.get("task") == task:
                v = r.get(key)
                by_x.setdefault(int(r["env_steps"]), [])
                if isinstance(v, (int, float)) and math.isfinite(v):
                    by_x[int(r["env_steps"])].append(float(v))
    xs = sorted(by_x)
    return [float(x) for x in xs], [statistics.fmean(by_x[x]) if by_x[x] else None for x in xs]


# ---------------------------------------------------------------------------- HTML pieces
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1100px;padding:1.2em;
color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em} th,td{border:1px solid #ddd;padding:.3em .6em;
text-align:right} th{background:#f4f4f4} td.l,th.l{text-align:left} .note{color:#555;font-size:.9em}
img{max-width:100%} .best{font-weight:bold} code{background:#f4f4f4;padding:0 .2em} pre{background:#f7f7f7;
padding:.8em;overflow:auto;font-size:.85em}
nav a{margin-right:1em}
"""


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> str:
    th = "".join(f"<th class='l'>{h}</th>" if i < left else f"<th>{h}</th>" for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f"<td class='l'>{c}</td>" if i < left else f"<td>{c}</td>"
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def _img(png: str | None, alt: str) -> str:
    return f"<p><img alt='{html.escape(alt)}' src='data:image/png;base64,{png}'></p>" if png else ""


def _e(v: Any) -> str:
    return html.escape(str(v))


def _results_section(summary: Mapping[str, Any]) -> str:
    tasks = [t["name"] for t in summary.get("tasks", [])]
    res = summary.get("results", {})
    methods = [m for m in summary.get("methods", []) if m in res]
    best = {t: max((res[m]["tasks"][t]["mean"] for m in methods if res[m]["tasks"][t]["mean"] is not None),
                   default=None) for t in tasks}
    rows = []
    for m in methods:
        r = res[m]
        cells = [_e(METHOD_LABELS.get(m, m))]
        for t in tasks:
            e = r["tasks"][t]
            txt = _pm(e)
            cells.append(f"<span class='best'>{txt}</span>" if e["mean"] is not None and e["mean"] == best[t] else txt)
        dm = r.get("delta_m", {})
        cells += [_pm(r.get("mean_return")), "reference" if m == "single" else _pm(dm.get("single")),
                  "reference" if m == "shared" else _pm(dm.get("shared")), f"{r['parameters']:,}",
                  _pm(r.get("env_steps_per_s"), 0)]
        rows.append(cells)
    header = ["method", *[_e(t) for t in tasks], "mean return", "Δm vs single % (↑)", "Δm vs shared % (↑)",
              "parameters", "env steps/s"]
    ev = summary.get("evaluation", {})
    note = (f"<p class='note'>Mean return of {ev.get('episodes')} evaluation episodes per task "
            f"({'greedy' if ev.get('deterministic', True) else 'sampled'} actions, sub-environment i reset with "
            f"seed {ev.get('seed')} + i, the same start states for every method) after "
            f"{summary.get('budget', 0):,} environment steps per task; mean ± sd over seeds "
            f"{summary.get('seeds')}. Best per task in bold. {_e(summary.get('delta_m_convention', ''))}.</p>")
    from mtlkit.report.plots import grouped_bars

    series = {m: [res[m]["tasks"][t]["mean"] for t in tasks] for m in methods}
    png = grouped_bars("Mean evaluation return per task (↑)", [("return ↑", tasks, series)], ncols=1)
    return "<h2 id='results'>Results</h2>" + _table(header, rows) + note + _img(png, "returns per task")


def _curves_section(run_dir: Path, summary: Mapping[str, Any]) -> str:
    from mtlkit.report.plots import Line, Panel, line_panels

    tasks = [t["name"] for t in summary.get("tasks", [])]
    res = summary.get("results", {})
    methods = [m for m in summary.get("methods", []) if m in res]
    curves = {m: _curves(run_dir, m, res[m]["seeds"]) for m in methods}
    panels = []
    for t in tasks:
        lines = []
        for i, m in enumerate(methods):
            xs, ys = _mean_curve(curves[m], t, "return")
            lines.append(Line(m, xs, ys, color=f"C{i}"))
        panels.append(Panel(t, "episode return", lines))
    png = line_panels("Learning curves: training episode return (mean over seeds)", panels,
                      xlabel="env steps (this task)", ncols=2)
    note = ("<p class='note'>Mean return of the last 10 training episodes of the task (sampled actions) "
            "at each logging point, averaged over seeds; the x axis counts the environment steps of that "
            "task. Per-task JSON lines: <code>&lt;method&gt;/seed-&lt;s&gt;/curves.jsonl</code>.</p>")
    return "<h2 id='curves'>Learning curves</h2>" + (_img(png, "learning curves") or "<p>No curves yet.</p>") + note


def _budgets_section(summary: Mapping[str, Any]) -> str:
    tasks = [t["name"] for t in summary.get("tasks", [])]
    res = summary.get("results", {})
    rows = []
    for m in summary.get("methods", []):
        for b, per in res.get(m, {}).get("at_steps", {}).items():
            rows.append([_e(m), f"{int(b):,}", *[_pm(per.get(t)) for t in tasks]])
    if not rows:
        return ""
    return ("<h2 id='budgets'>Evaluation at fixed budgets</h2>" +
            _table(["method", "env steps per task", *[_e(t) for t in tasks]], rows, left=2))


def _care_section(summary: Mapping[str, Any]) -> str:
    r = summary.get("results", {}).get("care")
    if not r or "attention" not in r:
        return ""
    from mtlkit.report.plots import heatmaps

    tasks = list(r["attention"])
    mat = [r["attention"][t] for t in tasks]
    k = len(mat[0]) if mat else 0
    png = heatmaps("", [{"matrix": mat, "title": "CARE attention over encoders", "xlabel": "encoder",
                         "ylabel": "task", "xticks": [f"E{j + 1}" for j in range(k)], "yticks": tasks,
                         "vmin": 0.0, "vmax": 1.0, "cbar": "weight", "fmt": ".2f"}], ncols=1)
    rows = [[_e(t), *[f"{w:.3f}" for w in r["attention"][t]]] for t in tasks]
    return ("<h2 id='care'>CARE: attention weights per task</h2>" + _img(png, "CARE attention") +
            _table(["task", *[f"E{j + 1}" for j in range(k)]], rows) +
            "<p class='note'>softmax(g(z_τ)/temperature) at the end of training, mean over seeds; each row "
            "sums to one. Rows that differ mean the tasks use different mixtures of the encoders.</p>")


def _distral_section(run_dir: Path, summary: Mapping[str, Any]) -> str:
    r = summary.get("results", {}).get("distral")
    if not r or "kl" not in r:
        return ""
    from mtlkit.report.plots import Line, lines

    tasks = list(r["kl"])
    per_seed = _curves(run_dir, "distral", r["seeds"])
    curves = []
    for i, t in enumerate(tasks):
        xs, ys = _mean_curve(per_seed, t, "kl")
        curves.append(Line(t, xs, ys, color=f"C{i}"))
    png = lines("Distral: KL(π_i ‖ π̂₀) over training", "env steps (per task)", "KL (nats)", curves)
    rows = [[_e(t), _num(r["kl"][t], 4)] for t in tasks]
    return ("<h2 id='distral'>Distral: task policies against the distilled policy</h2>" + _img(png, "Distral KL") +
            _table(["task", "KL(π_i ‖ π̂₀), last window"], rows) +
            f"<p class='note'>c_KL = α/β = {_num(r.get('c_kl'), 4)}, c_Ent = (1 − α)/β = {_num(r.get('c_ent'), 4)}. "
            f"The mean over visited states of the KL between each task policy and the distilled policy, "
            f"mean over seeds.</p>")


def _robustness_section(summary: Mapping[str, Any]) -> str:
    tasks = [t["name"] for t in summary.get("tasks", [])]
    res = summary.get("results", {})
    rows = []
    for m in summary.get("methods", []):
        if m in res:
            rows.append([_e(m), *[f"{res[m]['dropped_episodes'][t]} / {res[m]['evaluation_dropped'][t]}"
                                  for t in tasks]])
    return ("<h2 id='dropped'>Dropped episodes</h2>" + _table(["method", *[_e(t) for t in tasks]], rows) +
            "<p class='note'>Episodes with a NaN or infinite observation or reward (training / evaluation, "
            "summed over seeds): dropped from the loss and the returns, and counted here.</p>")


def _tasks_section(summary: Mapping[str, Any]) -> str:
    rows = [[_e(t["name"]), f"<code>{_e(t['env'])}</code>", _e(json.dumps(t.get("kwargs") or {})),
             _e(t.get("metadata") if t.get("metadata") is not None else "–"), _e(t.get("space", ""))]
            for t in summary.get("tasks", [])]
    return "<h2 id='tasks'>Tasks</h2>" + _table(["task", "environment", "kwargs", "metadata", "spaces"], rows, left=5)


def render_rl_report(run_dir: str | Path, summary: Mapping[str, Any], config_text: str = "") -> str:
    run_dir = Path(run_dir)
    name = _e(summary.get("name", run_dir.name))
    status = "" if summary.get("complete", True) else \
        "<p><b>Incomplete run</b>: some (method, seed) pairs have not finished (continue with --resume).</p>"
    parts = [f"<h1>{name}: multi-task reinforcement learning</h1>",
             f"<p>{plural(len(summary.get('tasks', [])), 'task')}, methods {_e(', '.join(summary.get('methods', [])))}, "
             f"seeds {_e(summary.get('seeds'))}, {summary.get('budget', 0):,} environment steps per task per "
             f"method and seed (A2C).</p>", status,
             "<nav><a href='#results'>results</a><a href='#curves'>curves</a><a href='#care'>CARE</a>"
             "<a href='#distral'>Distral</a><a href='#dropped'>dropped episodes</a><a href='#config'>config</a></nav>"]
    if summary.get("results"):
        parts += [_results_section(summary), _curves_section(run_dir, summary), _budgets_section(summary),
                  _care_section(summary), _distral_section(run_dir, summary), _robustness_section(summary)]
    else:
        parts.append("<p>No finished method yet.</p>")
    parts.append(_tasks_section(summary))
    if config_text:
        parts.append(f"<h2 id='config'>Config</h2><pre>{_e(config_text)}</pre>")
    body = "\n".join(p for p in parts if p)
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{name} — mtlkit rl</title>"
            f"<style>{CSS}</style></head><body>{body}</body></html>\n")


def write_rl_report(run_dir: str | Path) -> Path:
    """Render ``run_dir/report.html`` from the run folder (atomically); returns its path."""
    from mtlkit._io import atomic_write

    run_dir = Path(run_dir)
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.exists() else {}
    config_path = run_dir / "config.yaml"
    config_text = config_path.read_text(encoding="utf-8") if config_path.exists() else ""
    return atomic_write(run_dir / REPORT, render_rl_report(run_dir, summary, config_text))
