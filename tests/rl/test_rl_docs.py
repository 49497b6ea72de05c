"""Every docstring example of mtlkit.rl runs."""

import doctest
import importlib

import pytest

MODULES = ["mtlkit.rl.config", "mtlkit.rl.single", "mtlkit.rl.shared", "mtlkit.rl.distral", "mtlkit.rl.care",
           "mtlkit.rl._run", "mtlkit.rl.report"]


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples_run(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
