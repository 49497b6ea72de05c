"""A run folder is locked while a process writes it (issue 20, item 6): two ``mtlkit train``
with the same ``--out`` both exited 0, interleaved ``metrics.jsonl`` and one run was lost.
Now the second fails at once with a message naming the holder; a stale lock (its process is
gone: dead pid, reused pid, zombie) is detected and taken over; a lock from another host is
refused with the file to delete."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import yaml
from _robust import tiny_frame
from typer.testing import CliRunner

from mtlkit.cli import get_app
from mtlkit.run import RunLock, RunLockedError


@pytest.fixture(autouse=True)
def _no_report(monkeypatch):
    monkeypatch.setattr("mtlkit.run.execute.write_report_safely", lambda run_dir, say: None)


@pytest.fixture
def config(tmp_path):
    tiny_frame(60).to_csv(tmp_path / "d.csv", index=False)
    cfg = {"name": "lock", "data": {"path": str(tmp_path / "d.csv")},
           "tasks": [{"name": "y", "kind": "multiclass", "num_classes": 3}], "training": {"epochs": 1},
           "model": {"trunk": {"name": "mlp", "hidden": [4]}}, "baselines": False}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    return tmp_path / "c.yaml"


def _train(config, out, *extra):
    return CliRunner().invoke(get_app(), ["train", str(config), "--out", str(out), "--no-progress", *extra])


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _write_lock(folder, **holder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".lock").write_text(json.dumps({"host": socket.gethostname(), "since": "earlier", **holder}))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_second_run_fails_at_once_while_the_first_holds_the_folder(tmp_path, config):
    """A real second process holds the lock; the run is refused before anything is written,
    and runs once that process has died (its lock is then stale)."""
    out = tmp_path / "run"
    pid = os.fork()
    if pid == 0:  # the first "run": takes the lock and works for a while
        try:
            RunLock(out).acquire()
            time.sleep(60)
        finally:
            os._exit(0)
    try:
        deadline = time.time() + 20
        while not (out / ".lock").exists() and time.time() < deadline:
            time.sleep(0.05)
        t0 = time.time()
        res = _train(config, out)
        assert res.exit_code == 2, res.output
        assert "is being written by another mtlkit process" in res.output and f"pid {pid}" in res.output
        assert time.time() - t0 < 30  # at once: before any data loads or training
        assert sorted(p.name for p in out.iterdir()) == [".lock"]  # nothing written
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    res = _train(config, out)  # the holder was killed: its lock is stale and taken over
    assert res.exit_code == 0, res.output
    assert (out / "model.safetensors").exists() and not (out / ".lock").exists()


def test_two_runs_in_one_process_cannot_share_a_folder(tmp_path):
    lock = RunLock(tmp_path / "run").acquire()
    try:
        with pytest.raises(RunLockedError, match=rf"pid {os.getpid()}"):
            RunLock(tmp_path / "run").acquire()
    finally:
        lock.release()
    assert not (tmp_path / "run" / ".lock").exists()


@pytest.mark.parametrize("kind", ["dead-pid", "reused-pid", "unreadable-and-old"])
def test_a_stale_lock_is_taken_over(tmp_path, config, kind):
    out = tmp_path / "run"
    if kind == "dead-pid":
        _write_lock(out, pid=_dead_pid())
    elif kind == "reused-pid":  # our own pid, but a process that started at another time
        _write_lock(out, pid=os.getpid(), process_start="1")
        if not os.path.exists(f"/proc/{os.getpid()}/stat"):
            pytest.skip("no /proc: a reused pid cannot be told")
    else:
        out.mkdir()
        (out / ".lock").write_text("{not json")
        os.utime(out / ".lock", (time.time() - 3600, time.time() - 3600))
    res = _train(config, out)
    assert res.exit_code == 0, res.output
    assert not (out / ".lock").exists()


def test_a_lock_from_another_host_is_refused_with_the_file_to_delete(tmp_path, config):
    out = tmp_path / "run"
    _write_lock(out, pid=1234, host="node-17.example")
    before = _files(out)
    res = _train(config, out)
    assert res.exit_code == 2, res.output
    assert "pid 1234 on host 'node-17.example'" in res.output and ".lock" in res.output
    assert _files(out) == before


def test_lock_is_released_when_the_run_fails(tmp_path, config, monkeypatch):
    def boom(job, model):
        assert (tmp_path / "run" / ".lock").exists()  # held while the run writes
        raise RuntimeError("training failed")

    monkeypatch.setattr("mtlkit.run.execute._train_multi_task", boom)
    res = _train(config, tmp_path / "run")
    assert res.exit_code == 2 and "training failed" in res.output
    assert not (tmp_path / "run" / ".lock").exists()
