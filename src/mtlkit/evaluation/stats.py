"""Statistics over repeated seeds: mean ± sd, the 95 % t-interval, paired tests, and the
verdict per task ("does multi-task learning help this task?").

Pure functions over plain numbers (SciPy for the t distribution and the tests), so that the
numbers are the textbook ones and can be checked against SciPy directly:

* :func:`describe` — ``n``, mean, sample sd (``ddof=1``) and the t-interval
  ``mean ± t_{1-α/2, n-1} · sd / √n`` (none for ``n < 2``);
* :func:`paired_test` — ``scipy.stats.ttest_rel(mtl, stl)`` and, from 6 pairs on, the
  Wilcoxon signed-rank test (``scipy.stats.wilcoxon``);
* :func:`verdict` — from the interval of Δm_t and the paired test of the task's main metric.

>>> d = describe([1.0, 2.0, 3.0])
>>> d["mean"], d["sd"], round(d["ci_low"], 4), round(d["ci_high"], 4)
(2.0, 1.0, -0.4841, 4.4841)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["HELPS", "HURTS", "NO_EVIDENCE", "describe", "paired_test", "verdict"]

HELPS = "multi-task helps"
HURTS = "multi-task hurts"
NO_EVIDENCE = "no evidence at this budget"


def _finite(values: Sequence[float | None]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def describe(values: Sequence[float | None], *, confidence: float = 0.95) -> dict[str, Any]:
    """``{"n", "mean", "sd", "ci_low", "ci_high", "confidence", "values"}`` of the finite
    values: the sample sd (``ddof=1``) and the Student-t interval of the mean. With fewer than
    two values the sd and the interval are ``None`` (one run says nothing about spread)."""
    if not 0 < confidence < 1:
        raise ValueError(f"The 'confidence' parameter of describe must be in (0, 1). Got {confidence!r}.")
    xs = _finite(values)
    n = len(xs)
    out: dict[str, Any] = {"n": n, "mean": None, "sd": None, "ci_low": None, "ci_high": None,
                           "confidence": confidence, "values": list(values)}
    if n == 0:
        return out
    mean = sum(xs) / n
    out["mean"] = mean
    if n < 2:
        return out
    from scipy import stats

    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    out.update(sd=sd, ci_low=mean - half, ci_high=mean + half)
    return out


def paired_test(mtl: Sequence[float | None], stl: Sequence[float | None], *, wilcoxon_from: int = 6
                ) -> dict[str, Any]:
    """The paired tests of the multi-task against the single-task values, seed by seed
    (pairs with a missing or non-finite value are dropped): ``t`` and ``p`` of
    ``scipy.stats.ttest_rel(mtl, stl)`` (two-sided), the mean difference ``mtl − stl``, and
    ``wilcoxon_p`` from ``wilcoxon_from`` pairs on. ``p`` is ``None`` below two pairs;
    identical values everywhere give ``p = 1`` (no difference), not NaN."""
    if len(mtl) != len(stl):
        raise ValueError(f"paired_test needs as many multi-task as single-task values. Got {len(mtl)} and "
                         f"{len(stl)}.")
    pairs = [(float(a), float(b)) for a, b in zip(mtl, stl)
             if a is not None and b is not None and math.isfinite(float(a)) and math.isfinite(float(b))]
    n = len(pairs)
    diffs = [a - b for a, b in pairs]
    out: dict[str, Any] = {"n": n, "mean_difference": sum(diffs) / n if n else None, "t": None, "p": None,
                           "test": "ttest_rel", "wilcoxon_p": None}
    if n < 2:
        return out
    from scipy import stats

    if all(d == diffs[0] for d in diffs):  # no variance in the differences: t undefined
        out.update(t=None if diffs[0] else 0.0, p=0.0 if diffs[0] else 1.0)
    else:
        res = stats.ttest_rel([a for a, _ in pairs], [b for _, b in pairs])
        out.update(t=float(res.statistic), p=float(res.pvalue))
    if n >= wilcoxon_from and any(diffs):
        out["wilcoxon_p"] = float(stats.wilcoxon(diffs).pvalue)
    return out


def verdict(delta: Mapping[str, Any], test: Mapping[str, Any] | None, *, higher_is_better: bool,
            alpha: float = 0.05) -> str:
    """The verdict for one task from the interval of its Δm_t (:func:`describe` of the
    per-seed Δm_t; negative = multi-task better) and the paired test of its main metric
    (:func:`paired_test`, multi-task minus single-task):

    * :data:`HELPS` — the whole interval of Δm_t is below 0 **and** the paired test finds the
      main metric better (``p < alpha``, difference in the metric's good direction);
    * :data:`HURTS` — the whole interval is above 0 and the test finds it worse;
    * :data:`NO_EVIDENCE` — anything else (an interval that holds 0, tests that disagree,
      fewer than two seeds).

    >>> verdict({"ci_low": -3.0, "ci_high": -1.0}, {"p": 0.01, "mean_difference": 0.02},
    ...         higher_is_better=True)
    'multi-task helps'
    """
    lo, hi = delta.get("ci_low"), delta.get("ci_high")
    if lo is None or hi is None or test is None:
        return NO_EVIDENCE
    p, diff = test.get("p"), test.get("mean_difference")
    if p is None or diff is None or not p < alpha or diff == 0:
        return NO_EVIDENCE
    metric_better = (diff > 0) == higher_is_better
    if hi < 0 and metric_better:
        return HELPS
    if lo > 0 and not metric_better:
        return HURTS
    return NO_EVIDENCE
