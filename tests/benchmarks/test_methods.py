"""benchmarks/methods.py still runs and prints its table: every registered method is a row, and
a tiny run fills the step-time and Δm cells (nothing here looks at a time)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from mtlkit._registry import AGGREGATORS, WEIGHTINGS

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def methods():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("methods_benchmark", ROOT / "benchmarks" / "methods.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rows(out: str) -> dict[str, list[str]]:
    lines = [line for line in out.splitlines() if line.startswith("| ") and not line.startswith("| kind")]
    return {cells[1]: cells for cells in ([c.strip() for c in line.strip("|").split("|")] for line in lines)}


def test_every_registered_method_is_a_row(methods, capsys):
    methods.main(["--no-time", "--no-delta-m"])
    rows = _rows(capsys.readouterr().out)
    assert set(AGGREGATORS.names()) | set(WEIGHTINGS.names()) | set(methods.ARCHITECTURES) <= set(rows)


@pytest.mark.slow
def test_quick_run_prints_times_and_delta_m(methods, capsys):
    methods.main(["--quick", "--ks", "2", "--methods", "mean", "equal", "--seeds", "0"])
    out = capsys.readouterr().out
    rows = _rows(out)
    assert set(rows) == {"-", "mean", "equal"}  # plain, one aggregator, one weighting
    for name in ("mean", "equal"):
        ms, ratio = rows[name][2].split(" (")
        assert float(ms) > 0 and float(ratio.rstrip("×)")) > 0
        dm = rows[name][3]
        assert not dm.startswith("n/a") and abs(float(dm)) < 100  # one seed: a mean, no sd
    # equal weighting with the mean gradient is the same run as the mean aggregator with equal
    # weighting: the same seed gives the same Δm
    assert rows["mean"][3] == rows["equal"][3]
    assert "Δm penguins" in out and "floor at K=2" in out


def test_unknown_dataset_is_named(methods):
    with pytest.raises(SystemExit, match="Unknown dataset 'iris'"):
        methods.dataset_config("iris", quick=True)
