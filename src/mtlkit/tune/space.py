"""The search space of ``mtlkit tune``: what a config's ``search:`` section marks searchable.

Each key is a dotted path into the config, each value says what the path may take::

    search:
      training.weighting.name: {choices: [equal, uncertainty, dwa]}
      training.weighting.temperature: {low: 1.0, high: 4.0, when: {training.weighting.name: dwa}}
      training.optimizer.lr: {low: 1.0e-4, high: 1.0e-2, log: true}
      tasks.aux.weight: {low: 0.01, high: 1.0, log: true}
      model.architecture.split_at: {choices: [1, 2]}

* ``choices``: a non-empty list of values (a value may be a mapping, e.g. a whole component
  ``{name: dwa, temperature: 2.0}``); Optuna's categorical distribution.
* ``low``/``high`` (numbers, ``low <= high``), optional ``log: true`` (then ``low > 0``) and
  ``step``: a float range, or an integer range when ``low`` and ``high`` are both integers.
* ``when``: ``{path: value or [values]}``: the parameter is searched only in trials whose
  config has that value at that path (a method's hyperparameter is searched only when that
  method is chosen). Parameters are set in the order they are written, so a condition reads
  the values of the parameters above it.

Paths start at ``training``, ``model``, ``tasks`` or ``auxiliary``; a list is indexed by
position or by the ``name`` of a task (``tasks.aux.weight``) or the ``generator`` of an
auxiliary entry (``auxiliary.fourier.weight``). A path may end in a key the config does not
set only where the config names a component (``training.weighting``, ``training.aggregator``,
``training.schedule``, ``model.architecture``, ``model.trunk``, an auxiliary generator): the
key is then one of that component's keyword parameters. ``data``, ``seed`` and ``seeds`` are
not searchable: trials must share one split and one seed for their validation scores to
compare.

:meth:`SearchSpace.from_config` checks all of this, and builds every choice and both ends of
every range into a config checked as ``mtlkit train`` checks it, before any trial runs; all
problems are reported at once (:class:`SearchSpaceError`), each naming its parameter.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mtlkit._text import plural
from mtlkit.config import ConfigError

if TYPE_CHECKING:
    from mtlkit.config import RunConfig

__all__ = ["Param", "SearchSpace", "SearchSpaceError"]

_ROOTS = ("training", "model", "tasks", "auxiliary")
_NOT_SEARCHABLE = {
    "data": "the data and its split must be the same in every trial (their validation scores must compare)",
    "seed": "every trial uses the config's seed (retrain the best config over seeds with --seeds)",
    "seeds": "trials use one seed; the best config is retrained over --seeds",
    "name": "it is not a hyperparameter", "baselines": "it is not a hyperparameter",
    "tracking": "it is not a hyperparameter", "search": "it is the search space itself",
    "tune": "it configures the search itself",
}
#: config sections that name a component: a path may end in one of its keyword parameters
_OPEN = ("training.weighting", "training.aggregator", "training.schedule", "model.architecture", "model.trunk")
_SPEC_KEYS = {"choices", "low", "high", "log", "step", "when"}
_PRIMITIVE = (str, int, float, bool, type(None))


class SearchSpaceError(ConfigError):
    """The ``search:`` section is invalid; the message names every wrong parameter."""


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@dataclass(frozen=True)
class Param:
    """One searchable parameter: ``choices`` or a ``low``..``high`` range, searched only
    when every condition of ``when`` holds (``{path: allowed values}``)."""

    path: str
    choices: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    when: dict[str, tuple[Any, ...]] = field(default_factory=dict)

    @property
    def is_int(self) -> bool:
        return isinstance(self.low, int) and isinstance(self.high, int) and (self.step is None
                                                                             or isinstance(self.step, int))

    def _encoded(self) -> list[Any]:
        """Optuna's categorical choices: primitives as they are, mappings and lists as JSON."""
        assert self.choices is not None
        return [c if isinstance(c, _PRIMITIVE) else json.dumps(c, sort_keys=True) for c in self.choices]

    def decode(self, value: Any) -> Any:
        """The config value of Optuna's stored value (inverse of the JSON encoding)."""
        if self.choices is None:
            return value
        for raw, enc in zip(self.choices, self._encoded()):
            if enc == value and type(enc) is type(value):
                return copy.deepcopy(raw)
        return value

    def suggest(self, trial: Any) -> Any:
        """A value from an Optuna trial (``trial.suggest_*``), as the config takes it."""
        if self.choices is not None:
            return self.decode(trial.suggest_categorical(self.path, self._encoded()))
        assert self.low is not None and self.high is not None
        if self.is_int:
            return trial.suggest_int(self.path, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.path, float(self.low), float(self.high), step=self.step, log=self.log)

    def candidates(self) -> list[Any]:
        """Every choice, or both ends of the range (what the space check builds)."""
        if self.choices is not None:
            return [copy.deepcopy(c) for c in self.choices]
        return [self.low] if self.low == self.high else [self.low, self.high]

    def applies(self, config: Mapping[str, Any]) -> bool:
        """Whether the ``when`` conditions hold in ``config`` (a dumped config dict)."""
        for path, allowed in self.when.items():
            try:
                value = _get(config, path.split("."))
            except KeyError:
                return False
            if value not in allowed:
                return False
        return True


@dataclass
class SearchSpace:
    """The checked parameters of a config's ``search:`` section, in the order written."""

    params: list[Param]

    @property
    def names(self) -> list[str]:
        return [p.path for p in self.params]

    @classmethod
    def from_config(cls, cfg: RunConfig, *, check_builds: bool = True) -> SearchSpace:
        """The search space of ``cfg.search``; a :class:`SearchSpaceError` listing every problem
        (no searchable parameter, a wrong type, an empty range, an unknown path, a value the
        config or its components refuse)."""
        raw = cfg.search
        if not raw:
            raise SearchSpaceError("The config has no searchable parameter: add a 'search:' section, e.g. "
                                   "search: {training.optimizer.lr: {low: 1.0e-4, high: 1.0e-2, log: true}}.")
        if not isinstance(raw, Mapping):
            raise SearchSpaceError(f"'search' must be a mapping of dotted paths to ranges; got {type(raw).__name__}.")
        base = cfg.model_dump(mode="json")
        problems: list[str] = []
        params: list[Param] = []
        for path, spec in raw.items():
            param, errs = _parse_param(str(path), spec, base)
            problems += errs
            if param is not None:
                problems += _check_conditions(param, base, [p.path for p in params])
                params.append(param)
        space = cls(params)
        if not problems and check_builds:
            problems += space._check_values(cfg)
        if problems:
            raise SearchSpaceError(f"Invalid search space: {plural(len(problems), 'problem')} (nothing was run)\n"
                                   + "\n".join(f"  - {p}" for p in problems))
        return space

    def apply(self, base: Mapping[str, Any], choose: Callable[[Param], Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """``base`` (a dumped config) with each applicable parameter set to ``choose(param)``;
        returns the new config dict and the values set (by path)."""
        out = copy.deepcopy(dict(base))
        chosen: dict[str, Any] = {}
        for p in self.params:
            if not p.applies(out):
                continue
            value = choose(p)
            _set(out, p.path.split("."), value)
            chosen[p.path] = value
        return out, chosen

    def _check_values(self, cfg: RunConfig) -> list[str]:
        """Build every choice and both ends of every range (the other parameters at their
        first choice / low end) into a config and check it as ``mtlkit train`` does."""
        from mtlkit.config import parse_config

        base = _plain(cfg)
        first = {p.path: p.candidates()[0] for p in self.params}
        problems: list[str] = []
        for p in self.params:
            for value in p.candidates():
                picks = {**first, p.path: value}
                data, chosen = self.apply(base, _picker(picks))
                if p.path not in chosen:
                    continue  # its condition does not hold with the other parameters' first values
                try:
                    trial_cfg = parse_config(data, source="(a trial of the search space)")
                    _validate(trial_cfg)
                except (ConfigError, ValueError, KeyError, TypeError) as exc:
                    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
                    problems.append(f"{p.path}: the value {value!r} gives an invalid config: "
                                    + " ".join(text.split()))
                    break
        return problems


def _picker(picks: Mapping[str, Any]) -> Callable[[Param], Any]:
    return lambda q: copy.deepcopy(picks[q.path])


def _validate(cfg: RunConfig) -> None:
    from mtlkit.run.build import validate

    validate(cfg)


def _plain(cfg: RunConfig) -> dict[str, Any]:
    """The config as a dict for trials (without its search and tune sections)."""
    data = cfg.model_dump(mode="json")
    data["search"] = None
    data["tune"] = None
    data["seeds"] = None
    return data


# ---------------------------------------------------------------------------------- parsing
def _parse_param(path: str, spec: Any, base: Mapping[str, Any]) -> tuple[Param | None, list[str]]:
    """One ``search:`` entry checked: its path, its keys and their types."""
    errs = _check_path(path, base)
    if not isinstance(spec, Mapping):
        return None, [*errs, f"{path}: must be a mapping such as {{choices: [a, b]}} or {{low: 0.1, high: 1.0}}; "
                                   f"got {spec!r}."]
    unknown = sorted(set(map(str, spec)) - _SPEC_KEYS)
    if unknown:
        errs.append(f"{path}: unknown key(s) {unknown}; a parameter takes choices, or low/high with optional "
                    f"log and step, and optionally when.")
    when, werrs = _parse_when(path, spec.get("when"), base)
    errs += werrs
    if "choices" in spec:
        errs += _check_choices(path, spec)
        if errs:
            return None, errs
        return Param(path, choices=tuple(spec["choices"]), when=when), []
    errs += _check_range(path, spec)
    if errs:
        return None, errs
    return Param(path, low=spec["low"], high=spec["high"], log=bool(spec.get("log", False)), step=spec.get("step"),
                 when=when), []


def _check_conditions(param: Param, base: Mapping[str, Any], above: Sequence[str]) -> list[str]:
    """A ``when`` path is set by the config or searched by a parameter written above."""
    errs = []
    for path in param.when:
        if path in above:
            continue
        try:
            _get(base, path.split("."))
        except KeyError:
            errs.append(f"{param.path}: when {path}: the config does not set it and no parameter above this "
                        f"one searches it, so the condition never holds.")
    return errs


def _check_choices(path: str, spec: Mapping[str, Any]) -> list[str]:
    choices = spec["choices"]
    errs = []
    if set(spec) & {"low", "high", "log", "step"}:
        errs.append(f"{path}: give either choices or low/high, not both.")
    if not isinstance(choices, list):
        errs.append(f"{path}: 'choices' must be a list of values; got {choices!r}.")
    elif not choices:
        errs.append(f"{path}: 'choices' is empty: give at least one value.")
    else:
        enc = [json.dumps(c, sort_keys=True) for c in choices]
        dup = sorted({e for e in enc if enc.count(e) > 1})
        if dup:
            errs.append(f"{path}: 'choices' holds duplicates: {', '.join(dup)}.")
    return errs


def _check_range(path: str, spec: Mapping[str, Any]) -> list[str]:
    if "low" not in spec or "high" not in spec:
        return [f"{path}: give 'choices' (a list) or both 'low' and 'high' (numbers)."]
    low, high, log, step = spec["low"], spec["high"], spec.get("log", False), spec.get("step")
    errs = [f"{path}: '{k}' must be a number; got {v!r}." for k, v in (("low", low), ("high", high))
            if not _is_number(v)]
    if not isinstance(log, bool):
        errs.append(f"{path}: 'log' must be true or false; got {log!r}.")
    if step is not None and (not _is_number(step) or step <= 0):
        errs.append(f"{path}: 'step' must be a positive number; got {step!r}.")
    if errs:
        return errs
    if low > high:
        errs.append(f"{path}: the range is empty: low {low!r} > high {high!r}.")
    if log and low <= 0:
        errs.append(f"{path}: a log range needs low > 0; got low {low!r}.")
    if log and step is not None:
        errs.append(f"{path}: give either log or step, not both (Optuna samples a log range continuously).")
    return errs


def _parse_when(path: str, when: Any, base: Mapping[str, Any]) -> tuple[dict[str, tuple[Any, ...]], list[str]]:
    if when is None:
        return {}, []
    if not isinstance(when, Mapping) or not when:
        return {}, [f"{path}: 'when' must be a mapping {{path: value or [values]}}; got {when!r}."]
    out, errs = {}, []
    for key, allowed in when.items():
        errs += [e.replace(str(key), f"{path}: when {key}", 1) for e in _check_path(str(key), base)]
        out[str(key)] = tuple(allowed) if isinstance(allowed, list) else (allowed,)
    return out, errs


# ---------------------------------------------------------------------------------- paths
def _check_path(path: str, base: Mapping[str, Any]) -> list[str]:
    """``[]`` when ``path`` names a searchable place of the config, else one message."""
    parts = path.split(".")
    if not path or any(not p for p in parts):
        return [f"{path!r}: not a dotted path (e.g. training.optimizer.lr)."]
    if parts[0] in _NOT_SEARCHABLE:
        return [f"{path}: {parts[0]!r} is not searchable: {_NOT_SEARCHABLE[parts[0]]}."]
    if parts[0] not in _ROOTS:
        return [f"{path}: unknown path: the config has no section {parts[0]!r}; searchable sections are "
                f"{', '.join(_ROOTS)}."]
    node: Any = base
    for i, key in enumerate(parts):
        where = ".".join(parts[:i]) or "(top level)"
        last = i == len(parts) - 1
        if isinstance(node, list):
            idx = _index(node, key)
            if idx is None:
                names = [_label(e, j) for j, e in enumerate(node)]
                return [f"{path}: unknown path: {where} has no entry {key!r} (entries: {', '.join(names) or 'none'})."]
            node = node[idx]
        elif isinstance(node, Mapping):
            if key in node:
                if node[key] is None and not last:
                    here = ".".join(parts[: i + 1])
                    if here in _OPEN[:3] and i + 2 == len(parts):
                        return []  # a component the search creates (its name is checked with the values)
                    if here == "tasks":
                        return [f"{path}: unknown path: the config has no 'tasks' list (its dataset brings the "
                                f"tasks); list the tasks in the config to search their keys."]
                    return [f"{path}: unknown path: {here} is not set in the config; set it there to search "
                            f"its keys."]
                node = node[key]
            elif last and (where in _OPEN or (where.startswith("auxiliary.") and "generator" in node)):
                return []  # a keyword parameter of the component (checked with the values)
            else:
                return [f"{path}: unknown path: {where} has no key {key!r} (it has: {', '.join(map(str, node))})."]
        else:
            return [f"{path}: unknown path: {where} is a value ({node!r}), not a section."]
    return []


def _label(entry: Any, i: int) -> str:
    if isinstance(entry, Mapping):
        return str(entry.get("name") or entry.get("generator") or i)
    return str(i)


def _index(items: list[Any], key: str) -> int | None:
    """A list entry by position or by its ``name`` / ``generator``."""
    for i, e in enumerate(items):
        if isinstance(e, Mapping) and key in (e.get("name"), e.get("generator")):
            return i
    if key.isdigit() and int(key) < len(items):
        return int(key)
    return None


def _get(data: Any, parts: Sequence[str]) -> Any:
    node = data
    for key in parts:
        if isinstance(node, list):
            idx = _index(node, key)
            if idx is None:
                raise KeyError(key)
            node = node[idx]
        elif isinstance(node, Mapping) and key in node:
            node = node[key]
        else:
            raise KeyError(key)
    return node


def _set(data: dict[str, Any], parts: Sequence[str], value: Any) -> None:
    node: Any = data
    for key in parts[:-1]:
        if isinstance(node, list):
            idx = _index(node, key)
            if idx is None:
                raise KeyError(f"no entry {key!r}")
            node = node[idx]
        else:
            if node.get(key) is None:
                node[key] = {}
            node = node[key]
    last = parts[-1]
    if isinstance(node, list):
        idx = _index(node, last)
        if idx is None:
            raise KeyError(f"no entry {last!r}")
        node[idx] = value
    else:
        node[last] = value
