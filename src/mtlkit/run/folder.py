"""The run folder as one object: its layout, the rules for starting, resuming and replacing a
run in it, and the files of a trained model (safetensors + JSON).

Layout of a run folder::

    config.yaml          the resolved config (rewritten when a resume extends the run)
    metrics.jsonl        one line per epoch of the multi-task model
    checkpoints/<name>/  crash-safe checkpoints: mtl, mtl-retrain, stl-<task>
    baselines/<task>/    each single-task baseline: metrics.jsonl, model.safetensors, model.json
    search/              the search phase of a two-phase architecture (AdaShare)
    model.safetensors    the weights of the run's model, and model.json to rebuild it
    summary.json         the results (:class:`~mtlkit.run.summary.Summary`)
    report.html          the report
    replaced/<date>/     earlier runs replaced with ``overwrite`` (see below)

**Nothing is ever deleted.** A new run goes into a folder that does not exist, is empty or
holds an earlier run of ours; a folder with other content is refused, whatever the options
(its files are not ours to mix a run into). An earlier run is refused unless ``overwrite``;
with ``overwrite`` it is *moved aside* into ``replaced/<date>/``: its records (``metrics.jsonl``,
``checkpoints/``, ``baselines/``, ``search/``) move there, and its ``config.yaml``,
``summary.json``, ``report.html`` and model files are linked (or copied) there and stay in
place until the new run replaces each of them, so a new run that fails leaves the earlier
model and summary where they were. Delete ``replaced/`` yourself when you no longer need it.

Loading never executes code: weights are safetensors, metadata JSON/YAML (safe loader).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mtlkit._io import (
    atomic_write,
    raise_write_error,
    sha256_file,
    to_jsonable,
    write_json,
    write_temp,
)
from mtlkit.config import ConfigError, RunConfig, config_diff, dump_config
from mtlkit.run.summary import FORMAT_VERSION, Summary

__all__ = ["FORMAT_VERSION", "MODEL_META", "MODEL_WEIGHTS", "RESUMABLE_KEYS", "SUMMARY", "RunFolder",
           "RunFolderError", "load_model", "load_model_meta", "read_json", "save_model"]

CONFIG = "config.yaml"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
MODEL_WEIGHTS = "model.safetensors"
MODEL_META = "model.json"
REPORT = "report.html"
CHECKPOINTS = "checkpoints"
BASELINES = "baselines"
SEARCH = "search"
REPLACED = "replaced"
#: an earlier run's files that a new run replaces atomically: linked aside, left in place
_KEPT_IN_PLACE = (CONFIG, SUMMARY, REPORT, MODEL_WEIGHTS, MODEL_META)
#: an earlier run's records that a new run would append to or mix with: moved aside
_MOVED_ASIDE = (METRICS, CHECKPOINTS, BASELINES, SEARCH)

#: config keys a resume may change without ``force``: the budget (``training.epochs``, which
#: may only grow: a finished run is extended) and how often checkpoints are written. Neither
#: changes what the epochs already trained computed. (``training.device`` is never compared.)
RESUMABLE_KEYS = frozenset({"training.epochs", "training.checkpoint_every", "training.keep_checkpoints"})


class RunFolderError(RuntimeError):
    """A run folder is missing something, is corrupted or comes from an incompatible version."""


class RunFolder:
    """One run folder (see the module docstring for the layout and the rules).

    ``writer=False`` (the ranks other than 0 of a distributed run) checks nothing and writes
    nothing: every write is rank 0's.

    >>> import tempfile, pathlib
    >>> f = RunFolder(pathlib.Path(tempfile.mkdtemp()) / "run")
    >>> f.holds_run(), f.checkpoint_dir("mtl").name, f.baseline("y").path.name
    (False, 'mtl', 'y')
    """

    def __init__(self, path: str | Path, *, writer: bool = True) -> None:
        self.path = Path(path)
        self.writer = writer

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    # ------------------------------------------------------------------ layout
    @property
    def config_path(self) -> Path:
        return self.path / CONFIG

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS

    @property
    def summary_path(self) -> Path:
        return self.path / SUMMARY

    def checkpoint_dir(self, name: str) -> Path:
        return self.path / CHECKPOINTS / name

    def baseline(self, task: str) -> RunFolder:
        """The folder of the single-task baseline of ``task`` (a loadable run folder too)."""
        return RunFolder(self.path / BASELINES / task, writer=self.writer)

    @property
    def search(self) -> RunFolder:
        """The folder of the search phase of a two-phase architecture."""
        return RunFolder(self.path / SEARCH, writer=self.writer)

    # ------------------------------------------------------------------ what is there
    def holds_run(self) -> bool:
        """Whether the folder holds a run of ours (finished or not)."""
        return _is_our_config(self.config_path) or any(
            _is_our_json(self.path / n) for n in (SUMMARY, MODEL_META))

    def is_finished(self) -> bool:
        return (self.path / MODEL_WEIGHTS).exists()

    def saved_config(self) -> dict[str, Any]:
        """The run's own ``config.yaml`` (as a mapping)."""
        import yaml

        if not self.config_path.exists():
            raise FileNotFoundError(f"Nothing to resume: {str(self.path)!r} holds no run (config.yaml).")
        data = yaml.safe_load(self.config_path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise RunFolderError(f"{str(self.config_path)!r} is not a mapping (corrupted?).")
        return data

    def read_summary(self) -> dict[str, Any] | None:
        """``summary.json`` if there is a readable one."""
        try:
            data = read_json(self.summary_path)
        except RunFolderError:
            return None
        return data if isinstance(data, dict) else None

    def summary(self) -> Summary | None:
        """``summary.json`` as a typed :class:`~mtlkit.run.summary.Summary`, if readable."""
        data = self.read_summary()
        return Summary.from_dict(data) if data is not None else None

    def load_model(self) -> tuple[nn.Module, dict[str, Any]]:
        """The run's model, rebuilt from ``model.json`` and ``model.safetensors``."""
        return load_model(self.path)

    # ------------------------------------------------------------------ starting a run
    def check_new(self, *, overwrite: bool) -> None:
        """Refuse (without writing anything) a folder a new run may not start in."""
        if not self.writer:
            return
        p = self.path
        if p.exists() and not p.is_dir():
            raise FileExistsError(f"The run folder {str(p)!r} is a file, not a folder; choose another --out.")
        if not p.exists() or not [e for e in p.iterdir() if e.name != REPLACED]:
            return  # new, empty, or holding only runs moved aside earlier
        if not self.holds_run():
            names = sorted(e.name for e in p.iterdir())
            shown = ", ".join(repr(n) for n in names[:5]) + (" ..." if len(names) > 5 else "")
            raise FileExistsError(f"The folder {str(p)!r} is not empty and holds no mtlkit run (it has "
                                  f"{shown}); a run is written only into a new or empty folder or over an "
                                  f"earlier run. Choose another --out.")
        if overwrite:
            return
        if self.is_finished():
            raise FileExistsError(f"The run folder {str(p)!r} already holds a finished run; choose another "
                                  f"--out or pass --overwrite.")
        raise FileExistsError(f"The run folder {str(p)!r} holds an unfinished run; continue it with "
                              f"--resume {str(p)!r}, choose another --out, or pass --overwrite (the earlier "
                              f"run is moved to {REPLACED}/).")

    def start(self, cfg: RunConfig, *, overwrite: bool) -> Path | None:
        """Make the folder ready for a new run and write its ``config.yaml``. An earlier run
        (with ``overwrite``) is moved aside; returns where it went (``None``: there was none)."""
        self.check_new(overwrite=overwrite)
        if not self.writer:
            return None
        self.path.mkdir(parents=True, exist_ok=True)
        if not _writable(self.path):
            raise PermissionError(f"The run folder {str(self.path)!r} is not writable.")
        aside = self._move_aside() if self.holds_run() else None
        atomic_write(self.config_path, dump_config(cfg))
        return aside

    def _move_aside(self) -> Path:
        """Move the earlier run's records into ``replaced/<date>/`` and link its other files
        there (they stay in place until the new run replaces them)."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        dest = self.path / REPLACED / stamp
        n = 2
        while dest.exists():
            dest, n = self.path / REPLACED / f"{stamp}-{n}", n + 1
        dest.mkdir(parents=True)
        for name in _KEPT_IN_PLACE:
            src = self.path / name
            if src.is_file():
                try:
                    os.link(src, dest / name)
                except OSError:  # a file system without hard links
                    shutil.copy2(src, dest / name)
        for name in _MOVED_ASIDE:
            src = self.path / name
            if src.exists():
                os.replace(src, dest / name)
        return dest

    # ------------------------------------------------------------------ resuming a run
    def check_resume(self, cfg: RunConfig, *, force: bool) -> dict[str, list[Any]]:
        """The config keys that differ from the run's own config, as ``{key: [old, new]}``.
        Refuses (a :class:`ConfigError` listing every differing key) a change outside
        :data:`RESUMABLE_KEYS` or fewer epochs than the run had, unless ``force``."""
        if not self.writer:
            return {}
        old = self.saved_config()
        diff = config_diff(old, cfg)
        new = cfg.model_dump(mode="json")
        changed = {k: [_dotted(old, k), _dotted(new, k)] for k in diff}
        blocked = [k for k in diff if k not in RESUMABLE_KEYS]
        old_epochs, new_epochs = changed.get("training.epochs", [0, 0])
        shrinks = isinstance(old_epochs, int) and isinstance(new_epochs, int) and new_epochs < old_epochs
        if (blocked or shrinks) and not force:
            why = (f" Only {', '.join(sorted(RESUMABLE_KEYS))} may change on resume" +
                   (f", and training.epochs may only grow (the run has {old_epochs})" if shrinks else "") + ".")
            raise ConfigError(f"The config differs from the checkpointed run's in {diff}; refusing to "
                              f"resume (pass --force to resume anyway).{why}")
        return changed

    def resume(self, cfg: RunConfig, *, force: bool) -> tuple[list[dict[str, Any]], dict[str, list[Any]]]:
        """Check a resume (:meth:`check_resume`); when the config changed (more epochs ...),
        rewrite ``config.yaml`` and record the change. Returns the run's list of such
        changes for ``summary["resumed"]`` (earlier ones first; empty when none) and this
        resume's changes (``{key: [old, new]}``)."""
        changed = self.check_resume(cfg, force=force)
        if not self.writer:
            return [], {}
        old_summary = self.read_summary() or {}
        entries = [e for e in old_summary.get("resumed") or [] if isinstance(e, dict)]
        if changed:
            mtl = old_summary.get("mtl")
            mtl = mtl if isinstance(mtl, dict) else {}
            entries.append({"date": time.strftime("%Y-%m-%d %H:%M:%S"),
                            "from_epoch": mtl.get("epochs_run"), "to_epochs": cfg.training.epochs,
                            "changed": changed, "forced": any(k not in RESUMABLE_KEYS for k in changed)})
            atomic_write(self.config_path, dump_config(cfg))
        return entries, changed

    # ------------------------------------------------------------------ writing results
    def save_model(self, model: nn.Module, meta: dict[str, Any]) -> None:
        if self.writer:
            save_model(self.path, model, meta)

    def write_summary(self, summary: dict[str, Any]) -> None:
        if self.writer:
            write_json(self.summary_path, summary)

    def move_records_to(self, other: RunFolder) -> None:
        """Move ``metrics.jsonl`` to ``other`` (AdaShare: the search phase's records)."""
        if not self.writer:
            return
        other.path.mkdir(parents=True, exist_ok=True)
        if self.metrics_path.exists():
            os.replace(self.metrics_path, other.metrics_path)


def _writable(path: Path) -> bool:
    return os.access(path, os.W_OK)


def _dotted(d: Any, key: str) -> Any:
    for part in key.split("."):
        d = d.get(part) if isinstance(d, dict) else None
    return d


def _is_our_config(path: Path) -> bool:
    """``config.yaml`` of one of our runs: a mapping of RunConfig's keys with a ``data`` part."""
    if not path.is_file():
        return False
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except Exception:  # not YAML, not text: not ours
        return False
    return isinstance(data, dict) and "data" in data and set(data) <= set(RunConfig.model_fields)


def _is_our_json(path: Path) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (ValueError, OSError):
        return False
    return isinstance(data, dict) and isinstance(data.get("format_version"), int)


# ---------------------------------------------------------------------------- model files
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
    weights = write_temp(run_dir / MODEL_WEIGHTS, lambda p: save_file(state, str(p)))
    try:
        doc = {"format_version": FORMAT_VERSION, **meta, "weights_sha256": sha256_file(weights)}
        meta_tmp = write_temp(run_dir / MODEL_META, json.dumps(to_jsonable(doc), indent=2) + "\n")
    except BaseException:
        weights.unlink(missing_ok=True)
        raise
    for tmp, final in ((weights, run_dir / MODEL_WEIGHTS), (meta_tmp, run_dir / MODEL_META)):
        try:
            os.replace(tmp, final)
        except BaseException as exc:
            weights.unlink(missing_ok=True)
            meta_tmp.unlink(missing_ok=True)
            raise_write_error(final, exc)
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
