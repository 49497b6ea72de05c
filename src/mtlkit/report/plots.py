"""Plots of a run, drawn with matplotlib's Agg canvas and returned as base64 PNG strings.

Figures are created with :class:`matplotlib.figure.Figure` and an explicit
:class:`~matplotlib.backends.backend_agg.FigureCanvasAgg`, never through ``pyplot``: nothing
touches matplotlib's global state (backend, figure manager, rcParams), so importing or
calling this module is safe inside notebooks, servers and tests, and a figure is freed as
soon as its PNG is taken (no figure manager keeps it alive).

Speed: no layout engine. Constrained layout measured every text of a figure three times
and was half of the report's time; :func:`mtlkit.report._layout.arrange` sizes each axes'
decorations from its tick label strings and the font metrics, places the panels with fixed
margins, and the figure is drawn once. Axes are only created for the panels that are shown
(no hidden grid cells), a log axis has two minor ticks per decade rather than eight (each
tick is an artist), and the PNG is encoded from the Agg buffer without its alpha channel.

Every function takes plain Python data (lists, dicts; ``None`` or NaN for missing values)
and returns ``None`` when there is nothing to draw.

>>> png = lines("Loss", "epoch", "loss", [Line("a", [1, 2, 3], [1.0, 0.5, None])])
>>> png.startswith("iVBOR")  # base64 of the PNG signature
True
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from mtlkit.report import _layout
from mtlkit.report._layout import Slot

__all__ = [
    "Line",
    "Panel",
    "confusion_pair",
    "grouped_bars",
    "heatmaps",
    "line_panels",
    "lines",
    "relative_bars",
    "stacked_bars",
]

DPI = 100
MAX_WIDTH = 10.5  # inches: the report's content column is about 1060 px wide at 100 dpi
SMALL = (5.2, 3.4)  # one plot of a side-by-side pair
MTL_STYLE = "-"
STL_STYLE = "--"


@dataclass
class Line:
    """One curve: ``y[i]`` at ``x[i]``; ``None``/NaN leave a gap."""

    label: str
    x: Sequence[float]
    y: Sequence[Any]
    linestyle: str = "-"
    color: str | None = None
    marker: str | None = None


@dataclass
class Panel:
    """One axes of a multi-panel line figure."""

    title: str
    ylabel: str
    lines: list[Line] = field(default_factory=list)
    vline: float | None = None
    vline_label: str | None = None
    hline: float | None = None
    hline_label: str | None = None


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, facecolor="white")
    FigureCanvasAgg(fig)
    return fig


def _axes(fig: Any) -> Any:
    """A new axes; :func:`~mtlkit.report._layout.arrange` gives it its place."""
    return fig.add_axes((0.1, 0.1, 0.8, 0.8))


def _title(fig: Any, title: str) -> Any:
    """The figure's title, anchored at the top centre (the layout keeps a band for it)."""
    return fig.text(0.5, 1 - _layout.PAD / fig.bbox.height, _wrap(title, fig.get_figwidth()),
                    ha="center", va="top", fontsize="large")


def _fig_legend(fig: Any, handles: dict[str, Any], ncols: int) -> Any:
    """A legend for the whole figure, anchored at the bottom centre."""
    return fig.legend(list(handles.values()), list(handles.keys()), loc="lower center",
                      bbox_to_anchor=(0.5, _layout.PAD / fig.bbox.height), ncols=ncols, fontsize=8)


def _png(fig: Any) -> str:
    """Draw ``fig`` and encode it as a base64 RGB PNG.

    Encoded by Pillow straight from the Agg buffer, without the alpha channel (the figure is
    opaque): a tenth smaller and faster than ``savefig``'s RGBA PNG. Palette PNGs would be
    three times smaller still, but Pillow's fast quantiser turns white into off-white and
    its exact one costs more than the whole drawing of a small plot."""
    from PIL import Image

    fig.canvas.draw()
    width, height = fig.canvas.get_width_height(physical=True)
    rgba = Image.frombuffer("RGBA", (width, height), fig.canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
    buf = io.BytesIO()
    rgba.convert("RGB").save(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _wrap(title: str, width_in: float) -> str:
    """Wrap a title to the figure's width (about 8.5 characters per inch at 12 pt)."""
    import textwrap

    return "\n".join(textwrap.wrap(title, max(int(width_in * 8.5), 20))) or title


def _arr(values: Sequence[Any]) -> np.ndarray:
    out = np.empty(len(values), dtype=float)
    for i, v in enumerate(values):
        try:
            f = float(v) if v is not None and not isinstance(v, bool) else math.nan
        except (TypeError, ValueError):
            f = math.nan
        out[i] = f if math.isfinite(f) else math.nan
    return out


def _matrix(rows: Sequence[Sequence[Any]]) -> np.ndarray:
    width = max((len(r) for r in rows), default=0)
    m = np.full((len(rows), width), np.nan)
    for i, r in enumerate(rows):
        m[i, : len(r)] = _arr(list(r))
    return m


def _integer_x(ax: Any, nbins: int | Literal["auto"] = "auto") -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(nbins=nbins, integer=True))


def _maybe_log(ax: Any, ys: list[np.ndarray]) -> None:
    """Log y-scale when positive values span more than two decades.

    Minor ticks at 2× and 5× each power of ten only: the default eight per decade cost a
    tick artist each (most of a small panel's drawing time) for little reading help."""
    from matplotlib.ticker import LogLocator

    vals = np.concatenate([y[np.isfinite(y)] for y in ys]) if ys else np.array([])
    if vals.size and (vals > 0).all() and vals.max() / vals.min() > 100:
        ax.set_yscale("log")
        ax.yaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))


def _draw_lines(ax: Any, panel_lines: Sequence[Line]) -> list[np.ndarray]:
    ys = []
    for ln in panel_lines:
        x, y = _arr(list(ln.x)), _arr(list(ln.y))
        if not np.isfinite(y).any():
            continue
        # a lone finite point between gaps would be invisible without a marker
        marker = ln.marker or ("o" if np.isfinite(y).sum() <= 2 or len(y) <= 12 else None)
        ax.plot(x, y, linestyle=ln.linestyle, color=ln.color, marker=marker, markersize=3,
                label=ln.label)
        ys.append(y)
    return ys


def lines(title: str, xlabel: str, ylabel: str, curves: Sequence[Line], *,
          hline: float | None = None, hline_label: str | None = None, log_auto: bool = False,
          ylim: tuple[float | None, float | None] | None = None, width: float = SMALL[0],
          height: float = SMALL[1]) -> str | None:
    """One axes with several curves and a legend."""
    if not any(np.isfinite(_arr(list(c.y))).any() for c in curves):
        return None
    shown = [c.label for c in curves if not c.label.startswith("_") and np.isfinite(_arr(list(c.y))).any()]
    shown += [hline_label] if hline is not None and hline_label else []
    if 2 < len(shown) <= 8 or (shown and max(map(len, shown)) > 30):  # a legend band below
        height += 0.22 * math.ceil(len(shown) / 2)
    fig = _figure(width, height)
    ax = _axes(fig)
    ys = _draw_lines(ax, curves)
    if hline is not None:
        ax.axhline(hline, color="grey", linestyle=":", linewidth=1, label=hline_label)
    if log_auto:
        _maybe_log(ax, ys)
    if ylim is not None:
        ax.set_ylim(*ylim)
    head = _title(fig, title)  # the figure's: an outside legend may leave a narrow axes
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    _integer_x(ax)
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    slot = Slot(ax)
    legend = None
    if len(labels) > 8:  # many tasks: the legend goes outside, to the right of the axes
        slot.extra.append(ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                                    ncols=1 if len(labels) <= 16 else 2))
    elif len(labels) > 2 or (labels and max(len(x) for x in labels) > 30):
        # below the axes, never over a curve (``loc="best"`` still covers one when every
        # corner holds data)
        legend = _fig_legend(fig, dict(zip(labels, handles)), 2 if len(labels) > 1 else 1)
    elif labels:
        ax.legend(fontsize=8, loc="best")
    _layout.arrange(fig, [[slot]], title=head, legend=legend)
    return _png(fig)


def line_panels(title: str, panels: Sequence[Panel], *, xlabel: str = "epoch", ncols: int = 3,
                log_auto: bool = False, panel_size: tuple[float, float] = (3.6, 2.7)) -> str | None:
    """A grid of small line plots (e.g. one per task) sharing one figure-level legend."""
    from matplotlib.ticker import MaxNLocator

    panels = [p for p in panels if any(np.isfinite(_arr(list(ln.y))).any() for ln in p.lines)]
    if not panels:
        return None
    ncols = max(1, min(ncols, len(panels)))
    nrows = math.ceil(len(panels) / ncols)
    pw = min(panel_size[0], MAX_WIDTH / ncols)
    fig = _figure(pw * ncols, panel_size[1] * nrows + 0.7)
    handles: dict[str, Any] = {}
    rows: list[list[Slot]] = []
    for i, p in enumerate(panels):
        ax = _axes(fig)
        if i % ncols == 0:
            rows.append([])
        rows[-1].append(Slot(ax))
        ys = _draw_lines(ax, p.lines)
        if p.vline is not None:
            ax.axvline(p.vline, color="grey", linestyle=":", linewidth=1, label=p.vline_label)
        if p.hline is not None:
            ax.axhline(p.hline, color="grey", linestyle="-.", linewidth=1, label=p.hline_label)
        if log_auto:
            _maybe_log(ax, ys)
        ax.set_title(p.title, fontsize=10, y=1.0)
        ax.set_xlabel(xlabel, fontsize=9)
        ax.set_ylabel(p.ylabel, fontsize=9)
        ax.tick_params(labelsize=8)
        _integer_x(ax, nbins=6)  # a small panel: fewer ticks read as well and draw faster
        if ax.get_yscale() == "linear":
            ax.yaxis.set_major_locator(MaxNLocator(nbins=6))
        ax.grid(alpha=0.3)
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    rows[-1] += [Slot() for _ in range(ncols - len(rows[-1]))]  # keep the columns' widths
    head = _title(fig, title)
    legend = _fig_legend(fig, handles, min(len(handles), 5)) if handles else None
    _layout.arrange(fig, rows, title=head, legend=legend)
    return _png(fig)


def grouped_bars(title: str, panels: Sequence[tuple[str, Sequence[str], Mapping[str, Sequence[Any]]]],
                 *, ncols: int = 3) -> str | None:
    """Grouped bar charts, one panel per metric.

    ``panels``: ``(panel title / y label, group names (tasks), {series: values per group})``,
    e.g. ``("accuracy ↑", ["left", "right"], {"MTL": [0.9, 0.8], "single-task": [0.88, 0.82]})``.
    Missing values (None/NaN) get no bar and an "n/a" mark. Panels are laid out in rows of
    up to ``ncols``; within a row a panel's width follows its number of groups, so bars keep
    one width across panels.
    """
    panels = [p for p in panels if p[1]]
    if not panels:
        return None
    ncols = max(1, min(ncols, len(panels)))
    chunks = [panels[i:i + ncols] for i in range(0, len(panels), ncols)]
    fig = _figure(MAX_WIDTH, 2.9 * len(chunks) + 0.6)
    handles: dict[str, Any] = {}
    rows: list[list[Slot]] = []
    for chunk in chunks:
        ratios = [len(p[1]) + 1.2 for p in chunk]
        axes = [_axes(fig) for _ in chunk]
        row = [Slot(ax, r) for ax, r in zip(axes, ratios)]
        pad = ncols - len(chunk)  # keep bar widths comparable with fuller rows
        if pad:
            row.append(Slot(None, sum(ratios) / len(chunk) * pad))
        rows.append(row)
        for ax, (name, groups, series) in zip(axes, chunk):
            n = max(len(series), 1)
            width = 0.8 / n
            x = np.arange(len(groups))
            for j, (label, vals) in enumerate(series.items()):
                v = _arr(list(vals))
                pos = x - 0.4 + width * (j + 0.5)
                hatch = "//" if j % 2 else None
                bars = ax.bar(pos, np.nan_to_num(v, nan=0.0), width, label=label, color=f"C{j}",
                              hatch=hatch, edgecolor="white" if hatch else None)
                handles.setdefault(label, bars)
                if len(groups) <= 10:
                    for px, val in zip(pos, v):
                        txt = "n/a" if not np.isfinite(val) else f"{val:.3g}"
                        ax.annotate(txt, (px, 0 if not np.isfinite(val) else val), ha="center",
                                    va="bottom", fontsize=7, xytext=(0, 1),
                                    textcoords="offset points")
            names = [str(g) for g in groups]
            rot = len(groups) > 4 or (len(groups) > 1 and max(map(len, names)) > 10)
            ax.set_xticks(x, names, rotation=30 if rot else 0,
                          ha="right" if rot else "center", fontsize=8)
            ax.set_xlim(-0.7, len(groups) - 0.3)
            ax.set_title(name, fontsize=10, y=1.0)
            ax.set_xlabel("task", fontsize=9)
            ax.set_ylabel(name.split(" ")[0], fontsize=9)
            lo, hi = ax.get_ylim()
            ax.set_ylim(min(0.0, lo), hi * 1.1 if hi > 0 else hi)
            ax.grid(axis="y", alpha=0.3)
            ax.tick_params(labelsize=8)
    head = _title(fig, title)
    legend = _fig_legend(fig, handles, len(handles)) if handles else None
    _layout.arrange(fig, rows, title=head, legend=legend)
    return _png(fig)


def shorten(text: str, limit: int = 28) -> str:
    """``text`` cut in the middle to ``limit`` characters (the two ends are what tell names
    apart).

    >>> shorten("c-class-flares-production-by-this-region", 24)
    'c-class-flar…this-region'
    """
    if len(text) <= limit:
        return text
    head = (limit - 1) // 2 + (limit - 1) % 2
    return text[:head] + "…" + text[len(text) - (limit - 1 - head):]


def relative_bars(title: str, rows: Sequence[tuple[str, str, Any]], *, xlabel: str,
                  width: float = MAX_WIDTH) -> str | None:
    """Every (task, metric) of a run in one horizontal bar chart: ``rows`` are ``(task,
    metric, value)``, drawn top to bottom grouped by task, a bar green when negative and red
    when positive (Δm's convention: negative = the multi-task model is better), its value
    printed at its end; missing values print ``n/a``."""
    rows = list(rows)
    if not rows or not any(np.isfinite(_arr([r[2] for r in rows]))):
        return None
    vals = _arr([r[2] for r in rows])
    tasks = list(dict.fromkeys(r[0] for r in rows))
    labels = [f"{shorten(t)} · {m}" if i == 0 or rows[i - 1][0] != t else m
              for i, (t, m, _) in enumerate(rows)]
    fig = _figure(width, 0.26 * len(rows) + 1.3)
    ax = _axes(fig)
    y = np.arange(len(rows))
    colors = ["#2c9f45" if v < 0 else "#c9473d" for v in np.nan_to_num(vals)]
    ax.barh(y, np.nan_to_num(vals, nan=0.0), 0.7, color=colors)
    ax.axvline(0.0, color="black", linewidth=0.8)
    finite = vals[np.isfinite(vals)]
    span = max(float(np.abs(finite).max()), 1e-9)
    ax.set_xlim(min(float(finite.min()), 0.0) - 0.25 * span, max(float(finite.max()), 0.0) + 0.25 * span)
    for yi, v in zip(y, vals):
        txt = "n/a" if not np.isfinite(v) else f"{v:+.3g} %"
        ax.annotate(txt, (0.0 if not np.isfinite(v) else v, yi), xytext=(3 if not v < 0 else -3, 0),
                    textcoords="offset points", va="center", ha="right" if v < 0 else "left", fontsize=7)
    for k in range(1, len(rows)):  # a thin line between tasks
        if rows[k][0] != rows[k - 1][0]:
            ax.axhline(k - 0.5, color="#bbbbbb", linewidth=0.6)
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.tick_params(axis="x", labelsize=8)
    ax.grid(axis="x", alpha=0.3)
    head = _title(fig, title) if len(tasks) else None
    _layout.arrange(fig, [[Slot(ax)]], title=head)
    return _png(fig)


LONG_TICK = 12  # characters: longer tick labels of a heatmap are replaced by short codes


def tick_codes(maps: Sequence[Mapping[str, Any]], prefix: str = "T") -> dict[str, str]:
    """Short codes (``T1``, ``T2`` ...) for the tick labels of heatmaps whose labels are too
    long to stand under a column: every label of an axis gets a code as soon as one label of
    that axis is longer than :data:`LONG_TICK` characters; a label gets the same code wherever
    it appears (rows and columns of a task × task matrix).

    >>> tick_codes([{"xticks": ["a", "a-very-long-task-name"], "yticks": ["a", "b"]}])
    {'a': 'T1', 'a-very-long-task-name': 'T2'}
    """
    codes: dict[str, str] = {}
    for spec in maps:
        for key in ("xticks", "yticks"):
            labels = [str(x) for x in spec.get(key) or []]
            if labels and max(len(x) for x in labels) > LONG_TICK:
                for x in labels:
                    codes.setdefault(x, f"{spec.get('code_prefix', prefix)}{len(codes) + 1}")
    return codes


def cell_text(value: float, form: str) -> str:
    """A heatmap cell's number; a value that rounds to zero prints without a sign.

    >>> cell_text(-0.001, ".2f"), cell_text(-0.5, ".2f"), cell_text(float("nan"), ".2f")
    ('0.00', '-0.50', 'n/a')
    """
    if not np.isfinite(value):
        return "n/a"
    txt = format(value, form)
    if txt.startswith("-") and float(txt) == 0:
        txt = txt[1:]
    return txt


def _key_text(fig: Any, codes: Mapping[str, str]) -> Any:
    """The key of the tick codes, wrapped to the figure's width, in the legend band."""
    width = max(int(fig.get_figwidth() * DPI / 6.2), 30)  # 8 pt DejaVu Sans: ~6 px a character
    lines: list[str] = []
    for entry in (f"{c} = {name}" for name, c in codes.items()):  # an entry is never split
        if lines and len(lines[-1]) + 4 + len(entry) <= width:
            lines[-1] += ";   " + entry
        else:
            lines.append(entry)
    text = "\n".join(lines)
    return fig.text(0.5, _layout.PAD / fig.bbox.height, text, ha="center", va="bottom", fontsize=8)


def heatmaps(title: str, maps: Sequence[dict[str, Any]], *, ncols: int = 2,
             cell: float = 0.55) -> str | None:
    """Side-by-side annotated heatmaps.

    Each map: ``{"matrix": rows, "title", "xlabel", "ylabel", "xticks", "yticks", "vmin",
    "vmax", "cmap", "cbar" (colour-bar label), "fmt" (e.g. ".2f"), "annotate" (values to print,
    defaults to the matrix), "diverging" (centre the colours on 0), "code_prefix" (of the short
    codes that replace long tick labels, default ``T``)}``. NaN cells are grey. Tick labels
    longer than :data:`LONG_TICK` characters are replaced by codes (:func:`tick_codes`) that a
    key under the heatmaps spells out; a value that rounds to zero prints as ``0.00``.
    """
    maps = [m for m in maps if m.get("matrix") is not None and len(m["matrix"])]
    if not maps:
        return None
    ncols = max(1, min(ncols, len(maps)))
    nrows = math.ceil(len(maps) / ncols)
    mats = [_matrix(m["matrix"]) for m in maps]
    codes = tick_codes(maps)
    max_w = max(mt.shape[1] for mt in mats)
    max_h = max(mt.shape[0] for mt in mats)
    pw = min(max(3.4, cell * max_w + 2.4), MAX_WIDTH / ncols, 8.0)
    cell_w = (pw - 2.4) / max_w
    ph = min(max(2.8, min(cell, cell_w * 1.1) * max_h + 1.6), 9.0)
    key_lines = math.ceil(sum(len(k) + len(c) + 7 for k, c in codes.items()) / max(pw * ncols * DPI / 6.2, 30))
    fig = _figure(pw * ncols, ph * nrows + 0.5 + (0.18 * key_lines + 0.1 if codes else 0.0))
    rows: list[list[Slot]] = []
    for i, (spec, mat) in enumerate(zip(maps, mats)):
        ax, cax = _axes(fig), _axes(fig)
        if i % ncols == 0:
            rows.append([])
        rows[-1].append(Slot(ax, cax=cax))
        _draw_heatmap(fig, ax, cax, spec, mat, codes, cell_w)
    rows[-1] += [Slot() for _ in range(ncols - len(rows[-1]))]
    head = _title(fig, title) if title else None
    key = _key_text(fig, codes) if codes else None
    _layout.arrange(fig, rows, title=head, legend=key)
    return _png(fig)


def _cell_unit(values: np.ndarray) -> int:
    """The power of ten to print a matrix's cells in when they are all below 0.01 (0 when
    they are not, or are all zero): ``-4`` for values around 1e-4.

    >>> _cell_unit(np.array([[0.0, 2.5e-4], [-1e-5, np.nan]])), _cell_unit(np.array([[0.5]]))
    (-4, 0)
    """
    finite = np.abs(values[np.isfinite(values)])
    top = float(finite.max()) if finite.size else 0.0
    return math.floor(math.log10(top)) if 0 < top < 0.01 else 0


def _draw_heatmap(fig: Any, ax: Any, cax: Any, spec: Mapping[str, Any], mat: np.ndarray,
                  codes: Mapping[str, str], cell_w: float) -> None:
    """One heatmap of :func:`heatmaps` with its colour bar, ticks and printed values."""
    import matplotlib

    cmap = matplotlib.colormaps[spec.get("cmap", "viridis")].with_extremes(bad="#d9d9d9")
    vmin, vmax = spec.get("vmin"), spec.get("vmax")
    finite = mat[np.isfinite(mat)]
    if spec.get("diverging") and finite.size and (vmin is None or vmax is None):
        lim = max(float(np.abs(finite).max()), 1e-12)
        vmin, vmax = -lim, lim
    im = ax.imshow(np.ma.masked_invalid(mat), cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto",
                   interpolation="nearest")
    cbar = fig.colorbar(im, cax=cax)
    if spec.get("cbar"):
        cbar.set_label(spec["cbar"], fontsize=8)
    cbar.ax.tick_params(labelsize=7)
    h, w = mat.shape
    xt, yt = spec.get("xticks"), spec.get("yticks")
    xlabels = [codes.get(str(s), str(s)) for s in (xt if xt and len(xt) == w else range(w))]
    ylabels = [codes.get(str(s), str(s)) for s in (yt if yt and len(yt) == h else range(h))]
    rot = w > 4 and max(len(x) for x in xlabels) > 3
    ax.set_xticks(range(w), xlabels, rotation=45 if rot else 0, ha="right" if rot else "center",
                  fontsize=8)
    ax.set_yticks(range(h), ylabels, fontsize=8)
    ann = spec.get("annotate", mat)
    ann = mat if ann is None else _matrix(ann) if not isinstance(ann, np.ndarray) else ann
    title = spec.get("title", "")
    unit = _cell_unit(ann) if "fmt" not in spec else 0
    if unit:  # tiny values (TAG affinities ~1e-5) would all print 0.00: print them in units
        ann = ann / 10.0 ** unit
        title = f"{title} (printed in units of 1e{unit})".strip()
    if cell_w >= 0.25 and h * w <= 400 and ann.shape == mat.shape:
        form = spec.get("fmt", ".2f")
        size = 8 if cell_w >= 0.5 else 7 if cell_w >= 0.4 else 6
        finite_cells = np.isfinite(mat)
        shade = np.asarray(im.norm(np.where(finite_cells, mat, 0.0)), dtype=float)
        rgba = cmap(np.where(finite_cells, shade, 0.5))
        light = rgba[..., :3] @ np.array([0.299, 0.587, 0.114]) > 0.55
        for r in range(h):
            for c in range(w):
                ax.text(c, r, cell_text(ann[r, c], form), ha="center", va="center", fontsize=size,
                        color="black" if light[r, c] else "white")
    ax.set_title(title, fontsize=10, y=1.0)
    ax.set_xlabel(spec.get("xlabel", ""), fontsize=9)
    ax.set_ylabel(spec.get("ylabel", ""), fontsize=9)


def confusion_pair(task: str, mtl: Sequence[Sequence[Any]] | None,
                   stl: Sequence[Sequence[Any]] | None, labels: Sequence[str] | None = None,
                   ) -> str | None:
    """Confusion matrices of a classification task, MTL and single-task side by side.

    Colours are row-normalised (the fraction of each true class, i.e. its recall) so classes
    of different sizes compare; the numbers printed are counts."""
    maps = []
    for name, m in (("multi-task", mtl), ("single-task", stl)):
        if m is None or not len(m):
            continue
        counts = _matrix(m)
        frac = row_fractions(counts)
        k = counts.shape[0]
        ticks = list(labels) if labels and len(labels) == k else [str(i) for i in range(k)]
        maps.append({"matrix": frac, "annotate": counts, "fmt": ".0f", "title": name, "code_prefix": "C",
                     "xlabel": "predicted class", "ylabel": "true class", "xticks": ticks,
                     "yticks": ticks, "vmin": 0.0, "vmax": 1.0, "cmap": "Blues",
                     "cbar": "fraction of true class"})
    return heatmaps(f"Confusion matrices on the test split: {task}", maps, ncols=2)


def row_fractions(counts: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (NaN for an empty row): the colour of a confusion matrix.

    >>> row_fractions(np.array([[3.0, 1.0], [0.0, 0.0]])).tolist()
    [[0.75, 0.25], [nan, nan]]
    """
    rows = np.nansum(counts, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(rows > 0, counts / np.where(rows > 0, rows, 1), np.nan)


def stacked_bars(title: str, xlabel: str, ylabel: str, x: Sequence[Any],
                 series: Mapping[str, Sequence[Any]], *, width: float = SMALL[0],
                 height: float = SMALL[1]) -> str | None:
    """Stacked bars (e.g. steps per task per epoch); missing values count as 0."""
    if not series or not len(x):
        return None
    fig = _figure(width, height)
    ax = _axes(fig)
    bottom = np.zeros(len(x))
    for j, (label, vals) in enumerate(series.items()):
        v = np.nan_to_num(_arr(list(vals)), nan=0.0)
        ax.bar(list(x), v, 0.8, bottom=bottom, label=label, color=f"C{j % 10}",
               hatch="//" if (j // 10) % 2 else None, edgecolor="white" if j >= 10 else None)
        bottom += v
    head = _title(fig, title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    _integer_x(ax)
    ax.grid(axis="y", alpha=0.3)
    legend = ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                       ncols=1 if len(series) <= 12 else 2)
    _layout.arrange(fig, [[Slot(ax, extra=[legend])]], title=head)
    return _png(fig)
