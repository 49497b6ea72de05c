"""Fixtures of the robustness tests: a finished run folder (built once per module, copied
per test) and a switch that skips the slow HTML report."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from _robust import TASKS, tiny_frame


@pytest.fixture
def no_report(monkeypatch):
    """Skip the HTML report (matplotlib takes seconds; these tests are about the files)."""
    import mtlkit.run.execute

    monkeypatch.setattr(mtlkit.run.execute, "write_report_safely", lambda run_dir, say: None)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A finished run folder of ``mtlkit.fit`` on :func:`tiny_frame` (read-only: copy it)."""
    import mtlkit.run.execute
    from mtlkit import fit

    out = tmp_path_factory.mktemp("finished") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(mtlkit.run.execute, "write_report_safely", lambda run_dir, say: None)
        fit(tiny_frame(), TASKS, epochs=1, baselines=False, out_dir=out, seed=0)
    return out


@pytest.fixture
def run_copy(finished_run, tmp_path) -> Path:
    """A private copy of :func:`finished_run` that a test may damage."""
    dst = tmp_path / "run"
    shutil.copytree(finished_run, dst)
    return dst
