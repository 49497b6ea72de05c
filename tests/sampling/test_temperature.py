"""Temperature sampling at T = ∞: uniform over the tasks, as its docstring says."""

from __future__ import annotations

import math

import pytest
import torch

from mtlkit._registry import SAMPLERS
from mtlkit.data.samplers import Temperature, Uniform

from ._data import combined

INF = float("inf")


def test_infinite_temperature_is_accepted_and_uniform():
    s = Temperature(temperature=INF)
    assert s.temperature == INF
    sizes = {"big": 900, "small": 100, "tiny": 3}
    assert s.probabilities(sizes) == pytest.approx({"big": 1 / 3, "small": 1 / 3, "tiny": 1 / 3})
    assert s.probabilities(sizes) == Uniform().probabilities(sizes)


def test_infinite_temperature_never_draws_a_task_without_labels():
    sizes = {"big": 900, "small": 100, "none": 0}
    assert Temperature(temperature=INF).probabilities(sizes) == {"big": 0.5, "small": 0.5, "none": 0.0}


def test_infinite_temperature_draws_like_uniform():
    ds, _ = combined()
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a = Temperature(temperature=INF).task_sequence(ds.sizes, 500, g1)
    b = Uniform().task_sequence(ds.sizes, 500, g2)
    assert a == b


def test_infinite_temperature_through_the_registry_and_repr():
    s = SAMPLERS.build("temperature", temperature=math.inf)
    assert repr(s) == "Temperature(temperature=inf, epoch_budget='sum', exclusive=True)"


@pytest.mark.parametrize("bad", [float("nan"), -INF, 0.0, -1.0, True, "inf"])
def test_other_non_positive_or_non_numbers_are_still_rejected(bad):
    with pytest.raises(ValueError, match=r"The 'temperature' parameter of Temperature must be a positive float"):
        Temperature(temperature=bad)
