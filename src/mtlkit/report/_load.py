"""Reading a run folder for the report, tolerant of missing optional parts."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class RunData:
    """What the report needs from a run folder.

    ``warnings`` collects problems that did not stop the report (a truncated
    ``metrics.jsonl`` line, a missing file) so the report can show them."""

    summary: dict[str, Any]
    records: list[dict[str, Any]] = field(default_factory=list)
    baselines: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    config_text: str | None = None
    run_dir: Path | None = None
    warnings: list[str] = field(default_factory=list)


def read_jsonl(path: Path, warnings: list[str] | None = None) -> list[dict[str, Any]]:
    """One JSON object per line; blank lines ignored, broken lines skipped with a warning
    (a run killed mid-write leaves a truncated last line)."""
    out: list[dict[str, Any]] = []
    if not path.exists():
        return out
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            if warnings is not None:
                warnings.append(f"{path.name} line {i} is not valid JSON and was skipped.")
            continue
        if isinstance(obj, dict):
            out.append(obj)
        elif warnings is not None:
            warnings.append(f"{path.name} line {i} is not a JSON object and was skipped.")
    return out


def load_run(run_dir: str | Path) -> RunData:
    """Read ``summary.json``, ``metrics.jsonl``, ``baselines/<task>/metrics.jsonl`` and
    ``config.yaml`` from a run folder. Only the folder itself is required."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"Run folder not found: {str(run_dir)!r}.")
    warnings: list[str] = []
    summary: dict[str, Any] = {}
    spath = run_dir / "summary.json"
    if spath.exists():
        try:
            loaded = json.loads(spath.read_text(encoding="utf-8"))
            if isinstance(loaded, dict):
                summary = loaded
            else:
                warnings.append("summary.json is not a JSON object; test results are not shown.")
        except json.JSONDecodeError as exc:
            warnings.append(f"summary.json is not valid JSON ({exc}); test results are not shown.")
    else:
        warnings.append("summary.json is missing (training unfinished?); test results are not shown.")
    summary.setdefault("name", run_dir.name)
    if "created" not in summary and spath.exists():
        import time

        summary["created"] = time.strftime("%Y-%m-%d %H:%M:%S",
                                           time.localtime(spath.stat().st_mtime))
    records = read_jsonl(run_dir / "metrics.jsonl", warnings)
    baselines: dict[str, list[dict[str, Any]]] = {}
    bdir = run_dir / "baselines"
    if bdir.is_dir():
        for sub in sorted(p for p in bdir.iterdir() if p.is_dir()):
            recs = read_jsonl(sub / "metrics.jsonl", warnings)
            if recs:
                baselines[sub.name] = recs
    cpath = run_dir / "config.yaml"
    config_text = cpath.read_text(encoding="utf-8") if cpath.exists() else None
    return RunData(summary=summary, records=records, baselines=baselines,
                   config_text=config_text, run_dir=run_dir, warnings=warnings)
