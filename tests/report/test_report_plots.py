"""The plot primitives: PNG out, None when there is nothing to draw, missing values tolerated."""

from __future__ import annotations

import base64
import math
import struct

from mtlkit.report import plots
from mtlkit.report.plots import Line, Panel


def png_size(b64: str) -> tuple[int, int]:
    raw = base64.b64decode(b64)
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", raw[16:24])


def test_lines_draws_with_gaps_and_skips_all_missing():
    png = plots.lines("t", "epoch", "loss", [Line("a", [1, 2, 3], [1.0, None, math.nan]),
                                             Line("b", [1, 2, 3], [None, None, None])])
    w, h = png_size(png)
    assert (w, h) == (round(plots.SMALL[0] * plots.DPI), round(plots.SMALL[1] * plots.DPI))
    assert plots.lines("t", "x", "y", [Line("a", [1], [None])]) is None
    assert plots.lines("t", "x", "y", []) is None


def test_line_panels_grid_and_width_cap():
    panels = [Panel(f"task {i}", "loss", [Line("MTL", [1, 2], [1, 0.5])]) for i in range(7)]
    w, h = png_size(plots.line_panels("Loss", panels, ncols=3))
    assert w <= plots.MAX_WIDTH * plots.DPI + 1
    w1, h1 = png_size(plots.line_panels("Loss", panels[:3], ncols=3))
    assert h > h1  # three rows are taller than one
    assert plots.line_panels("Loss", [Panel("x", "y", [Line("a", [1], [None])])]) is None


def test_grouped_bars_handles_missing_values_and_single_series():
    png = plots.grouped_bars("m", [("accuracy ↑", ["a", "b"], {"MTL": [0.9, None],
                                                               "STL": [0.8, 0.7]}),
                                   ("mae ↓", ["c"], {"MTL": [math.nan], "STL": [1.0]})])
    png_size(png)
    png_size(plots.grouped_bars("m", [("f1", ["a"], {"MTL": [0.5]})]))
    assert plots.grouped_bars("m", [("f1", [], {})]) is None


def test_heatmaps_with_nan_cells_and_ragged_rows():
    png = plots.heatmaps("h", [{"matrix": [[1.0, None], [0.5]], "title": "x", "vmin": -1, "vmax": 1,
                                "cmap": "RdBu"}, {"matrix": [[0.1]], "diverging": True}])
    png_size(png)
    assert plots.heatmaps("h", [{"matrix": []}]) is None


def test_confusion_pair_side_by_side_is_wider_than_one():
    m = [[5, 1], [2, 7]]
    w2, _ = png_size(plots.confusion_pair("t", m, m, ["no", "yes"]))
    w1, _ = png_size(plots.confusion_pair("t", m, None))
    assert w2 > w1
    assert plots.confusion_pair("t", None, None) is None
    # an all-zero row (a class absent from the test split) does not fail
    png_size(plots.confusion_pair("t", [[0, 0], [1, 2]], None))


def test_stacked_bars():
    png_size(plots.stacked_bars("s", "epoch", "batches", [1, 2], {"a": [3, 4], "b": [1, None]}))
    assert plots.stacked_bars("s", "e", "b", [], {}) is None
