"""The run folder as one object: its layout, the rules for starting, resuming and replacing a
run in it, its lock, and the files of a trained model (safetensors + JSON).

Layout of a run folder::

    config.yaml          the resolved config (rewritten when a resume extends the run)
    run.json             what the config does not say: the data's fingerprint, the user code
                         the run was allowed, data changes accepted on resume
    metrics.jsonl        one line per epoch of the multi-task model
    checkpoints/<name>/  crash-safe checkpoints: mtl, mtl-retrain, stl-<task>
    baselines/<task>/    each single-task baseline: metrics.jsonl, model.safetensors, model.json
    search/              the search phase of a two-phase architecture (AdaShare)
    model.safetensors    the weights of the run's model, and model.json to rebuild it
    summary.json         the results (:class:`~mtlkit.run.summary.Summary`)
    report.html          the report
    replaced/<date>/     earlier runs replaced with ``overwrite`` (see below)
    .lock                while a process writes the run (see :class:`RunLock`)
    .next/               an ``overwrite`` run until it has succeeded (see below)

**Nothing is ever deleted that a run did not write.** A new run goes into a folder that does
not exist, is empty or holds an earlier run of ours; a folder with other content is refused,
whatever the options (its files are not ours to mix a run into). An earlier run is refused
unless ``overwrite``; with ``overwrite`` the new run is written *beside* it, in ``.next/``,
and only when it has succeeded are the two swapped: the earlier run's files move into
``replaced/<date>/`` and the new run's into their place. A new run that fails (full disk,
bad data, a kill) leaves the earlier run untouched; ``--resume`` continues the new one. The
swap itself is a short sequence of renames recorded in ``.next/.swap.json``, so a kill in the
middle of it is completed by the next process that opens the folder. Delete ``replaced/``
yourself when you no longer need it.

Task and run names are folder names: one with a path separator, ``..`` or an absolute path
is refused (:class:`RunFolderError`), never used as a path.

Loading never executes code: weights are safetensors, metadata JSON/YAML (safe loader), and
``model.json`` records the SHA-256 of the weights and of its own content: a changed digit
of the preprocessing or a removed checksum is an error, not a silent change of predictions.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mtlkit._io import (
    atomic_write,
    fault_point,
    is_temp_file,
    path_component_problem,
    raise_write_error,
    sha256_file,
    sha256_json,
    to_jsonable,
    write_json,
    write_temp,
)
from mtlkit.config import ConfigError, RunConfig, config_diff, dump_config, read_yaml_file
from mtlkit.run.summary import FORMAT_VERSION, Summary

__all__ = ["FORMAT_VERSION", "MODEL_META", "MODEL_WEIGHTS", "RESUMABLE_KEYS", "RUN_RECORD", "SUMMARY",
           "DataChangedError", "RunFolder", "RunFolderError", "RunLock", "RunLockedError", "data_fingerprint",
           "load_model", "load_model_meta", "read_json", "save_model", "verify_model"]

CONFIG = "config.yaml"
RUN_RECORD = "run.json"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
MODEL_WEIGHTS = "model.safetensors"
MODEL_META = "model.json"
REPORT = "report.html"
CHECKPOINTS = "checkpoints"
BASELINES = "baselines"
SEARCH = "search"
REPLACED = "replaced"
LOCK = ".lock"
STAGING = ".next"
SWAP = ".swap.json"
#: everything a run of ours writes at the top of its folder (what a swap moves)
_OURS = (CONFIG, RUN_RECORD, METRICS, SUMMARY, REPORT, MODEL_WEIGHTS, MODEL_META, CHECKPOINTS, BASELINES,
         SEARCH)

#: config keys a resume may change without ``force``: the budget (``training.epochs``, which
#: may only grow: a finished run is extended) and how often checkpoints are written. Neither
#: changes what the epochs already trained computed. (``training.device`` is never compared.)
RESUMABLE_KEYS = frozenset({"training.epochs", "training.checkpoint_every", "training.keep_checkpoints"})


class RunFolderError(RuntimeError):
    """A run folder is missing something, is corrupted or comes from an incompatible version."""


class RunLockedError(RunFolderError):
    """Another process is writing the run folder."""


class DataChangedError(RunFolderError):
    """A resume on data that differs from the run's (see :meth:`RunFolder.check_data`)."""


def check_name(name: str, what: str) -> str:
    """``name`` if it can be a folder name; else a :class:`RunFolderError` naming it."""
    problem = path_component_problem(name)
    if problem is not None:
        raise RunFolderError(f"The {what} {name!r} {problem}: it becomes a folder name in the run folder.")
    return name


# ---------------------------------------------------------------------------- the lock
class RunLock:
    """``<folder>/.lock``: held while a process writes the run folder, so that a second
    ``mtlkit train`` on the same folder fails at once instead of mixing two runs.

    The lock file (written in full, then hard-linked into place, so it is never half written)
    records the holder's pid, host, process start time and a token. A lock whose holder is
    gone is stale and taken over: same host and the pid no longer runs (or runs another
    process: its start time differs, or it is a zombie). A lock from another host cannot be
    checked: it is refused with the holder named, and the message says which file to delete if
    no such process runs. ``with RunLock(path):`` acquires and releases it.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK
        self._token: str | None = None
        self._made_folder = False

    def __repr__(self) -> str:
        return f"RunLock({str(self.folder)!r})"

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()

    @property
    def held(self) -> bool:
        return self._token is not None

    def holder(self) -> dict[str, Any] | None:
        """The lock file's content (``None``: no lock; ``{}``: unreadable)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def is_stale(self, holder: dict[str, Any]) -> bool:
        """Whether the process that wrote ``holder`` is gone (see the class docstring)."""
        if not holder:  # unreadable: never written by us in full; stale once it is old
            try:
                return time.time() - self.path.stat().st_mtime > 60
            except OSError:
                return True
        pid = holder.get("pid")
        if holder.get("host") != socket.gethostname() or not isinstance(pid, int):
            return False
        if not _pid_alive(pid):
            return True
        started = holder.get("process_start")
        return started is not None and _process_start(pid) not in (None, started)

    def describe(self, holder: dict[str, Any]) -> str:
        if not holder:
            return "an unreadable lock file"
        return (f"pid {holder.get('pid')} on host {holder.get('host')!r}, since {holder.get('since')}"
                + (f": {holder.get('command')}" if holder.get("command") else ""))

    def check(self) -> None:
        """Raise :class:`RunLockedError` if another live process holds the lock (nothing is
        written: the check made before any data loads)."""
        holder = self.holder()
        if holder is not None and not self.held and not self.is_stale(holder):
            raise RunLockedError(self._message(holder))

    def _message(self, holder: dict[str, Any]) -> str:
        return (f"The run folder {str(self.folder)!r} is being written by another mtlkit process "
                f"({self.describe(holder)}); wait until it ends or choose another --out. If no such process "
                f"runs any more (a machine that crashed), delete {str(self.path)!r}.")

    def acquire(self) -> RunLock:
        """Take the lock (a stale one is taken over) or raise :class:`RunLockedError`."""
        if self._token is not None:
            return self
        if self.folder.exists() and not self.folder.is_dir():
            raise FileExistsError(f"The run folder {str(self.folder)!r} is a file, not a folder; choose another "
                                  f"--out.")
        if not self.folder.exists():
            self.folder.mkdir(parents=True, exist_ok=True)
            self._made_folder = True
        token = uuid.uuid4().hex
        pid = os.getpid()
        content = json.dumps({"pid": pid, "host": socket.gethostname(), "process_start": _process_start(pid),
                              "since": time.strftime("%Y-%m-%d %H:%M:%S"), "token": token,
                              "command": " ".join(_command())[:300]}) + "\n"
        for _ in range(10):
            try:
                _create_exclusive(self.path, content)
            except FileExistsError:
                holder = self.holder()
                if holder is None:
                    continue  # released meanwhile: try again
                if not self.is_stale(holder):
                    raise RunLockedError(self._message(holder)) from None
                self._take_over(holder, token)
                continue
            self._token = token
            fault_point("locked", self.path)
            return self
        raise RunLockedError(f"Could not take the lock {str(self.path)!r}: other processes keep taking it.")

    def _take_over(self, holder: dict[str, Any], token: str) -> None:
        """Remove a stale lock: renamed away first (one process wins the rename), then checked
        to be the one judged stale (another process may have locked meanwhile: put it back)."""
        aside = self.path.with_name(f"{LOCK}.stale-{token}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        try:
            moved = json.loads(aside.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            moved = {}
        if holder and moved != holder:  # a fresh lock: restore it (fails if yet another exists)
            with contextlib.suppress(OSError):
                os.link(aside, self.path)
        aside.unlink(missing_ok=True)

    def release(self) -> None:
        """Remove the lock if this object holds it (and the folder, if the lock made it and
        nothing else was written)."""
        if self._token is None:
            return
        holder = self.holder()
        if holder and holder.get("token") == self._token:
            self.path.unlink(missing_ok=True)
        self._token = None
        if self._made_folder:
            with contextlib.suppress(OSError):
                self.folder.rmdir()  # only when empty
            self._made_folder = False


def _create_exclusive(path: Path, content: str) -> None:
    """Create ``path`` with ``content`` unless it exists (``FileExistsError``): the content is
    written in full to a temporary file first and hard-linked into place."""
    tmp = write_temp(path, content)
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: exclusive create, then write
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
    finally:
        tmp.unlink(missing_ok=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it runs, as another user
        return True
    stat = _proc_stat(pid)
    return not (stat and stat[0] == "Z")  # a zombie has ended


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (Linux), or ``None``."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()


def _process_start(pid: int) -> str | None:
    """When the process started (clock ticks since boot, Linux), to tell a reused pid."""
    stat = _proc_stat(pid)
    return stat[19] if stat and len(stat) > 19 else None


def _command() -> list[str]:
    import sys

    return [os.path.basename(sys.argv[0]) if sys.argv else "python", *sys.argv[1:]]


# ---------------------------------------------------------------------------- the folder
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

    @property
    def record_path(self) -> Path:
        return self.path / RUN_RECORD

    def checkpoint_dir(self, name: str) -> Path:
        return self.path / CHECKPOINTS / check_name(name, "checkpoint name")

    def baseline(self, task: str) -> RunFolder:
        """The folder of the single-task baseline of ``task`` (a loadable run folder too)."""
        return RunFolder(self.path / BASELINES / check_name(task, "task name"), writer=self.writer)

    @property
    def search(self) -> RunFolder:
        """The folder of the search phase of a two-phase architecture."""
        return RunFolder(self.path / SEARCH, writer=self.writer)

    @property
    def staging(self) -> RunFolder:
        """Where an ``overwrite`` run is written until it succeeds (``.next/``)."""
        return RunFolder(self.path / STAGING, writer=self.writer)

    def lock(self) -> RunLock:
        return RunLock(self.path)

    # ------------------------------------------------------------------ what is there
    def holds_run(self) -> bool:
        """Whether the folder holds a run of ours (finished or not, or one being swapped in)."""
        return (_is_our_config(self.config_path) or self.swap_pending()
                or any(_is_our_json(self.path / n) for n in (SUMMARY, MODEL_META, RUN_RECORD)))

    def is_finished(self) -> bool:
        return (self.path / MODEL_WEIGHTS).exists()

    def swap_pending(self) -> bool:
        """An ``overwrite`` that succeeded but whose swap was interrupted (a kill)."""
        return (self.path / STAGING / SWAP).is_file()

    def overwrite_pending(self) -> bool:
        """An ``overwrite`` run that has not finished (``--resume`` continues it)."""
        return (self.path / STAGING / CONFIG).is_file() and not self.swap_pending()

    def active(self) -> RunFolder:
        """The run a resume continues: the ``overwrite`` run in ``.next/`` if there is one,
        else this folder's."""
        return self.staging if (self.path / STAGING / CONFIG).is_file() else self

    def saved_config(self) -> dict[str, Any]:
        """The run's own ``config.yaml`` (as a mapping); unreadable is a :class:`ConfigError`
        naming the file."""
        if not self.config_path.exists():
            raise FileNotFoundError(f"Nothing to resume: {str(self.path)!r} holds no run (config.yaml).")
        data = read_yaml_file(self.config_path, what="The run's config")
        if not isinstance(data, dict):
            raise ConfigError(f"The run's config {str(self.config_path)!r} is not a mapping (corrupted?); "
                              f"it holds {type(data).__name__}.")
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

    def read_record(self) -> dict[str, Any]:
        """``run.json`` (empty when the run has none: written by an older mtlkit)."""
        try:
            data = read_json(self.record_path)
        except RunFolderError as exc:
            if self.record_path.exists():
                raise RunFolderError(f"{exc} Delete it to resume without the run's data fingerprint.") from None
            return {}
        if not isinstance(data, dict):
            raise RunFolderError(f"{str(self.record_path)!r} must hold a JSON object (corrupted?).")
        return data

    def write_record(self, record: dict[str, Any]) -> None:
        if self.writer:
            write_json(self.record_path, {"format_version": FORMAT_VERSION, **record})

    def load_model(self) -> tuple[nn.Module, dict[str, Any]]:
        """The run's model, rebuilt from ``model.json`` and ``model.safetensors``."""
        return load_model(self.path)

    def verify(self) -> dict[str, Any]:
        """Check the run's model files against their checksums (:func:`verify_model`)."""
        return verify_model(self.path)

    # ------------------------------------------------------------------ housekeeping
    def check_unlocked(self) -> None:
        """Refuse at once a folder another live process is writing (writes nothing)."""
        if self.writer:
            self.lock().check()

    def recover(self) -> list[Path]:
        """Under the lock: complete an interrupted swap, and remove the temporary files that
        a killed process left (``.<name>.<random>.tmp``: only ever written by us). Returns the
        removed files."""
        if not self.writer or not self.path.is_dir():
            return []
        removed = []
        for base in (self.path, self.path / STAGING):
            if not base.is_dir():
                continue
            for entry in base.iterdir():
                if entry.is_dir() and entry.name in (CHECKPOINTS, BASELINES, SEARCH):  # ours, all of it
                    found = [f for f in entry.rglob("*") if is_temp_file(f)]
                else:  # at the top: only the temporary files of our own files (not a user's)
                    found = [entry] if is_temp_file(entry) and _temp_of(entry.name) in _TOP_FILES else []
                for f in found:
                    f.unlink(missing_ok=True)
                    removed.append(f)
        if self.swap_pending():
            self._finish_swap()
        return removed

    # ------------------------------------------------------------------ starting a run
    def check_new(self, *, overwrite: bool) -> None:
        """Refuse (without writing anything) a folder a new run may not start in."""
        if not self.writer:
            return
        p = self.path
        if p.exists() and not p.is_dir():
            raise FileExistsError(f"The run folder {str(p)!r} is a file, not a folder; choose another --out.")

        def ours_aside(e: Path) -> bool:  # earlier runs, the lock (also one being taken over), temporary files
            return e.name == REPLACED or e.name.startswith(LOCK) or is_temp_file(e)

        if not p.exists() or all(ours_aside(e) for e in p.iterdir()):
            return  # new, empty, or holding only runs moved aside earlier
        if not self.holds_run():
            names = sorted(e.name for e in p.iterdir())
            shown = ", ".join(repr(n) for n in names[:5]) + (" ..." if len(names) > 5 else "")
            raise FileExistsError(f"The folder {str(p)!r} is not empty and holds no mtlkit run (it has "
                                  f"{shown}); a run is written only into a new or empty folder or over an "
                                  f"earlier run. Choose another --out.")
        if overwrite:
            return
        pending = (f" An interrupted --overwrite left an unfinished run in {str(p / STAGING)!r}: "
                   f"--resume {str(p)!r} continues it." if self.overwrite_pending() else "")
        if self.is_finished() or self.swap_pending():
            raise FileExistsError(f"The run folder {str(p)!r} already holds a finished run; choose another "
                                  f"--out or pass --overwrite.{pending}")
        raise FileExistsError(f"The run folder {str(p)!r} holds an unfinished run; continue it with "
                              f"--resume {str(p)!r}, choose another --out, or pass --overwrite (the earlier "
                              f"run is moved to {REPLACED}/ once the new one has succeeded).")

    def start(self, cfg: RunConfig, *, overwrite: bool, record: dict[str, Any] | None = None) -> RunFolder:
        """Make the folder ready for a new run and write its ``config.yaml`` and ``run.json``
        (``record``). Returns the folder the new run writes into: this one, or — over an
        earlier run (``overwrite``) — ``.next/`` beside it, swapped in by :meth:`commit` when
        the run has succeeded. Call it holding the lock (:meth:`lock`)."""
        self.recover()
        self.check_new(overwrite=overwrite)
        if not self.writer:
            return self.staging if overwrite and self.holds_run() else self
        self.path.mkdir(parents=True, exist_ok=True)
        if not _writable(self.path):
            raise PermissionError(f"The run folder {str(self.path)!r} is not writable.")
        target = self
        if self.holds_run():
            target = self.staging
            if target.path.exists() and not any(target.path.iterdir()):
                target.path.rmdir()  # ours and empty (a kill before its config was written)
            if target.path.exists():  # an earlier --overwrite that never finished: kept aside
                dest = self._replaced_dir("unfinished")
                fault_point("keep-unfinished", target.path)
                os.replace(target.path, dest)
            target.path.mkdir()
        atomic_write(target.config_path, dump_config(cfg))
        target.write_record(record or {})
        return target

    def commit(self, target: RunFolder) -> Path | None:
        """Put a finished ``overwrite`` run (``target`` = :attr:`staging`) in place of the
        earlier one, which moves to ``replaced/<date>/``; returns where it went (``None``:
        ``target`` is this folder, nothing to swap)."""
        if not self.writer or target.path != self.path / STAGING:
            return None
        dest = self._replaced_dir()
        atomic_write(self.path / STAGING / SWAP, json.dumps({"replaced": dest.name, "phase": "aside"}))
        self._finish_swap()
        return dest

    def _replaced_dir(self, suffix: str = "") -> Path:
        """A new, unused ``replaced/<date>[-suffix][-n]`` path (not created)."""
        stamp = time.strftime("%Y%m%d-%H%M%S") + (f"-{suffix}" if suffix else "")
        dest, n = self.path / REPLACED / stamp, 2
        while dest.exists():
            dest, n = self.path / REPLACED / f"{stamp}-{n}", n + 1
        dest.parent.mkdir(parents=True, exist_ok=True)
        return dest

    def _finish_swap(self) -> None:
        """The swap recorded in ``.next/.swap.json``, from where it stopped: (1) the earlier
        run's files move to ``replaced/<date>/``, (2) the new run's move into place, (3) the
        record and ``.next/`` go. Each step is a rename; repeating a step is harmless."""
        staging = self.path / STAGING
        marker = staging / SWAP
        try:
            plan = json.loads(marker.read_text(encoding="utf-8"))
            dest = self.path / REPLACED / check_name(plan["replaced"], "replaced folder")
            phase = plan["phase"]
        except (OSError, ValueError, KeyError, TypeError, RunFolderError) as exc:
            raise RunFolderError(f"The swap record {str(marker)!r} of an interrupted --overwrite is unreadable "
                                 f"({exc}); the new run is in {str(staging)!r}, the earlier one in "
                                 f"{str(self.path)!r}: move the files by hand.") from None
        if phase == "aside":
            dest.mkdir(parents=True, exist_ok=True)
            for name in _OURS:
                src = self.path / name
                if src.exists() or src.is_symlink():
                    fault_point("swap-aside", src)
                    os.replace(src, dest / name)
            atomic_write(marker, json.dumps({"replaced": dest.name, "phase": "install"}))
        for entry in sorted(staging.iterdir()):
            if entry.name != SWAP:
                fault_point("swap-install", self.path / entry.name)
                os.replace(entry, self.path / entry.name)
        marker.unlink()
        fault_point("swapped", self.path)
        staging.rmdir()

    # ------------------------------------------------------------------ resuming a run
    def check_resume(self, cfg: RunConfig, *, force: bool) -> dict[str, list[Any]]:
        """The config keys that differ from the run's own config, as ``{key: [old, new]}``.
        Refuses (a :class:`ConfigError` listing every differing key) a change outside
        :data:`RESUMABLE_KEYS` or fewer epochs than the run had, unless ``force``. An
        interrupted ``overwrite`` run is the one compared (:meth:`active`)."""
        if not self.writer:
            return {}
        if self.active() is not self:
            return self.active().check_resume(cfg, force=force)
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

    def check_data(self, fingerprint: dict[str, Any], *, allow_change: bool) -> list[str]:
        """Compare the data a resume trains on with the run's (``run.json``): a difference is a
        :class:`DataChangedError` naming what differs, or with ``allow_change`` the list of
        differences (the caller warns and records them). A run without a recorded fingerprint
        (an older mtlkit) cannot be checked: ``["no fingerprint recorded"]``."""
        old = self.read_record().get("data")
        if not isinstance(old, dict):
            return ["the run recorded no fingerprint of its data (an older mtlkit): it is recorded now"]
        diffs = _fingerprint_diff(old, fingerprint)
        if diffs and not allow_change:
            raise DataChangedError(
                f"The data differs from the data the run in {str(self.path)!r} was trained on: {'; '.join(diffs)}. "
                f"Refusing to resume: the checkpoints belong to the old data. Train a new run (another --out or "
                f"--overwrite), or pass --allow-data-change to continue anyway (recorded in run.json).")
        return diffs

    def check_code(self, records: list[dict[str, Any]], *, force: bool) -> list[str]:
        """Compare the user code allowed now with the code the run recorded (module and file
        checksum): a changed file is a :class:`ConfigError` unless ``force``."""
        old = {r.get("module"): r for r in self.read_record().get("code") or [] if isinstance(r, dict)}
        diffs = [f"{r['module']} ({r.get('file')}) changed since the run started" for r in records
                 if r.get("module") in old and old[r["module"]].get("sha256") != r.get("sha256")]
        if diffs and not force:
            raise ConfigError(f"The user code differs from the run's: {'; '.join(diffs)}. Refusing to resume "
                              f"(pass --force to resume anyway).")
        return diffs

    def resume(self, cfg: RunConfig, *, force: bool, data: dict[str, Any] | None = None,
               code: list[dict[str, Any]] | None = None, allow_data_change: bool = False
               ) -> tuple[RunFolder, list[dict[str, Any]], dict[str, list[Any]]]:
        """Check a resume (config: :meth:`check_resume`; data: :meth:`check_data`; user code:
        :meth:`check_code`); when the config changed (more epochs ...), rewrite
        ``config.yaml`` and record the change. Call it holding the lock.

        Returns the folder the run continues in (:meth:`active`), the run's list of config
        changes for ``summary["resumed"]`` (earlier ones first; empty when none) and this
        resume's changes (``{key: [old, new]}``)."""
        self.recover()
        target = self.active()
        if target is not self and not target.writer:
            return target, [], {}
        changed = target.check_resume(cfg, force=force)
        if not self.writer:
            return target, [], {}
        record = target.read_record()
        data_diffs = target.check_data(data, allow_change=allow_data_change) if data is not None else []
        if data_diffs:
            warnings.warn(f"Resuming the run in {str(target.path)!r} on data that differs from the run's "
                          f"({'; '.join(data_diffs)}); recorded in {RUN_RECORD}.", stacklevel=2)
        code_diffs = target.check_code(code or [], force=force)
        if data_diffs or code_diffs or (code and record.get("code") != code):
            now = time.strftime("%Y-%m-%d %H:%M:%S")
            if data_diffs:
                record.setdefault("data_changes", []).append({"date": now, "differences": data_diffs,
                                                              "previous": record.get("data")})
                record["data"] = data
            if code:
                record["code"] = code
            record.pop("format_version", None)
            target.write_record(record)
        old_summary = target.read_summary() or {}
        entries = [e for e in old_summary.get("resumed") or [] if isinstance(e, dict)]
        if changed:
            mtl = old_summary.get("mtl")
            mtl = mtl if isinstance(mtl, dict) else {}
            entries.append({"date": time.strftime("%Y-%m-%d %H:%M:%S"),
                            "from_epoch": mtl.get("epochs_run"), "to_epochs": cfg.training.epochs,
                            "changed": changed, "forced": any(k not in RESUMABLE_KEYS for k in changed)})
            atomic_write(target.config_path, dump_config(cfg))
        return target, entries, changed

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


#: the files at the top of a run folder whose temporary files a recovery removes
_TOP_FILES = frozenset({CONFIG, RUN_RECORD, METRICS, SUMMARY, REPORT, MODEL_WEIGHTS, MODEL_META, LOCK, SWAP})


def _temp_of(name: str) -> str:
    """``config.yaml`` for ``.config.yaml.ab12cd34.tmp``."""
    return name[1:-13] if name.endswith(".tmp") and len(name) > 14 else ""


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
    try:
        data = read_yaml_file(path)
    except ConfigError:  # not YAML, not text: not ours
        return False
    return isinstance(data, dict) and "data" in data and set(data) <= set(RunConfig.model_fields)


def _is_our_json(path: Path) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (ValueError, OSError):
        return False
    return isinstance(data, dict) and isinstance(data.get("format_version"), int)


# ---------------------------------------------------------------------------- the data's fingerprint
def data_fingerprint(prepared: Any) -> dict[str, Any]:
    """What identifies the data of a run (``run.json``), from its prepared splits: the source,
    the split sizes, the SHA-256 of the primary tasks' labels and masks (in split order), and
    for a file the SHA-256 and size of the file. (Auxiliary targets and standardised inputs are
    computed with floating point and may differ in the last bit between machines: they are
    covered by the file's checksum instead. A built-in dataset is identified by its name and
    options in the config, its sizes and its labels.)"""
    h = hashlib.sha256()
    sizes = {}
    primary = [t.name for t in prepared.tasks if getattr(t, "role", "primary") == "primary"]
    for part in ("train", "val", "test"):
        d = getattr(prepared, part)
        sizes[part] = len(d)
        for name in primary:
            for kind, t in (("y", d.targets[name]), ("m", d.masks[name])):
                t = t.detach().cpu().contiguous()
                h.update(f"{part}/{name}/{kind}/{t.dtype}/{tuple(t.shape)};".encode())
                h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    out: dict[str, Any] = {"source": prepared.source, "sizes": sizes, "labels_sha256": h.hexdigest()}
    source = str(prepared.source or "")
    if source.startswith("file:") and Path(source[5:]).is_file():
        f = Path(source[5:])
        out["file_sha256"] = sha256_file(f)
        out["file_bytes"] = f.stat().st_size
    return out


def _fingerprint_diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    out = []
    if old.get("source") != new.get("source"):
        out.append(f"the source was {old.get('source')!r}, now {new.get('source')!r}")
    if old.get("sizes") != new.get("sizes"):
        out.append(f"the split sizes were {old.get('sizes')}, now {new.get('sizes')}")
    if "file_sha256" in old and "file_sha256" in new and old["file_sha256"] != new["file_sha256"]:
        out.append(f"the file's content changed (SHA-256 {str(old['file_sha256'])[:12]}… -> "
                   f"{str(new['file_sha256'])[:12]}…, {old.get('file_bytes')} -> {new.get('file_bytes')} bytes)")
    if old.get("labels_sha256") != new.get("labels_sha256"):
        out.append("the labels differ")
    return out


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
    """Write ``model.safetensors`` and ``model.json`` atomically. Refuses non-finite weights.

    ``model.json`` records the SHA-256 of the weights (``weights_sha256``) and of its own
    content (``meta_sha256``, over the canonical JSON of every other key): everything a
    model needs to predict — the weights, the architecture, the tasks, the input
    standardisation — is covered by a checksum that :func:`load_model_meta` verifies."""
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise RunFolderError(f"Refusing to save non-finite weights (tensors {bad[:3]}).")
    run_dir = Path(run_dir)
    # both files are written in full before either replaces its previous version (a full disk
    # never pairs new weights with old metadata)
    weights = write_temp(run_dir / MODEL_WEIGHTS, lambda p: save_file(state, str(p)))
    try:
        body = {k: v for k, v in meta.items() if k not in ("weights_sha256", "meta_sha256")}
        doc = json.loads(json.dumps(to_jsonable({"format_version": FORMAT_VERSION, **body,
                                                 "weights_sha256": sha256_file(weights)})))
        doc["meta_sha256"] = sha256_json(doc)
        meta_tmp = write_temp(run_dir / MODEL_META, json.dumps(doc, indent=2) + "\n")
    except BaseException:
        weights.unlink(missing_ok=True)
        raise
    fault_point("written", run_dir / MODEL_WEIGHTS)
    for tmp, final in ((weights, run_dir / MODEL_WEIGHTS), (meta_tmp, run_dir / MODEL_META)):
        try:
            os.replace(tmp, final)
        except BaseException as exc:
            weights.unlink(missing_ok=True)
            meta_tmp.unlink(missing_ok=True)
            raise_write_error(final, exc)
            raise
        fault_point("replaced", final)


def load_model_meta(run_dir: str | Path) -> dict[str, Any]:
    """``model.json``, verified: the format version this mtlkit reads and its own checksum
    (``meta_sha256``); a missing checksum is an error, never a pass."""
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
    expected = meta.get("meta_sha256")
    if not isinstance(expected, str):
        raise RunFolderError(f"{str(meta_path)!r} records no checksum of its own content (meta_sha256): it was "
                             f"edited, or written by an older mtlkit. Every file a model needs must be covered "
                             f"by a checksum; retrain (or re-save) the model.")
    if sha256_json({k: v for k, v in meta.items() if k != "meta_sha256"}) != expected:
        raise RunFolderError(f"{str(meta_path)!r} does not match its checksum (meta_sha256): it was edited or "
                             f"corrupted (a changed task, architecture or input standardisation would silently "
                             f"change every prediction).")
    if not isinstance(meta.get("weights_sha256"), str):
        raise RunFolderError(f"{str(meta_path)!r} records no checksum of the weights (weights_sha256).")
    return meta


def verify_model(run_dir: str | Path) -> dict[str, Any]:
    """Check a run's model files without building the model: ``model.json``
    (:func:`load_model_meta`) and ``model.safetensors`` against the checksum it records.
    Returns ``model.json``'s content; anything wrong is a :class:`RunFolderError` naming the
    file."""
    run_dir = Path(run_dir)
    meta = load_model_meta(run_dir)
    if sha256_file(run_dir / MODEL_WEIGHTS) != meta["weights_sha256"]:
        raise RunFolderError(f"Weights {str(run_dir / MODEL_WEIGHTS)!r} do not match the checksum recorded in "
                             f"{MODEL_META} (corrupted or truncated?).")
    return meta


def load_model(run_dir: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model from ``model.json`` and load ``model.safetensors`` (no pickle)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from mtlkit.architectures import build_model
    from mtlkit.tasks import task_from_dict

    run_dir = Path(run_dir)
    meta = verify_model(run_dir)
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
    _load_weights(model, state, run_dir)
    model.eval()
    return model, meta


def _load_weights(model: nn.Module, state: dict[str, Any], run_dir: Path) -> None:
    """``state`` into ``model``, every tensor; otherwise a :class:`RunFolderError` naming the
    missing, unexpected or mis-shaped tensors (e.g. a run saved by an mtlkit whose model of
    that architecture named or shaped its layers differently)."""
    where = f"Weights in {str(run_dir / MODEL_WEIGHTS)!r} do not match the model described in {MODEL_META}"
    hint = ("; the run was probably saved by another version of mtlkit (retrain it, or rebuild the model "
            "in Python and load what fits with load_state_dict(..., strict=False))")
    own = model.state_dict()
    wrong = [f"{k} {tuple(v.shape)} (the model's is {tuple(own[k].shape)})"
             for k, v in state.items()
             if k in own and isinstance(own[k], torch.Tensor) and tuple(v.shape) != tuple(own[k].shape)]
    problems = [(what, names) for what, names in (
        ("missing from the file", [k for k in own if k not in state]),
        ("in the file but not in the model", [k for k in state if k not in own]),
        ("of another shape", wrong)) if names]
    if problems:
        said = "; ".join(f"{len(names)} {what}: {', '.join(names[:4])}{' ...' if len(names) > 4 else ''}"
                         for what, names in problems)
        raise RunFolderError(f"{where}: {said}{hint}.")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise RunFolderError(f"{where}: {str(exc).splitlines()[0]}{hint}.") from None
