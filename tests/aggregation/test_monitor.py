"""ConflictMonitor (mtlkit.training.monitor) against hand-computed cosines."""

from __future__ import annotations

import math

import pytest
import torch

from mtlkit.training.monitor import ConflictMonitor


def test_single_update_hand_computed():
    # a = (1, 0), b = (0, 2), c = (−3, 0): cos(a,b) = 0, cos(a,c) = −1, cos(b,c) = 0.
    # Off-diagonal mean: (0 − 1 + 0)·2 / 6 = −1/3; conflicting pairs (cos < 0): 2 of 6 = 1/3.
    # Norms 1, 2, 3 (mean 2): norm ratios 1/2, 1, 3/2.
    m = ConflictMonitor(["a", "b", "c"])
    m.update(torch.tensor([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0]]), [0, 1, 2])
    s = m.epoch_summary()
    assert s["mean_cosine"] == pytest.approx(-1 / 3)
    assert s["conflict_fraction"] == pytest.approx(1 / 3)
    cos = torch.tensor(s["cosine_matrix"], dtype=torch.float64)
    torch.testing.assert_close(cos, torch.tensor([[1.0, 0.0, -1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 1.0]],
                                                 dtype=torch.float64))
    assert s["norm_ratio"] == pytest.approx({"a": 0.5, "b": 1.0, "c": 1.5})


def test_accumulates_over_updates_with_absent_tasks():
    m = ConflictMonitor(["a", "b", "c"])
    m.update(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]), [0, 1, 2])
    # second step: task b absent. a = (3, 4), c = (8, 6): cos = (24 + 24)/(5·10) = 0.96;
    # norms 5 and 10 (mean 7.5): ratios 2/3 and 4/3.
    m.update(torch.tensor([[3.0, 4.0], [8.0, 6.0]]), [0, 2])
    s = m.epoch_summary(reset=False)
    cos = torch.tensor(s["cosine_matrix"], dtype=torch.float64)
    assert float(cos[0, 2]) == pytest.approx((-1 + 0.96) / 2)  # averaged over the 2 steps
    assert float(cos[0, 1]) == pytest.approx(0.0) and float(cos[1, 2]) == pytest.approx(0.0)
    assert s["mean_cosine"] == pytest.approx(2 * (-0.02) / 6)
    # conflicts: (a,c) once in 2 observations, (a,b) 0/1, (b,c) 0/1 → 2 / 8 (both orders)
    assert s["conflict_fraction"] == pytest.approx(0.25)
    assert s["norm_ratio"] == pytest.approx({"a": (1 + 2 / 3) / 2, "b": 1.0, "c": (1 + 4 / 3) / 2})
    m.epoch_summary()  # resets
    assert math.isnan(m.epoch_summary()["mean_cosine"])


def test_zero_gradients_are_ignored():
    m = ConflictMonitor(["a", "b"])
    m.update(torch.tensor([[1.0, 0.0], [0.0, 0.0]]), [0, 1])
    s = m.epoch_summary()
    assert math.isnan(s["mean_cosine"]) and math.isnan(s["conflict_fraction"])
    assert s["norm_ratio"]["a"] == pytest.approx(1.0)


def test_docstring_example_values():
    # (1, 0) and (−1, 1): cos = −1/√2
    m = ConflictMonitor(["a", "b"])
    m.update(torch.tensor([[1.0, 0.0], [-1.0, 1.0]]), [0, 1])
    s = m.epoch_summary()
    assert s["mean_cosine"] == pytest.approx(-1 / math.sqrt(2))
    assert s["conflict_fraction"] == 1.0
