"""The page of a tuning run (``mtlkit tune``): the best trial and its config, the retrain of
the best config over seeds (verdicts and intervals, :func:`mtlkit.report.seeds.seeds_section`),
the optimisation history and the parameter importances (drawn from the trials with
matplotlib), the objective against each parameter, and the trials table.

>>> rec = {"name": "t", "objective": "validation Δm (%)", "direction": "minimize",
...        "best": {"number": 1, "value": -1.5, "params": {"training.optimizer.lr": 0.01}},
...        "importance": {"values": None, "note": "too few"}, "trials": {"total": 2}}
>>> rows = [{"number": 0, "state": "complete", "value": 0.5, "params": {"training.optimizer.lr": 0.001}},
...         {"number": 1, "state": "complete", "value": -1.5, "params": {"training.optimizer.lr": 0.01}}]
>>> page = render_tune_report(rec, rows)
>>> "Best trial" in page and "data:image/png;base64," in page and "http" not in page
True
"""

from __future__ import annotations

import base64
import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mtlkit.report._format import esc, fmt

__all__ = ["history_plot", "importance_plot", "param_plots", "render_tune_report", "write_tune_report"]

_CSS = """body{font-family:system-ui,sans-serif;max-width:1000px;margin:1.5em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}td,th{border:1px solid #ccc;padding:.25em .5em;
text-align:left}th{background:#f3f3f3}img{max-width:100%;height:auto}.good{color:#1a7f37}.bad{color:#b42318}
.warn{color:#9a6700}code,pre{background:#f6f6f6;padding:.1em .3em}pre{padding:.6em;overflow-x:auto}"""


def _finite(v: Any) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _points(rows: Sequence[Mapping[str, Any]], state: str) -> list[tuple[int, float]]:
    """(trial, value) of the trials in ``state``: a pruned trial at its last reported value."""
    out = []
    for r in rows:
        if r.get("state") != state:
            continue
        v = _finite(r.get("value") if state == "complete" else (r.get("intermediate") or [None])[-1])
        if v is not None:
            out.append((int(r["number"]), v))
    return out


def history_plot(rows: Sequence[Mapping[str, Any]], label: str, direction: str) -> str | None:
    """The objective of each trial (complete: dots; pruned: crosses at their last reported
    value) and the best so far, as a base64 PNG; ``None`` without a finished trial."""
    done = _points(rows, "complete")
    pruned = _points(rows, "pruned")
    if not done and not pruned:
        return None
    fig = _figure(7.0, 3.4)
    ax = fig.add_subplot()
    if done:
        ax.plot([n for n, _ in done], [v for _, v in done], "o", color="#1f77b4", label="complete trial")
        best, xs, ys = done[0][1], [], []
        for n, v in done:
            best = min(best, v) if direction == "minimize" else max(best, v)
            xs.append(n)
            ys.append(best)
        ax.step(xs, ys, where="post", color="#d62728", label="best so far")
    if pruned:
        ax.plot([n for n, _ in pruned], [v for _, v in pruned], "x", color="#7f7f7f",
                label="pruned (last reported)")
    ax.set_xlabel("trial")
    ax.set_ylabel(label)
    ax.set_title(f"Optimisation history ({direction})")
    ax.legend(loc="best", fontsize=8, framealpha=0.9)
    ax.xaxis.get_major_locator().set_params(integer=True)
    return _png(fig)


def importance_plot(values: Mapping[str, float] | None) -> str | None:
    """Horizontal bars of the parameter importances (fANOVA), most important on top."""
    if not values:
        return None
    items = sorted(values.items(), key=lambda kv: kv[1])
    fig = _figure(7.0, 0.5 + 0.45 * len(items) + 0.8)
    ax = fig.add_subplot()
    ax.barh([k for k, _ in items], [v for _, v in items], color="#1f77b4")
    for i, (_, v) in enumerate(items):
        ax.text(v, i, f" {v:.2f}", va="center", fontsize=8)
    ax.set_xlim(0, max(1.0, max(v for _, v in items) * 1.15))
    ax.set_xlabel("importance (share of the objective's variance)")
    ax.set_title("Parameter importances")
    return _png(fig)


def param_plots(rows: Sequence[Mapping[str, Any]], label: str) -> str | None:
    """The objective of the complete trials against each parameter (one panel each)."""
    done = [r for r in rows if r.get("state") == "complete" and _finite(r.get("value")) is not None]
    names: list[str] = []
    for r in done:
        names += [k for k in (r.get("params") or {}) if k not in names]
    if not done or not names:
        return None
    from matplotlib.ticker import MaxNLocator

    ncols = min(3, len(names))
    nrows = -(-len(names) // ncols)
    fig = _figure(3.2 * ncols, 2.8 * nrows)
    for i, name in enumerate(names):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        pts = [(r["params"][name], float(r["value"])) for r in done if name in (r.get("params") or {})]
        xs = [p for p, _ in pts]
        if all(_finite(x) is not None for x in xs):
            ax.plot([float(x) for x in xs], [v for _, v in pts], "o", color="#1f77b4")
            positive = all(float(x) > 0 for x in xs)
            if positive and max(float(x) for x in xs) / min(float(x) for x in xs) > 50:
                ax.set_xscale("log")
            else:  # few ticks, in short numbers: values like 0.0005 ... 0.0025 overlap otherwise
                ax.xaxis.set_major_locator(MaxNLocator(4))
                ax.ticklabel_format(axis="x", style="sci", scilimits=(-2, 3))
            ax.tick_params(axis="x", labelsize=7)
        else:
            cats = sorted({json.dumps(x, sort_keys=True) for x in xs})
            ax.plot([cats.index(json.dumps(x, sort_keys=True)) for x in xs], [v for _, v in pts], "o",
                    color="#1f77b4")
            ax.set_xticks(range(len(cats)), [_short(c) for c in cats], rotation=30, ha="right", fontsize=7)
            ax.set_xlim(-0.5, len(cats) - 0.5)
        ax.set_title(_short(name, 40), fontsize=9)
        if i % ncols == 0:
            ax.set_ylabel(label, fontsize=8)
    return _png(fig)


def _short(text: str, n: int = 18) -> str:
    text = text.strip('"')
    return text if len(text) <= n else "…" + text[-(n - 1):]


def _img(b64: str | None, alt: str) -> str:
    return f'<p><img alt="{esc(alt)}" src="data:image/png;base64,{b64}"></p>' if b64 else ""


def _value(v: Any) -> str:
    if isinstance(v, float):
        return fmt(v, 4)
    return esc(json.dumps(v) if isinstance(v, (dict, list)) or v is None else v)


def _trials_table(rows: Sequence[Mapping[str, Any]]) -> str:
    names: list[str] = []
    for r in rows:
        names += [k for k in (r.get("params") or {}) if k not in names]
    head = "".join(f"<th>{esc(n)}</th>" for n in ["trial", "state", "objective", *names, "epochs"])
    body = []
    for r in rows:
        params = "".join(f"<td>{_value((r.get('params') or {}).get(n, ''))}</td>" for n in names)
        body.append(f"<tr><td>{esc(r.get('number'))}</td><td>{esc(r.get('state'))}</td>"
                    f"<td>{fmt(r.get('value'), 4)}</td>{params}<td>{esc(r.get('epochs_run') or '')}</td></tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def render_tune_report(rec: Mapping[str, Any], rows: Sequence[Mapping[str, Any]],
                       seeds: Mapping[str, Any] | None = None, best_config_text: str | None = None) -> str:
    """The tuning report as one self-contained HTML page (no external resources)."""
    label, direction = str(rec.get("objective") or "objective"), str(rec.get("direction") or "minimize")
    best = rec.get("best") or {}
    counts = rec.get("trials") or {}
    parts = [f"<h1>Tuning: {esc(rec.get('name'))}</h1>",
             f"<p>Study <code>{esc(rec.get('study'))}</code> in <code>{esc(rec.get('storage'))}</code>: "
             f"{esc(counts.get('total'))} trial(s) ({esc(counts.get('complete', 0))} complete, "
             f"{esc(counts.get('pruned', 0))} pruned, {esc(counts.get('fail', 0))} failed). Objective: {esc(label)}, "
             f"{esc(direction)}d ({esc(rec.get('sampler') or '')}). <b>Negative Δm means the multi-task model is "
             f"better.</b></p>",
             f"<h2>Best trial</h2><p>Trial {esc(best.get('number'))}: {esc(label)} <b>{fmt(best.get('value'), 4)}</b>"
             f" on the validation split (selected there: its test figures are in the retrain below).</p>"]
    params = best.get("params") or {}
    if params:
        parts.append("<table><tr><th>parameter</th><th>value</th></tr>" + "".join(
            f"<tr><td>{esc(k)}</td><td>{_value(v)}</td></tr>" for k, v in params.items()) + "</table>")
    if seeds:
        from mtlkit.report.seeds import seeds_section

        _, title, body = seeds_section(seeds, config=None)  # no "try mtlkit tune" after a tune
        parts.append(f"<h2>The best config retrained: {esc(title)}</h2>{body}".replace(
            'href="seed-', 'href="best/seed-'))
    elif "retrain" not in rec:
        parts.append('<p class="warn">The best config was not retrained over seeds: one validation score is '
                     "no evidence; run <code>mtlkit train best_config.yaml --seeds 5</code>.</p>")
    parts.append("<h2>Optimisation history</h2>" + _img(history_plot(rows, label, direction), "history"))
    imp = rec.get("importance") or {}
    parts.append("<h2>Parameter importances</h2>" + (_img(importance_plot(imp.get("values")), "importances")
                                                      or f"<p>{esc(imp.get('note') or 'not computed')}</p>"))
    parts.append("<h2>Objective against each parameter</h2>" + _img(param_plots(rows, label), "parameters"))
    parts.append("<h2>Trials</h2>" + _trials_table(rows))
    if best_config_text:
        parts.append(f"<h2>best_config.yaml</h2><pre>{esc(best_config_text)}</pre>")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Tuning {esc(rec.get("name"))}'
            f"</title><style>{_CSS}</style></head><body>{''.join(parts)}</body></html>")


def write_tune_report(run_dir: str | Path) -> Path:
    """``run_dir/report.html`` from ``tune.json``, ``trials.json``, ``best_config.yaml`` and
    the retrain's ``best/seeds.json``."""
    from mtlkit._io import atomic_write
    from mtlkit.report.seeds import load_seeds

    folder = Path(run_dir)
    try:
        rec = json.loads((folder / "tune.json").read_text(encoding="utf-8"))
        rows = json.loads((folder / "trials.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FileNotFoundError(f"{str(folder)!r} holds no readable tuning run (tune.json, trials.json): {exc}") from None
    best_cfg = folder / "best_config.yaml"
    text = best_cfg.read_text(encoding="utf-8") if best_cfg.exists() else None
    page = render_tune_report(rec, rows, load_seeds(folder / "best"), text)
    return atomic_write(folder / "report.html", page)
