"""Run folders on disk: atomic writes, the model file pair (safetensors + JSON) and loading.

Loading never executes code: weights are safetensors, metadata JSON/YAML (safe loader).
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
from torch import nn

FORMAT_VERSION = 1
_UMASK = os.umask(0)
os.umask(_UMASK)
MODEL_WEIGHTS = "model.safetensors"
MODEL_META = "model.json"
SUMMARY = "summary.json"


class RunFolderError(RuntimeError):
    """A run folder is missing something, is corrupted or comes from an incompatible version."""


def atomic_write(path: str | Path, writer: Callable[[Path], object] | bytes | str) -> Path:
    """Write ``path`` via a temporary file in the same folder, fsync, then rename.

    A failure leaves any previous file untouched and removes the temporary file; an
    ``OSError`` (full disk, no permission ...) is re-raised with a message naming ``path``."""
    path = Path(path)
    tmp = _write_temp(path, writer)
    try:
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        _raise_write_error(path, exc)
        raise
    return path


def _write_temp(path: Path, writer: Callable[[Path], object] | bytes | str) -> Path:
    """Write the content of ``path`` to a fsync'ed temporary file next to it (not renamed)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        _raise_write_error(path, exc)
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
        _raise_write_error(path, exc)
        raise
    return tmp


def _raise_write_error(path: Path, exc: BaseException) -> None:
    """Re-raise an OSError of writing ``path`` with a message that names the file."""
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
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        return to_jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write(path, json.dumps(to_jsonable(obj), indent=2) + "\n")


def read_json(path: str | Path) -> Any:
    p = Path(path)
    if not p.exists():
        raise RunFolderError(f"Missing file {str(p)!r}.")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except ValueError as exc:  # JSONDecodeError, or UnicodeDecodeError for binary content
        raise RunFolderError(f"File {str(p)!r} is not valid JSON (corrupted?): {exc}") from None


def save_model(run_dir: str | Path, model: nn.Module, meta: dict[str, Any]) -> None:
    """Write ``model.safetensors`` and ``model.json`` atomically. Refuses non-finite weights."""
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise RunFolderError(f"Refusing to save non-finite weights (tensors {bad[:3]}).")
    run_dir = Path(run_dir)
    # both files are written in full before either replaces its previous version (a full disk
    # never pairs new weights with old metadata); model.json records the weights' SHA-256
    weights = _write_temp(run_dir / MODEL_WEIGHTS, lambda p: save_file(state, str(p)))
    try:
        doc = {"format_version": FORMAT_VERSION, **meta, "weights_sha256": sha256_file(weights)}
        meta_tmp = _write_temp(run_dir / MODEL_META, json.dumps(to_jsonable(doc), indent=2) + "\n")
    except BaseException:
        weights.unlink(missing_ok=True)
        raise
    for tmp, final in ((weights, run_dir / MODEL_WEIGHTS), (meta_tmp, run_dir / MODEL_META)):
        try:
            os.replace(tmp, final)
        except BaseException as exc:
            weights.unlink(missing_ok=True)
            meta_tmp.unlink(missing_ok=True)
            _raise_write_error(final, exc)
            raise


def load_model_meta(run_dir: str | Path) -> dict[str, Any]:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunFolderError(f"Run folder not found: {str(run_dir)!r}.")
    meta_path = run_dir / MODEL_META
    if not (run_dir / MODEL_WEIGHTS).exists():
        raise RunFolderError(f"The run folder {str(run_dir)!r} has no weights ({MODEL_WEIGHTS}); "
                             f"was training finished?")
    meta = read_json(meta_path)
    if not isinstance(meta, dict):
        raise RunFolderError(f"{str(meta_path)!r} must hold a JSON object; it holds a {type(meta).__name__} "
                             f"(corrupted?).")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise RunFolderError(f"{str(meta_path)!r} has format_version {version!r}; this mtlkit reads "
                             f"up to {FORMAT_VERSION}. Upgrade mtlkit to read it.")
    return meta


def load_model(run_dir: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model from ``model.json`` and load ``model.safetensors`` (no pickle)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from mtlkit.architectures import build_model
    from mtlkit.tasks import task_from_dict

    run_dir = Path(run_dir)
    meta = load_model_meta(run_dir)
    tasks = [task_from_dict(t) for t in meta["tasks"]]
    arch = meta.get("architecture")
    if not arch or arch.get("trunk") is None:
        raise RunFolderError(f"The model in {str(run_dir)!r} uses a user-defined trunk; rebuild it in "
                             f"Python and call load_state_dict with the safetensors file.")
    model = build_model(arch, tasks, meta["input_shape"])
    expected = meta.get("weights_sha256")
    if expected is not None and sha256_file(run_dir / MODEL_WEIGHTS) != expected:
        raise RunFolderError(f"Weights {str(run_dir / MODEL_WEIGHTS)!r} do not match the checksum recorded in "
                             f"{MODEL_META} (corrupted or truncated?).")
    try:
        state = load_file(str(run_dir / MODEL_WEIGHTS))
    except (SafetensorError, OSError, ValueError) as exc:
        raise RunFolderError(f"Cannot read weights {str(run_dir / MODEL_WEIGHTS)!r} (corrupted or "
                             f"truncated?): {exc}") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise RunFolderError(f"Weights in {str(run_dir / MODEL_WEIGHTS)!r} do not match the model "
                             f"described in {MODEL_META}: {str(exc).splitlines()[0]}") from None
    model.eval()
    return model, meta
