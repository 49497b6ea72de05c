"""``benchmarks/peers.py --memory``: every variant is measured in one process (the peak RSS
reset between variants); the block-wise Gramian is a variant of its own. Nothing here looks
at the figures beyond their presence: they are for people to read (docs/performance.md)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _peers():
    spec = importlib.util.spec_from_file_location("peers_bench", ROOT / "benchmarks" / "peers.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_memory_child_measures_each_variant_and_names_what_cannot_run(capsys):
    peers = _peers()
    variants = ["plain", "mean", "mean (block 65536)", "trimmed_mean (block 65536)"]
    peers.memory_child(variants, 2, "cpu", {})
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [r["variant"] for r in rows] == variants
    assert all(isinstance(r["mb"], float) for r in rows[:3])
    # the block-wise Gramian needs a Gramian-based method: the trainer says so, the row is left out
    assert rows[3]["mb"] is None and "jacobian_block_size" in rows[3]["error"]
