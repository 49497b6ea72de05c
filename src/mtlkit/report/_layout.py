"""Placing the axes of a report figure without a layout engine.

matplotlib's constrained layout measured every text of a figure three times (two layout
iterations, then once more in the draw it forces before saving) and was the largest cost of
the report. A report figure is simple: rows of panels (an axes, optionally with a colour
bar on its right), a title band above them and a legend band below. :func:`arrange` sizes
the decorations of each axes from the tick label *strings* its locator and formatter will
produce (measured once with the renderer's font metrics, without creating tick artists),
its title, axis labels and any outside legend; then every panel of a figure gets the same
left and right margins and every row the largest top and bottom margins of its panels, so
columns line up and nothing is clipped. The axis labels are pinned where matplotlib would
put them, which spares the draw its own search for the tick label boxes.

Sizes are in pixels of the figure (``dpi`` pixels per inch).

>>> from matplotlib.figure import Figure
>>> from matplotlib.backends.backend_agg import FigureCanvasAgg
>>> fig = Figure(figsize=(4, 3), dpi=100); _ = FigureCanvasAgg(fig)
>>> ax = fig.add_axes((0, 0, 1, 1)); _ = ax.set_ylabel("loss")
>>> arrange(fig, [[Slot(ax)]])
>>> 0.05 < float(ax.get_position().x0) < 0.3  # room for the tick labels and the y label
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

PAD = 6.0  # around the figure's content
GAP_W = 10.0  # between two panels side by side (beyond their own margins)
GAP_H = 14.0  # between two rows of panels
CBAR_W = 12.0  # thickness of a colour bar
CBAR_PAD = 10.0  # between a heatmap and its colour bar
SAFETY = 3.0  # rounding of the font metrics
MIN_SIZE = 20.0  # an axes never gets smaller than this, even in a crowded figure
OFFSET_PAD = 4.0  # points between the axes and the y axis's offset text ("1e-6")


@dataclass
class Slot:
    """One cell of a row: an axes (or ``None`` for empty space), its share of the row's
    width, an optional colour-bar axes drawn to its right, and artists of the axes that may
    reach beyond it (a legend placed outside)."""

    ax: Any | None = None
    ratio: float = 1.0
    cax: Any | None = None
    extra: list[Any] = field(default_factory=list)


@dataclass
class _Side:
    """How far an axes' decorations reach beyond its frame, in pixels."""

    left: float = 0.0
    right: float = 0.0
    bottom: float = 0.0
    top: float = 0.0

    def grow(self, other: _Side) -> None:
        self.left, self.right = max(self.left, other.left), max(self.right, other.right)
        self.bottom, self.top = max(self.bottom, other.bottom), max(self.top, other.top)


class _Metrics:
    """Text extents from the renderer's font metrics, cached per (text, font)."""

    def __init__(self, renderer: Any) -> None:
        self.renderer = renderer
        self.cache: dict[tuple[str, Any], tuple[float, float]] = {}

    def size(self, text: str, prop: Any) -> tuple[float, float]:
        key = (text, prop)
        hit = self.cache.get(key)
        if hit is None:
            from matplotlib import cbook

            lines = text.split("\n")
            ws, hs = [], []
            for line in lines:
                w, h, _ = self.renderer.get_text_width_height_descent(
                    line or " ", prop, ismath=cbook.is_math_text(line))
                ws.append(w)
                hs.append(h)
            hit = self.cache[key] = (max(ws), sum(hs) * (1.2 if len(lines) > 1 else 1.0))
        return hit


def _tick_strings(axis: Any) -> tuple[list[float], list[str]]:
    """The major tick locations inside the view and the labels the formatter gives them."""
    lo, hi = sorted(axis.get_view_interval())
    tol = (hi - lo) * 1e-10
    locs = [float(v) for v in axis.get_major_locator()() if lo - tol <= v <= hi + tol]
    return locs, list(axis.get_major_formatter().format_ticks(locs)) if locs else []


def _axis_extent(axis: Any, metrics: _Metrics, dpi: float) -> tuple[str, float, float, float]:
    """For one axis: the side its tick labels sit on, the thickness of the tick labels (pad
    included), how far they spill beyond the axes along the axis (start, end)."""
    ax = axis.axes
    is_x = axis.axis_name == "x"
    tick = axis.get_major_ticks(1)[0]  # kept: the draw reuses it
    first = tick.label1.get_visible() or not tick.label2.get_visible()
    label = tick.label1 if first else tick.label2
    side = ("bottom" if first else "top") if is_x else ("left" if first else "right")
    locs, texts = _tick_strings(axis) if axis.get_visible() else ([], [])
    if not label.get_visible() or not any(texts):
        return side, tick.get_tick_padding() * dpi / 72, 0.0, 0.0
    prop = label.get_fontproperties()
    rot = math.radians(label.get_rotation())
    cos, sin = abs(math.cos(rot)), abs(math.sin(rot))
    pts = ax.transData.transform([(v, 0.0) if is_x else (0.0, v) for v in locs])
    box = ax.bbox
    start_edge, end_edge = (box.x0, box.x1) if is_x else (box.y0, box.y1)
    thick = 0.0
    spill_start = spill_end = 0.0
    align = label.get_horizontalalignment() if is_x else "center"
    for (px, py), text in zip(pts, texts):
        if not text:
            continue
        w, h = metrics.size(text, prop)
        bw, bh = w * cos + h * sin, w * sin + h * cos
        thick = max(thick, bh if is_x else bw)
        along = bw if is_x else bh
        pos = px if is_x else py
        lo = pos - along if align == "right" else pos - along / 2 if align == "center" else pos
        spill_start = max(spill_start, start_edge - lo)
        spill_end = max(spill_end, lo + along - end_edge)
    pad = (tick.get_pad() + tick.get_tick_padding()) * dpi / 72
    return side, thick + pad, spill_start, spill_end


def _measure(ax: Any, metrics: _Metrics, dpi: float, extra: Sequence[Any] = ()) -> tuple[_Side, dict[str, float]]:
    """The reach of ``ax``'s decorations beyond its frame, and the thickness of its tick
    labels per axis (where the axis labels go)."""
    import matplotlib

    reach = _Side()
    thick: dict[str, float] = {}  # per axis name; "offset": height of the y offset text
    renderer = metrics.renderer
    for axis in (ax.xaxis, ax.yaxis):
        side, t, s0, s1 = _axis_extent(axis, metrics, dpi)
        thick[axis.axis_name] = t
        total = t
        if axis.label.get_visible() and axis.label.get_text():
            w, h = metrics.size(axis.label.get_text(), axis.label.get_fontproperties())
            total += h + axis.labelpad * dpi / 72
        offset = axis.get_major_formatter().get_offset() if hasattr(
            axis.get_major_formatter(), "get_offset") else ""
        setattr(reach, side, max(getattr(reach, side), total))
        if axis.axis_name == "x":
            reach.left, reach.right = max(reach.left, s0), max(reach.right, s1)
        else:
            reach.bottom, reach.top = max(reach.bottom, s0), max(reach.top, s1)
        if offset:  # e.g. "1e-6" or "+1" above the y axis, below the x axis's right end
            _, h = metrics.size(offset, axis.offsetText.get_fontproperties())
            if axis.axis_name == "y":
                thick["offset"] = h + OFFSET_PAD * dpi / 72
                reach.top = max(reach.top, thick["offset"])
            else:
                reach.bottom = max(reach.bottom, t + h + OFFSET_PAD * dpi / 72)
    if ax.title.get_text():  # above the y axis's offset text, if any (see _pin_labels)
        _, h = metrics.size(ax.title.get_text(), ax.title.get_fontproperties())
        reach.top = max(reach.top, thick.get("offset", 0.0) + h
                        + matplotlib.rcParams["axes.titlepad"] * dpi / 72)
    box = ax.bbox
    for artist in extra:
        bb = artist.get_window_extent(renderer)
        reach.grow(_Side(box.x0 - bb.x0, bb.x1 - box.x1, box.y0 - bb.y0, bb.y1 - box.y1))
    return reach, thick


def _place(fig: Any, rows: Sequence[Sequence[Slot]], top: float, bottom: float, left: float,
           right: float, tops: Sequence[float], bottoms: Sequence[float]) -> None:
    width, height = fig.bbox.width, fig.bbox.height
    n = len(rows)
    row_h = (height - top - bottom - GAP_H * (n - 1)) / n
    for r, row in enumerate(rows):
        slot_y = height - top - (r + 1) * row_h - r * GAP_H
        ax_h = max(row_h - tops[r] - bottoms[r], MIN_SIZE)
        ax_y = slot_y + bottoms[r]
        total = sum(s.ratio for s in row) or 1.0
        avail = width - 2 * PAD - GAP_W * (len(row) - 1)
        x = PAD
        for s in row:
            slot_w = avail * s.ratio / total
            if s.ax is not None:
                ax_w = max(slot_w - left - right, MIN_SIZE)
                ax_x = x + left
                s.ax.set_position((ax_x / width, ax_y / height, ax_w / width, ax_h / height))
                if s.cax is not None:
                    s.cax.set_position(((ax_x + ax_w + CBAR_PAD) / width, ax_y / height,
                                        CBAR_W / width, ax_h / height))
            x += slot_w + GAP_W


def _pin_labels(ax: Any, thick: dict[str, float], dpi: float) -> None:
    """Put the axis labels where matplotlib would (just outside the tick labels), so the
    draw does not measure the tick labels again to find that place."""
    box = ax.bbox
    for axis in (ax.xaxis, ax.yaxis):
        if not axis.label.get_text():
            continue
        off = thick[axis.axis_name] + axis.labelpad * dpi / 72
        pos = axis.get_label_position()
        if axis.axis_name == "x":
            y = -off / box.height if pos == "bottom" else 1 + off / box.height
            axis.set_label_coords(0.5, y)
        else:
            x = -off / box.width if pos == "left" else 1 + off / box.width
            axis.set_label_coords(x, 0.5)
    if thick.get("offset") and ax.title.get_text():
        ax.title.set_y(1 + thick["offset"] / box.height)


def arrange(fig: Any, rows: Sequence[Sequence[Slot]], *, title: Any | None = None,
            legend: Any | None = None) -> None:
    """Place the axes of ``rows`` in ``fig`` between the ``title`` band (a figure text
    anchored at the top) and the ``legend`` band (a figure legend anchored at the bottom)."""
    rows = [list(r) for r in rows if r]
    if not rows:
        return
    metrics = _Metrics(fig.canvas.get_renderer())
    dpi = fig.dpi
    height = fig.bbox.height
    top = bottom = PAD
    if title is not None:
        top = height - title.get_window_extent(metrics.renderer).y0 + PAD
    if legend is not None:
        bottom = legend.get_window_extent(metrics.renderer).y1 + PAD
    has_cbar = any(s.cax is not None for r in rows for s in r)
    # a first guess gives each axes about its final size, so that its tick locator picks
    # the labels it will finally show; a second measurement when the first moved much
    left, right = 50.0, 12.0 + (CBAR_PAD + CBAR_W + 40.0 if has_cbar else 0.0)
    tops, bottoms = [26.0] * len(rows), [36.0] * len(rows)
    thick: dict[int, dict[str, float]] = {}
    for _ in range(2):
        _place(fig, rows, top, bottom, left, right, tops, bottoms)
        new_l = new_r = 0.0
        new_t, new_b = [0.0] * len(rows), [0.0] * len(rows)
        for r, row in enumerate(rows):
            for s in row:
                if s.ax is None:
                    continue
                reach, thick[id(s.ax)] = _measure(s.ax, metrics, dpi, s.extra)
                if s.cax is not None:
                    c_reach, thick[id(s.cax)] = _measure(s.cax, metrics, dpi)
                    reach.right = max(reach.right, CBAR_PAD + CBAR_W + c_reach.right)
                    reach.top, reach.bottom = max(reach.top, c_reach.top), max(reach.bottom, c_reach.bottom)
                new_l, new_r = max(new_l, reach.left), max(new_r, reach.right)
                new_t[r], new_b[r] = max(new_t[r], reach.top), max(new_b[r], reach.bottom)
        changed = (abs(new_l + SAFETY - left) > 1 or abs(new_r + SAFETY - right) > 1 or any(
            abs(a + SAFETY - b) > 1 for a, b in zip(new_t + new_b, tops + bottoms)))
        left, right = new_l + SAFETY, new_r + SAFETY
        tops, bottoms = [t + SAFETY for t in new_t], [b + SAFETY for b in new_b]
        if not changed:
            break
    _place(fig, rows, top, bottom, left, right, tops, bottoms)
    for row in rows:
        for s in row:
            for a in (s.ax, s.cax):
                if a is not None:
                    _pin_labels(a, thick[id(a)], dpi)
