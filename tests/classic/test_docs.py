"""The examples of docs/classic.md and of the classic modules' docstrings run."""

from __future__ import annotations

import doctest
import importlib
import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "classic.md"
MODULES = ["tree", "forest", "group_lasso", "clustered"]


def test_docs_python_examples_run():
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert blocks
    ns: dict = {}
    for code in blocks:
        exec(compile(code, str(DOC), "exec"), ns)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(f"mtlkit.classic.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
