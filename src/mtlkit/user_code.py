"""User code that a config may name, and only when the user allowed it.

A YAML config can name a function, e.g. a hint's ``fn: "my_hints:parity"``. A config is data
(it may come from a colleague, a download, a run folder), so naming code in it is not enough
to run it: mtlkit imports a module named in a config only when the user allowed that module
explicitly, for this process —

* ``mtlkit train CONFIG --code my_hints.py`` (a file: loaded under its stem, ``my_hints``), or
  ``--code mypackage.hints`` (an installed module), or from Python :func:`allow_code`;
* a reference to anything else (``"evil:f"`` with an ``evil.py`` in the working folder) is an
  error that says how to allow it, raised before any data loads or any file is written.

Loading a run folder, resuming it, ``mtlkit evaluate`` and ``mtlkit predict`` never import code
named inside it: resuming a run whose config names code needs ``--code`` again. A run records
the code it was allowed (module, file, SHA-256) in its ``run.json``, and a resume with a changed
file is refused unless ``--force``.

Passing a function object (``Hint(fn=my_function)``) needs no allowing: it is already code of
the caller's.

>>> import tempfile, pathlib
>>> f = pathlib.Path(tempfile.mkdtemp()) / "my_hints.py"
>>> _ = f.write_text("def parity(x):\\n    return x.sum(axis=1) > 0\\n")
>>> with allowed_code(f):
...     fn = resolve("my_hints:parity", owner="Hint")
>>> fn.__name__
'parity'
>>> resolve("my_hints:parity", owner="Hint")
Traceback (most recent call last):
...
ValueError: The 'fn' parameter of Hint names code ('my_hints:parity'), and mtlkit imports code named in a config only when you allow it: pass --code my_hints.py (a file) or --code my_hints (an installed module) to mtlkit train, call mtlkit.user_code.allow_code('my_hints') in Python, or pass the function itself.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from mtlkit._io import sha256_file

__all__ = ["allow_code", "allowed_code", "allowed_records", "forget_code", "records_for", "resolve"]

#: module name -> (module, record) of the code the user allowed in this process
_ALLOWED: dict[str, tuple[ModuleType, dict[str, Any]]] = {}
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def allow_code(spec: str | Path) -> dict[str, Any]:
    """Allow configs to name the functions of ``spec``: a Python file (``my_hints.py``, loaded
    now under its stem) or the dotted name of an installed module (imported now). Returns the
    record a run keeps: ``{"module", "file", "sha256"}``."""
    text = str(spec)
    path = Path(text)
    if text.endswith(".py") or path.is_file():
        if not path.is_file():
            raise FileNotFoundError(f"--code {text!r}: no such file.")
        name = path.stem
        if not _MODULE.match(name):
            raise ValueError(f"--code {text!r}: the file's stem {name!r} is not a module name.")
        loader_spec = importlib.util.spec_from_file_location(f"mtlkit_user_code.{name}", path.resolve())
        if loader_spec is None or loader_spec.loader is None:  # pragma: no cover (a .py file always has one)
            raise ImportError(f"--code {text!r}: cannot load this file.")
        module = importlib.util.module_from_spec(loader_spec)
        loader_spec.loader.exec_module(module)
        record: dict[str, Any] = {"module": name, "file": str(path.resolve()), "sha256": sha256_file(path)}
    else:
        if not _MODULE.match(text):
            raise ValueError(f"--code {text!r}: give a Python file (my_hints.py) or an installed module's "
                             f"dotted name (mypackage.hints).")
        try:
            module = importlib.import_module(text)
        except ImportError as exc:
            raise ImportError(f"--code {text!r}: cannot import this module: {exc}") from exc
        file = getattr(module, "__file__", None)
        record = {"module": text, "file": file,
                  "sha256": sha256_file(file) if file and Path(file).is_file() else None}
    _ALLOWED[record["module"]] = (module, record)
    return dict(record)


def forget_code() -> None:
    """Withdraw every permission given by :func:`allow_code` (tests)."""
    _ALLOWED.clear()


@contextmanager
def allowed_code(*specs: str | Path) -> Iterator[list[dict[str, Any]]]:
    """:func:`allow_code` for the duration of a ``with`` block."""
    before = dict(_ALLOWED)
    try:
        yield [allow_code(s) for s in specs]
    finally:
        _ALLOWED.clear()
        _ALLOWED.update(before)


def allowed_records() -> list[dict[str, Any]]:
    """The records of the code allowed in this process."""
    return [dict(rec) for _, rec in _ALLOWED.values()]


def records_for(refs: list[str]) -> list[dict[str, Any]]:
    """The records of the allowed modules that the ``"module:function"`` references use."""
    out: list[dict[str, Any]] = []
    for ref in refs:
        found = _owner(ref.partition(":")[0])
        if found is not None and found[1] not in out:
            out.append(dict(found[1]))
    return out


def _owner(module: str) -> tuple[ModuleType, dict[str, Any]] | None:
    """The allowed module ``module`` is, or is a submodule of (an installed package)."""
    if module in _ALLOWED:
        return _ALLOWED[module]
    for name, entry in _ALLOWED.items():  # a submodule of an allowed installed package
        if module.startswith(name + ".") and getattr(entry[0], "__path__", None) is not None:
            return entry
    return None


def resolve(ref: Callable[..., Any] | str, *, owner: str, param: str = "fn") -> Callable[..., Any]:
    """A callable as is; ``"module:function"`` when the user allowed ``module`` (see the module
    docstring), else a ``ValueError`` that says how to allow it."""
    if callable(ref):
        return ref
    if not (isinstance(ref, str) and ref.count(":") == 1 and _MODULE.match(ref.partition(":")[0])):
        raise ValueError(f"The '{param}' parameter of {owner} must be a callable or a 'module:function' "
                         f"string. Got {ref!r}.")
    module_name, _, attr = ref.partition(":")
    found = _owner(module_name)
    if found is None:
        top = module_name.split(".")[0]
        raise ValueError(f"The '{param}' parameter of {owner} names code ({ref!r}), and mtlkit imports code "
                         f"named in a config only when you allow it: pass --code {top}.py (a file) or "
                         f"--code {module_name} (an installed module) to mtlkit train, call "
                         f"mtlkit.user_code.allow_code({module_name!r}) in Python, or pass the function itself.")
    module = found[0]
    try:
        obj: Any = module if module_name == found[1]["module"] else importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"The '{param}' parameter of {owner}: cannot find {ref!r} in the allowed code "
                         f"({found[1].get('file') or found[1]['module']}): {exc}") from None
    if not callable(obj):
        raise ValueError(f"The '{param}' parameter of {owner}: {ref!r} is not callable.")
    return obj
