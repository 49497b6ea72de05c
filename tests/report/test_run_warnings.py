"""The warnings a run shows are kept with it: ``summary["warnings"]`` (one entry per distinct
message, numbers folded, with a count) and a box in the report's Training section."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd

from mtlkit.config import parse_config
from mtlkit.report.html import render_report
from mtlkit.run import WarningLog, prepare_from_config, run


def test_warning_log_folds_numbers_counts_and_still_shows():
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        with WarningLog(limit=2) as log:
            warnings.warn("Step 3: non-finite loss for task(s) ['z']", RuntimeWarning, stacklevel=1)
            warnings.warn("Step 17: non-finite loss for task(s) ['z']", RuntimeWarning, stacklevel=1)
            warnings.warn("lr 0.5 is large", UserWarning, stacklevel=1)
            warnings.warn("a third kind", UserWarning, stacklevel=1)  # beyond the limit: not kept
        warnings.warn("after the log", UserWarning, stacklevel=1)
    assert [str(w.message) for w in shown][:4] == ["Step 3: non-finite loss for task(s) ['z']",
                                                   "Step 17: non-finite loss for task(s) ['z']",
                                                   "lr 0.5 is large", "a third kind"]
    assert len(shown) == 5  # everything was still shown, after the log too
    assert log.entries() == [
        {"category": "RuntimeWarning", "message": "Step 3: non-finite loss for task(s) ['z']", "count": 2},
        {"category": "UserWarning", "message": "lr 0.5 is large", "count": 1}]
    assert warnings.showwarning is not None and "WarningLog" not in repr(warnings.showwarning)


def test_a_runs_warnings_reach_the_summary_and_the_report(tmp_path):
    r = np.random.default_rng(0)
    df = pd.DataFrame(r.normal(size=(80, 4)), columns=list("abcd"))
    df["y1"] = (df["a"] > 0).astype(int)
    df["y2"] = df["b"] - df["c"]
    df.to_csv(tmp_path / "d.csv", index=False)
    cfg = parse_config({
        "name": "warned", "data": {"path": str(tmp_path / "d.csv"), "features": list("abcd")},
        "tasks": [{"name": "y1", "kind": "binary"}, {"name": "y2", "kind": "regression"}],
        "model": {"trunk": {"name": "mlp", "hidden": [8]}, "architecture": {"name": "soft_sharing"}},
        "training": {"epochs": 1, "batch_size": 32, "aggregator": {"name": "pcgrad"}}, "baselines": False})
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        run(cfg, prepare_from_config(cfg), out_dir=tmp_path / "run", progress=False)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    (entry,) = [w for w in summary["warnings"] if "has no shared parameters" in w["message"]]
    assert entry["category"] == "UserWarning" and entry["count"] == 1
    html = (tmp_path / "run" / "report.html").read_text()
    assert "Warnings shown while the run trained" in html and "has no shared parameters" in html
    clean = render_report({**summary, "warnings": []}, [])
    assert "Warnings shown while the run trained" not in clean
