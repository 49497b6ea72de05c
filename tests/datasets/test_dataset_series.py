"""SP500 (river) and BasicMotions (.ts files of aeon/sktime): alignment, shapes, splits."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import mtlkit.datasets.basic_motions as bm
from mtlkit.datasets import load, load_basic_motions, load_sp500
from mtlkit.datasets._files import package_dir
from mtlkit.datasets.sp500 import TICKERS, windows

needs_river = pytest.mark.skipif(
    importlib.util.find_spec("river") is None, reason="river is not installed"
)


# ---------------------------------------------------------------- sp500
def test_windows_hand_worked():
    r = np.array([[1.0, -1.0], [2.0, 0.0], [-3.0, 4.0], [5.0, -6.0]])
    x, y, end = windows(r, 2)
    assert x.shape == (2, 2, 2) and end.tolist() == [1, 2]
    assert x[0].tolist() == [[1.0, 2.0], [-1.0, 0.0]]  # (stocks, days), oldest first
    assert y.tolist() == [[0.0, 1.0], [1.0, 0.0]]  # sign of the next day; 0.0 is not up
    with pytest.raises(ValueError, match="window of 4"):
        windows(r, 4)


@needs_river
def test_sp500_table_is_aligned_with_the_file():
    b = load_sp500(window=3)
    path = package_dir("river") / "datasets" / "sp500.csv.gz"
    df = pd.read_csv(path)
    assert len(df) == 1257
    n = len(b.data) + len(b.test)
    assert n == 1257 - 3 and b.data.x.shape == (len(b.data), 30)
    assert [t.name for t in b.tasks] == TICKERS and all(t.kind == "binary" for t in b.tasks)
    assert b.feature_names[:3] == ["AAPL[t-0]", "AAPL[t-1]", "AAPL[t-2]"]
    i = 10  # sample i ends on day i + 2
    for j, s in enumerate(TICKERS):
        got = b.data.x[i, 3 * j : 3 * j + 3].double()
        want = torch.tensor(df[s].to_numpy()[[i + 2, i + 1, i]])
        assert torch.allclose(got, want, atol=1e-6)
        assert float(b.data.targets[s][i]) == float(df[s].iloc[i + 3] > 0)


@needs_river
def test_sp500_series_layout_and_chronological_test():
    table, series = load_sp500(window=4), load("sp500", window=4, layout="series")
    assert series.input_kind == "series" and series.data.x.shape[1:] == (10, 4)
    assert series.default_trunk["name"] == "cnn1d" and series.feature_names is None
    # the same numbers: table column j*w + k is stock j at lag k (series index w-1-k)
    assert torch.equal(table.data.x.reshape(-1, 10, 4).flip(-1), series.data.x)
    dates = series.info["window_end_dates"]
    n_train = len(series.data)
    assert dates[n_train - 1] < dates[n_train]  # test is after train
    assert len(series.test) == round(len(dates) * 0.2)
    assert load_sp500(test_fraction=0.0).test is None


@needs_river
@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"window": 0}, "'window'"),
        ({"layout": "image"}, "'layout'"),
        ({"test_fraction": 1.0}, "'test_fraction'"),
    ],
)
def test_sp500_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        load_sp500(**kw)


# ---------------------------------------------------------------- basic_motions
def _write_ts(path: Path, series: list[tuple[list[list[float]], str]]) -> None:
    lines = [
        "# a comment",
        "@problemName Toy",
        "@timeStamps false",
        "@missing false",
        "@univariate false",
        "@dimensions 2",
        "@equalLength true",
        "@seriesLength 3",
        "@classLabel true Standing Running Walking Badminton",
        "@data",
    ]
    lines += [
        ":".join(",".join(str(v) for v in ch) for ch in chans) + ":" + label
        for chans, label in series
    ]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def fake_aeon(tmp_path, monkeypatch):
    folder = tmp_path / "aeon" / "datasets" / "data" / "BasicMotions"
    folder.mkdir(parents=True)
    _write_ts(
        folder / "BasicMotions_TRAIN.ts",
        [([[1, 2, 3], [4, 5, 6]], "Walking"), ([[0, 0, 0], [1, 1, 1]], "Standing")],
    )
    _write_ts(folder / "BasicMotions_TEST.ts", [([[7, 8, 9], [1, 0, 1]], "Badminton")])
    monkeypatch.setattr(bm, "package_dir", lambda pkg: tmp_path / "aeon" if pkg == "aeon" else None)
    return folder


def test_read_ts_parses_channels_labels_and_class_order(fake_aeon):
    x, labels, classes = bm.read_ts(fake_aeon / "BasicMotions_TRAIN.ts")
    assert x.dtype == np.float32 and x.shape == (2, 2, 3)
    assert x[0].tolist() == [[1, 2, 3], [4, 5, 6]]
    assert labels == ["Walking", "Standing"]
    assert classes == ["Standing", "Running", "Walking", "Badminton"]


def test_read_ts_rejects_unequal_lengths(tmp_path):
    p = tmp_path / "bad.ts"
    _write_ts(p, [([[1, 2, 3], [4, 5]], "Walking")])
    with pytest.raises(ValueError, match="unequal length"):
        bm.read_ts(p)


def test_basic_motions_loader_on_ts_files(fake_aeon):
    b = load_basic_motions()
    assert b.input_kind == "series" and b.default_trunk == {"name": "cnn1d"}
    (task,) = b.tasks
    assert task.name == "activity" and task.kind == "multiclass" and task.num_classes == 4
    assert b.data.targets["activity"].tolist() == [2, 0]  # Walking, Standing in header order
    assert b.test.targets["activity"].tolist() == [3]
    assert b.data.x.shape == (2, 2, 3) and b.data.x.dtype == torch.float32


def test_basic_motions_without_provider_names_the_extra(monkeypatch):
    monkeypatch.setattr(bm, "package_dir", lambda pkg: None)
    with pytest.raises(ImportError, match=r"mtlkit\[timeseries\]"):
        load_basic_motions()


@pytest.mark.skipif(
    all(importlib.util.find_spec(p) is None for p in bm.PROVIDERS),
    reason="neither aeon nor sktime is installed",
)
def test_basic_motions_real_files():
    b = load_basic_motions()
    assert b.data.x.shape == (40, 6, 100) and b.test.x.shape == (40, 6, 100)
    assert b.class_balance() == {"activity": [10, 10, 10, 10]}
    assert b.class_balance("test") == {"activity": [10, 10, 10, 10]}
