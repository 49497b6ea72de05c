"""A run trained on encoded arrays (no table preprocessing) standardises its inputs; the
reloaded run must do the same for tensors and for dicts of named inputs, so that
``load_run(dir).predict_raw(x)`` equals ``RunResult.predict_raw(x)`` (it used to skip the
standardisation and gave other outputs)."""

from __future__ import annotations

import numpy as np
import torch

from mtlkit import Task, fit
from mtlkit.inference import load_run


def _labels(x: np.ndarray) -> dict[str, np.ndarray]:
    return {"a": (x[:, 0] > 5).astype(float), "b": x[:, 1] * 3.0}


def test_reloaded_run_standardises_tensor_inputs_as_the_run_did(tmp_path):
    r = np.random.default_rng(0)
    x = (r.normal(size=(240, 4)) * 10 + 5).astype("float32")  # far from standardised
    tasks = [Task("a", "binary"), Task("b", "regression")]
    res = fit((x, _labels(x)), tasks, epochs=2, baselines=False, out_dir=tmp_path / "run", seed=0)
    new = torch.as_tensor(x[:16])
    want = res.predict_raw(new)
    got = load_run(tmp_path / "run").predict_raw(new)
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-5, atol=1e-6)


def test_reloaded_run_standardises_named_inputs_as_the_run_did(tmp_path):
    r = np.random.default_rng(1)
    inputs = {"left": (r.normal(size=(240, 3)) * 8 - 4).astype("float32"),
              "right": (r.normal(size=(240, 2)) * 0.1 + 30).astype("float32")}
    labels = {"a": (inputs["left"][:, 0] > -4).astype(float), "b": inputs["right"][:, 0] - 30}
    tasks = [Task("a", "binary"), Task("b", "regression")]
    res = fit((inputs, labels), tasks, architecture="multimodal", epochs=2, baselines=False,
              out_dir=tmp_path / "run", seed=0)
    new = {k: torch.as_tensor(v[:16]) for k, v in inputs.items()}
    want = res.predict_raw(new)
    got = load_run(tmp_path / "run").predict_raw(new)
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-5, atol=1e-6)
