"""The self-contained HTML report of a run: inline CSS, plots as base64 PNG, no JavaScript,
nothing fetched from the network.

:func:`render_report` turns the parts of a run (``summary.json``, the ``metrics.jsonl``
records of the multi-task model and of each single-task baseline, ``config.yaml``) into one
HTML string. Every optional part of the run format may be missing; its section is then left
out or says what is absent. Non-finite numbers are shown as ``n/a``.
"""

from __future__ import annotations

import contextlib
import gc
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mtlkit._text import plural
from mtlkit.report import plots
from mtlkit.report._format import (
    NA,
    arrow,
    as_dict,
    esc,
    fmt,
    fmt_signed,
    higher_is_better,
    inference_unit,
    kept_weights,
    main_metric,
    num,
    selection_criterion,
    task_names,
    task_role,
    task_spec,
)
from mtlkit.report.plots import Line, Panel
from mtlkit.run.summary import EpochRecord, ModelResult, Summary

__all__ = ["render_report"]

DELTA_M_FORMULA = ("Δm = (1/T) Σ<sub>t</sub> (1/|M<sub>t</sub>|) Σ<sub>m</sub> "
                   "(−1)<sup>h<sub>m</sub></sup> (M<sub>mtl</sub> − M<sub>stl</sub>) / "
                   "M<sub>stl</sub> × 100")
DELTA_M_TEXT = ("where h<sub>m</sub> = 1 when higher is better for metric m; each term is how much "
                "worse (in %) the multi-task model is than the single-task model. "
                "<b>Negative Δm means the multi-task model is better.</b>")

_KNOWN_SUMMARY_KEYS = {
    "format_version", "name", "seed", "tasks", "mtl", "baselines", "delta_m", "delta_m_per_task",
    "delta_m_all_tasks", "stl_params_total", "stl_inference_ms_total", "confusion",
    "classification_report", "higher_is_better", "main_metric", "created", "sign_convention",
    "inference_unit", "source", "sizes", "environment", "nonfinite_skipped", "affinity", "sharing",
    "search_phase", "warnings", "gbdt", "delta_m_gbdt", "delta_m_metrics", "delta_m_warnings",
    "references_from_cache", "ranking",
}
_KNOWN_SHARING_KEYS = {"gates", "cross_stitch", "policy", "discriminator_accuracy"}

MTL_C, STL_C, MTL_VAL_C, STL_VAL_C = "C0", "C1", "C2", "C3"


# ---------------------------------------------------------------------------------- context
@dataclass
class _Ctx:
    summary: Summary
    records: list[EpochRecord]
    baselines: dict[str, list[EpochRecord]]
    config_text: str | None
    config: dict[str, Any]
    tasks: list[str]
    warnings: list[str] = field(default_factory=list)

    @property
    def epochs(self) -> list[int]:
        return _epochs(self.records)

    @property
    def primary(self) -> list[str]:
        return [t for t in self.tasks if task_role(self.summary, t) != "auxiliary"]

    @property
    def auxiliary(self) -> list[str]:
        return [t for t in self.tasks if task_role(self.summary, t) == "auxiliary"]

    @property
    def mtl(self) -> ModelResult:
        """The multi-task model's results (empty when the summary has none)."""
        return self.summary.mtl if self.summary.mtl is not None else ModelResult(test=None)

    @property
    def stl(self) -> dict[str, ModelResult]:
        b = self.summary.baselines
        return b if isinstance(b, dict) else {}

    def component(self, *path: str) -> dict[str, Any] | None:
        node: Any = self.config
        for p in path:
            if not isinstance(node, Mapping):
                return None
            node = node.get(p)
        if isinstance(node, str):
            return {"name": node}
        return dict(node) if isinstance(node, Mapping) else None


def _series(records: Sequence[EpochRecord], part: str, *keys: str) -> list[Any]:
    """``records[i].part[k0][k1]...`` per record, ``None`` where absent."""
    out = []
    for r in records:
        node: Any = getattr(r, part)
        for k in keys:
            node = node.get(k) if isinstance(node, Mapping) else None
        out.append(node)
    return out


def _epochs(records: Sequence[EpochRecord]) -> list[int]:
    return [int(r.epoch if r.epoch is not None else i + 1) for i, r in enumerate(records)]


def _epochs_run(mtl: ModelResult, records: Sequence[EpochRecord]) -> int | None:
    return mtl.epochs_run if mtl.epochs_run is not None else (len(records) or None)


def _records(records: Sequence[EpochRecord | Mapping[str, Any]]) -> list[EpochRecord]:
    """The records as :class:`EpochRecord` (lines that are not JSON objects are skipped)."""
    return [r if isinstance(r, EpochRecord) else EpochRecord.from_dict(r) for r in records
            if isinstance(r, (EpochRecord, Mapping))]


# ---------------------------------------------------------------------------------- html bits
def _img(fn: Callable[..., str | None], *args: Any, alt: str, caption: str | None = None,
         **kwargs: Any) -> str:
    """A plot as ``<figure><img src="data:...">``; a failing plot becomes a warning line."""
    try:
        png = fn(*args, **kwargs)
    except Exception as exc:  # one broken plot must not cost the whole report
        return f'<p class="warn">The plot “{esc(alt)}” could not be drawn: {esc(exc)}</p>'
    if png is None:
        return ""
    cap = f"<figcaption>{caption}</figcaption>" if caption else ""
    return f'<figure><img alt="{esc(alt)}" src="data:image/png;base64,{png}">{cap}</figure>'


def _pair(*items: str) -> str:
    """Put small plots (or a plot and a table) side by side; wraps on narrow screens."""
    items = tuple(i for i in items if i)
    if len(items) < 2:
        return "".join(items)
    return '<div class="pair">' + "".join(f"<div>{i}</div>" for i in items) + "</div>"


def _table(header: Sequence[str] | None, rows: Sequence[Sequence[str]], cls: str = "") -> str:
    """Cells are trusted HTML (callers escape)."""
    if header is None:
        body = "".join("<tr>" + "".join(c if c.startswith("<td") else f"<td>{c}</td>" for c in r)
                       + "</tr>" for r in rows)
        return f'<table class="{cls}"><tbody>{body}</tbody></table>'
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(c if c.startswith("<td") else f"<td>{c}</td>" for c in r)
                   + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _num_td(value: Any, extra_cls: str = "", digits: int = 4) -> str:
    text = fmt(value, digits)
    cls = " ".join(c for c in ("num", extra_cls, "na" if text == NA else "") if c)
    return f'<td class="{cls}">{esc(text)}</td>'


def _json_value(value: Any, depth: int = 0) -> str:
    if isinstance(value, Mapping) and value and depth < 3:
        return _json_table(value, depth + 1)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return esc(fmt(value))
    if value is None:
        return f'<span class="na">{NA}</span>'
    if isinstance(value, list) and all(isinstance(v, (int, float, type(None))) for v in value):
        shown = ", ".join(fmt(v) for v in value[:40]) + (", …" if len(value) > 40 else "")
        return f"[{esc(shown)}]"
    if isinstance(value, str):
        return esc(value if len(value) <= 600 else value[:600] + " …")
    text = json.dumps(value, default=str)
    if len(text) > 600:
        text = text[:600] + " …"
    return f"<code>{esc(text)}</code>"


def _json_table(obj: Mapping[str, Any], depth: int = 0) -> str:
    rows = [[f"<b>{esc(k)}</b>", _json_value(v, depth)] for k, v in obj.items()]
    return _table(["key", "value"], rows, "json")


def _sec(sid: str, title: str, body: str) -> tuple[str, str, str]:
    return sid, title, body


# ---------------------------------------------------------------------------------- sections
def _task_kind(kind: Any) -> Any:
    """The registered task kind object named ``kind``; ``None`` for a name this version of
    mtlkit does not know (a run folder from elsewhere)."""
    from mtlkit.kinds import get_kind, kind_names

    return get_kind(kind) if isinstance(kind, str) and kind in kind_names() else None


def _header(ctx: _Ctx) -> str:
    s = ctx.summary
    facts = [("date", s.created), ("seed", s.seed), ("data", s.source), ("format version", s.format_version)]
    sizes = s.sizes
    if isinstance(sizes, Mapping):
        facts.append(("samples", " / ".join(f"{k} {fmt(v)}" for k, v in sizes.items())))
    arch = ctx.component("model", "architecture")
    if arch:
        facts.append(("architecture", arch.get("name")))
    facts_html = " · ".join(f"<span><b>{esc(k)}</b>: {esc(v)}</span>"
                            for k, v in facts if v is not None)
    rows = []
    for t in ctx.tasks:
        spec = task_spec(s, t) or {}
        kind = spec.get("kind", "?")
        tk = _task_kind(kind)
        pairwise = tk is not None and tk.pairwise
        out = (f"{spec.get('num_classes')} classes" if spec.get("num_classes") else
               f"{spec.get('num_labels')} labels" if spec.get("num_labels") else
               f"dim {spec.get('dim')}" if tk is not None and tk.width_setting == "dim" and spec.get("dim") else
               f"pair distance (margin {fmt(spec.get('margin'))})" if pairwise else "")
        role = task_role(s, t)
        mm = main_metric(s, t)
        rows.append([esc(t), esc(kind), f'<span class="role-{esc(role)}">{esc(role)}</span>',
                     esc(out), esc(fmt(spec.get("weight")) if "weight" in spec else NA),
                     esc(spec.get("loss") or (tk.default_loss if pairwise else "default")),
                     esc(f"{mm} {arrow(higher_is_better(s, t, mm))}" if mm else NA)])
    tasks_tbl = _table(["task", "kind", "role", "output", "λ (static weight)", "loss", "main metric"],
                       rows) if rows else "<p>No task list in summary.json.</p>"
    return (f'<header><h1>mtlkit run report: {esc(s.name if s.name is not None else "run")}</h1>'
            f'<p class="facts">{facts_html}</p><h3>Tasks</h3>{tasks_tbl}</header>')


def _metric_rows(ctx: _Ctx, tasks: Sequence[str], with_stl: bool) -> list[list[str]]:
    s = ctx.summary
    mtl_test = as_dict(ctx.mtl.test)
    dm_task = as_dict(s.delta_m_per_task)
    rows: list[list[str]] = []
    for t in tasks:
        m_mtl = as_dict(mtl_test.get(t))
        m_stl = as_dict(ctx.stl[t].test if t in ctx.stl else None)
        names = list(m_mtl) + [k for k in m_stl if k not in m_mtl]
        for i, metric in enumerate(names):
            hib = higher_is_better(s, t, metric)
            a, c = num(m_mtl.get(metric)), num(m_stl.get(metric))
            better_mtl = better_stl = ""
            if a is not None and c is not None and a != c:
                mtl_wins = (a > c) == hib
                better_mtl, better_stl = ("better", "") if mtl_wins else ("", "better")
            row = []
            if i == 0:
                row.append(f'<td rowspan="{len(names)}" class="task">{esc(t)}</td>')
            title = "higher is better" if hib else "lower is better"
            row.append(f'<td>{esc(metric)} <span class="arrow" title="{title}">{arrow(hib)}</span></td>')
            row.append(_num_td(m_mtl.get(metric), better_mtl))
            if with_stl:
                row.append(_num_td(m_stl.get(metric), better_stl))
                diff = (a - c) if a is not None and c is not None else None
                row.append(f'<td class="num{" na" if diff is None else ""}">{esc(fmt_signed(diff))}</td>')
                if i == 0:
                    d = num(dm_task.get(t))
                    cls = "" if d is None else ("good" if d < 0 else "bad" if d > 0 else "")
                    text = NA if d is None else f"{fmt_signed(d, 3)} %"
                    row.append(f'<td rowspan="{len(names)}" class="num dm {cls}">{esc(text)}</td>')
            rows.append(row)
        if not names:
            rows.append([f'<td class="task">{esc(t)}</td>', '<td class="na">no test metrics</td>'])
    return rows


def _metrics_table(ctx: _Ctx, tasks: Sequence[str]) -> str:
    with_stl = bool(ctx.stl)
    header = ["task", "metric", "multi-task"]
    if with_stl:
        header += ["single-task", "Δ (MTL − STL)", "Δm<sub>t</sub> (%)"]
    return _table(header, _metric_rows(ctx, tasks, with_stl), "metrics")


def _dm_box(value: Any, label: str, scope: str) -> str:
    d = num(value)
    if d is None:
        verdict, cls = "not available (no single-task baselines, or undefined ratios)", ""
    elif d < 0:
        verdict, cls = "negative: the multi-task model is better on average", "good"
    elif d > 0:
        verdict, cls = "positive: the single-task models are better on average", "bad"
    else:
        verdict, cls = "zero: no difference on average", ""
    text = NA if d is None else f"{fmt_signed(d, 3)} %"
    return (f'<div class="dm-box {cls}"><div class="dm-label">{label}</div>'
            f'<div class="dm-value">{esc(text)}</div><div class="dm-verdict">{esc(verdict)}'
            f"<br><small>{esc(scope)}</small></div></div>")


def _ratio(a: float | None, b: float | None, what: str) -> str:
    if a is None or b is None or b == 0:
        return NA
    r = a / b
    if r < 1:
        return f"{r:.2f}× ({(1 - r) * 100:.0f} % {what})"
    return f"{r:.2f}×"


def _costs(ctx: _Ctx) -> str:
    s, mtl, stl = ctx.summary, ctx.mtl, ctx.stl
    unit = inference_unit(s)
    k = len(stl)

    def total(key: str, given: Any = None) -> float | None:
        if num(given) is not None:
            return num(given)
        vals = [num(getattr(v, key)) for v in stl.values()]
        return sum(v for v in vals if v is not None) if vals and all(v is not None for v in vals) else None

    p_mtl, p_stl = num(mtl.params), total("params", s.stl_params_total)
    i_mtl, i_stl = num(mtl.inference_ms), total("inference_ms", s.stl_inference_ms_total)
    f_mtl, f_stl = num(mtl.fit_time_s), total("fit_time_s")

    def params_td(v: float | None) -> str:
        return f'<td class="num">{esc(fmt(int(v)) if v is not None else NA)}</td>'

    rows = [["parameters", params_td(p_mtl)], [f"inference time ({esc(unit)})", _num_td(i_mtl)],
            ["fit time (s)", _num_td(f_mtl)],
            ["best epoch / epochs run", esc(f"{fmt(mtl.best_epoch)} / {fmt(_epochs_run(mtl, ctx.records))}")]]
    header = ["", "multi-task (1 model)"]
    if stl:
        header += [f"single-task ({plural(k, 'model')}, total)", "MTL / STL"]
        rows[0] += [params_td(p_stl), esc(_ratio(p_mtl, p_stl, "fewer"))]
        rows[1] += [_num_td(i_stl), esc(_ratio(i_mtl, i_stl, "faster"))]
        rows[2] += [_num_td(f_stl), esc(_ratio(f_mtl, f_stl, "less time"))]
        bests = {t: v.best_epoch for t, v in stl.items()}
        if len(bests) <= 4:
            best = ", ".join(f"{t}: {fmt(b)}" for t, b in bests.items())
        else:
            known = sorted(int(f) for f in (num(b) for b in bests.values()) if f is not None)
            best = (f"{known[0]} to {known[-1]} (see below)" if known else NA)
        rows[3] += [esc(best), ""]
    html = _table(header, rows, "costs")
    if stl:
        per = [[esc(t), params_td(num(v.params)), _num_td(v.inference_ms), _num_td(v.fit_time_s),
                esc(fmt(v.best_epoch))] for t, v in stl.items()]
        html += ("<details><summary>Single-task models one by one</summary>"
                 + _table(["task", "parameters", f"inference ({esc(unit)})", "fit time (s)",
                           "best epoch"], per) + "</details>")
    return html


def _monitor(ctx: _Ctx) -> str | None:
    """The config's ``training.monitor`` (``None``: the default validation score)."""
    training = ctx.config.get("training") if isinstance(ctx.config, Mapping) else None
    monitor = training.get("monitor") if isinstance(training, Mapping) else None
    return monitor if isinstance(monitor, str) and monitor else None


def _kept(ctx: _Ctx) -> str | None:
    """Which epoch's weights the run kept, and by which validation score."""
    return kept_weights(ctx.summary, ctx.records, _monitor(ctx))


def _single_run_verdict(ctx: _Ctx) -> str:
    """The verdict of one run: none, since one seed gives no interval; says how to get one."""
    return ('<p class="verdict"><b>Verdict per task: not available from one run.</b> One seed gives no '
            "interval, so this Δm cannot tell multi-task learning helping from seed-to-seed noise. "
            "Train over seeds for intervals, a paired test and a verdict per task: "
            "<code>mtlkit train CONFIG.yaml --seeds 5</code>.</p>")


def _headline(ctx: _Ctx) -> tuple[str, str, str]:
    s = ctx.summary
    parts = []
    if ctx.stl:
        parts.append(_dm_box(s.delta_m, "Δm (primary tasks)",
                             f"headline over {plural(len(ctx.primary), 'primary task')}; auxiliary tasks excluded"))
        parts.append(_single_run_verdict(ctx))
    else:
        parts.append('<p class="note">Single-task baselines were not trained for this run '
                     "(<code>--no-baselines</code>): no Δm and no single-task comparison.</p>")
    kept = _kept(ctx)
    if kept:
        parts.append(f'<p class="kept"><b>Model kept</b>: {esc(kept)}. Test metrics below are of these '
                     "weights.</p>")
    parts.append(f'<p class="formula">{DELTA_M_FORMULA}<br><span>{DELTA_M_TEXT}</span></p>')
    if s.mtl is None:
        parts.append('<p class="note">No test results in summary.json.</p>')
    else:
        parts.append("<h3>Test metrics of the primary tasks</h3>")
        parts.append('<p class="legend">↑ higher is better, ↓ lower is better; the better of '
                     'the two models is <span class="better">highlighted</span>. Δm<sub>t</sub> '
                     "is the task's term of Δm (negative: multi-task better).</p>")
        parts.append(_metrics_table(ctx, ctx.primary))
        parts.append("<h3>Cost: one multi-task model vs the single-task models</h3>")
        parts.append(_costs(ctx))
    return _sec("headline", "Headline: multi-task vs single-task", "".join(parts))


def _gbdt(ctx: _Ctx) -> tuple[str, str, str] | None:
    """The multi-task model against both single-task references: neural and GBDT."""
    s = ctx.summary
    gb = s.gbdt if isinstance(s.gbdt, Mapping) else {}
    if not gb:
        return None
    rows: list[list[str]] = []
    for t in ctx.primary:
        m_mtl = as_dict(as_dict(ctx.mtl.test).get(t))
        m_stl = as_dict(ctx.stl[t].test if t in ctx.stl else None)
        m_gb = as_dict(gb[t].test if t in gb else None)
        names = list(m_mtl) + [k for k in m_gb if k not in m_mtl]
        for i, metric in enumerate(names):
            hib = higher_is_better(s, t, metric)
            vals = {k: num(m.get(metric)) for k, m in (("mtl", m_mtl), ("stl", m_stl), ("gbdt", m_gb))}
            known = {k: v for k, v in vals.items() if v is not None}
            best = (max if hib else min)(known, key=lambda k: known[k]) if known else None
            row = [f'<td rowspan="{len(names)}" class="task">{esc(t)}</td>'] if i == 0 else []
            row.append(f"<td>{esc(metric)} {arrow(hib)}</td>")
            row += [_num_td(vals[k], "better" if k == best and len(known) > 1 else "") for k in ("mtl", "stl", "gbdt")]
            rows.append(row)
    body = ('<p class="legend">Each primary task is also fitted with scikit-learn\'s HistGradientBoosting on the '
            "same training split (the same fitted preprocessing, native categories and missing values) and "
            'scored on the same test split; the best of the three is <span class="better">highlighted</span>.</p>'
            + _table(["task", "metric", "multi-task", "single-task (neural)", "single-task (GBDT)"], rows, "metrics")
            + _dm_box(s.delta_m_gbdt, "Δm vs GBDT (primary tasks)", "the same formula with the GBDT models as M_stl"))
    return _sec("gbdt", "Against gradient-boosted trees", body)


def _auxiliary(ctx: _Ctx) -> tuple[str, str, str] | None:
    if not ctx.auxiliary:
        return None
    s = ctx.summary
    body = ['<p class="note">Auxiliary tasks are trained only to help the primary tasks; they '
            "are reported here and are <b>excluded from the headline Δm</b>.</p>"]
    if s.mtl is not None:
        body.append(_metrics_table(ctx, ctx.auxiliary))
    if ctx.stl:
        body.append(_dm_box(s.delta_m_all_tasks, "Δm (all tasks, incl. auxiliary)",
                            "for information only; the headline counts primary tasks"))
    return _sec("auxiliary", "Auxiliary tasks", "".join(body))


def _training(ctx: _Ctx) -> tuple[str, str, str] | None:
    recs = ctx.records
    if not recs:
        return _sec("training", "Training", '<p class="note">metrics.jsonl is missing or empty: '
                    "no training curves.</p>")
    total_time = sum(num(r.time_s) or 0.0 for r in recs)
    skipped = sum(int(num(r.nonfinite_skipped) or 0) for r in recs)
    facts = [("epochs run", fmt(len(recs))), ("weights kept", _kept(ctx) or NA),
             ("steps per epoch (last)", fmt(recs[-1].steps)),
             ("training time of the MTL model (s)", fmt(total_time, 4))]
    for label, path in (("architecture", ("model", "architecture")), ("trunk", ("model", "trunk")),
                        ("loss weighting", ("training", "weighting")),
                        ("gradient aggregator", ("training", "aggregator")),
                        ("sampler", ("data", "sampler")), ("schedule", ("training", "schedule"))):
        comp = ctx.component(*path)
        if comp:
            params = ", ".join(f"{k}={v}" for k, v in comp.items() if k != "name")
            facts.append((label, f"{comp.get('name')}" + (f" ({params})" if params else "")))
    if ctx.component("training", "aggregator"):
        level = (ctx.config.get("training") or {}).get("level")
        if level:
            facts.append(("Jacobian level", str(level)))
    env = ctx.summary.environment
    if isinstance(env, Mapping):
        facts.append(("environment", ", ".join(f"{k} {v}" for k, v in env.items())))
    for entry in ctx.summary.resumed if isinstance(ctx.summary.resumed, list) else []:
        if isinstance(entry, Mapping):  # a resume that changed the config (more epochs ...)
            changed = as_dict(entry.get("changed"))
            facts.append(("resumed", f"{entry.get('date', '')}: " + ", ".join(
                f"{k} {v[0]} → {v[1]}" if isinstance(v, list) and len(v) == 2 else str(k)
                for k, v in changed.items())))
    body = [_table(None, [[f"<b>{esc(k)}</b>", esc(v)] for k, v in facts], "facts-table")]
    if skipped:
        body.append(f'<p class="warn">{plural(skipped, "step")} {"was" if skipped == 1 else "were"} '
                    "skipped because a loss or gradient was not finite.</p>")
    shown = [w for w in (ctx.summary.warnings or []) if isinstance(w, Mapping)]
    if shown:
        items = "".join(
            f"<li><b>{esc(w.get('category', 'Warning'))}</b>: {esc(w.get('message', ''))}"
            + (f" (×{int(num(w.get('count')) or 1)})" if (num(w.get("count")) or 1) > 1 else "") + "</li>"
            for w in shown)
        body.append(f'<div class="warn"><p>Warnings shown while the run trained:</p><ul>{items}</ul></div>')
    lrs = [num(v) for v in _series(recs, "lr")]
    finite_lrs = {v for v in lrs if v is not None}
    figs = []
    if len(finite_lrs) > 1:
        figs.append(_img(plots.lines, "Learning rate per epoch", "epoch", "learning rate",
                         [Line("learning rate", ctx.epochs, lrs, color=MTL_C)], alt="learning rate"))
    scores = _series(recs, "val_score")
    if any(num(v) is not None for v in scores):
        best = num(ctx.mtl.best_epoch)
        figs.append(_img(plots.lines, "Validation score (early stopping)",
                         "epoch", "validation score (higher is better)",
                         [Line("validation score", ctx.epochs, scores, color=MTL_C)],
                         alt="validation score",
                         caption="The epoch with the highest score is kept"
                         + (f" (epoch {int(best)}): " if best is not None else ": ")
                         + esc(selection_criterion(ctx.summary, _monitor(ctx))[0]) + "."))
    body.append(_pair(*figs))
    return _sec("training", "Training", "".join(body))


def _curves(ctx: _Ctx) -> tuple[str, str, str] | None:
    if not ctx.records and not ctx.baselines:
        return None
    best = num(ctx.mtl.best_epoch)
    loss_panels, metric_panels = [], []
    for t in ctx.tasks:
        brec = ctx.baselines.get(t, [])
        label = t + (" (aux)" if task_role(ctx.summary, t) == "auxiliary" else "")
        ls = [Line("MTL train", ctx.epochs, _series(ctx.records, "train_loss", t), "-", MTL_C),
              Line("MTL validation", ctx.epochs, _series(ctx.records, "val_loss", t), "-", MTL_VAL_C)]
        if brec:
            ls += [Line("single-task train", _epochs(brec), _series(brec, "train_loss", t), "--", STL_C),
                   Line("single-task validation", _epochs(brec), _series(brec, "val_loss", t), "--",
                        STL_VAL_C)]
        loss_panels.append(Panel(label, "loss", ls, vline=best, vline_label="best epoch (MTL)"))
        avail = [k for r in ctx.records + brec for k in (as_dict(r.val).get(t) or {})] \
            if ctx.records or brec else []
        mm = main_metric(ctx.summary, t, avail)
        if mm is None:
            continue
        ms = [Line("MTL", ctx.epochs, _series(ctx.records, "val", t, mm), "-", MTL_C)]
        if brec:
            ms.append(Line("single-task", _epochs(brec), _series(brec, "val", t, mm), "--", STL_C))
        metric_panels.append(Panel(label, f"{mm} {arrow(higher_is_better(ctx.summary, t, mm))}", ms,
                                   vline=best, vline_label="best epoch (MTL)"))
    ncols = 3 if len(ctx.tasks) <= 6 else 4
    body = [_img(plots.line_panels, "Loss per task (training and validation)", loss_panels,
                 log_auto=True, alt="loss curves", ncols=ncols,
                 caption="Solid: multi-task model; dashed: single-task model of the task. "
                 "Log scale where a loss spans more than two decades."),
            _img(plots.line_panels, "Validation main metric per task", metric_panels,
                 alt="validation metric curves", ncols=ncols,
                 caption="Solid: multi-task model; dashed: single-task model.")]
    body = [b for b in body if b]
    if not body:
        return None
    return _sec("curves", "Training curves", "".join(body))


def _comparison(ctx: _Ctx) -> tuple[str, str, str] | None:
    """Every metric of every task in one chart: its relative difference between the
    multi-task and the single-task model, signed as a term of Δm (negative: multi-task
    better). One chart rather than one bar panel per metric: metrics on different scales
    compare as percentages, and a task's metrics sit together."""
    test = ctx.mtl.test
    if not isinstance(test, Mapping) or not test or not ctx.stl:
        return None
    entered = ctx.summary.extra.get("delta_m_metrics")
    entered = entered if isinstance(entered, Mapping) else {}
    rows: list[tuple[str, str, float | None]] = []
    for t in ctx.tasks:
        m_mtl, m_stl = as_dict(test.get(t)), as_dict(ctx.stl[t].test if t in ctx.stl else None)
        label = t + (" (aux)" if task_role(ctx.summary, t) == "auxiliary" else "")
        for metric in m_mtl:
            a, c = num(m_mtl.get(metric)), num(m_stl.get(metric))
            sign = -1.0 if higher_is_better(ctx.summary, t, metric) else 1.0
            term = sign * (a - c) / abs(c) * 100.0 if a is not None and c is not None and c != 0 else None
            out = isinstance(entered.get(t), list) and metric not in entered[t]
            rows.append((label, f"{metric} {arrow(higher_is_better(ctx.summary, t, metric))}"
                         + (" (not in Δm)" if out else ""), term))
    img = _img(plots.relative_bars, "Multi-task vs single-task, every test metric", rows,
               xlabel="(−1)^h (M_mtl − M_stl) / |M_stl| × 100   (negative: multi-task better)",
               alt="relative difference per metric",
               caption="Each bar is the metric's relative difference in %, signed like Δm: green "
               "(left of 0) where the multi-task model is better, red where the single-task model is. "
               "The values themselves are in the headline's table.")
    return _sec("comparison", "Multi-task vs single-task per metric", img) if img else None


def _class_labels(ctx: _Ctx, task: str, entry: Mapping[str, Any] | None, k: int) -> list[str]:
    for src in (entry or {}, task_spec(ctx.summary, task) or {}):
        for key in ("labels", "class_names", "classes"):
            v = src.get(key)
            if isinstance(v, list) and len(v) == k:
                return [str(x) for x in v]
    return [str(i) for i in range(k)]


MAX_CONFUSION_PLOTS = 4  # more tasks than this: every matrix as a coloured HTML table


def _confusion_entries(ctx: _Ctx) -> list[tuple[str, Any, Any, list[str]]]:
    """``(task, MTL counts, STL counts, class labels)`` of each task with a matrix."""
    conf = ctx.summary.confusion
    if not isinstance(conf, Mapping) or not conf:
        return []
    out = []
    for t in ctx.tasks + [k for k in conf if k not in ctx.tasks]:
        entry = conf.get(t)
        if entry is None:
            continue
        if isinstance(entry, list):
            entry = {"mtl": entry}
        if not isinstance(entry, Mapping):
            continue
        mtl, stl = entry.get("mtl"), entry.get("stl")
        ref = mtl or stl
        if not ref:
            continue
        out.append((t, mtl, stl, _class_labels(ctx, t, entry, len(ref))))
    return out


def _cm_table(name: str, counts: Any, labels: Sequence[str]) -> str:
    """One confusion matrix as a table whose cells are coloured like the plotted ones
    (Blues by the fraction of the true class; the hover text gives the fraction)."""
    import matplotlib

    mat = plots._matrix(counts)
    frac = plots.row_fractions(mat)
    cmap = matplotlib.colormaps["Blues"]
    names = [labels[i] if i < len(labels) else str(i) for i in range(max(mat.shape))]
    head = "".join(f"<th>{esc(names[c])}</th>" for c in range(mat.shape[1]))
    rows = []
    for r in range(mat.shape[0]):
        cells = []
        for c in range(mat.shape[1]):
            f = float(frac[r, c])
            v = num(mat[r, c])
            if f != f:  # NaN: an empty row
                cells.append(f'<td class="num na">{esc(fmt(v) if v is not None else NA)}</td>')
                continue
            red, green, blue, _ = cmap(f)
            light = 0.299 * red + 0.587 * green + 0.114 * blue > 0.55
            cells.append(f'<td class="num" title="{f:.0%} of true class {esc(names[r])}" '
                         f'style="background:#{int(red * 255):02x}{int(green * 255):02x}'
                         f'{int(blue * 255):02x};color:{"#000" if light else "#fff"}">'
                         f"{esc(fmt(int(v)) if v is not None and v == int(v) else fmt(v))}</td>")
        rows.append(f"<tr><th>{esc(names[r])}</th>{''.join(cells)}</tr>")
    return (f'<table class="cm"><caption>{esc(name)}</caption><thead><tr>'
            f'<th class="corner">true ↓<br>pred. →</th>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>")


def _confusion(ctx: _Ctx) -> tuple[str, str, str] | None:
    entries = _confusion_entries(ctx)
    if not entries:
        return None
    legend = ("Counts on the test split; colour = fraction of the true class (row), so the "
              "diagonal is each class's recall.")
    if len(entries) <= MAX_CONFUSION_PLOTS:
        body = [_img(plots.confusion_pair, t, mtl, stl, labels, alt=f"confusion matrix {t}")
                for t, mtl, stl, labels in entries]
    else:  # many tasks: one plot each would be long to draw and to scroll through
        blocks = []
        for t, mtl, stl, labels in entries:
            tables = [_cm_table(name, m, labels) for name, m in (("multi-task", mtl),
                                                                  ("single-task", stl)) if m]
            blocks.append(f'<div class="cm-task"><h4>{esc(t)}</h4><div class="side">'
                          f"{''.join(tables)}</div></div>")
        body = [f'<div class="cm-grid">{"".join(blocks)}</div>']
        legend += (f" With {len(entries)} tasks the matrices are tables rather than plots "
                   "(hover over a cell for its fraction).")
    if not any(body):
        return None
    return _sec("confusion", "Confusion matrices", f'<p class="legend">{legend}</p>' + "".join(body))


def _report_table(rep: Mapping[str, Any], labels: Mapping[str, str]) -> str:
    rows = []
    for key, val in rep.items():
        name = labels.get(str(key), str(key))
        if isinstance(val, Mapping):
            rows.append([esc(name), _num_td(val.get("precision"), digits=3),
                         _num_td(val.get("recall"), digits=3), _num_td(val.get("f1-score"), digits=3),
                         esc(fmt(int(val["support"])) if num(val.get("support")) is not None else NA)])
        else:
            rows.append([f"<b>{esc(name)}</b>", "", "", _num_td(val, digits=3), ""])
    return _table(["class", "precision", "recall", "F1", "support"], rows, "report")


def _classification_reports(ctx: _Ctx) -> tuple[str, str, str] | None:
    reps = ctx.summary.classification_report
    if not isinstance(reps, Mapping) or not reps:
        return None
    conf = as_dict(ctx.summary.confusion)
    body = []
    for t, rep in reps.items():
        if not isinstance(rep, Mapping):
            continue
        entry = as_dict(conf.get(t)) or None
        k = sum(1 for key in rep if str(key).isdigit())
        labels = dict(zip([str(i) for i in range(k)], _class_labels(ctx, t, entry, k)))
        if set(rep) <= {"mtl", "stl"}:  # both models reported
            cols = [f"<div><h4>{'multi-task' if m == 'mtl' else 'single-task'}</h4>"
                    f"{_report_table(r, labels)}</div>" for m, r in rep.items()
                    if isinstance(r, Mapping)]
            body.append(f'<h3>{esc(t)}</h3><div class="side">{"".join(cols)}</div>')
        else:
            body.append(f"<h3>{esc(t)} (multi-task model)</h3>{_report_table(rep, labels)}")
    if not body:
        return None
    return _sec("classification-reports", "Classification reports (test split)", "".join(body))


def _task_style(i: int) -> tuple[str, str]:
    """Line style and colour of the i-th task: the ten colours, then dashed, then dotted."""
    return ("-", "--", ":")[(i // 10) % 3], f"C{i % 10}"


def _task_lines(ctx: _Ctx, key: str) -> list[Line]:
    return [Line(t, ctx.epochs, _series(ctx.records, key, t), *_task_style(i))
            for i, t in enumerate(ctx.tasks)]


def _weights(ctx: _Ctx) -> tuple[str, str, str] | None:
    recs = ctx.records
    if not any(isinstance(r.weights, Mapping) for r in recs):
        return None
    comp = ctx.component("training", "weighting")
    values = {t: [num(v) for v in _series(recs, "weights", t)] for t in ctx.tasks}
    finite = [v for vs in values.values() for v in vs if v is not None]
    varies = len({round(v, 12) for v in finite}) > 1
    configured = comp is not None and comp.get("name") not in (None, "equal")
    name = comp.get("name") if comp else "equal"
    if not varies and not configured:
        return _sec("weights", "Loss weights", f'<p class="note">Every task had the same loss '
                    f"weight ({esc(fmt(finite[0]) if finite else NA)}) throughout (weighting: "
                    f"{esc(name)}).</p>")
    params = ", ".join(f"{k}={v}" for k, v in (comp or {}).items() if k != "name")
    note = (f'<p class="note">Weighting: {esc(name)}{esc(f" ({params})" if params else "")}. '
            "The weight is the one the weighting gave each task's loss, averaged over the "
            "epoch's steps.</p>")
    img = _img(plots.lines, f"Loss weight per task over epochs ({name})", "epoch",
               "loss weight (mean over the epoch's steps)", _task_lines(ctx, "weights"),
               alt="loss weights", log_auto=True)
    last = recs[-1].weights or {}
    tbl = _table(["task", "weight at the last epoch"],
                 [[esc(t), _num_td(last.get(t))] for t in ctx.tasks])
    return _sec("weights", "Loss weights", note + _pair(img, tbl))


def _aggregator(ctx: _Ctx) -> tuple[str, str, str] | None:
    if not any(isinstance(r.aggregator_weights, Mapping) for r in ctx.records):
        return None
    comp = ctx.component("training", "aggregator")
    name = comp.get("name") if comp else "aggregator"
    params = ", ".join(f"{k}={v}" for k, v in (comp or {}).items() if k != "name")
    level = (ctx.config.get("training") or {}).get("level") if isinstance(ctx.config, Mapping) else None
    note = (f'<p class="note">Aggregator: {esc(name)}{esc(f" ({params})" if params else "")}'
            + (f"; Jacobian taken at the {esc(level)} level" if level else "") + ".</p>")
    img = _img(plots.lines, f"Aggregator weights per task over epochs ({name})", "epoch",
               "weight of the task gradient (epoch mean)", _task_lines(ctx, "aggregator_weights"),
               alt="aggregator weights",
               caption="The weights the gradient aggregator gave each task's gradient in the "
                       "combined update, averaged over the epoch's steps.")
    return _sec("aggregator", "Gradient aggregator weights", note + img)


def _mean_matrix(mats: list[Any]) -> list[list[float]] | None:
    import numpy as np

    arrs = [plots._matrix(m) for m in mats if isinstance(m, list) and m]
    if not arrs:
        return None
    shape = arrs[-1].shape
    same = [a for a in arrs if a.shape == shape]
    with np.errstate(invalid="ignore"):
        stack = np.stack(same)
        count = np.isfinite(stack).sum(0)
        mean = np.where(count > 0, np.nansum(stack, 0) / np.maximum(count, 1), np.nan)
    return mean.tolist()


def _conflicts(ctx: _Ctx) -> tuple[str, str, str] | None:
    recs = [r for r in ctx.records if isinstance(r.conflicts, Mapping)]
    if not recs:
        return None
    ep = _epochs(recs)
    last = as_dict(recs[-1].conflicts)
    mats = _series(recs, "conflicts", "cosine_matrix")
    k = len(last.get("cosine_matrix") or [])
    ticks = ctx.tasks if len(ctx.tasks) == k else None
    common = {"xlabel": "task", "ylabel": "task", "xticks": ticks, "yticks": ticks, "vmin": -1.0,
              "vmax": 1.0, "cmap": "RdBu", "cbar": "cosine similarity"}
    maps = [{"matrix": last.get("cosine_matrix"), "title": f"last epoch ({ep[-1]})", **common}]
    mean = _mean_matrix(mats)
    if len(recs) > 1 and mean is not None:
        maps.append({"matrix": mean, "title": f"mean over {plural(len(recs), 'epoch')}", **common})
    where = {"representation": " The gradients are taken with respect to the shared representation "
                                 "(the trunk's output that every head reads).",
             "last_shared_parameters": " The model has no single shared representation, so the gradients "
                                       "are taken with respect to the parameters of its last shared layer "
                                       "(as GradNorm does)."}.get(str(last.get("measured_on")), "")
    body = [f'<p class="legend">Cosine similarity between task gradients (red &lt; 0: the two '
            f"tasks pull the shared parameters in conflicting directions). Last epoch: mean "
            f"pairwise cosine {esc(fmt(last.get('mean_cosine'), 3))}, conflicting pairs "
            f"{esc(fmt(last.get('conflict_fraction'), 3))}.{esc(where)}</p>",
            _img(plots.heatmaps, "Pairwise cosine similarity of task gradients", maps,
                 alt="gradient conflict heatmap"),
            _img(plots.lines, "Gradient conflict over epochs", "epoch", "cosine / fraction",
                 [Line("mean pairwise cosine", ep, _series(recs, "conflicts", "mean_cosine"), "-", "C0"),
                  Line("fraction of conflicting pairs (cos < 0)", ep,
                       _series(recs, "conflicts", "conflict_fraction"), "-", "C3")],
                 hline=0.0, ylim=(-1.05, 1.05), alt="gradient conflict curve")]
    if any(isinstance(v, Mapping) for v in _series(recs, "conflicts", "norm_ratio")):
        body.append(_img(plots.lines, "Gradient norm of each task / mean norm",
                         "epoch", "‖g_t‖ / mean ‖g‖",
                         [Line(t, ep, _series(recs, "conflicts", "norm_ratio", t), *_task_style(i))
                          for i, t in enumerate(ctx.tasks)],
                         hline=1.0, alt="gradient norm ratio"))
    body[2:] = [_pair(*body[2:])]
    return _sec("conflicts", "Gradient conflicts", "".join(body))


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _gate_maps(gates: Any, tasks: list[str]) -> list[dict[str, Any]] | None:
    """Task × expert heatmaps from ``{task: [w]}``, ``{task: [[w] per level]}`` or
    ``{level: {task: [w]}}``; ``None`` for an unknown layout."""
    if not isinstance(gates, Mapping) or not gates:
        return None
    vals = list(gates.values())
    width = max((len(v) for v in vals if isinstance(v, list)), default=0)
    if all(isinstance(v, list) and v and all(isinstance(x, list) for x in v) for v in vals):
        width = max(len(x) for v in vals for x in v)
    common = {"xlabel": "expert", "ylabel": "task", "vmin": 0.0, "cmap": "Greens",
              "cbar": "mean gate weight", "xticks": [str(e + 1) for e in range(width)]}
    if all(isinstance(v, list) and all(_is_number(x) or x is None for x in v) for v in vals):
        return [{"matrix": vals, "yticks": list(gates), "title": "gate weights", **common}]
    if all(isinstance(v, list) and v and all(isinstance(x, list) for x in v) for v in vals):
        levels = max(len(v) for v in vals)
        return [{"matrix": [v[lv] if lv < len(v) else [] for v in vals], "yticks": list(gates),
                 "title": f"gate weights, level {lv + 1}", **common} for lv in range(levels)]
    if all(isinstance(v, Mapping) for v in vals):
        out = []
        for level, sub in gates.items():
            rows = list(sub.values())
            if not all(isinstance(r, list) for r in rows):
                return None
            out.append({"matrix": rows, "yticks": list(sub), "title": f"gate weights, {level}",
                        **common})
        return out
    return None


def _stitch_maps(units: Any, tasks: list[str]) -> list[dict[str, Any]] | None:
    """Cross-stitch units: one K×K matrix, a list of them (per layer) or ``{layer: matrix}``."""
    def is_mat(m: Any) -> bool:
        return isinstance(m, list) and bool(m) and all(
            isinstance(r, list) and all(_is_number(x) or x is None for x in r) for r in m)

    if is_mat(units):
        named = [("", units)]
    elif isinstance(units, list) and units and all(is_mat(m) for m in units):
        named = [(f"unit {i + 1}", m) for i, m in enumerate(units)]
    elif isinstance(units, Mapping) and units and all(is_mat(m) for m in units.values()):
        named = [(str(k), m) for k, m in units.items()]
    else:
        return None
    out = []
    for name, m in named:
        ticks = tasks if len(m) == len(tasks) and all(len(r) == len(tasks) for r in m) else None
        out.append({"matrix": m, "title": f"cross-stitch {name}".strip(), "xticks": ticks,
                    "yticks": ticks, "xlabel": "from task column", "ylabel": "to task column",
                    "cmap": "Purples", "cbar": "α (mixing weight)"})
    return out


def _policy_table(policy: Any, tasks: list[str]) -> str | None:
    """AdaShare policy ``{task: [p(select) per block]}`` (or ``[p_select, p_skip]`` pairs)."""
    if not isinstance(policy, Mapping) or not policy:
        return None
    rows_data: list[tuple[str, list[float | None]]] = []
    for t, blocks in policy.items():
        if not isinstance(blocks, list):
            return None
        probs = []
        for b in blocks:
            if isinstance(b, list) and b:
                b = b[0]
            probs.append(num(b))
        rows_data.append((str(t), probs))
    n_blocks = max(len(p) for _, p in rows_data)
    rows = []
    for t, probs in rows_data:
        cells = [esc(t)]
        for j in range(n_blocks):
            p = probs[j] if j < len(probs) else None
            if p is None:
                cells.append('<td class="na">n/a</td>')
                continue
            alpha = 0.12 + 0.75 * min(max(p, 0.0), 1.0)
            mark = "select" if p >= 0.5 else "skip"
            cells.append(f'<td class="policy {mark}" style="background: rgba(44,160,44,{alpha:.2f})">'
                         f"{mark}<br><small>{p:.2f}</small></td>")
        cells.append(esc(fmt(sum(1 for p in probs if p is not None and p >= 0.5))))
        rows.append(cells)
    header = ["task"] + [f"block {j + 1}" for j in range(n_blocks)] + ["blocks used"]
    return (_table(header, rows, "policy") + '<p class="legend">Probability that the task executes '
            "the block (select); a block is shown as used when the probability is at least 0.5. "
            "Blocks selected by several tasks are shared between them.</p>")


def _sharing(ctx: _Ctx) -> tuple[str, str, str] | None:
    recs = [r for r in ctx.records if isinstance(r.sharing, Mapping)]
    final = ctx.summary.extra.get("sharing") if isinstance(ctx.summary.extra.get("sharing"), Mapping) else None
    if not recs and not final:
        return None
    last: dict[str, Any] = dict(recs[-1].sharing or {}) if recs else {}
    if final:
        last.update(final)
    ep = _epochs(recs)
    where = "the final model" if final else f"epoch {ep[-1]}"
    arch = ctx.component("model", "architecture")
    body = [f'<p class="note">Architecture: {esc(arch.get("name") if arch else "unknown")}; learned '
            f"sharing at {esc(where)}.</p>"]
    unknown: dict[str, Any] = {}
    for key, value in last.items():
        if key == "gates":
            maps = _gate_maps(value, ctx.tasks)
            if maps is None:
                unknown[key] = value
                continue
            body.append("<h3>Gates (mixture of experts)</h3>")
            body.append(_img(plots.heatmaps, "Mean gate weight of each task over the experts", maps,
                             alt="gate weights", ncols=2))
            g_series = {t: _series(recs, "sharing", "gates", t) for t in ctx.tasks}
            flat = len(maps) == 1 and len(recs) > 1 and len(ctx.tasks) <= 8
            if flat and all(all(isinstance(v, list) or v is None for v in s) for s in g_series.values()):
                n_exp = max((len(v) for s in g_series.values() for v in s if isinstance(v, list)), default=0)
                panels = [Panel(t, "gate weight", [
                    Line(f"expert {e + 1}", ep, [v[e] if isinstance(v, list) and e < len(v) else None
                                                 for v in s], "-", f"C{e % 10}")
                    for e in range(n_exp)]) for t, s in g_series.items() if any(s)]
                body.append(_img(plots.line_panels, "Gate weights over epochs", panels,
                                 alt="gate weights over epochs"))
        elif key == "cross_stitch":
            maps = _stitch_maps(value, ctx.tasks)
            if maps is None:
                unknown[key] = value
                continue
            body.append("<h3>Cross-stitch units</h3>")
            body.append(_img(plots.heatmaps, "Cross-stitch units (learned K×K mixing)", maps,
                             alt="cross-stitch units", ncols=3,
                             caption="Row i: the weights with which the task columns are combined "
                             "to form the input of task i's next layer (identity = no sharing)."))
        elif key == "policy":
            tbl = _policy_table(value, ctx.tasks)
            if tbl is None:
                unknown[key] = value
                continue
            body.append("<h3>Task × block policy (AdaShare)</h3>" + tbl)
        elif _is_number(value) or value is None:
            continue  # plotted over epochs below
        else:
            unknown[key] = value
    # scalars over epochs: discriminator accuracy with its chance level, then the others
    scalar_keys = []
    for r in recs:
        for key, v in (r.sharing or {}).items():
            if (_is_number(v) or v is None) and key not in scalar_keys:
                scalar_keys.append(key)
    figs = []
    if "discriminator_accuracy" in scalar_keys:
        k = max(len(ctx.tasks), 1)
        figs.append(_img(plots.lines, "Task-discriminator accuracy on the shared features", "epoch",
                         "accuracy", [Line("discriminator accuracy", ep,
                                           _series(recs, "sharing", "discriminator_accuracy"), "-", "C0")],
                         hline=1.0 / k, hline_label=f"chance (1/{k})", ylim=(0.0, 1.02),
                         alt="discriminator accuracy",
                         caption="Near chance: the shared features carry no task identity, "
                                 "which is what the adversarial term aims for."))
    others = [k for k in scalar_keys if k != "discriminator_accuracy"]
    if others:
        panels = [Panel(k, k, [Line(k, ep, _series(recs, "sharing", k), "-", f"C{i % 10}")])
                  for i, k in enumerate(others)]
        figs.append(_img(plots.line_panels, "Architecture quantities over epochs", panels,
                         ncols=1 if len(panels) == 1 else 2, log_auto=True, alt="sharing scalars",
                         panel_size=(5.2 if len(panels) == 1 else 2.6, 3.0)))
    if figs:
        body.append("<h3>Over training</h3>" + _pair(*figs))
    if unknown:
        body.append("<h3>Other learned sharing</h3>" + _json_table(unknown))
    return _sec("sharing", "Learned sharing", "".join(body))


def _search_phase(ctx: _Ctx) -> tuple[str, str, str] | None:
    """A two-phase architecture's search (AdaShare phase 1, ``summary["search_phase"]``): its
    test metrics next to the retrained model's, the learned select probabilities and the
    policy fixed from them."""
    sp = ctx.summary.search_phase
    if not isinstance(sp, Mapping):
        return None
    body = [f'<p class="note">The run\'s model was retrained from scratch with the policy fixed after '
            f"a search phase of {esc(fmt(sp.get('epochs_run')))} epochs ({esc(fmt(sp.get('fit_time_s')))} s; "
            f"policy fixed by {esc(sp.get('policy_sampling') or 'n/a')}). The search phase's per-epoch "
            "records are in <code>search/metrics.jsonl</code>.</p>"]
    search_test, final_test = as_dict(sp.get("test")), as_dict(ctx.mtl.test)
    rows = []
    for t in ctx.tasks:
        a, b = as_dict(search_test.get(t)), as_dict(final_test.get(t))
        for metric in list(a) + [k for k in b if k not in a]:
            rows.append([esc(t), f"{esc(metric)} {arrow(higher_is_better(ctx.summary, t, metric))}",
                         _num_td(a.get(metric)), _num_td(b.get(metric))])
    if rows:
        body.append("<h3>Test metrics</h3>" + _table(["task", "metric", "search model", "retrained model"],
                                                     rows, "metrics"))
    for key, title in (("probabilities", "Learned select probabilities (end of the search)"),
                       ("policy", "Fixed policy used for retraining (1 = select, 0 = skip)")):
        tbl = _policy_table(sp.get(key), ctx.tasks)
        if tbl is not None:
            body.append(f"<h3>{title}</h3>" + tbl)
    tree = _tree_table(sp.get("policy"))
    if tree is not None:
        body.append("<h3>Learned tree used for retraining (Learning to Branch)</h3>" + tree)
    return _sec("search", "Search phase", "".join(body))


def _tree_table(tree: Any) -> str | None:
    """A Learning-to-Branch tree ``{"parents": [[parent per node] per block], "tasks": {task:
    node of the last block}}``: per block, the groups of tasks that share a node."""
    if not isinstance(tree, Mapping) or set(tree) != {"parents", "tasks"}:
        return None
    parents, leaves = tree["parents"], tree["tasks"]
    if not isinstance(parents, list) or not parents or not isinstance(leaves, Mapping):
        return None
    paths: dict[str, list[Any]] = {}
    for t, leaf in leaves.items():
        if not isinstance(parents[-1], list) or not isinstance(leaf, int) or not 0 <= leaf < len(parents[-1]):
            return None
        path = [leaf]
        for b in range(len(parents) - 1, 0, -1):
            row = parents[b]
            node = path[-1]
            if not isinstance(row, list) or not isinstance(node, int) or not 0 <= node < len(row):
                return None
            path.append(row[node])
        paths[str(t)] = path[::-1]
    rows = []
    for b in range(len(parents)):
        by_node: dict[Any, list[str]] = {}
        for t, path in paths.items():
            by_node.setdefault(path[b], []).append(t)
        groups = " ".join(f"[{esc(', '.join(g))}]" for _, g in sorted(by_node.items(), key=lambda kv: str(kv[0])))
        rows.append([f"block {b + 1}", esc(fmt(len(parents[b]))), groups])
    return (_table(["block", "nodes", "tasks sharing a node"], rows, "tree")
            + '<p class="legend">Tasks in the same brackets share that block\'s node (and every block '
            "before it); they branch where their groups part.</p>")


def _penalties(ctx: _Ctx) -> tuple[str, str, str] | None:
    recs = [r for r in ctx.records if isinstance(r.penalties, Mapping)]
    if not recs:
        return None
    names: list[str] = []
    for r in recs:
        names += [k for k in r.penalties or {} if k not in names]
    img = _img(plots.lines, "Regularisation penalties added to the objective", "epoch", "penalty",
               [Line(n, _epochs(recs), _series(recs, "penalties", n), "-", f"C{i % 10}")
                for i, n in enumerate(names)], log_auto=True, alt="penalties")
    return _sec("penalties", "Penalties", img)


def _sampling(ctx: _Ctx) -> tuple[str, str, str] | None:
    recs = ctx.records
    if not recs:
        return None
    srecs = [r for r in recs if isinstance(r.sampling, Mapping)]
    ts = {t: [num(v) for v in _series(recs, "task_steps", t)] for t in ctx.tasks}
    steps = [num(v) for v in _series(recs, "steps")]
    uneven = any(len({ts[t][i] for t in ctx.tasks}) > 1 or (
        ts[ctx.tasks[0]][i] is not None and steps[i] is not None and ts[ctx.tasks[0]][i] != steps[i])
        for i in range(len(recs))) if ctx.tasks else False
    if not srecs and not uneven:
        return None
    body = []
    comp = ctx.component("data", "sampler")
    sched = ctx.component("training", "schedule")
    if comp or sched:
        body.append(f'<p class="note">Sampler: {esc(comp.get("name") if comp else "default")}; '
                    f'schedule: {esc(sched.get("name") if sched else "joint")}.</p>')
    curves = [*_task_lines(ctx, "task_steps"), Line("all steps", ctx.epochs, steps, ":", "black")]
    figs = [_img(plots.lines, "Optimisation steps that included each task's loss", "epoch",
                     "steps per epoch", curves, alt="task step counts")]
    if srecs:
        ep = _epochs(srecs)
        counts = {t: _series(srecs, "sampling", "counts", t) for t in ctx.tasks}
        if any(any(v is not None for v in c) for c in counts.values()):
            figs.append(_img(plots.stacked_bars, "Batches drawn per task (realised sampling counts)",
                             "epoch", "batches", ep, counts, alt="sampling counts"))
        probs = {t: _series(srecs, "sampling", "probabilities", t) for t in ctx.tasks}
        if any(any(v is not None for v in p) for p in probs.values()):
            lines_: list[Line] = []
            for i, t in enumerate(ctx.tasks):
                lines_.append(Line(t, ep, probs[t], "-", f"C{i % 10}"))
                realised = []
                for j in range(len(srecs)):
                    tot = sum(num(counts[u][j]) or 0.0 for u in ctx.tasks)
                    c = num(counts[t][j])
                    realised.append(c / tot if c is not None and tot > 0 else None)
                lines_.append(Line("_nolegend_", ep, realised, "--", f"C{i % 10}"))
            figs.append(_img(plots.lines, "Sampling probability per task over epochs", "epoch",
                             "probability", lines_, ylim=(0.0, None), alt="sampling probabilities",
                             caption="Solid: the sampler's probability p_t; dashed: the share of "
                             "batches actually drawn for the task."))
    body += [_pair(*figs[i:i + 2]) for i in range(0, len(figs), 2)]
    if srecs:
        lastp = srecs[-1].sampling or {}
        rows = [[esc(t), _num_td((lastp.get("probabilities") or {}).get(t)),
                 _num_td((lastp.get("counts") or {}).get(t)),
                 _num_td((srecs[-1].task_steps or {}).get(t))] for t in ctx.tasks]
        body.append(f"<h3>Last epoch ({ep[-1]})</h3>"
                    + _table(["task", "probability", "batches drawn", "steps with the task's loss"],
                             rows))
    return _sec("sampling", "Task sampling and scheduling", "".join(body))


def _affinity(ctx: _Ctx) -> tuple[str, str, str] | None:
    aff = ctx.summary.extra.get("affinity")
    if not isinstance(aff, Mapping) or not isinstance(aff.get("matrix"), list):
        return None
    names = aff.get("tasks") if isinstance(aff.get("tasks"), list) else ctx.tasks
    img = _img(plots.heatmaps, "Inter-task affinity",
               [{"matrix": aff["matrix"], "title": str(aff.get("method", "affinity")),
                 "xticks": names, "yticks": names, "xlabel": "task j (affected)",
                 "ylabel": "task i (stepping)", "cmap": "RdBu", "diverging": True,
                 "cbar": "affinity Z(i → j)"}], alt="task affinity", ncols=1)
    extra = {k: v for k, v in aff.items() if k not in ("matrix", "tasks")}
    return _sec("affinity", "Task affinity", img + (_json_table(extra) if extra else ""))


def _ranking(ctx: _Ctx) -> tuple[str, str, str] | None:
    """Per-user ranking metrics of the binary tasks, multi-task model vs its single-task
    reference on the same rows (``summary["ranking"]``: :mod:`mtlkit.evaluation.ranking_run`)."""
    rk = ctx.summary.extra.get("ranking")
    if not isinstance(rk, Mapping) or not isinstance(rk.get("tasks"), Mapping) or not rk["tasks"]:
        return None
    ks = [k for k in rk.get("ks", []) if isinstance(k, int)]
    cols = ["auc", "gauc", "log_loss", *[f"{m}@{k}" for k in ks for m in ("hr", "ndcg")], "conditional_auc"]
    rows = []
    for name, entry in rk["tasks"].items():
        for who in ("mtl", "stl"):
            vals = entry.get(who) if isinstance(entry, Mapping) else None
            if isinstance(vals, Mapping):
                rows.append([esc(name), esc(who), *[_num_td(vals.get(c)) for c in cols]])
    note = (f'<p class="note">Per user: <code>{esc(rk.get("user_column"))}</code> ({esc(rk.get("users"))} users); '
            f"candidates of HR@K/NDCG@K: {esc(rk.get('candidates'))}. GAUC weights each user's AUC by their "
            "impressions; log loss: lower is better, the others higher."
            + (f" Note: {esc(rk['note'])}." if rk.get("note") else "") + "</p>")
    return _sec("ranking", "Ranking", note + _table(["task", "model", *map(esc, cols)], rows))


def _other(ctx: _Ctx) -> tuple[str, str, str] | None:
    other = {k: v for k, v in ctx.summary.extra.items() if k not in _KNOWN_SUMMARY_KEYS}
    if not other:
        return None
    return _sec("other", "Additional information", _json_table(other))


def _config(ctx: _Ctx) -> tuple[str, str, str]:
    if ctx.config_text is None:
        return _sec("config", "Configuration", '<p class="note">config.yaml not found.</p>')
    return _sec("config", "Configuration",
                "<details><summary>config.yaml (resolved)</summary>"
                f"<pre>{esc(ctx.config_text)}</pre></details>")


# ---------------------------------------------------------------------------------- page
_CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,"DejaVu Sans",Arial,sans-serif;margin:0;
 background:#f5f6f8;color:#222;line-height:1.45}
main{max-width:1150px;margin:0 auto;padding:16px 24px 48px}
header h1{font-size:1.6em;margin:.4em 0 .2em}
.facts span{margin-right:.3em;white-space:nowrap}
nav{background:#fff;border:1px solid #ddd;border-radius:6px;padding:6px 12px;margin:12px 0;
 font-size:.92em;display:flex;flex-wrap:wrap;gap:4px 18px}
nav a{color:#1f5fa8;text-decoration:none;white-space:nowrap}
.pair{display:flex;flex-wrap:wrap;gap:0 20px;align-items:flex-start}
.pair>div{flex:1 1 460px;min-width:0}
section{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px 18px 14px;margin:16px 0}
h2{font-size:1.3em;border-bottom:1px solid #eee;padding-bottom:4px}
h3{font-size:1.05em;margin:1.1em 0 .4em}
table{border-collapse:collapse;margin:.4em 0 .8em;font-size:.9em}
th,td{border:1px solid #d6d6d6;padding:3px 9px;text-align:left;vertical-align:middle}
th{background:#eef1f5}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.task{font-weight:600}
.better{background:#d7f2d5;font-weight:600}
td.na,.na{color:#999}
.good{color:#146c2e}.bad{color:#a3261f}
td.dm.good{background:#e7f6e6}td.dm.bad{background:#fbe9e7}
.arrow{color:#555}
.dm-box{display:flex;align-items:center;gap:18px;border:2px solid #bbb;border-radius:8px;
 padding:8px 16px;margin:10px 0;max-width:760px}
.dm-box.good{border-color:#2c9f45;background:#f1faf1}.dm-box.bad{border-color:#c9473d;background:#fdf3f2}
.dm-label{font-weight:600;white-space:nowrap}.dm-value{font-size:1.8em;font-weight:700;font-variant-numeric:tabular-nums;
 white-space:nowrap}
.verdict{border-left:4px solid #8a8fd6;padding:4px 10px;background:#f7f7fb}
.kept{font-size:.95em}
.formula{background:#f7f7fb;border-left:4px solid #8a8fd6;padding:6px 10px;font-size:.92em}
.note,.legend{color:#444;font-size:.92em}
.warn{color:#8a4b00;background:#fff4e0;border-left:4px solid #e0a030;padding:4px 10px}
figure{margin:10px 0 16px}
figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.85em;color:#555}
.side{display:flex;gap:24px;flex-wrap:wrap}
.cm-grid{display:flex;flex-wrap:wrap;gap:6px 28px}
.cm-task h4{margin:.6em 0 .2em}
.cm-task .side{gap:14px}
table.cm{margin:0;font-size:.82em}
table.cm caption{text-align:left;font-size:.95em;color:#444}
table.cm td,table.cm th{padding:2px 6px}
table.cm td{min-width:2.6em;text-align:center}
table.cm th.corner{font-weight:normal;color:#666;font-size:.8em;line-height:1.1}
td.policy{text-align:center;font-size:.85em}
td.policy.skip{color:#777}
pre{background:#f7f7f7;border:1px solid #e2e2e2;padding:8px;overflow-x:auto;font-size:.85em}
.role-auxiliary{color:#7a4fa0;font-weight:600}
table.json td{vertical-align:top}
footer{color:#777;font-size:.85em;text-align:center}
"""


@contextlib.contextmanager
def _young_gc() -> Iterator[None]:
    """Collect only the objects made while drawing the plots.

    Each figure is a web of reference cycles that only the cyclic garbage collector frees,
    and the many objects it makes trigger full collections, which walk every object of the
    process (a few hundred thousand after importing torch and scikit-learn): about a fifth
    of the report's time. Freezing the objects that existed before (``gc.freeze``) keeps the
    collections to the figures' objects; they are unfrozen afterwards, so nothing changes
    for the rest of the process. Skipped when someone else has frozen objects."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _build_sections(ctx: _Ctx) -> list[tuple[str, str, str]]:
    builders = [_headline, _gbdt, _auxiliary, _training, _curves, _comparison, _confusion,
                _classification_reports, _weights, _aggregator, _conflicts, _sharing, _search_phase,
                _penalties,
                _sampling, _affinity, _ranking, _other, _config]
    sections: list[tuple[str, str, str]] = []
    for build in builders:
        try:
            sec = build(ctx)
        except Exception as exc:  # a malformed optional part must not cost the whole report
            name = build.__name__.strip("_")
            sec = (name, name.replace("_", " ").capitalize(),
                   f'<p class="warn">This section could not be rendered: {esc(exc)}</p>')
        if sec is not None:
            sections.append(sec)
    return sections


def render_report(summary: Summary | Mapping[str, Any], records: Sequence[EpochRecord | Mapping[str, Any]] = (),
                  baselines: Mapping[str, Sequence[EpochRecord | Mapping[str, Any]]] | None = None,
                  config_text: str | None = None, *, warnings: Sequence[str] = (),
                  seeds: Mapping[str, Any] | None = None) -> str:
    """The report of one run as a self-contained HTML string.

    Args:
        summary: the content of ``summary.json`` (any key may be missing), or the
            :class:`~mtlkit.run.summary.Summary` read from it.
        records: the lines of the multi-task model's ``metrics.jsonl`` (dicts or
            :class:`~mtlkit.run.summary.EpochRecord`).
        baselines: ``{task: lines of baselines/<task>/metrics.jsonl}`` (may be empty).
        config_text: the resolved ``config.yaml`` as text.
        warnings: problems met while reading the run folder, shown at the top.
        seeds: the ``seeds.json`` record of a run over seeds (:func:`mtlkit.run.run_seeds`):
            its evidence section (verdicts, intervals, paired tests) comes first.

    >>> page = render_report({"name": "demo", "tasks": [{"name": "y", "kind": "regression"}],
    ...                       "mtl": {"test": {"y": {"mae": 0.5, "rmse": None}}}})
    >>> "Headline" in page and "n/a" in page and "http" not in page
    True
    """
    typed = Summary.coerce(summary)
    recs = _records(records)
    config: dict[str, Any] = {}
    if config_text:
        try:
            import yaml

            loaded = yaml.safe_load(config_text)
            config = loaded if isinstance(loaded, dict) else {}
        except Exception:
            config = {}
    ctx = _Ctx(summary=typed, records=recs,
               baselines={str(k): _records(v) for k, v in (baselines or {}).items()},
               config_text=config_text, config=config, tasks=task_names(typed, recs),
               warnings=list(warnings))
    if seeds and typed.mtl is None and not recs:  # the page of a run over seeds: the evidence alone
        sections = [_config(ctx)] if config_text else []
    else:
        with _young_gc():
            sections = _build_sections(ctx)
    if seeds:
        from mtlkit.report.seeds import seeds_section

        sections.insert(0, seeds_section(seeds))
    nav = "".join(f'<a href="#{sid}">{esc(title.split(":")[0])}</a>' for sid, title, _ in sections)
    warn_html = "".join(f'<p class="warn">{esc(w)}</p>' for w in ctx.warnings)
    body = "".join(f'<section id="{sid}"><h2>{esc(title)}</h2>{content}</section>'
                   for sid, title, content in sections)
    try:
        from mtlkit import __version__ as version
    except Exception:
        version = ""
    title = f"mtlkit report: {typed.name if typed.name is not None else 'run'}"
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{_CSS}</style></head><body><main>"
            f"{_header(ctx)}<nav>{nav}</nav>{warn_html}{body}"
            f"<footer>Generated by mtlkit {esc(version)}. Self-contained: no scripts, no "
            "external resources.</footer></main></body></html>\n")
