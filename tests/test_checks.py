"""The one family of parameter checks (``mtlkit._checks``): argument order, wording, edge values."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest

import mtlkit._checks as checks
from mtlkit._checks import check_bool, check_choice, check_float, check_int, check_ints


def test_doctests():
    assert doctest.testmod(checks).failed == 0


@pytest.mark.parametrize(("kwargs", "what"), [
    ({}, "an integer"),
    ({"low": 1}, "a positive integer"),
    ({"low": 0}, "a non-negative integer"),
    ({"low": 2}, "an integer >= 2"),
    ({"high": 5}, "an integer <= 5"),
    ({"low": 1, "high": 5}, "an integer in [1, 5]"),
    ({"low": 1, "none_ok": True}, "a positive integer or None"),
])
def test_int_wording(kwargs, what):
    with pytest.raises(ValueError) as info:
        check_int("Owner", "n", "x", **kwargs)
    assert str(info.value) == f"The 'n' parameter of Owner must be {what}. Got 'x'."


@pytest.mark.parametrize(("kwargs", "what"), [
    ({"low": 0.0}, "a non-negative float"),
    ({"low": 0.0, "low_open": True}, "a positive float"),
    ({"low": 0.0, "high": 1.0}, "a float in [0, 1]"),
    ({"low": 0.0, "high": 1.0, "high_open": True}, "a float in [0, 1)"),
    ({"low": 0.0, "high": 1.0, "low_open": True}, "a float in (0, 1]"),
    ({"low": 0.5}, "a float >= 0.5"),
    ({"low": 0.5, "low_open": True}, "a float > 0.5"),
    ({"high": 2.0}, "a float <= 2"),
    ({}, "a finite float"),
    ({"low": 0.0, "none_ok": True}, "a non-negative float or None"),
    ({"low": 0.0, "what": "a float in [0, 1] or a sequence of them"}, "a float in [0, 1] or a sequence of them"),
])
def test_float_wording(kwargs, what):
    with pytest.raises(ValueError) as info:
        check_float("Owner", "x", "bad", **kwargs)
    assert str(info.value) == f"The 'x' parameter of Owner must be {what}. Got 'bad'."


def test_the_style_guide_example():
    with pytest.raises(ValueError, match=r"^The 'c' parameter of CAGrad must be a non-negative float\. Got -1\.0\.$"):
        check_float("CAGrad", "c", -1.0, low=0.0)


def test_ints():
    assert check_int("O", "n", 3, low=1) == 3
    assert type(check_int("O", "n", np.int64(3), low=1)) is int
    assert check_int("O", "n", None, none_ok=True) is None
    for bad in (True, 1.0, 1.5, "1", None, np.bool_(True), 0):
        with pytest.raises(ValueError, match="'n' parameter of O"):
            check_int("O", "n", bad, low=1)


def test_floats():
    assert check_float("O", "x", 1, low=0.0) == 1.0 and type(check_float("O", "x", 1, low=0.0)) is float
    assert check_float("O", "x", np.float32(0.5), low=0.0, high=1.0) == 0.5
    assert check_float("O", "x", None, none_ok=True) is None
    assert check_float("O", "x", math.inf, low=0.0, low_open=True, inf_ok=True) == math.inf
    for bad in (math.nan, math.inf, -math.inf, True, "1", None):
        with pytest.raises(ValueError, match="'x' parameter of O"):
            check_float("O", "x", bad, low=0.0)
    for bad in (math.nan, -math.inf, 0.0):
        with pytest.raises(ValueError):
            check_float("O", "x", bad, low=0.0, low_open=True, inf_ok=True)


def test_bool_choice_and_sequences():
    assert check_bool("O", "b", np.bool_(False)) is False
    for bad in (0, 1, "yes", None):
        with pytest.raises(ValueError, match=r"must be a bool\. Got"):
            check_bool("O", "b", bad)
    assert check_choice("O", "m", "l2", options=("none", "l2")) == "l2"
    with pytest.raises(ValueError, match=r"must be one of 'none', 'l2'\. Got 'l1'\."):
        check_choice("O", "m", "l1", options=("none", "l2"))
    assert check_choice("O", "m", None, options=(None, "sigmoid")) is None
    with pytest.raises(ValueError):
        check_choice("O", "m", True, options=(1, 2))
    assert check_ints("O", "c", (3, np.int64(4)), low=1) == [3, 4]
    for bad in ((), [0], "12", 5, [1.0]):
        with pytest.raises(ValueError, match="'c' parameter of O must be a non-empty sequence of positive integers"):
            check_ints("O", "c", bad, low=1)
