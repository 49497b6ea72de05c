"""The config's mistakes that can be found without torch, found before torch loads.

``mtlkit train`` reads a config in a fraction of a second, but its full check
(:func:`mtlkit.run.build.build_all`) builds every component the config names, and with them
imports torch and the method files (2-4 s). A misspelt method name, a misspelt parameter
or a parameter value out of range is found here instead, from the method files' source
(as ``mtlkit list`` reads them, :mod:`mtlkit._catalog`), in well under a second:

- a name (weighting, aggregator, schedule, sampler, architecture, trunk, dataset) is one a
  file registers with ``@REGISTRY.register()``;
- a parameter key is one its constructor (or loader function) takes;
- a value is checked by running the constructor's own check on it: a statement such as
  ``self.temperature = check_float("DWA", "temperature", temperature, low=0.0, low_open=True)``
  is run here with the value given, through the same :mod:`mtlkit._checks` function.

The full check promises every problem of the config in one error, and this one keeps that
promise: it answers only when it can vouch that it found every problem the full check would.
When a part of the config needs torch to be checked (the tasks, auxiliary generators, a
device other than ``cpu``/``auto``, a constructor that checks a value in other code, two
components whose fit needs them built) it stands aside (:func:`problems_without_torch`
returns ``None``) and the full check decides; so does a config without a problem here, whose
components the full check then builds. ``tests/run/test_precheck.py`` checks that both give
the same error.
"""

from __future__ import annotations

import ast
import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mtlkit._catalog import (
    _ROOT,
    _ROOTS,
    PACKAGES,
    _assigns,
    _constants,
    _literal,
    _registered_name,
    _Source,
)
from mtlkit.config import ConfigError

if TYPE_CHECKING:
    from mtlkit.config import RunConfig

__all__ = ["Problems", "UnknownNamesError", "plain_task_spec", "precheck", "problems_without_torch",
           "representation_problems", "task_name_problems", "unknown_key_message", "unknown_names"]


class UnknownNamesError(ConfigError, KeyError):
    """Every problem of the config is a name that is not registered (also a ``KeyError``, as a
    registry lookup is)."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


class Problems:
    """Problems found so far, each ``(field, message)``; raised together by :meth:`raise_all`."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []
        self.lookups = 0

    def add(self, where: str, message: str, *, lookup: bool = False) -> None:
        self.items.append((where, message))
        self.lookups += lookup

    def attempt(self, where: str, fn: Callable[[], Any]) -> Any:
        """``fn()``, or ``None`` with its error recorded under ``where``."""
        try:
            return fn()
        except KeyError as exc:
            self.add(where, str(exc.args[0]) if exc.args else str(exc), lookup=True)
        except (TypeError, ValueError) as exc:
            self.add(where, str(exc))
        return None

    def raise_all(self) -> None:
        if not self.items:
            return
        n = len(self.items)
        lines = [f"The config has {n} problem{'s' if n > 1 else ''} (nothing was loaded or written):"]
        lines += [f"  - {where}: {msg}" for where, msg in self.items]
        cls = UnknownNamesError if self.lookups == n else ConfigError
        raise cls("\n".join(lines))


def unknown_key_message(what: str, key: str, accepted: Sequence[str]) -> str:
    """The error for a parameter ``key`` that ``what`` (``"weighting 'dwa'"``) does not take."""
    close = difflib.get_close_matches(key, list(accepted), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else "."
    takes = f" It takes: {', '.join(accepted)}." if accepted else " It takes none."
    return f"{what} takes no parameter {key!r}{hint}{takes}"


def contrastive_needs_pairs(task: str) -> ValueError:
    """The error for a ``contrastive`` task under an architecture that does not read pairs."""
    return ValueError(f"Task {task!r} is kind 'contrastive': its output is the distance between the "
                      f"embeddings of the two inputs of a pair, which only the 'siamese' architecture "
                      f"computes. Use model.architecture: {{name: siamese}}.")


def representation_problems(*, level: str, jacobian_engine: str, aggregator: bool, weighting: str | None,
                            gradients_at: Any, representation: bool | None, model: str) -> list[tuple[str, str]]:
    """The settings that need one shared representation when the model (``model``, its class
    name) has none (``representation`` False; ``None``: only a built model can say)."""
    if representation is not False:
        return []
    out = []
    if aggregator and level == "representation":
        out.append(("training.level", f"level='representation' needs a model with a shared representation; "
                                      f"{model} has none. Use level='parameters'."))
    if jacobian_engine == "two-stage":
        out.append(("training.jacobian_engine", f"jacobian_engine='two-stage' pulls the task gradients back "
                                                f"through one shared representation; the model {model} has none. "
                                                f"Use 'loop' or 'batched'."))
    if weighting is not None and gradients_at == "representation":
        out.append(("training.weighting", f"{weighting} needs one shared representation that every task head "
                                          f"reads; the model {model} has none. Use hard_sharing, fusion or "
                                          f"siamese."))
    return out


def task_name_problems(monitor: str | None, stratify: str | None,
                       metrics: Mapping[str, Sequence[str] | None]) -> list[tuple[str, str]]:
    """The early-stopping monitor (``task`` or ``task:metric``) and the stratified split name
    tasks of ``metrics`` (task -> its metric names; ``None``: not known here)."""
    names = list(metrics)
    out = []
    if monitor:
        task, _, metric = monitor.partition(":")
        if task not in metrics:
            out.append(("training.monitor", f"The 'monitor' {monitor!r} names unknown task {task!r}; tasks are "
                                            f"{names}."))
        elif metric:
            known = metrics[task]
            if known is None:
                raise _Unsure
            if metric not in known:
                out.append(("training.monitor", f"The 'monitor' {monitor!r} names unknown metric {metric!r} of task "
                                                f"{task!r}; its metrics are {list(known)}."))
    if stratify is not None and stratify not in names:
        out.append(("data.split.stratify", f"split.stratify names unknown task {stratify!r}; tasks are {names}."))
    return out


def precheck(cfg: RunConfig) -> None:
    """Raise the config's problems in one :class:`~mtlkit.config.ConfigError` when they can
    all be found without torch; otherwise return (the full check then decides)."""
    found = problems_without_torch(cfg)
    if found is not None:
        found.raise_all()


def problems_without_torch(cfg: RunConfig) -> Problems | None:
    """Every problem of ``cfg``, found without torch; ``None`` when there is none or when
    only the full check can find them all."""
    p = Problems()
    try:
        _check(cfg, p)
    except (_Unsure, OSError, SyntaxError):
        return None
    return p if p.items else None


#: the components of a raw config whose names :func:`unknown_names` checks, and their registry
_NAMED = (("training.weighting", "weightings"), ("training.aggregator", "aggregators"),
          ("training.schedule", "schedules"), ("data.sampler", "samplers"),
          ("model.architecture", "architectures"), ("data.dataset", "datasets"))


def unknown_names(data: Mapping[str, Any], skip: Sequence[str] = ()) -> list[tuple[str, str]]:
    """The component names of a raw config (the mapping read from YAML, before its schema is
    validated) that no file registers, as ``(field, message)`` with the closest names, read
    from source like :func:`precheck`. A config whose schema is wrong reports these with its
    schema errors, so that a misspelt method is not found only once the schema is fixed.
    ``skip``: fields (and the fields under them) that already have a schema error."""
    def given(path: str) -> Any:
        node: Any = data
        for part in path.split("."):
            if not isinstance(node, Mapping):
                return None
            node = node.get(part)
        return node

    def skipped(where: str) -> bool:
        return any(where == s or where.startswith(s + ".") or s.startswith(where + ".") for s in skip)

    p = Problems()
    try:
        for where, section in _NAMED:
            value = given(where)
            name = value.get("name") if isinstance(value, Mapping) else value if where == "data.dataset" else None
            if isinstance(name, str) and not skipped(where):
                _registry(section).get(p, where, name)
        trunk = given("model.trunk")
        name = trunk.get("name") if isinstance(trunk, Mapping) else None
        if isinstance(name, str) and not skipped("model.trunk.name"):
            _trunk(p, name)
    except (_Unsure, OSError, SyntaxError):  # the source cannot vouch: the schema errors alone
        return []
    return p.items


# ---------------------------------------------------------------------------- the config
class _Unsure(Exception):
    """A part of the config only the full check (with torch) can vouch for."""


_COMPONENTS = (("weighting", "training.weighting", "weightings"), ("aggregator", "training.aggregator", "aggregators"),
               ("schedule", "training.schedule", "schedules"), ("sampler", "data.sampler", "samplers"))


def _check(cfg: RunConfig, p: Problems) -> None:
    """The problems :func:`~mtlkit.run.build.build_all` finds, in its order, or ``_Unsure``."""
    if cfg.auxiliary:  # generators are built by torch code
        raise _Unsure
    if cfg.training.device not in ("auto", "cpu"):  # whether a GPU is there: torch knows
        raise _Unsure
    t = cfg.training
    built: dict[str, _Entry | None] = {}
    for key, where, section in _COMPONENTS:
        comp = t.weighting if key == "weighting" else t.aggregator if key == "aggregator" else \
            t.schedule if key == "schedule" else cfg.data.sampler
        if comp is not None:
            built[key] = _component(p, where, _registry(section), comp.name, comp.params())
    valid = [k for k, e in built.items() if e is not None]
    if len(valid) > 1 or "schedule" in valid or "sampler" in valid:  # their fit needs them built
        raise _Unsure
    tasks = _plain_tasks(cfg)
    arch = _architecture(cfg, p, tasks)
    _data_source(cfg, p)
    if tasks is not None:
        for where, msg in task_name_problems(t.monitor, cfg.data.split.stratify, dict.fromkeys(tasks)):
            p.add(where, msg)
    if arch is not None:
        w = built.get("weighting")
        rep = arch.attribute("has_representation")  # a property: only a built model can say (None)
        rep = None if rep is _FUNCTION else rep
        gradients_at = w.attribute("gradients_at") if w is not None else None  # read from the built one
        if rep is _UNKNOWN or (rep is False and gradients_at in (_UNKNOWN, _FUNCTION)):
            raise _Unsure
        for where, msg in representation_problems(
                level=t.level, jacobian_engine=t.jacobian_engine, aggregator=built.get("aggregator") is not None,
                weighting=w.class_name if w is not None else None, gradients_at=gradients_at,
                representation=rep if isinstance(rep, bool) else None, model=arch.class_name):
            p.add(where, msg)
        pairs = [s.name for s in cfg.tasks or [] if s.kind == "contrastive"]
        if pairs and not isinstance(arch.node, ast.FunctionDef):  # a class that does not read pairs
            reads = arch.attribute("reads_pairs")
            if reads is _UNKNOWN or reads is _FUNCTION:
                raise _Unsure
            if not reads:
                p.add("model.architecture", str(contrastive_needs_pairs(pairs[0])))


def _component(p: Problems, where: str, reg: _SourceRegistry, name: str, params: dict[str, Any]) -> _Entry | None:
    """The entry named ``name`` when its name, keys and values are right (problems recorded)."""
    entry = reg.get(p, where, name)
    if entry is None:
        return None
    accepted = entry.accepted()
    unknown = [k for k in params if k not in accepted]
    for k in unknown:
        p.add(f"{where}.{k}", unknown_key_message(f"{reg.kind} {name!r}", k, accepted))
    if unknown:
        return None
    message = entry.first_bad_value(params)
    if message is not None:
        p.add(where, message)
        return None
    return entry


#: the task specs vouched for here: per kind, the fields a spec may set besides the common ones
#: (name, kind, role, weight, missing_value, columns) and whether they must be given. A
#: spec of such a kind is vouched for when it sets no other field and every value passes
#: :func:`plain_task_spec`'s checks (the ones ``Task`` makes; ``loss``: one of the kind's
#: ``losses``). ``tests/run/test_precheck.py`` builds every spec vouched for as a Task over a
#: grid of right and wrong values, and checks the losses against the kinds' own, so this
#: table cannot let through a spec the task kinds would reject.
_PLAIN_TASKS: dict[str, dict[str, bool]] = {
    "binary": {"positive_class": False, "classes": False, "loss": False},
    "regression": {"standardize": False, "dim": False, "loss": False},
    "multiclass": {"num_classes": True, "classes": False, "loss": False},
    "multilabel": {"num_labels": True, "loss": False},
    "contrastive": {"margin": False, "loss": False},
}
#: each kind's ``losses`` (mtlkit/kinds/<kind>.py)
_PLAIN_LOSSES = {"binary": ("bce",), "regression": ("mse", "l1", "huber"), "multiclass": ("cross_entropy",),
                 "multilabel": ("bce",), "contrastive": ("contrastive",)}
_COMMON_TASK_FIELDS = ("name", "kind", "role", "weight", "missing_value", "columns")


def plain_task_spec(spec: Mapping[str, Any]) -> bool:
    """Whether the task spec (``TaskConfig.model_dump()``) is one the task kinds accept for
    certain: a kind of ``_PLAIN_TASKS`` with only its fields set, each of a valid value."""
    import math

    kind = str(spec.get("kind"))
    fields = _PLAIN_TASKS.get(kind)
    if fields is None:
        return False
    defaults = {"dim": 1, "role": "primary"}
    for key, value in spec.items():
        if key not in _COMMON_TASK_FIELDS and key not in fields and value != defaults.get(key):
            return False
    given = {f for f, v in spec.items() if v is not None}
    if kind == "multiclass" and "classes" in given:
        given.add("num_classes")  # the number of classes named
    if any(required and f not in given for f, required in fields.items()):
        return False
    weight, margin = spec.get("weight"), spec.get("margin")
    if weight is not None and not (isinstance(weight, (int, float)) and math.isfinite(weight) and weight >= 0):
        return False
    if margin is not None and not (isinstance(margin, (int, float)) and math.isfinite(margin) and margin > 0):
        return False
    if spec.get("loss") is not None and spec["loss"] not in _PLAIN_LOSSES[kind]:
        return False
    sizes = {"num_classes": 2, "num_labels": 1, "dim": 1}  # the least each may be
    if any(spec.get(f) is not None and not _int_at_least(spec[f], sizes[f]) for f in sizes if f in fields):
        return False
    classes = spec.get("classes")
    if classes is not None and not _plain_classes(kind, classes, spec.get("num_classes"), spec.get("positive_class")):
        return False
    columns = spec.get("columns")
    # one label column, or one per output for the kinds that read several (regression: dim)
    width = {"multilabel": spec.get("num_labels"), "regression": spec.get("dim", 1)}.get(kind, 1)
    return columns is None or len(columns) == width


def _int_at_least(value: Any, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _plain_classes(kind: str, classes: Sequence[Any], num_classes: Any, positive: Any) -> bool:
    """``classes`` as ``Task`` accepts them: distinct (as strings); binary: two, the second
    one the ``positive_class`` when both are given; multiclass: at least two, as many as
    ``num_classes`` when it is given."""
    keys = [str(c) for c in classes]
    if len(set(keys)) != len(keys):
        return False
    if kind == "binary":
        return len(keys) == 2 and (positive is None or keys[1] == str(positive))
    return len(keys) >= 2 and (num_classes is None or num_classes == len(keys))


def _plain_tasks(cfg: RunConfig) -> list[str] | None:
    """The names of the config's tasks when every spec is plain (``_Unsure`` otherwise)."""
    if not cfg.tasks:
        return None
    specs = [t.model_dump() for t in cfg.tasks]
    names = [s["name"] for s in specs]
    if not all(plain_task_spec(s) for s in specs) or len(set(names)) != len(names):
        raise _Unsure
    return names


def _architecture(cfg: RunConfig, p: Problems, tasks: list[str] | None) -> _Entry | None:
    """The architecture (its name; its parameter names when the tasks are known) and the
    trunk (name and parameter names)."""
    arch = _registry("architectures").get(p, "model.architecture", cfg.model.architecture.name)
    if arch is not None and tasks is not None:
        accepted = [k for k in arch.accepted() if k not in ("trunk", "tasks", "input_shape")]
        for k in cfg.model.architecture.params():
            if k not in accepted:
                p.add(f"model.architecture.{k}",
                      unknown_key_message(f"model.architecture {cfg.model.architecture.name!r}", k, accepted))
    trunk = cfg.model.trunk
    if trunk is not None:
        if "decoder" in trunk:
            raise _Unsure
        name = trunk.get("name")
        entry = _trunk(p, name)
        if entry is not None:
            accepted = entry.accepted()
            for k in trunk:
                if k not in ("name", "decoder") and k not in accepted:
                    p.add(f"model.trunk.{k}", unknown_key_message(f"trunk {name!r}", k, accepted))
    return arch


def _data_source(cfg: RunConfig, p: Problems) -> None:
    d = cfg.data
    if d.in_memory:
        return
    if d.dataset is not None:
        loader = _registry("datasets").get(p, "data.dataset", d.dataset)
        if loader is not None:
            accepted = loader.accepted()
            for k in d.options:
                if k not in accepted:
                    p.add(f"data.options.{k}", unknown_key_message(f"dataset {d.dataset!r}", k, accepted))
    elif d.path is not None and not Path(d.path).exists():
        p.add("data.path", f"Data file not found: {d.path!r}.")


# ---------------------------------------------------------------------------- the source
_UNKNOWN = object()  # a class attribute that is not a literal
_FUNCTION = object()  # a class attribute that is a method or a property
#: torch.nn.Module's own methods, which check nothing of the parameters
_MODULE_METHODS = ("register_buffer", "register_parameter", "add_module")
_CHECKS = ("check_int", "check_float", "check_bool", "check_choice", "check_ints")  # mtlkit._checks


@dataclass
class _Entry:
    """One registered class or function, read from its file."""

    node: ast.ClassDef | ast.FunctionDef
    consts: dict[str, Any]
    classes: Mapping[str, tuple[ast.ClassDef, dict[str, Any]]]

    @property
    def class_name(self) -> str:
        return self.node.name

    def _constructor(self) -> tuple[ast.FunctionDef | None, dict[str, Any]]:
        """The ``__init__`` (or the function) and its file's constants; ``(None, ...)``: a
        class whose constructor takes nothing."""
        if isinstance(self.node, ast.FunctionDef):
            return self.node, self.consts
        for node, consts in self._mro():
            for stmt in node.body:
                if isinstance(stmt, ast.FunctionDef) and stmt.name == "__init__":
                    return stmt, consts
        return None, self.consts

    def _mro(self) -> list[tuple[ast.ClassDef, dict[str, Any]]]:
        """The class and its bases (depth first, as far as the package defines them)."""
        out: list[tuple[ast.ClassDef, dict[str, Any]]] = []
        todo: list[tuple[ast.ClassDef, dict[str, Any]]] = [(self.node, self.consts)]  # type: ignore[list-item]
        while todo:
            node, consts = todo.pop(0)
            if any(not _is_register(d) for d in node.decorator_list):  # a dataclass ...: its own constructor
                raise _Unsure
            out.append((node, consts))
            for base in node.bases:
                name = str(base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", ""))
                if name in self.classes:
                    todo.append(self.classes[name])
                elif name not in _ROOTS:
                    raise _Unsure
        return out

    def _positional(self) -> tuple[ast.FunctionDef | None, list[ast.arg], list[ast.expr | None]]:
        fn, _ = self._constructor()
        if fn is None:
            return None, [], []
        a = fn.args
        if a.posonlyargs or a.vararg is not None:
            raise _Unsure
        positional = a.args[1:] if isinstance(self.node, ast.ClassDef) else a.args
        defaults: list[ast.expr | None] = [None] * (len(positional) - len(a.defaults)) + list(a.defaults)
        return fn, [*positional, *a.kwonlyargs], [*defaults, *a.kw_defaults]

    def accepted(self) -> list[str]:
        """The keyword names the constructor takes (``_Unsure`` with ``**kwargs``)."""
        fn, args, _ = self._positional()
        if fn is not None and fn.args.kwarg is not None:
            raise _Unsure
        return [a.arg for a in args]

    def attribute(self, name: str) -> Any:
        """A class attribute's literal value (``None`` when no class sets it, ``_FUNCTION`` for a
        method or property, ``_UNKNOWN`` for another expression)."""
        if isinstance(self.node, ast.FunctionDef):
            return None
        for node, consts in self._mro():
            for stmt in node.body:
                if isinstance(stmt, ast.FunctionDef) and stmt.name == name:
                    return _FUNCTION
                if _assigns(stmt, name):
                    try:
                        return _literal(stmt.value, consts)  # type: ignore[attr-defined]
                    except (ValueError, KeyError):
                        return _UNKNOWN
        return None

    def first_bad_value(self, params: Mapping[str, Any]) -> str | None:
        """The error the constructor raises for ``params`` (its first failing check), or
        ``None``; ``_Unsure`` when the constructor could reject them in code not run here."""
        fn, args, defaults = self._positional()
        missing = [a.arg for a, d in zip(args, defaults) if d is None and a.arg not in params]
        if missing:  # the full check says which: "missing ... argument"
            raise _Unsure
        if fn is None or not params:
            return None
        checks = _value_checks(fn, self._constructor()[1], set(params))
        from mtlkit import _checks

        for param, function, owner, label, options in checks:
            try:
                getattr(_checks, function)(owner, label, params[param], **options)
            except (TypeError, ValueError) as exc:
                return str(exc)
        return None


def _value_checks(fn: ast.FunctionDef, consts: dict[str, Any], given: set[str]) -> list[tuple[str, str, str, str,
                                                                                               dict[str, Any]]]:
    """The constructor's checks of the given parameters, in source order: ``(parameter, check
    function, owner, label, options)``. ``_Unsure`` when it could reject a given value
    elsewhere: a ``raise``, a method of ``self`` called, a given parameter used other than
    checked or stored as it is (``self.x = x``)."""
    harmless: set[int] = set()
    checks: list[tuple[int, int, tuple[str, str, str, str, dict[str, Any]]]] = []
    for node in ast.walk(fn):
        if isinstance(node, ast.Raise):
            raise _Unsure
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Name)
                and all(isinstance(t, ast.Attribute) and getattr(t.value, "id", None) == "self" for t in node.targets)):
            harmless.add(id(node.value))  # self.x = x
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        if (isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id == "self"
                and f.attr not in _MODULE_METHODS):
            raise _Unsure  # a method may check
        if not (isinstance(f, ast.Name) and f.id in _CHECKS and len(node.args) == 3
                and isinstance(node.args[2], ast.Name) and node.args[2].id in given):
            continue
        try:
            owner, label = _literal(node.args[0], consts), _literal(node.args[1], consts)
            options = {k.arg: _literal(k.value, consts) for k in node.keywords if k.arg is not None}
        except (ValueError, KeyError, TypeError):
            continue  # not a literal check: the parameter stays unchecked here
        if len(options) != len(node.keywords):
            continue
        harmless.add(id(node.args[2]))
        checks.append((node.lineno, node.col_offset, (node.args[2].id, f.id, str(owner), str(label), options)))
    for node in ast.walk(fn):
        if isinstance(node, ast.Name) and node.id in given and id(node) not in harmless:
            raise _Unsure
    return [c for _, _, c in sorted(checks, key=lambda c: (c[0], c[1]))]


class _SourceRegistry:
    """One registry's entries, read from its package's files."""

    def __init__(self, section: str) -> None:
        from mtlkit import _registry

        package, registry = PACKAGES[section]
        self.kind = getattr(_registry, registry).kind
        folder = _ROOT.joinpath(*package.split(".")[1:])
        paths = sorted(folder.glob("*.py"))
        source = _Source([*paths, _ROOT / "_params.py"])
        self.entries: dict[str, _Entry] = {}
        for path in paths:
            if path.stem.startswith("_"):
                continue
            tree = source.trees[path]
            consts = _constants(tree)
            for node in tree.body:
                if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
                    name = _registered_name(node, registry, path.stem)
                    if name is not None:
                        self.entries[name] = _Entry(node, consts, source.classes)

    def get(self, p: Problems, where: str, name: str) -> _Entry | None:
        key = str(name).lower()
        if key in self.entries:
            return self.entries[key]
        from mtlkit._registry import unknown_name_message

        p.add(where, unknown_name_message(self.kind, name, self.entries), lookup=True)
        return None


@cache
def _registry(section: str) -> _SourceRegistry:
    return _SourceRegistry(section)


def _trunk(p: Problems, name: Any) -> _Entry | None:
    """The stock trunk named ``name``, or None with the unknown name recorded."""
    trunks = _trunks()
    if name in trunks:
        return trunks[name]
    from mtlkit._registry import unknown_name_message

    p.add("model.trunk.name", unknown_name_message("trunk", str(name), trunks), lookup=True)
    return None


def _trunks() -> dict[str, _Entry]:
    """The stock trunks (``TRUNKS`` of architectures/backbones.py with the text trunks'
    ``TEXT_TRUNK_BUILDERS``), read from source."""
    out: dict[str, _Entry] = {}
    for file, name in (("backbones.py", "TRUNKS"), ("text.py", "TEXT_TRUNK_BUILDERS")):
        tree = ast.parse((_ROOT / "architectures" / file).read_text(encoding="utf-8"))
        functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
        table = next((s.value for s in tree.body if _assigns(s, name)), None)  # type: ignore[attr-defined]
        if not isinstance(table, ast.Dict):
            raise _Unsure
        for k, v in zip(table.keys, table.values):
            if not (isinstance(k, ast.Constant) and isinstance(v, ast.Name) and v.id in functions):
                raise _Unsure
            out[str(k.value)] = _Entry(functions[v.id], _constants(tree), {})
    return out


def _is_register(deco: ast.expr) -> bool:
    return isinstance(deco, ast.Call) and isinstance(deco.func, ast.Attribute) and deco.func.attr == "register"

