"""The report of a run: a self-contained ``report.html`` with plots, and a terminal table.

A run folder holds ``summary.json``, ``metrics.jsonl``, ``baselines/<task>/metrics.jsonl``
and ``config.yaml``; :func:`write_report` reads them and writes ``report.html`` next to them
(atomically). :func:`render_report` does the same from in-memory parts and returns the HTML.
:func:`summary_table` is the plain-text table the CLI prints.

>>> import tempfile, json, pathlib
>>> run = pathlib.Path(tempfile.mkdtemp())
>>> _ = (run / "summary.json").write_text(json.dumps({"name": "tiny", "tasks": []}))
>>> write_report(run).name
'report.html'
"""

from __future__ import annotations

from pathlib import Path

from mtlkit.report._load import RunData, load_run
from mtlkit.report._table import summary_table
from mtlkit.report.html import render_report

__all__ = ["RunData", "load_run", "render_report", "summary_table", "write_report"]

REPORT = "report.html"


def write_report(run_dir: str | Path) -> Path:
    """Render the report of the run folder ``run_dir`` to ``run_dir/report.html``.

    Only the folder is required: missing optional parts (baselines, conflict statistics,
    learned sharing, even ``summary.json``) leave their sections out or say what is missing.
    The file is written to a temporary name and renamed, so a failure never leaves a
    half-written report in place of a good one. Returns the path of the report."""
    from mtlkit._io import atomic_write

    data = load_run(run_dir)
    page = render_report(data.summary, data.records, data.baselines, data.config_text,
                         warnings=data.warnings)
    return atomic_write(Path(run_dir) / REPORT, page)
