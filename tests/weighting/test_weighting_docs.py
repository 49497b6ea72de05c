"""Every docstring example of mtlkit.weighting runs and prints what it shows."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import mtlkit.weighting as pkg

MODULES = sorted(f"mtlkit.weighting.{m.name}" for m in pkgutil.iter_modules(pkg.__path__))


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples_run(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
