"""Intervals and paired tests against SciPy on fixed numbers; the verdict logic on synthetic
summaries (clear win, clear loss, overlap)."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from mtlkit.evaluation.stats import HELPS, HURTS, NO_EVIDENCE, describe, paired_test, verdict
from mtlkit.run.seeds import aggregate_seeds

MTL = [0.81, 0.84, 0.79, 0.86, 0.83, 0.80]
STL = [0.78, 0.80, 0.79, 0.82, 0.80, 0.77]


def test_interval_matches_scipy():
    d = describe(MTL)
    lo, hi = stats.t.interval(0.95, len(MTL) - 1, loc=sum(MTL) / len(MTL), scale=stats.sem(MTL))
    assert d["n"] == 6 and d["mean"] == pytest.approx(sum(MTL) / 6)
    assert d["sd"] == pytest.approx(stats.tstd(MTL))
    assert (d["ci_low"], d["ci_high"]) == (pytest.approx(lo), pytest.approx(hi))
    d90 = describe(MTL, confidence=0.9)
    assert d90["ci_high"] - d90["ci_low"] < d["ci_high"] - d["ci_low"]


def test_interval_with_one_value_or_none_and_nan():
    assert describe([1.0])["ci_low"] is None and describe([1.0])["mean"] == 1.0
    assert describe([])["mean"] is None
    assert describe([1.0, float("nan"), 3.0, None])["n"] == 2
    with pytest.raises(ValueError, match="'confidence' parameter of describe"):
        describe([1.0, 2.0], confidence=1.5)


def test_paired_tests_match_scipy():
    t = paired_test(MTL, STL)
    ref = stats.ttest_rel(MTL, STL)
    assert t["t"] == pytest.approx(ref.statistic) and t["p"] == pytest.approx(ref.pvalue)
    assert t["wilcoxon_p"] == pytest.approx(stats.wilcoxon([a - b for a, b in zip(MTL, STL)]).pvalue)
    assert paired_test(MTL[:5], STL[:5])["wilcoxon_p"] is None  # from 6 pairs on
    assert paired_test([1.0, 2.0], [1.0, 2.0])["p"] == 1.0  # identical: no difference, not NaN
    assert paired_test([1.0], [0.0])["p"] is None
    with pytest.raises(ValueError, match="as many"):
        paired_test([1.0, 2.0], [1.0])


@pytest.mark.parametrize(("dm_t", "mtl", "expected"), [
    ([-3.0, -4.0, -3.5, -2.5, -3.2], [0.85, 0.86, 0.85, 0.84, 0.85], HELPS),        # clear win
    ([5.0, 6.0, 4.5, 5.5, 6.2], [0.75, 0.74, 0.76, 0.75, 0.74], HURTS),             # clear loss
    ([-3.0, 4.0, -1.0, 2.0, 0.5], [0.83, 0.79, 0.81, 0.80, 0.815], NO_EVIDENCE),    # overlap
])
def test_verdict_on_synthetic_summaries(dm_t, mtl, expected):
    stl = [0.80, 0.80, 0.81, 0.80, 0.80]
    summaries = [{"tasks": [{"name": "y", "kind": "binary", "role": "primary"},
                            {"name": "aux", "kind": "regression", "role": "auxiliary"}],
                  "higher_is_better": {"y": {"accuracy": True}, "aux": {"mae": False}},
                  "main_metric": {"y": "accuracy", "aux": "mae"},
                  "mtl": {"test": {"y": {"accuracy": m}, "aux": {"mae": 1.0}}},
                  "baselines": {"y": {"test": {"accuracy": s}}},
                  "delta_m": d, "delta_m_per_task": {"y": d}} for d, m, s in zip(dm_t, mtl, stl)]
    rec = aggregate_seeds(summaries, [0, 1, 2, 3, 4])
    assert rec["verdicts"]["y"]["verdict"] == expected
    assert "aux" not in rec["verdicts"]  # auxiliary tasks get no verdict
    assert rec["negative_transfer"] == (["y"] if expected == HURTS else [])
    assert rec["delta_m"]["mean"] == pytest.approx(sum(dm_t) / 5)
    assert rec["metrics"]["y"]["accuracy"]["paired"]["p"] == pytest.approx(stats.ttest_rel(mtl, stl).pvalue)


def test_verdict_needs_interval_and_test_to_agree():
    win = {"ci_low": -3.0, "ci_high": -1.0}
    assert verdict(win, {"p": 0.01, "mean_difference": 0.02}, higher_is_better=True) == HELPS
    # the metric got worse although Δm_t says better: the two disagree -> no evidence
    assert verdict(win, {"p": 0.01, "mean_difference": -0.02}, higher_is_better=True) == NO_EVIDENCE
    assert verdict(win, {"p": 0.2, "mean_difference": 0.02}, higher_is_better=True) == NO_EVIDENCE
    assert verdict({"ci_low": None, "ci_high": None}, None, higher_is_better=True) == NO_EVIDENCE
    assert verdict({"ci_low": 1.0, "ci_high": 2.0}, {"p": 0.01, "mean_difference": 0.3},
                   higher_is_better=False) == HURTS  # an error that grew
    assert math.isfinite(describe([1.0, 1.0])["ci_low"])
