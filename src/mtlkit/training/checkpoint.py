"""Crash-safe checkpoints that never execute code when loaded.

A checkpoint is a pair of files written atomically (temporary file, flush + fsync, rename):

* ``ckpt-<step>.safetensors`` — every tensor of the state (model, optimiser moments, RNG
  states, best weights ...);
* ``ckpt-<step>.json`` — everything else (numbers, lists, the history), with tensors
  replaced by references into the safetensors file.

``manifest.json`` lists the checkpoints, newest last, with the SHA-256 of both files and the
config hash. Loading verifies the checksums; a truncated or corrupted checkpoint is reported
by name and the previous good one is used instead. Only the last ``keep`` are kept.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mtlkit._io import atomic_write, sha256_file

MANIFEST = "manifest.json"


class CheckpointError(RuntimeError):
    """No usable checkpoint, or a checkpoint file is corrupted."""


# ---------------------------------------------------------------------------- (de)flattening
def flatten_state(obj: Any) -> tuple[Any, dict[str, torch.Tensor]]:
    """Split a nested state into a JSON-able tree and a flat ``{key: tensor}`` dict."""
    tensors: dict[str, torch.Tensor] = {}

    def walk(o: Any) -> Any:
        if isinstance(o, torch.Tensor):
            key = f"t{len(tensors)}"
            tensors[key] = o.detach().cpu().contiguous()
            return {"__tensor__": key}
        if isinstance(o, np.ndarray):
            key = f"t{len(tensors)}"
            tensors[key] = torch.from_numpy(np.ascontiguousarray(o).copy())
            return {"__ndarray__": key}
        if isinstance(o, dict):
            if any(not isinstance(k, (str, int)) for k in o):
                raise TypeError(f"Cannot checkpoint a dict with keys of type {type(next(iter(o))).__name__}.")
            return {"__dict__": [[k, walk(v)] for k, v in o.items()]}
        if isinstance(o, tuple):
            return {"__tuple__": [walk(v) for v in o]}
        if isinstance(o, list):
            return [walk(v) for v in o]
        if isinstance(o, float) and not math.isfinite(o):
            return {"__float__": repr(o)}
        if isinstance(o, (np.floating, np.integer, np.bool_)):
            return walk(o.item())
        if o is None or isinstance(o, (bool, int, float, str)):
            return o
        raise TypeError(f"Cannot checkpoint a value of type {type(o).__name__}.")

    return walk(obj), tensors


def unflatten_state(tree: Any, tensors: dict[str, torch.Tensor]) -> Any:
    def walk(o: Any) -> Any:
        if isinstance(o, dict):
            if "__tensor__" in o:
                return tensors[o["__tensor__"]]
            if "__ndarray__" in o:
                return tensors[o["__ndarray__"]].numpy()
            if "__dict__" in o:
                return {k: walk(v) for k, v in o["__dict__"]}
            if "__tuple__" in o:
                return tuple(walk(v) for v in o["__tuple__"])
            if "__float__" in o:
                return float(o["__float__"])
            raise CheckpointError(f"Unexpected mapping in checkpoint: keys {sorted(o)[:3]}.")
        if isinstance(o, list):
            return [walk(v) for v in o]
        return o

    return walk(tree)


# ---------------------------------------------------------------------------- manager
class CheckpointManager:
    """Save/load checkpoints in ``directory`` and keep the manifest."""

    def __init__(self, directory: str | Path, *, keep: int = 2, config_hash: str | None = None) -> None:
        if keep < 1:
            raise ValueError(f"The 'keep' parameter must be >= 1. Got {keep}.")
        self.directory = Path(directory)
        self.keep = keep
        self.config_hash = config_hash

    @property
    def manifest_path(self) -> Path:
        return self.directory / MANIFEST

    def manifest(self) -> dict[str, Any]:
        """The manifest; a missing, corrupted or malformed one is replaced (with a warning
        naming it) by a scan of the checkpoint files in the folder, oldest first."""
        path = self.manifest_path
        if not path.exists():
            if not any(self.directory.glob("ckpt-*.json")):
                return {"checkpoints": [], "config_hash": self.config_hash}
            problem = "is missing"
        else:
            try:
                man = json.loads(path.read_text(encoding="utf-8"))
            except ValueError:  # JSONDecodeError, or UnicodeDecodeError for binary content
                man = None
            entries = man.get("checkpoints") if isinstance(man, dict) else None
            if isinstance(entries, list) and all(isinstance(e, dict) and isinstance(e.get("name"), str)
                                                 for e in entries):
                return man
            problem = "is corrupted"
        warnings.warn(f"Checkpoint manifest {str(path)!r} {problem}; scanning the folder instead.",
                      stacklevel=2)
        names = sorted(p.stem for p in self.directory.glob("ckpt-*.json"))
        return {"checkpoints": [{"name": n} for n in names], "config_hash": None}

    def save(self, state: dict[str, Any], *, step: int, epoch: int) -> Path:
        from safetensors.torch import save_file

        self.directory.mkdir(parents=True, exist_ok=True)
        tree, tensors = flatten_state(state)
        man = self.manifest()
        name = self._fresh_name(step, man)
        st_path = self.directory / f"{name}.safetensors"
        js_path = self.directory / f"{name}.json"
        try:
            atomic_write(st_path, lambda p: save_file(tensors, str(p)))
            atomic_write(js_path, json.dumps({"format_version": 1, "step": step, "epoch": epoch,
                                              "state": tree}))
            entries = [e for e in man.get("checkpoints", []) if e.get("name") != name]
            entries.append({"name": name, "step": step, "epoch": epoch,
                            "sha256": {"safetensors": sha256_file(st_path), "json": sha256_file(js_path)}})
            old, entries = entries[:-self.keep], entries[-self.keep:]
            atomic_write(self.manifest_path, json.dumps({"config_hash": self.config_hash,
                                                         "checkpoints": entries}, indent=2))
        except BaseException:
            # the manifest on disk does not list this checkpoint: drop its half-saved files
            if name not in {e.get("name") for e in man.get("checkpoints", [])}:
                st_path.unlink(missing_ok=True)
                js_path.unlink(missing_ok=True)
            raise
        for e in old:
            for suffix in (".safetensors", ".json"):
                (self.directory / f"{e['name']}{suffix}").unlink(missing_ok=True)
        return st_path

    def _fresh_name(self, step: int, man: dict[str, Any]) -> str:
        """``ckpt-<step>``, or ``ckpt-<step>-<n>`` when that name is taken (a mid-epoch and an
        epoch-end checkpoint at the same step): a checkpoint is never rewritten in place, so a
        kill while writing one leaves every listed checkpoint intact. Names sort by age."""
        taken = {e.get("name") for e in man.get("checkpoints", [])}
        base = f"ckpt-{step:09d}"
        name, n = base, 0
        while name in taken or (self.directory / f"{name}.json").exists() \
                or (self.directory / f"{name}.safetensors").exists():
            n += 1
            name = f"{base}-{n:03d}"
        return name

    def latest(self) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """``(state, entry)`` of the newest checkpoint that verifies, or None if there is none.

        A corrupted newer checkpoint is skipped with a warning that names its file."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        entries = list(self.manifest().get("checkpoints", []))
        errors = []
        for entry in reversed(entries):
            name = entry["name"]
            st_path = self.directory / f"{name}.safetensors"
            js_path = self.directory / f"{name}.json"
            try:
                if not st_path.exists() or not js_path.exists():
                    raise CheckpointError(f"checkpoint files of {name} are missing")
                sums = entry.get("sha256")
                if sums:
                    for kind, path in (("safetensors", st_path), ("json", js_path)):
                        if sha256_file(path) != sums[kind]:
                            raise CheckpointError(f"{path.name} does not match its checksum (corrupted "
                                                  f"or truncated)")
                tensors = load_file(str(st_path))
                doc = json.loads(js_path.read_text(encoding="utf-8"))
                state = unflatten_state(doc["state"], tensors)
            except (CheckpointError, SafetensorError, OSError, ValueError, KeyError, TypeError) as exc:
                errors.append(f"{name}: {exc}")
                warnings.warn(f"Skipping checkpoint {str(st_path)!r}: {exc}; trying the previous one.",
                              stacklevel=2)
                continue
            return state, entry
        if errors:
            raise CheckpointError(f"No usable checkpoint in {str(self.directory)!r}: " + "; ".join(errors))
        return None
