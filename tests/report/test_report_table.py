"""The terminal summary table and the number formatting it shares with the HTML report."""

from __future__ import annotations

import doctest
import math

import pytest
from report_fake_run import summary

import mtlkit.report as report_pkg
import mtlkit.report._format as fmt_mod
import mtlkit.report._layout as layout_mod
import mtlkit.report._table as table_mod
import mtlkit.report.html as html_mod
import mtlkit.report.plots as plots_mod
from mtlkit.report import summary_table
from mtlkit.report._format import fmt, fmt_signed, higher_is_better, num


def rows(text: str) -> dict[tuple[str, str], list[str]]:
    """(task, metric) -> remaining cells, following the blank task cell of continuation rows."""
    out, task = {}, ""
    for line in text.splitlines()[1:]:
        if line.startswith(("Δm", "parameters", "inference")):
            break
        cells = line.split()
        if not line.startswith(" "):
            task = cells[0]
            cells = cells[1:]
            if cells and cells[0] == "(aux)":
                task, cells = task + " (aux)", cells[1:]
        out[(task, cells[0])] = cells[2:]  # skip the arrow
    return out


def test_table_with_baselines():
    text = summary_table(summary())
    lines = text.splitlines()
    assert lines[0].split() == ["task", "metric", "MTL", "STL", "Δ", "(MTL−STL)", "better"]
    r = rows(text)
    assert r[("digit", "accuracy")] == ["0.912", "0.899", "+0.013", "MTL"]
    assert r[("parity", "accuracy")] == ["0.861", "0.872", "-0.011", "STL"]
    assert r[("parity", "roc_auc")] == ["n/a", "0.93", "n/a"]  # NaN MTL value: no Δ, no winner
    assert r[("size (aux)", "mae")] == ["0.71", "0.69", "+0.02", "STL"]  # lower is better
    assert r[("size (aux)", "rmse")] == ["0.93", "0.95", "-0.02", "MTL"]
    assert "accuracy ↑" in text and "mae ↓" in text
    assert "Δm (primary tasks): -0.3 %  (negative = the multi-task model is better)" in text
    assert "Δm (all tasks, incl. auxiliary): -0.43 %" in text
    assert "parameters: MTL 61,234 (1 model) vs single-task 120,300 (3 models)" in text
    assert "inference (ms per 1000 samples): MTL 4.21 vs single-task 9.3 (total)" in text


def test_table_without_baselines():
    text = summary_table(summary(baselines=False))
    assert text.splitlines()[0].split() == ["task", "metric", "MTL"]
    assert "Δm: n/a (no single-task baselines)" in text
    assert "parameters: MTL 61,234\n" in text and "vs single-task" not in text


def test_table_of_an_empty_summary_does_not_fail():
    assert "Δm: n/a" in summary_table({})


def test_doctests_of_the_report_package():
    for mod in (fmt_mod, table_mod, html_mod, plots_mod, layout_mod, report_pkg):
        result = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert result.failed == 0, mod.__name__


@pytest.mark.parametrize("value", [None, math.nan, math.inf, -math.inf, "x", True, [1]])
def test_non_finite_or_non_numbers_are_na(value):
    assert num(value) is None
    assert fmt(value) == ("True" if value is True else "n/a")
    assert fmt_signed(value) == "n/a"


def test_number_formats():
    assert fmt(0) == "0" and fmt(0.0) == "0"
    assert fmt(2.5e-6) == "2.5e-06" and fmt(3.2e7) == "3.2e+07"
    assert fmt_signed(0.5) == "+0.5" and fmt_signed(-0.5) == "-0.5"


def test_higher_is_better_sources():
    s = {"higher_is_better": {"t": {"custom": False}},
         "tasks": [{"name": "t", "kind": "regression"}, {"name": "u", "kind": "binary"}]}
    assert higher_is_better(s, "t", "custom") is False  # from the summary
    assert higher_is_better(s, "t", "r2") is True  # from the task kind
    assert higher_is_better(s, "u", "roc_auc") is True
    assert higher_is_better({}, "v", "val_rmse") is False  # from the name, as a last resort
    assert higher_is_better({}, "v", "iou") is True
