"""The fixed-margin layout of report figures: what constrained layout used to guarantee
(nothing clipped, panels apart, axis labels clear of the tick labels) holds without it."""

from __future__ import annotations

import base64
import gc
import itertools
import math

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.transforms import Bbox

from mtlkit.report import _layout, plots, render_report
from mtlkit.report._layout import Slot
from mtlkit.report.html import MAX_CONFUSION_PLOTS, _task_style


def _fig(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _panel(fig: Figure, i: int, *, log: bool = False, long_labels: bool = False):
    ax = fig.add_axes((0.1, 0.1, 0.8, 0.8))
    y = np.geomspace(1e-3, 10.0, 30) if log else np.linspace(0, 12345.678 * (i + 1), 30)
    ax.plot(np.arange(1, 31), y, label=f"series {i}")
    if log:
        ax.set_yscale("log")
    if long_labels:
        ax.set_xticks(range(0, 30, 3), [f"a long task name {k}" for k in range(10)], rotation=45,
                      ha="right")
    ax.set_title(f"panel {i}: a title")
    ax.set_xlabel("epoch")
    ax.set_ylabel("a quantity with units")
    return ax


def _draw_and_boxes(fig: Figure, axes):
    """Draw the figure, then the frame, the tight box (all decorations) and the tick-label
    and axis-label boxes of each axes, in pixels."""
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    out = []
    for ax in axes:
        # the labels drawn: those of the ticks inside the view (the axis keeps spare ticks)
        fr = ax.bbox
        ticks_y = [bb for t in ax.get_yticklabels() if t.get_text()
                   for bb in [t.get_window_extent(r)] if fr.y0 - 1 <= (bb.y0 + bb.y1) / 2 <= fr.y1 + 1]
        ticks_x = [bb for t in ax.get_xticklabels() if t.get_text()
                   for bb in [t.get_window_extent(r)] if fr.x0 - 1 <= (bb.x0 + bb.x1) / 2 <= fr.x1 + 1]
        out.append({"frame": ax.bbox.frozen(), "tight": ax.get_tightbbox(r),
                    "yticks": Bbox.union(ticks_y) if ticks_y else None,
                    "xticks": Bbox.union(ticks_x) if ticks_x else None,
                    "ylabel": ax.yaxis.label.get_window_extent(r),
                    "xlabel": ax.xaxis.label.get_window_extent(r)})
    return out


def _inside(inner: Bbox, outer: Bbox, tol: float = 1.0) -> bool:
    return (inner.x0 >= outer.x0 - tol and inner.y0 >= outer.y0 - tol
            and inner.x1 <= outer.x1 + tol and inner.y1 <= outer.y1 + tol)


@pytest.mark.parametrize("log,long_labels", [(False, False), (True, False), (False, True)])
def test_grid_of_panels_is_not_clipped_and_panels_do_not_overlap(log, long_labels):
    fig = _fig(10.5, 6.0)
    axes = [_panel(fig, i, log=log, long_labels=long_labels) for i in range(5)]
    rows = [[Slot(a) for a in axes[:3]], [Slot(a) for a in axes[3:]] + [Slot()]]
    title = fig.text(0.5, 0.99, "Figure title", ha="center", va="top", fontsize="large")
    handles, labels = axes[0].get_legend_handles_labels()
    legend = fig.legend(handles, labels, loc="lower center", bbox_to_anchor=(0.5, 0.01))
    _layout.arrange(fig, rows, title=title, legend=legend)
    boxes = _draw_and_boxes(fig, axes)
    r = fig.canvas.get_renderer()
    for b in boxes:
        assert _inside(b["tight"], fig.bbox), b["tight"]
        assert b["frame"].width > 50 and b["frame"].height > 50
    for a, b in itertools.combinations(boxes, 2):
        assert not a["tight"].overlaps(b["tight"])
    # the title band above every panel, the legend band below
    top = max(b["tight"].y1 for b in boxes)
    bottom = min(b["tight"].y0 for b in boxes)
    assert title.get_window_extent(r).y0 >= top - 1
    assert legend.get_window_extent(r).y1 <= bottom + 1
    # columns line up: same left edge in both rows, same width of the panels
    assert boxes[0]["frame"].x0 == pytest.approx(boxes[3]["frame"].x0)
    assert boxes[1]["frame"].width == pytest.approx(boxes[4]["frame"].width)


def test_pinned_axis_labels_sit_just_outside_the_tick_labels():
    fig = _fig(5.2, 3.4)
    ax = _panel(fig, 3)
    _layout.arrange(fig, [[Slot(ax)]])
    (b,) = _draw_and_boxes(fig, [ax])
    pad = ax.yaxis.labelpad  # points = pixels at 72 dpi; 100 dpi here
    gap_y = b["yticks"].x0 - b["ylabel"].x1
    gap_x = b["xticks"].y0 - b["xlabel"].y1
    for gap in (gap_y, gap_x):
        assert 0 <= gap <= pad * 100 / 72 + 4, gap  # clear of the tick labels, not far off
    assert b["ylabel"].x0 >= 0 and b["xlabel"].y0 >= 0


def test_colour_bars_sit_beside_their_heatmaps_inside_the_figure():
    fig = _fig(8.0, 3.5)
    rows, axes, caxes = [[]], [], []
    for k in range(2):
        ax, cax = fig.add_axes((0.1, 0.1, 0.5, 0.5)), fig.add_axes((0.7, 0.1, 0.1, 0.5))
        im = ax.imshow(np.arange(16.0).reshape(4, 4) * 1000, aspect="auto")
        fig.colorbar(im, cax=cax).set_label("a colour-bar label")
        ax.set_title(f"map {k}")
        rows[0].append(Slot(ax, cax=cax))
        axes.append(ax)
        caxes.append(cax)
    _layout.arrange(fig, rows)
    boxes = _draw_and_boxes(fig, axes + caxes)
    for b in boxes:
        assert _inside(b["tight"], fig.bbox), b["tight"]
    heat0, heat1, bar0, bar1 = (b["tight"] for b in boxes)
    assert heat0.x1 <= bar0.x0 + 1 and bar0.x1 <= heat1.x0  # map, its bar, next map
    assert not bar0.overlaps(heat1) and not bar1.overlaps(heat0)


def _png_colour_type(b64: str) -> int:
    raw = base64.b64decode(b64)
    return raw[25]  # IHDR: width, height, bit depth, colour type


def test_plots_are_opaque_rgb_pngs_of_the_requested_size():
    png = plots.lines("t", "epoch", "y", [plots.Line("a", [1, 2, 3], [3.0, 2.0, 1.0])])
    assert _png_colour_type(png) == 2  # RGB, no alpha
    raw = base64.b64decode(png)
    assert int.from_bytes(raw[16:20], "big") == round(plots.SMALL[0] * plots.DPI)


def test_a_log_axis_keeps_two_minor_ticks_per_decade():
    fig = _fig(4, 3)
    ax = fig.add_axes((0.1, 0.1, 0.8, 0.8))
    ax.plot([1, 2, 3], [1e-3, 1e-1, 10.0])
    plots._maybe_log(ax, [np.array([1e-3, 1e-1, 10.0])])
    assert ax.get_yscale() == "log"
    minor = [v for v in ax.yaxis.get_minorticklocs() if 1e-3 <= v <= 10.0]
    mantissas = {round(v / 10 ** math.floor(math.log10(v) + 1e-9), 6) for v in minor}
    assert mantissas <= {2.0, 5.0}


def _binary_summary(n: int) -> dict:
    names = [f"t{i}" for i in range(n)]
    return {"name": "many", "tasks": [{"name": t, "kind": "binary"} for t in names],
            "mtl": {"test": {t: {"accuracy": 0.8} for t in names}},
            "confusion": {t: {"mtl": [[30 + i, 5], [7, 20]], "stl": [[28, 7], [9, 18 + i]]}
                          for i, t in enumerate(names)}}


def test_few_confusion_matrices_are_plots_many_are_coloured_tables():
    import re

    few = render_report(_binary_summary(MAX_CONFUSION_PLOTS))
    sec = re.search(r'<section id="confusion">(.*?)</section>', few, re.S).group(1)
    assert sec.count("<img") == MAX_CONFUSION_PLOTS and "<table" not in sec
    many = render_report(_binary_summary(MAX_CONFUSION_PLOTS + 3))
    sec = re.search(r'<section id="confusion">(.*?)</section>', many, re.S).group(1)
    assert "<img" not in sec
    assert sec.count('<table class="cm">') == 2 * (MAX_CONFUSION_PLOTS + 3)  # MTL and STL each
    # the counts are all there, coloured by the fraction of the true class (row)
    last = MAX_CONFUSION_PLOTS + 2
    assert f">{30 + last}</td>" in sec and f">{18 + last}</td>" in sec
    assert 'title="86% of true class 0"' in sec  # 30 / (30 + 5) of task t0, MTL
    dark = re.search(r'title="86% of true class 0" style="background:#([0-9a-f]{6});color:#fff"', sec)
    light = re.search(r'title="14% of true class 0" style="background:#([0-9a-f]{6});color:#000"', sec)
    assert dark and light  # the larger fraction is darker, with white text


def test_rendering_restores_the_garbage_collector_state():
    assert gc.get_freeze_count() == 0
    render_report(_binary_summary(1))
    assert gc.get_freeze_count() == 0
    gc.freeze()  # someone else froze objects: left alone
    try:
        frozen = gc.get_freeze_count()
        render_report(_binary_summary(1))
        # not unfrozen, nothing more frozen (a frozen object may still be freed meanwhile)
        assert frozen * 0.9 < gc.get_freeze_count() <= frozen
    finally:
        gc.unfreeze()


def test_tasks_beyond_ten_colours_get_other_line_styles():
    styles = [_task_style(i) for i in range(25)]
    assert len(set(styles)) == 25
    assert styles[0] == ("-", "C0") and styles[10] == ("--", "C0") and styles[20] == (":", "C0")


def test_an_offset_or_multiplier_above_the_y_axis_does_not_hit_the_title():
    fig = _fig(5.2, 3.4)
    ax = fig.add_axes((0.1, 0.1, 0.8, 0.8))
    ax.plot([1, 2, 3], [1e-7, 3e-7, 2e-7])  # tick labels "1.0" ... with "1e-7" above
    ax.set_title("a title wide enough to reach the left end of the axes")
    ax.set_ylabel("penalty")
    _layout.arrange(fig, [[Slot(ax)]])
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    offset, title = ax.yaxis.offsetText, ax.title
    assert offset.get_text()
    assert title.get_window_extent(r).y0 >= offset.get_window_extent(r).y1 - 1
    assert _inside(ax.get_tightbbox(r), fig.bbox)
