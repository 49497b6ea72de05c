"""Reports rendered in a real browser (headless Chromium, Debian's ``chromium`` package):
every image decodes and nothing is wider than a 1280 px window. Skipped, with the reason,
where Chromium is not installed."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import yaml
from chromium_check import find_chromium, inspect_page
from report_fake_run import make_fake_run

from mtlkit.config import load_config
from mtlkit.report import write_report
from mtlkit.run import prepare_from_config, run

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    find_chromium() is None,
    reason="Chromium is not installed (/usr/bin/chromium): apt-get install chromium to render reports")]

LONG = ["c-class-flares-production-by-this-region", "largest-spot-size-class-of-the-region",
        "area-of-the-largest-spot"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A real run (2 epochs, single-task baselines, gradient conflicts) of three tasks with
    long names, like the solar-flare table's."""
    root = tmp_path_factory.mktemp("browser")
    r = np.random.default_rng(0)
    df = pd.DataFrame(r.normal(size=(120, 4)), columns=["a", "b", "c", "d"])
    df[LONG[0]] = (df["a"] + df["b"] > 0).astype(int)
    df[LONG[1]] = np.digitize(df["c"], [-0.5, 0.5])
    df[LONG[2]] = df["d"] * 2 + 1
    df.to_csv(root / "d.csv", index=False)
    cfg = {"name": "browser", "data": {"path": str(root / "d.csv"), "features": ["a", "b", "c", "d"]},
           "tasks": [{"name": LONG[0], "kind": "binary"},
                     {"name": LONG[1], "kind": "multiclass", "num_classes": 3},
                     {"name": LONG[2], "kind": "regression"}],
           "model": {"trunk": {"name": "mlp", "hidden": [8]}},
           "training": {"epochs": 2, "batch_size": 32, "monitor_conflicts": True}}
    (root / "c.yaml").write_text(yaml.safe_dump(cfg))
    loaded = load_config(root / "c.yaml")
    run(loaded, prepare_from_config(loaded), out_dir=root / "run", progress=False)
    return root / "run" / "report.html"


def _check(page):
    found = inspect_page(page, width=1280)
    html = page.read_text(encoding="utf-8")
    assert found["innerWidth"] == 1280
    assert len(found["images"]) == len(re.findall(r"<img ", html)) > 0
    undecoded = [(i["alt"], i["naturalWidth"]) for i in found["images"] if not i["naturalWidth"]]
    assert not undecoded, f"images that do not decode: {undecoded}"
    assert found["scrollWidth"] <= found["innerWidth"], found["overflow"][:5]
    assert not found["overflow"], f"elements wider than the page: {found['overflow'][:5]}"
    return found


def test_a_real_run_report_decodes_and_fits_the_page(tiny_run):
    found = _check(tiny_run)
    alts = {i["alt"] for i in found["images"]}
    assert {"gradient conflict heatmap", "relative difference per metric", "loss curves"} <= alts


def test_the_full_fake_report_decodes_and_fits_the_page(tmp_path):
    """Every optional section (learned sharing, sampling, penalties, many plots)."""
    _check(write_report(make_fake_run(tmp_path)))
