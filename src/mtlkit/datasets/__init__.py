"""Built-in real data sets, read from files shipped inside installed packages (never
downloaded). Each loader returns a :class:`DatasetBundle`; :func:`load` finds one by name.

>>> from mtlkit.datasets import load
>>> b = load("multimnist", n_train=8, n_test=4)
>>> b.input_kind, b.default_trunk
('image', {'name': 'lenet'})
"""

from __future__ import annotations

from typing import Any

from mtlkit._registry import DATASETS
from mtlkit.datasets._bundle import DatasetBundle
from mtlkit.datasets.adult import load_adult
from mtlkit.datasets.basic_motions import load_basic_motions
from mtlkit.datasets.japanese_vowels import load_japanese_vowels
from mtlkit.datasets.mnist_pairs import load_mnist_pairs
from mtlkit.datasets.movielens import load_movielens
from mtlkit.datasets.multimnist import load_multimnist
from mtlkit.datasets.sp500 import load_sp500
from mtlkit.datasets.tweets import load_tweets
from mtlkit.datasets.yeast import load_yeast


def load(name: str, **kwargs: Any) -> DatasetBundle:
    """Load a built-in dataset by its registry name with the loader's keyword arguments.

    An unknown name raises an error that suggests the closest known name; arguments the
    loader does not take raise a TypeError naming the dataset."""
    loader = DATASETS.get(name)
    try:
        return loader(**kwargs)
    except TypeError as exc:
        raise TypeError(f"Cannot load dataset {name!r} with {kwargs}: {exc}") from exc


def names() -> list[str]:
    """The registered dataset names."""
    return DATASETS.names()


__all__ = [
    "DatasetBundle",
    "load",
    "load_adult",
    "load_basic_motions",
    "load_japanese_vowels",
    "load_mnist_pairs",
    "load_movielens",
    "load_multimnist",
    "load_sp500",
    "load_tweets",
    "load_yeast",
    "names",
]
