"""The docstring examples of the table modules run."""

import doctest
import importlib
import warnings

import pytest


@pytest.mark.parametrize("name", ["mtlkit.data.tabular", "mtlkit.data.embedding", "mtlkit.inference"])
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
