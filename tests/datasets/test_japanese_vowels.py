"""The JapaneseVowels loader: the unequal-length .ts reader, the resampling, the missing-package
error and (when aeon ships the files) the real data's shapes and class counts."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

import mtlkit.datasets.japanese_vowels as jv
from mtlkit.datasets import load


def _write(path: Path, rows: list[str], classes: str = "1 2 3") -> None:
    head = ["# comment", "@problemName Toy", "@timeStamps false", "@univariate false", "@dimensions 2",
            "@equalLength false", f"@classLabel true {classes}", "@data"]
    path.write_text("\n".join(head + rows) + "\n")


@pytest.fixture
def fake_aeon(tmp_path, monkeypatch):
    folder = tmp_path / "aeon" / "datasets" / "data" / "JapaneseVowels"
    folder.mkdir(parents=True)
    _write(folder / "JapaneseVowels_TRAIN.ts", ["0,2:1,1:2", "5,5,5:0,1,2:1"])
    _write(folder / "JapaneseVowels_TEST.ts", ["1,2,3,4:4,3,2,1:3"])
    monkeypatch.setattr(jv, "package_dir", lambda pkg: tmp_path / "aeon" if pkg == "aeon" else None)
    return folder


def test_reader_keeps_each_length_and_the_header_class_order(fake_aeon):
    series, labels, classes = jv.read_ts_unequal(fake_aeon / "JapaneseVowels_TRAIN.ts")
    assert [s.shape for s in series] == [(2, 2), (2, 3)] and series[0].dtype == np.float32
    assert series[1].tolist() == [[5, 5, 5], [0, 1, 2]]
    assert labels == ["2", "1"] and classes == ["1", "2", "3"]


def test_loader_resamples_to_the_asked_length(fake_aeon):
    b = load("japanese_vowels", length=3)
    assert b.data.x.shape == (2, 2, 3) and b.test.x.shape == (1, 2, 3) and b.data.x.dtype == torch.float32
    assert b.data.x[0].tolist() == [[0.0, 1.0, 2.0], [1.0, 1.0, 1.0]]  # interpolated over its duration
    assert b.data.x[1].tolist() == [[5.0, 5.0, 5.0], [0.0, 1.0, 2.0]]  # already 3 long: unchanged
    assert b.data.targets["speaker"].tolist() == [1, 0] and b.test.targets["speaker"].tolist() == [2]
    assert b.tasks[0].num_classes == 3 and b.input_kind == "series" and b.info["original_lengths"] == [2, 4]


@pytest.mark.parametrize(("rows", "match"), [(["1,2:3:1"], "differ in length"), (["1,x:3,4:1"], "could not convert"),
                                              (["1,2:3,4:9"], "not among @classLabel"), ([], "no series")])
def test_reader_errors_name_the_problem(tmp_path, rows, match):
    p = tmp_path / "bad.ts"
    _write(p, rows)
    with pytest.raises(ValueError, match=match):
        jv.read_ts_unequal(p)


def test_bad_length_is_named(fake_aeon):
    with pytest.raises(ValueError, match="'length' parameter of load_japanese_vowels"):
        jv.load_japanese_vowels(length=1)


def test_without_provider_names_the_extra(monkeypatch):
    monkeypatch.setattr(jv, "package_dir", lambda pkg: None)
    with pytest.raises(ImportError, match=r"mtlkit\[timeseries\]"):
        jv.load_japanese_vowels()


@pytest.mark.skipif(all(importlib.util.find_spec(p) is None for p in jv.PROVIDERS),
                    reason="neither aeon nor sktime is installed")
def test_real_files():
    b = jv.load_japanese_vowels()
    assert tuple(b.data.x.shape) == (270, 12, 25) and tuple(b.test.x.shape) == (370, 12, 25)
    assert b.class_balance("data")["speaker"] == [30] * 9
    assert sum(b.class_balance("test")["speaker"]) == 370
    assert torch.isfinite(b.data.x).all() and b.info["original_lengths"] == [7, 29]


def test_docstring_examples_run():
    import doctest

    assert doctest.testmod(jv, optionflags=doctest.ELLIPSIS).failed == 0
