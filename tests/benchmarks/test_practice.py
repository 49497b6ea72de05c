"""benchmarks/practice.py (the practice-case table of docs/evidence.md) runs in its tiny mode,
prints a row per case with settings, intervals and a verdict, and prints the same numbers when
run again. Nothing here looks at a time or at which model wins."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
VERDICTS = {"multi-task helps", "multi-task hurts", "no evidence at this budget"}


def _module() -> ModuleType:
    name = "mtlkit_benchmarks_practice"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / "practice.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    threads = torch.get_num_threads()
    try:
        _module().main(argv)
    finally:
        torch.set_num_threads(threads)
    return capsys.readouterr().out


def _rows(out: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip().strip("|").split("|")] for line in out.splitlines()
            if line.startswith("| ") and not line.startswith("|---")]


def _figures(out: str) -> str:
    """The output without the CPU-seconds line (the only line allowed to differ between runs)."""
    return "\n".join(line for line in out.splitlines() if not line.startswith("CPU seconds"))


def test_tiny_table_rows_settings_and_verdicts(tmp_path, capsys):
    out = _run(["--tiny", "--only", "timeseries", "--out", str(tmp_path / "a")], capsys)
    rows = _rows(out)
    header = rows[0]
    assert header[:3] == ["case", "settings", "task: test metric"] and header[-1] == "verdict"
    body = [r for r in rows[1:] if r[0] != "case"]
    assert [r[2] for r in body] == ["speaker: accuracy", "speaker: macro_f1"]  # main metric first, then Δm's other
    ts, f1 = body
    assert "JapaneseVowels" in ts[0] and ts[-1] in VERDICTS
    assert f1[5] == "(in Δm_t above)" and f1[-1] == ""  # one verdict per task, on its main metric's row
    assert "λ = 0.1" in ts[1] and "1 epochs" in ts[1] and "train/val/test 216/54/370" in ts[1]
    # mean [lo, hi] for both models: two seeds give an interval
    assert re.fullmatch(r"\d\.\d{3} \[-?\d\.\d{3}, -?\d\.\d{3}\]", ts[3]) and ts[4].count("[") == 1
    assert (tmp_path / "a" / "timeseries" / "seeds.json").is_file()
    # same seeds, same numbers
    again = _run(["--tiny", "--only", "timeseries", "--out", str(tmp_path / "b")], capsys)
    assert _figures(again) == _figures(out)


@pytest.mark.slow
def test_tiny_sp500_has_a_summary_row_and_one_row_per_target(tmp_path, capsys):
    body = [r for r in _rows(_run(["--tiny", "--only", "sp500", "--out", str(tmp_path)], capsys))
            if r[0] not in ("case", "target")]
    sp = next(r for r in body if "SP500" in r[0])
    assert sp[2].startswith("Δm over 10 tasks") and re.search(r"\d+ helps / \d+ hurts / \d+ no evidence", sp[-1])
    targets = [r for r in body if r[1] == "as above"]
    assert [r[0] for r in targets] == ["AAPL", "AMZN", "IBM", "INTC", "JNJ", "JPM", "KO", "MSFT", "WMT", "XOM"]
    assert all(r[-1] in VERDICTS for r in targets)


def test_one_seed_is_refused(capsys):
    with pytest.raises(SystemExit):
        _module().main(["--seeds", "1"])
    assert "--seeds must be at least 2" in capsys.readouterr().err


@pytest.mark.slow
def test_tiny_siamese_chooses_lambda_on_validation_and_uses_it(tmp_path, capsys):
    out = _run(["--tiny", "--only", "siamese", "--out", str(tmp_path)], capsys)
    chosen = re.search(r"Chosen: λ = ([0-9.]+)\.", out)
    assert chosen, out
    grid = [r for r in _rows(out) if r[0] in ("0.1", "0.3")]
    assert [r[0] for r in grid] == ["0.1", "0.3"]  # the tiny grid, scored on validation
    siamese = next(r for r in _rows(out) if r[0].startswith("Siamese"))
    assert f"λ = {chosen.group(1)};" in siamese[1] and siamese[2] == "same: roc_auc" and siamese[-1] in VERDICTS
