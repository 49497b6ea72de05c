"""Every docstring example of the analysis and distillation modules runs."""

import doctest
import importlib

import pytest

MODULES = ["mtlkit.analysis.affinity", "mtlkit.analysis.grouping", "mtlkit.analysis._format", "mtlkit.distill"]


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples_run(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
