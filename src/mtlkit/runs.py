"""Run folders on disk: atomic writes, the model file pair (safetensors + JSON) and loading.

Loading never executes code: weights are safetensors, metadata JSON/YAML (safe loader).
"""

from __future__ import annotations

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
MODEL_WEIGHTS = "model.safetensors"
MODEL_META = "model.json"
SUMMARY = "summary.json"


class RunFolderError(RuntimeError):
    """A run folder is missing something, is corrupted or comes from an incompatible version."""


def atomic_write(path: str | Path, writer: Callable[[Path], object] | bytes | str) -> Path:
    """Write ``path`` via a temporary file in the same folder, fsync, then rename.

    A failure leaves any previous file untouched and removes the temporary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
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
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


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
    except json.JSONDecodeError as exc:
        raise RunFolderError(f"File {str(p)!r} is not valid JSON (corrupted?): {exc}") from None


def save_model(run_dir: str | Path, model: nn.Module, meta: dict[str, Any]) -> None:
    """Write ``model.safetensors`` and ``model.json`` atomically. Refuses non-finite weights."""
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise RunFolderError(f"Refusing to save non-finite weights (tensors {bad[:3]}).")
    run_dir = Path(run_dir)
    atomic_write(run_dir / MODEL_WEIGHTS, lambda p: save_file(state, str(p)))
    write_json(run_dir / MODEL_META, {"format_version": FORMAT_VERSION, **meta})


def load_model_meta(run_dir: str | Path) -> dict[str, Any]:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunFolderError(f"Run folder not found: {str(run_dir)!r}.")
    meta_path = run_dir / MODEL_META
    if not (run_dir / MODEL_WEIGHTS).exists():
        raise RunFolderError(f"The run folder {str(run_dir)!r} has no weights ({MODEL_WEIGHTS}); "
                             f"was training finished?")
    meta = read_json(meta_path)
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
