"""Tiny text tables shared by the text tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

WORDS = ["great", "bad", "news", "fake", "media", "win", "america", "today", "thank", "you", "big", "rally"]


def toy_frame(n: int = 120, seed: int = 0) -> pd.DataFrame:
    """Texts of 2-9 words; ``pos`` is 1 when "great" occurs, ``length`` the word count."""
    r = np.random.default_rng(seed)
    texts = [" ".join(r.choice(WORDS, size=int(r.integers(2, 10)))) for _ in range(n)]
    return pd.DataFrame({"text": texts, "pos": [int("great" in t.split()) for t in texts],
                         "length": [float(len(t.split())) for t in texts], "num": r.normal(size=n)})


def text_spec(vocab: int = 30, max_length: int = 8, dense: int = 1, pad_id: int = 0) -> dict:
    return {"dense": dense, "cardinalities": [], "dims": [], "columns": [],
            "text": [{"column": "text", "vocab": vocab, "max_length": max_length, "pad_id": pad_id}]}


def train_yaml(tmp_path, cfg: dict):
    """Write ``cfg`` as ``c.yaml`` in ``tmp_path``, run ``mtlkit train`` on it into
    ``tmp_path/run`` (warnings silenced) and return the loaded run."""
    import warnings

    import yaml
    from typer.testing import CliRunner

    from mtlkit.cli import get_app
    from mtlkit.inference import load_run

    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = CliRunner().invoke(get_app(), ["train", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "run")])
    assert r.exit_code == 0, r.output
    return load_run(tmp_path / "run")
