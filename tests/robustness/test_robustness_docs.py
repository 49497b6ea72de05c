"""The Python examples of docs/robustness.md run, and its battery table matches the battery."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "robustness.md"


def test_docs_python_examples_run():
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert blocks
    for code in blocks:
        exec(compile(code, str(DOC), "exec"), {"__name__": "robustness_doc"})  # our own docs


def test_docs_list_every_battery_case():
    import test_bad_input_battery as battery

    text = DOC.read_text(encoding="utf-8")
    listed = set(re.findall(r"^\| (?:\d+ \| )?`([a-z0-9-]+)` \|", text, re.M))
    expected = {c.id for c in battery.CASES} | {p.values[0].id for p in battery.NEEDS_FIX}
    assert listed == expected, (sorted(expected - listed), sorted(listed - expected))
    assert f"adds {len(battery.CASES)} cases" in text
