"""Every docstring example of mtlkit.rl runs."""

import doctest
import importlib
import importlib.util

import pytest

MODULES = ["mtlkit.rl.config", "mtlkit.rl.single", "mtlkit.rl.shared", "mtlkit.rl.distral", "mtlkit.rl.care",
           "mtlkit.rl._run", "mtlkit.rl.report"]


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples_run(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_docs_python_example_runs(tmp_path, monkeypatch):
    """The Python block of docs/rl.md, from the repository root's example, in a scratch folder."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    (block,) = re.findall(r"```python\n(.*?)```", (root / "docs" / "rl.md").read_text(encoding="utf-8"), re.S)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "examples" / "rl").mkdir(parents=True)
    (tmp_path / "examples" / "rl" / "cartpole_family.yaml").write_text(
        (root / "examples" / "rl" / "cartpole_family.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    if importlib.util.find_spec("onnx") is None:
        block = block.replace('"pi0.onnx", fmt="onnx"', '"pi0.pt"')
    exec(compile(block, "docs/rl.md", "exec"), {})
    assert (tmp_path / "runs" / "cf" / "report.html").exists()
