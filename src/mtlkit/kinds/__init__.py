"""Task kinds as objects: one file per kind, each registered in :data:`mtlkit._registry.KINDS`.

``Task("y", "binary").task_kind`` is the :class:`~mtlkit.kinds._base.TaskKind` registered
under ``"binary"`` (the file ``mtlkit/kinds/binary.py``). How to add a kind: see
:mod:`mtlkit.kinds._base`.

This package module imports neither torch nor the kind files, so run configs
(:mod:`mtlkit.config`) can name the registered kinds cheaply; the kinds load on the first
lookup.

>>> get_kind("multiclass").main_metric
'accuracy'
>>> "binary" in kind_names() and "segmentation" in kind_names()
True
"""

from __future__ import annotations

import difflib
import functools
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

from mtlkit._registry import KINDS

if TYPE_CHECKING:
    from mtlkit.kinds._base import Metric, TaskKind

__all__ = ["KindName", "Metric", "TaskKind", "UnknownKindError", "check_kind_name", "get_kind",
           "kind_names", "unknown_kind_hint"]


class UnknownKindError(ValueError):
    """A task kind that is not registered in :data:`mtlkit._registry.KINDS`."""


def kind_names() -> list[str]:
    """The registered task kinds, sorted."""
    return KINDS.names()


def unknown_kind_hint(kind: object) -> str:
    """`` Did you mean 'x'? Known kinds: a, b, ...`` for an unregistered ``kind``."""
    names = kind_names()
    close = difflib.get_close_matches(kind, names, n=1) if isinstance(kind, str) else []
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"{hint} Known kinds: {', '.join(names)}."


_INSTANCES: dict[tuple[str, type], TaskKind] = {}


def get_kind(name: str) -> TaskKind:
    """The kind object registered under ``name`` (one shared instance per kind).

    >>> get_kind("multiclas")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    mtlkit.kinds.UnknownKindError: Unknown task kind 'multiclas'. Did you mean 'multiclass'? Known kinds: ...
    """
    if not isinstance(name, str) or name not in KINDS:
        raise UnknownKindError(f"Unknown task kind {name!r}.{unknown_kind_hint(name)}")
    cls = KINDS.get(name)
    key = (name, cls)
    obj = _INSTANCES.get(key)
    if obj is None:
        obj = _INSTANCES[key] = cls(name)
    return obj


def _shipped(name: str) -> bool:
    """Whether ``name`` is a kind mtlkit ships, read from the kinds' source (``mtlkit list``'s
    way) while the registry is not loaded: loading it imports torch, and a config is read
    before torch is needed (a typo in it is reported in a fraction of a second). A kind
    registered elsewhere is found by the registry."""
    return not KINDS._loaded and name in _shipped_names()


@functools.cache
def _shipped_names() -> frozenset[str]:
    from mtlkit._catalog import kind_names as shipped_names

    return frozenset(shipped_names())


def check_kind_name(value: Any) -> Any:
    """Pydantic check of a config's ``kind``: a registered kind name, reported like a
    ``Literal`` of the registered names (field + allowed values)."""
    if isinstance(value, str) and (_shipped(value) or value in KINDS):
        return value
    names = kind_names()
    expected = " or ".join([", ".join(repr(n) for n in names[:-1]), repr(names[-1])]) \
        if len(names) > 1 else ", ".join(repr(n) for n in names)
    close = difflib.get_close_matches(value, names, n=1) if isinstance(value, str) else []
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise PydanticCustomError("literal_error", "Input should be {expected}{hint}",
                              {"expected": expected, "hint": hint})


#: a config field holding a task kind: any name registered in :data:`mtlkit._registry.KINDS`
KindName = Annotated[str, BeforeValidator(check_kind_name)]


def __getattr__(name: str) -> Any:  # PEP 562: TaskKind and Metric without importing torch early
    if name in ("TaskKind", "Metric"):
        from mtlkit.kinds import _base

        return getattr(_base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
