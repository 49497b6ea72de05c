"""Low-level file helpers shared by the whole package: atomic writes, JSON of tensors and
NumPy values, file checksums.

Nothing here knows what a run is (that is :mod:`mtlkit.run.folder`); the training loop's
checkpoints and the run folder both write through these functions.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

_UMASK = os.umask(0)
os.umask(_UMASK)

Writer = Callable[[Path], object] | bytes | str

__all__ = ["atomic_write", "raise_write_error", "sha256_file", "to_jsonable", "write_json", "write_temp"]


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
    try:
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        raise_write_error(path, exc)
        raise
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
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; a run folder's files are ordinary files
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
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        raise_write_error(path, exc)
        raise
    return tmp


def raise_write_error(path: Path, exc: BaseException) -> None:
    """Re-raise an OSError of writing ``path`` with a message that names the file (other
    exceptions: return, the caller re-raises them)."""
    if not isinstance(exc, OSError) or exc.errno is None:
        return
    reason = "the disk is full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
    raise type(exc)(exc.errno, f"Cannot write {str(path)!r}: {reason}. Any previous version of the file "
                               f"is intact.") from exc


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

    >>> to_jsonable({"a": torch.tensor([1.5]), 2: float("nan"), "c": np.int64(3)})
    {'a': [1.5], '2': None, 'c': 3}
    """
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (torch.Tensor, np.ndarray)):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        return to_jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path: str | Path, obj: Any) -> Path:
    """``obj`` as indented JSON (through :func:`to_jsonable`), written atomically."""
    return atomic_write(path, json.dumps(to_jsonable(obj), indent=2) + "\n")
