"""What a person reading the report and the terminal sees: long task names as codes with a
key, no ``-0.00``, legends off the curves, one chart for every metric, tiny scores with
their digits, whole names, counted nouns, and which epoch's weights the run kept."""

from __future__ import annotations

import base64
import re
import struct

import numpy as np
import pytest
from report_fake_run import summary

from mtlkit._text import plural
from mtlkit.analysis import AffinityResult, select_groups
from mtlkit.analysis._format import fnum
from mtlkit.report import plots, render_report, summary_table
from mtlkit.report._format import kept_weights, selection_criterion
from mtlkit.report.plots import Line
from mtlkit.run.summary import EpochRecord

LONG = ["c-class-flares-production-by-this-region", "m-class-flares-production-by-this-region",
        "largest-spot-size-class"]


def png_size(b64: str) -> tuple[int, int]:
    raw = base64.b64decode(b64)
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", raw[16:24])


# ------------------------------------------------------------------------- plots
def test_long_tick_labels_become_codes_shared_by_rows_and_columns():
    codes = plots.tick_codes([{"xticks": LONG, "yticks": LONG}, {"xticks": LONG, "yticks": LONG}])
    assert codes == {LONG[0]: "T1", LONG[1]: "T2", LONG[2]: "T3"}
    assert plots.tick_codes([{"xticks": ["a", "b"], "yticks": ["left", "right"]}]) == {}
    assert plots.tick_codes([{"xticks": LONG, "code_prefix": "C"}])[LONG[0]] == "C1"


def test_a_heatmap_with_long_names_gets_a_key_band_below():
    m = [[1.0, -0.001, 0.2], [-0.001, 1.0, 0.0], [0.2, 0.0, 1.0]]
    short = plots.heatmaps("h", [{"matrix": m, "xticks": ["a", "b", "c"], "yticks": ["a", "b", "c"]}])
    long = plots.heatmaps("h", [{"matrix": m, "xticks": LONG, "yticks": LONG}])
    assert png_size(long)[1] > png_size(short)[1]  # the key's lines


@pytest.mark.parametrize(("value", "text"), [(-0.001, "0.00"), (-0.004999, "0.00"), (-0.005001, "-0.01"),
                                             (0.0, "0.00"), (-1.0, "-1.00"), (float("nan"), "n/a")])
def test_cells_never_print_minus_zero(value, text):
    assert plots.cell_text(value, ".2f") == text


def test_tiny_cells_are_printed_in_a_power_of_ten_unit():
    assert plots._cell_unit(np.array([[1e-5, -3e-5], [0.0, np.nan]])) == -5
    assert plots._cell_unit(np.array([[0.5, 0.0]])) == 0
    assert plots._cell_unit(np.zeros((2, 2))) == 0


def test_a_legend_of_several_curves_goes_below_the_axes():
    one = plots.lines("t", "epoch", "y", [Line("a", [1, 2, 3], [1.0, 2.0, 3.0])])
    four = plots.lines("t", "epoch", "y", [Line(n, [1, 2, 3], [1.0, 2.0, 3.0]) for n in [*LONG, "x"]])
    assert png_size(four)[1] > png_size(one)[1]  # the legend band under the plot
    assert png_size(four)[0] == png_size(one)[0]


def test_relative_bars_draw_every_metric_in_one_chart():
    rows = [(LONG[0], "accuracy ↑", -1.5), (LONG[0], "f1 ↑", 2.0), ("z", "mae ↓", None)]
    png = plots.relative_bars("t", rows, xlabel="%")
    assert png_size(png)[1] > png_size(plots.relative_bars("t", rows[:1], xlabel="%"))[1]
    assert plots.relative_bars("t", [("z", "mae", None)], xlabel="%") is None
    assert plots.shorten(LONG[0], 24) == "c-class-flar…this-region" and plots.shorten("ab", 24) == "ab"


def test_the_per_metric_section_is_one_chart():
    s = summary()
    s["confusion"] = {}  # not drawn: this test reads the comparison section only
    s["delta_m_metrics"] = {"digit": ["accuracy"], "parity": ["accuracy", "roc_auc"], "size": ["mae", "rmse"]}
    html = render_report(s)
    sec = re.search(r'<section id="comparison">(.*?)</section>', html, re.S).group(1)
    assert sec.count("<img ") == 1 and 'alt="relative difference per metric"' in sec
    assert "signed like Δm" in sec


# ------------------------------------------------------------------------- terminal
def test_group_prints_tiny_scores_with_their_digits_and_whole_names():
    rng = np.random.default_rng(0)
    m = rng.normal(0, 1e-4, (3, 3))
    np.fill_diagonal(m, 0.0)
    aff = AffinityResult(m, LONG, "tag")
    text = str(aff)
    for name in LONG:
        assert name in text  # not cut at 10 characters
    assert "…" not in text
    grouping = str(select_groups(aff, 2))
    scores = re.findall(r"total predicted score: (\S+)", grouping)
    assert scores and scores[0] != "0.0000" and float(scores[0]) != 0.0
    assert "2 networks" in grouping or "1 network " in grouping
    assert fnum(1.234e-5) == "1.23e-05" and fnum(0.5) == "0.5000"


def test_counts_are_pluralised():
    assert [plural(1, "task"), plural(2, "task"), plural(1, "model")] == ["1 task", "2 tasks", "1 model"]
    s = summary()
    s["baselines"] = {"digit": s["baselines"]["digit"]} if s.get("baselines") else None
    text = summary_table(s)
    assert "(1 model) vs single-task" in text and "(1 models)" not in text


# ------------------------------------------------------------------------- kept weights
def _recs(n: int = 4) -> list[EpochRecord]:
    return [EpochRecord.from_dict({"epoch": e, "val": {"y": {"f1": 0.5 + 0.1 * e}}, "val_score": 0.1 * e})
            for e in range(1, n + 1)]


def test_kept_weights_names_epoch_score_and_value():
    s = {"tasks": [{"name": "y", "kind": "binary"}, {"name": "aux", "kind": "regression", "role": "auxiliary"}],
         "main_metric": {"y": "f1", "aux": "mae"}, "mtl": {"test": {}, "best_epoch": 3, "epochs_run": 4}}
    assert kept_weights(s, _recs()) == "weights of epoch 3 of 4: the best validation f1 of task y (0.8)"
    s["mtl"]["selection"] = {"monitor": "aux:rmse", "validated": True}
    assert "validation rmse of task aux (training.monitor)" in kept_weights(s)
    assert selection_criterion(s, "aux")[1:] == ("aux", "mae")


def test_kept_weights_of_several_primary_tasks_and_without_validation():
    s = {"tasks": [{"name": "a", "kind": "binary"}, {"name": "b", "kind": "regression"}],
         "main_metric": {"a": "roc_auc", "b": "mae"}, "mtl": {"test": {}, "best_epoch": 2, "epochs_run": 4}}
    text = kept_weights(s, _recs())
    assert text.startswith("weights of epoch 2 of 4: the best mean relative change")
    assert "roc_auc of a, mae of b" in text and text.endswith("(+20 %)")
    s["mtl"]["best_epoch"] = None
    assert kept_weights(s) == "weights of the last epoch (4 of 4): no validation split, so no epoch was chosen"
    assert kept_weights({"tasks": []}) is None


def test_report_and_terminal_say_which_weights_were_kept(tmp_path):
    s = summary()
    head = re.search(r'<section id="headline">(.*?)</section>', render_report(s), re.S).group(1)
    assert "<b>Model kept</b>: weights of epoch 6 of 8: the best mean relative change" in head
    assert "model kept: weights of epoch 6 of 8" in summary_table(s)


def test_a_single_run_report_says_it_has_no_verdict_and_how_to_get_one():
    head = re.search(r'<section id="headline">(.*?)</section>', render_report(summary()), re.S).group(1)
    assert "Verdict per task: not available from one run." in head and "--seeds 5" in head


def test_doctests_of_the_wording_helpers():
    import doctest
    import importlib

    for name in ("mtlkit._text", "mtlkit.report.seeds", "mtlkit.analysis._format", "mtlkit.report._format"):
        result = doctest.testmod(importlib.import_module(name), optionflags=doctest.NORMALIZE_WHITESPACE)
        assert result.failed == 0 and result.attempted > 0, name
