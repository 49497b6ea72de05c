"""The README's two commands install the versions CI tested (issue 20, item 1).

Before: `make test` installed whatever was newest that day, and a fresh clone on a new machine
failed its own tests (SciPy 1.17.1 and the dual-cone solver: the comparison itself is fixed in
``tests/aggregation/test_solvers.py``). Now every `pip install` of the Makefile uses
``constraints.txt`` (exact versions, refreshed deliberately with `make constraints`), and
`make test-latest` tests against the newest versions in an environment of its own."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]


def _constraints() -> dict[str, str]:
    out = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            m = re.fullmatch(r"([A-Za-z0-9._-]+)==([0-9][A-Za-z0-9.!+_-]*)", line.strip())
            assert m, f"not an exact pin: {line!r}"
            out[canonicalize_name(m.group(1))] = m.group(2)
    return out


def _make_rule(target: str) -> list[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    m = re.search(rf"^{re.escape(target)}:.*\n((?:\t.*\n)+)", text, re.M)
    assert m, target
    return [line.strip() for line in m.group(1).splitlines()]


def test_constraints_pin_every_dependency_exactly():
    tomllib = pytest.importorskip("tomllib")
    pins = _constraints()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    direct = [*project["dependencies"], *project["optional-dependencies"]["datasets"],
              *project["optional-dependencies"]["dev"]]
    missing = sorted({canonicalize_name(Requirement(r).name) for r in direct} - set(pins) - {"torch"})
    assert not missing, f"constraints.txt lacks {missing}: run `make constraints`"
    assert "torch" not in pins and "mtlkit" not in pins  # the Makefile pins torch; mtlkit is the checkout
    assert not [v for v in pins.values() if "+" in v]  # no local versions (not on PyPI)


def test_every_install_of_make_setup_uses_the_constraints():
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^PIN \?= -c constraints\.txt$", text, re.M)
    rule = _make_rule("$(STAMP)")
    installs = [line for line in rule if "pip" in line.lower() or "$(PIP)" in line]
    assert installs and all("$(PIN)" in line for line in installs), installs
    stamp_deps = re.search(r"^\$\(STAMP\):(.*)$", text, re.M).group(1)
    assert "constraints.txt" in stamp_deps  # new pins reinstall


def test_there_is_a_way_to_test_the_newest_versions():
    rule = _make_rule("test-latest")
    assert any("VENV=.venv-latest" in line and "--upgrade" in line and "PIN=" in line for line in rule), rule
    assert any(".ci/constraints.py" in line for line in _make_rule("constraints"))
