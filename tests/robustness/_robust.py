"""Shared helpers of the robustness tests (imported by conftest.py and the test modules)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mtlkit import Task

TASKS = [Task("y", "multiclass", num_classes=3), Task("z", "regression")]


def tiny_frame(n: int = 60, seed: int = 0) -> pd.DataFrame:
    """Two features, a 3-class label ``y`` and a regression label ``z``."""
    r = np.random.default_rng(seed)
    df = pd.DataFrame({"f1": r.normal(size=n), "f2": r.normal(size=n)})
    df["y"] = r.integers(0, 3, n)
    df["z"] = df["f1"] - 0.5 * df["f2"] + r.normal(0, 0.1, n)
    return df


class Payload:
    """Unpickling this object creates ``marker`` (as ``open(marker, 'w')`` does): the
    stand-in for arbitrary code a malicious pickle would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def payload_bytes(marker: Path, flavour: str = "pickle") -> bytes:
    """A malicious file: a raw pickle, or the zip container ``torch.save`` writes."""
    import io
    import pickle

    if flavour == "pickle":
        return pickle.dumps(Payload(marker))
    import torch

    buf = io.BytesIO()
    torch.save({"model": Payload(marker)}, buf)
    return buf.getvalue()
