"""Name -> class registries for pluggable components.

Each method registers under its module's file stem (``mtlkit/aggregation/pcgrad.py`` ->
``"pcgrad"``), so configs, the CLI (``mtlkit list``) and the conformance tests find a new
method without further edits.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import pkgutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """Raised for a registry lookup of a name that is not registered."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


@dataclass(frozen=True)
class Entry:
    name: str
    obj: Any
    kind: str

    @property
    def paper(self) -> str:
        return getattr(self.obj, "paper", "") or ""

    @property
    def summary(self) -> str:
        doc = inspect.getdoc(self.obj) or ""
        return doc.splitlines()[0] if doc else ""

    def parameters(self) -> dict[str, Any]:
        """Keyword parameters of the constructor with their defaults."""
        try:
            sig = inspect.signature(self.obj)
        except (TypeError, ValueError):
            return {}
        out: dict[str, Any] = {}
        for p in sig.parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            out[p.name] = None if p.default is inspect.Parameter.empty else p.default
        return out


class Registry:
    """A registry of one kind of component (``"aggregator"``, ``"weighting"`` ...).

    ``package`` is the dotted package whose modules are imported on first lookup, so a
    method file registers itself simply by existing.
    """

    def __init__(self, kind: str, package: str | None = None) -> None:
        self.kind = kind
        self.package = package
        self._entries: dict[str, Entry] = {}
        self._loaded = package is None

    def register(self, name: str | None = None) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            key = name or _stem_of(obj)
            if key in self._entries and self._entries[key].obj is not obj:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
            self._entries[key] = Entry(key, obj, self.kind)
            return obj

        return deco

    def _load(self) -> None:
        if self._loaded or self.package is None:
            return
        self._loaded = True
        pkg = importlib.import_module(self.package)
        for info in pkgutil.iter_modules(pkg.__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{self.package}.{info.name}")

    def names(self) -> list[str]:
        self._load()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __iter__(self) -> Iterator[Entry]:
        self._load()
        return iter(self._entries[k] for k in sorted(self._entries))

    def get(self, name: str) -> Any:
        self._load()
        key = str(name).lower()
        if key not in self._entries:
            raise UnknownNameError(unknown_name_message(self.kind, name, self._entries))
        return self._entries[key].obj

    def build(self, name: str, /, **params: Any) -> Any:
        cls = self.get(name)
        try:
            return cls(**params)
        except TypeError as exc:
            raise TypeError(f"Cannot build {self.kind} {name!r} with {params}: {exc}") from exc


def unknown_name_message(kind: str, name: str, known: Iterable[str]) -> str:
    """The error for a name that is not registered (with the closest registered one); the
    registry's own and :mod:`mtlkit.run.precheck`'s, which reads the names from source."""
    known = sorted(known)
    close = difflib.get_close_matches(str(name).lower(), known, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"Unknown {kind} {name!r}.{hint} Known: {', '.join(known)}."


def _stem_of(obj: Any) -> str:
    module = getattr(obj, "__module__", "")
    return module.rsplit(".", 1)[-1].lstrip("_")


AGGREGATORS = Registry("aggregator", "mtlkit.aggregation")
WEIGHTINGS = Registry("weighting", "mtlkit.weighting")
ARCHITECTURES = Registry("architecture", "mtlkit.architectures")
SAMPLERS = Registry("sampler", "mtlkit.data.samplers")
SCHEDULES = Registry("schedule", "mtlkit.training.schedules")
AUXILIARY = Registry("auxiliary generator", "mtlkit.auxiliary")
DATASETS = Registry("dataset", "mtlkit.datasets")
KINDS = Registry("task kind", "mtlkit.kinds")
