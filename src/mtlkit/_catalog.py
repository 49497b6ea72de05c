"""The registries' entries read from the method files' source without importing them: what
``mtlkit list`` shows and what the config check without torch (:mod:`mtlkit.run.precheck`)
and the task kinds' names (:mod:`mtlkit.kinds`) read before torch loads.

Importing every registered method would load torch, scikit-learn and the optional packages
(7-11 s); the registry's entries are plain enough to be read from the source instead: each
file of a registry's package defines a class or function decorated with
``@REGISTRY.register()`` (the name is the file stem, or the decorator's argument), its
``paper`` (a string set in the class body, or ``obj.paper = "..."`` after a function) and the
parameters of its ``__init__`` (or of the function) with their defaults.

A file whose entry cannot be read this way (an inherited constructor, a default that is not
a literal ...) is imported instead, so the output is always the registry's own:
``tests/benchmarks/test_startup.py`` checks that both give the same listing.
"""

from __future__ import annotations

import ast
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CatalogEntry", "entries", "kind_names"]

_ROOT = Path(__file__).resolve().parent  # src/mtlkit

#: ``mtlkit list`` section -> (the registry's package, the registry's name in mtlkit._registry)
PACKAGES = {
    "architectures": ("mtlkit.architectures", "ARCHITECTURES"),
    "weightings": ("mtlkit.weighting", "WEIGHTINGS"),
    "aggregators": ("mtlkit.aggregation", "AGGREGATORS"),
    "samplers": ("mtlkit.data.samplers", "SAMPLERS"),
    "schedules": ("mtlkit.training.schedules", "SCHEDULES"),
    "auxiliary": ("mtlkit.auxiliary", "AUXILIARY"),
    "datasets": ("mtlkit.datasets", "DATASETS"),
}


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    paper: str
    params: dict[str, Any]


class _Unreadable(Exception):
    """The file's entry is not plain enough to be read from its source."""


#: the task kinds (``mtlkit list tasks``: names only)
KIND_PACKAGE = ("mtlkit.kinds", "KINDS")


def kind_names() -> list[str]:
    """The registered task kinds, sorted (as :func:`mtlkit.kinds.kind_names`)."""
    return [e.name for e in entries("tasks")]


def entries(section: str) -> list[CatalogEntry]:
    """The entries of one ``mtlkit list`` section (or ``"tasks"``), sorted by name."""
    package, registry = KIND_PACKAGE if section == "tasks" else PACKAGES[section]
    folder = _ROOT.joinpath(*package.split(".")[1:])
    source = _Source([*folder.glob("*.py"), _ROOT / "_params.py"])
    found: dict[str, CatalogEntry] = {}
    for path in sorted(folder.glob("*.py")):
        if path.stem.startswith("_"):
            continue
        try:
            read = source.entries(path, registry)
        except (_Unreadable, SyntaxError, ValueError, KeyError):
            read = _imported(f"{package}.{path.stem}", registry)
        found.update((e.name, e) for e in read)
    return [found[k] for k in sorted(found)]


#: bases outside the package whose constructors take no named parameter
_ROOTS = {"object", "Module", "ABC", "Generic", "Protocol"}


class _Source:
    """The classes and module-level constants of a registry's package (its private files
    included, where the base classes live)."""

    def __init__(self, paths: list[Path]) -> None:
        self.trees = {p: ast.parse(p.read_text(encoding="utf-8")) for p in paths if p.exists()}
        self.classes: dict[str, tuple[ast.ClassDef, dict[str, Any]]] = {}
        for tree in self.trees.values():
            consts = _constants(tree)
            for node in tree.body:
                if isinstance(node, ast.ClassDef):
                    self.classes.setdefault(node.name, (node, consts))

    def entries(self, path: Path, registry: str) -> list[CatalogEntry]:
        tree = self.trees[path]
        consts = _constants(tree)
        papers = _function_papers(tree, consts)
        out = []
        for node in tree.body:
            if not isinstance(node, (ast.ClassDef, ast.FunctionDef)):
                continue
            name = _registered_name(node, registry, path.stem)
            if name is None:
                continue
            if isinstance(node, ast.ClassDef):
                paper, params = self.lookup(node, consts, "paper"), self.lookup(node, consts, "__init__")
            else:
                paper, params = papers.get(node.name, ""), _params(node.args, consts, skip_first=False)
            out.append(CatalogEntry(name, paper, params))
        return out

    def lookup(self, node: ast.ClassDef, consts: dict[str, Any], what: str) -> Any:
        """The class's ``paper`` or constructor parameters, following its bases."""
        for stmt in node.body:
            if what == "__init__" and isinstance(stmt, ast.FunctionDef) and stmt.name == "__init__":
                return _params(stmt.args, consts, skip_first=True)
            if what == "paper" and _assigns(stmt, "paper"):
                return str(_literal(stmt.value, consts))  # type: ignore[attr-defined]
        for base in node.bases:
            name = base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", None)
            if name in self.classes:
                return self.lookup(*self.classes[name], what)
            if name in _ROOTS:
                continue
            raise _Unreadable(f"{node.name}: base {name}")
        return "" if what == "paper" else {}


def _assigns(stmt: ast.stmt, name: str) -> bool:
    target = stmt.targets[0] if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 else \
        stmt.target if isinstance(stmt, ast.AnnAssign) and stmt.value is not None else None
    return isinstance(target, ast.Name) and target.id == name


def _constants(tree: ast.Module) -> dict[str, Any]:
    """Module-level ``NAME = <literal>`` assignments."""
    out: dict[str, Any] = {}
    for stmt in tree.body:
        if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            target = stmt.targets[0] if isinstance(stmt, ast.Assign) else stmt.target
            if isinstance(target, ast.Name) and stmt.value is not None:
                try:
                    out[target.id] = _literal(stmt.value, out)
                except (ValueError, KeyError):
                    continue
    return out


def _literal(node: ast.expr, consts: dict[str, Any]) -> Any:
    """``ast.literal_eval`` that also reads the module's constants."""
    if isinstance(node, ast.Name) and node.id not in ("None", "True", "False"):
        return consts[node.id]  # KeyError: not a constant of the module
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):  # "..." + CONST
        return _literal(node.left, consts) + _literal(node.right, consts)
    return ast.literal_eval(node)


def _registered_name(node: ast.ClassDef | ast.FunctionDef, registry: str, stem: str) -> str | None:
    for deco in node.decorator_list:
        if (isinstance(deco, ast.Call) and isinstance(deco.func, ast.Attribute) and deco.func.attr == "register"
                and isinstance(deco.func.value, ast.Name) and deco.func.value.id == registry):
            if deco.args:
                return str(ast.literal_eval(deco.args[0]))
            return stem.lstrip("_")
    return None


def _function_papers(tree: ast.Module, consts: dict[str, Any]) -> dict[str, str]:
    """``fn.paper = ...`` statements at module level."""
    out = {}
    for stmt in tree.body:
        if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Attribute)
                and stmt.targets[0].attr == "paper" and isinstance(stmt.targets[0].value, ast.Name)):
            out[stmt.targets[0].value.id] = str(_literal(stmt.value, consts))
    return out


def _params(args: ast.arguments, consts: dict[str, Any], *, skip_first: bool) -> dict[str, Any]:
    """Parameter -> default (None without one), as ``inspect.signature`` lists them."""
    positional = [*args.posonlyargs, *args.args][1 if skip_first else 0:]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    out: dict[str, Any] = {}
    for a, d in [*zip(positional, defaults), *zip(args.kwonlyargs, args.kw_defaults)]:
        out[a.arg] = None if d is None else _literal(d, consts)  # ValueError/KeyError: not a literal
    return out


def _imported(module: str, registry: str) -> list[CatalogEntry]:
    """The file's entries as the registry holds them, after importing it."""
    reg = getattr(importlib.import_module("mtlkit._registry"), registry)
    importlib.import_module(module)
    stem = module.rsplit(".", 1)[-1]
    return [CatalogEntry(e.name, e.paper, e.parameters()) for e in reg._entries.values()
            if getattr(e.obj, "__module__", "").rsplit(".", 1)[-1] == stem]
