"""``LoadedRun.evaluate(df)`` scores the primary tasks and each auxiliary task whose label
column the table has: an auxiliary task generated from the inputs during training has no
column in a user's table, and used to fail with a KeyError for it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mtlkit import Task, fit
from mtlkit.inference import load_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    r = np.random.default_rng(0)
    df = pd.DataFrame({"f1": r.normal(size=300), "f2": r.normal(size=300)})
    df["y"] = (df.f1 + 0.3 * df.f2 > 0).astype(int)
    df["aux"] = df.f1 * 2.0
    tasks = [Task("y", "binary"), Task("aux", "regression", role="auxiliary")]
    out = tmp_path_factory.mktemp("aux") / "run"
    fit(df, tasks, features=["f1", "f2"], epochs=2, baselines=False, out_dir=out, seed=0)
    return out, df


def test_an_auxiliary_task_without_its_column_is_left_out(run_dir):
    out, df = run_dir
    run = load_run(out)
    scores = run.evaluate(df.drop(columns=["aux"]))
    assert set(scores) == {"y"} and "roc_auc" in scores["y"]
    both = run.evaluate(df)
    assert set(both) == {"y", "aux"}
    assert both["y"] == scores["y"]


def test_a_primary_task_without_its_column_is_still_an_error(run_dir):
    out, df = run_dir
    with pytest.raises(KeyError, match="'y'"):
        load_run(out).evaluate(df.drop(columns=["y"]))
