"""Low-level file helpers shared by the whole package: atomic writes, JSON of tensors and
NumPy values, file checksums, and the fault-injection points the crash tests use.

Nothing here knows what a run is (that is :mod:`mtlkit.run.folder`); the training loop's
checkpoints and the run folder both write through these functions.

**Fault injection.** Every write passes :func:`fault_point` twice — ``"written"`` (the
temporary file is complete and fsync'ed, the destination still holds its previous version)
and ``"replaced"`` (the rename is done) — and the run folder adds its own points (its lock,
the swap of an ``--overwrite``). :data:`FAULT_HOOK` is ``None`` in normal use; a test sets
it to a function ``hook(point, path)`` that raises, or ends the process with ``os._exit``,
at the point it wants to crash (``tests/robustness/test_crash_points.py``).
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import re
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

_UMASK = os.umask(0)
os.umask(_UMASK)

Writer = Callable[[Path], object] | bytes | str

__all__ = ["FAULT_HOOK", "atomic_write", "fault_point", "is_temp_file", "path_component_problem",
           "raise_write_error", "sha256_file", "sha256_json", "to_jsonable", "write_json", "write_temp"]

#: ``hook(point, path)`` called at every fault-injection point (tests only; see the module docstring)
FAULT_HOOK: Callable[[str, Path], None] | None = None

#: the name of a temporary file of :func:`write_temp`: ``.<name>.<8 random characters>.tmp``
_TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")


def fault_point(point: str, path: str | Path) -> None:
    """A place where a crash is injected in tests (nothing happens unless :data:`FAULT_HOOK`)."""
    if FAULT_HOOK is not None:
        FAULT_HOOK(point, Path(path))


def is_temp_file(path: Path) -> bool:
    """Whether ``path`` is a temporary file :func:`write_temp` creates (left behind only by a
    process killed while writing)."""
    return path.is_file() and bool(_TEMP_NAME.match(path.name))


def path_component_problem(name: object) -> str | None:
    """Why ``name`` cannot be one component of a path (``None``: it can). A task or run name
    becomes a folder name; one with a separator, ``..`` or an absolute path would write
    elsewhere (``baselines/../../other_run``).

    >>> path_component_problem("y_bin") is None, path_component_problem("../x")
    (True, "contains a path separator ('/'); use a plain name such as 'x'")
    """
    if not isinstance(name, str) or not name:
        return "is empty; give a plain name"
    if name in (".", ".."):
        return "is not a name but a path ('.' or '..'); give a plain name"
    for sep in ("/", "\\", os.sep, os.altsep or "/"):
        if sep in name:
            tail = [p for p in re.split(r"[\\/]", name) if p not in ("", ".", "..")]
            return (f"contains a path separator ({sep!r}); use a plain name"
                    + (f" such as {tail[-1]!r}" if tail else ""))
    if "\0" in name or any(ord(c) < 32 for c in name):
        return "contains a control character; give a plain name"
    return None


def atomic_write(path: str | Path, writer: Writer) -> Path:
    """Write ``path`` via a temporary file in the same folder, fsync, then rename.

    ``writer`` is the content (``str`` or ``bytes``) or a function that writes the file it is
    given. A failure leaves any previous file untouched and removes the temporary file; an
    ``OSError`` (full disk, no permission ...) is re-raised with a message naming ``path``.

    >>> import tempfile, pathlib
    >>> p = atomic_write(pathlib.Path(tempfile.mkdtemp()) / "a.txt", "hello")
    >>> p.read_text()
    'hello'
    """
    path = Path(path)
    tmp = write_temp(path, writer)
    fault_point("written", path)
    try:
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        raise_write_error(path, exc)
        raise
    fault_point("replaced", path)
    return path


def write_temp(path: Path, writer: Writer) -> Path:
    """Write the content of ``path`` to a fsync'ed temporary file next to it (not renamed)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise_write_error(path, exc)
        raise
    tmp = Path(tmp_name)
    try:
        if isinstance(writer, (bytes, str)):
            data = writer.encode("utf-8") if isinstance(writer, str) else writer
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        else:
            os.close(fd)
            writer(tmp)
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        # mkstemp creates 0600, and a writer may create the file anew (safetensors does):
        # every file of a run folder gets the ordinary mode (0644 under the usual umask)
        os.chmod(tmp, 0o666 & ~_UMASK)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        raise_write_error(path, _as_os_error(exc))
        raise
    return tmp


def _as_os_error(exc: BaseException) -> BaseException:
    """A writer's own error that reports an OS error in its message (safetensors raises
    ``SafetensorError: No space left on device (os error 28)``) as that ``OSError``."""
    if isinstance(exc, OSError):
        return exc
    m = re.search(r"\(os error (\d+)\)", str(exc))
    code = int(m.group(1)) if m else errno.ENOSPC if "No space left on device" in str(exc) else None
    if code is None:
        return exc
    err = OSError(code, os.strerror(code))
    err.__cause__ = exc
    return err


def raise_write_error(path: Path, exc: BaseException) -> None:
    """Re-raise an OSError of writing ``path`` with a message that names the file (other
    exceptions: return, the caller re-raises them)."""
    if not isinstance(exc, OSError) or exc.errno is None:
        return
    reason = "the disk is full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
    raise type(exc)(exc.errno, f"Cannot write {str(path)!r}: {reason}. Any previous version of the file "
                               f"is intact.") from exc


def sha256_json(obj: Any) -> str:
    """Hex SHA-256 of a JSON value in canonical form (sorted keys, no spaces): the checksum a
    JSON file records of its own content.

    >>> sha256_json({"b": 1, "a": [1.5]}) == sha256_json({"a": [1.5], "b": 1})
    True
    """
    text = json.dumps(to_jsonable(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def to_jsonable(obj: Any) -> Any:
    """Plain JSON values from tensors, arrays and NumPy scalars; non-finite floats become
    ``None`` (JSON has no NaN).

    >>> import numpy as np, torch
    >>> to_jsonable({"a": torch.tensor([1.5]), 2: float("nan"), "c": np.int64(3)})
    {'a': [1.5], '2': None, 'c': 3}
    """
    # torch and numpy as already loaded (a value cannot be theirs otherwise): a run config is
    # read and checked without importing torch
    torch, np = sys.modules.get("torch"), sys.modules.get("numpy")
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if (torch is not None and isinstance(obj, torch.Tensor)) or (np is not None and isinstance(obj, np.ndarray)):
        return to_jsonable(obj.tolist())
    if np is not None and isinstance(obj, (np.floating, np.integer, np.bool_)):
        return to_jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path: str | Path, obj: Any) -> Path:
    """``obj`` as indented JSON (through :func:`to_jsonable`), written atomically."""
    return atomic_write(path, json.dumps(to_jsonable(obj), indent=2) + "\n")
