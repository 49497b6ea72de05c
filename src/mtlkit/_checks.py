"""One family of constructor-parameter checks, shared by every component.

Every check takes ``(owner, name, value, *, options)`` — the class or function the parameter
belongs to, the parameter's name, the value given, then keyword-only constraints — returns
the value (normalised: ``int``, ``float``, ``bool``) and otherwise raises a ``ValueError``
in the words of the style guide::

    The 'c' parameter of CAGrad must be a non-negative float. Got -1.0.

The description of the valid values ("a non-negative float", "a float in [0, 1)", "a
positive integer or None" ...) is derived from the constraints; ``what=`` replaces it where
a parameter needs more words (e.g. "a float in [0, 1] (or a sequence of them)").

>>> check_float("CAGrad", "c", -1.0, low=0.0)
Traceback (most recent call last):
...
ValueError: The 'c' parameter of CAGrad must be a non-negative float. Got -1.0.
>>> check_int("MMoE", "num_experts", 4, low=1)
4
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from typing import Any, Literal, TypeVar, cast, overload

import numpy as np

T = TypeVar("T")


def fail(owner: str, name: str, value: Any, what: str) -> ValueError:
    """The error for ``value`` of the parameter ``name`` of ``owner``, which must be ``what``."""
    return ValueError(f"The '{name}' parameter of {owner} must be {what}. Got {value!r}.")


def _num(x: float) -> str:
    return f"{x:g}"


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _int_what(low: int | None, high: int | None) -> str:
    if low is not None and high is not None:
        return f"an integer in [{low}, {high}]"
    if low == 1:
        return "a positive integer"
    if low == 0:
        return "a non-negative integer"
    if low is not None:
        return f"an integer >= {low}"
    if high is not None:
        return f"an integer <= {high}"
    return "an integer"


def _float_what(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f"a float in {'(' if low_open else '['}{_num(low)}, {_num(high)}{')' if high_open else ']'}"
    if low == 0:
        return "a positive float" if low_open else "a non-negative float"
    if low is not None:
        return f"a float {'>' if low_open else '>='} {_num(low)}"
    if high is not None:
        return f"a float {'<' if high_open else '<='} {_num(high)}"
    return "a finite float"


@overload
def check_int(owner: str, name: str, value: Any, *, low: int | None = ..., high: int | None = ...,
              none_ok: Literal[False] = ..., what: str | None = ...) -> int: ...


@overload
def check_int(owner: str, name: str, value: Any, *, low: int | None = ..., high: int | None = ...,
              none_ok: Literal[True], what: str | None = ...) -> int | None: ...


def check_int(owner: str, name: str, value: Any, *, low: int | None = None, high: int | None = None,
              none_ok: bool = False, what: str | None = None) -> int | None:
    """An integer (Python or NumPy, not a bool) in ``[low, high]`` (either bound optional);
    ``None`` too when ``none_ok``.

    >>> check_int("Std", "ddof", -1, low=0)
    Traceback (most recent call last):
    ...
    ValueError: The 'ddof' parameter of Std must be a non-negative integer. Got -1.
    """
    if value is None and none_ok:
        return None
    ok = _is_int(value) and (low is None or value >= low) and (high is None or value <= high)
    if not ok:
        desc = what or _int_what(low, high) + (" or None" if none_ok else "")
        raise fail(owner, name, value, desc)
    return int(value)


@overload
def check_float(owner: str, name: str, value: Any, *, low: float | None = ..., high: float | None = ...,
                low_open: bool = ..., high_open: bool = ..., inf_ok: bool = ...,
                none_ok: Literal[False] = ..., what: str | None = ...) -> float: ...


@overload
def check_float(owner: str, name: str, value: Any, *, low: float | None = ..., high: float | None = ...,
                low_open: bool = ..., high_open: bool = ..., inf_ok: bool = ...,
                none_ok: Literal[True], what: str | None = ...) -> float | None: ...


def check_float(owner: str, name: str, value: Any, *, low: float | None = None, high: float | None = None,
                low_open: bool = False, high_open: bool = False, inf_ok: bool = False,
                none_ok: bool = False, what: str | None = None) -> float | None:
    """A real number (an int is accepted, a bool is not) within the bounds, each closed
    unless ``low_open`` / ``high_open``. NaN never passes; ±inf only with ``inf_ok`` (and
    within the bounds). ``None`` too when ``none_ok``.

    >>> check_float("CrossStitch", "share", 1.0, low=0.0, high=1.0, high_open=True)
    Traceback (most recent call last):
    ...
    ValueError: The 'share' parameter of CrossStitch must be a float in [0, 1). Got 1.0.
    """
    if value is None and none_ok:
        return None
    ok = _is_real(value) and not math.isnan(value) and (inf_ok or math.isfinite(value))
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        desc = what or _float_what(low, high, low_open, high_open) + (" or None" if none_ok else "")
        raise fail(owner, name, value, desc)
    return float(value)


def check_bool(owner: str, name: str, value: Any) -> bool:
    """``True`` or ``False`` (a NumPy bool too; not 0/1 or a string).

    >>> check_bool("Kurtosis", "fisher", "yes")
    Traceback (most recent call last):
    ...
    ValueError: The 'fisher' parameter of Kurtosis must be a bool. Got 'yes'.
    """
    if not isinstance(value, (bool, np.bool_)):
        raise fail(owner, name, value, "a bool")
    return bool(value)


def check_choice(owner: str, name: str, value: T, *, options: Sequence[Any], what: str | None = None) -> T:
    """One of ``options``: equal and of the same type (``True`` is not ``1``; a ``str``
    subclass such as ``numpy.str_`` matches a string option). Returns the option itself.

    >>> check_choice("MGDA", "normalization", "l1", options=("none", "l2"))
    Traceback (most recent call last):
    ...
    ValueError: The 'normalization' parameter of MGDA must be one of 'none', 'l2'. Got 'l1'.
    """
    for o in options:
        if (type(value) is type(o) or (isinstance(o, str) and isinstance(value, str))) and value == o:
            return cast(T, o)
    raise fail(owner, name, value, what or "one of " + ", ".join(repr(o) for o in options))


def check_ints(owner: str, name: str, value: Any, *, low: int | None = None, min_length: int = 1,
               what: str | None = None) -> list[int]:
    """A sequence (any iterable but a string) of at least ``min_length`` integers, each >= ``low``.

    >>> check_ints("ConvDecoder1d", "channels", (), low=1)
    Traceback (most recent call last):
    ...
    ValueError: The 'channels' parameter of ConvDecoder1d must be a non-empty sequence of positive integers. Got ().
    """
    items = list(value) if isinstance(value, Iterable) and not isinstance(value, (str, bytes)) else None
    if items is None or len(items) < min_length or not all(
            _is_int(v) and (low is None or v >= low) for v in items):
        each = {None: "integers", 0: "non-negative integers", 1: "positive integers"}.get(
            low, f"integers >= {low}")
        size = "a non-empty sequence" if min_length == 1 else (
            "a sequence" if min_length <= 0 else f"a sequence of at least {min_length}")
        raise fail(owner, name, value, what or f"{size} of {each}")
    return [int(v) for v in items]
