"""A kill at every fault-injection point of a run's writes (issue 20).

Every write of a run goes through :func:`mtlkit._io.fault_point` (``written``: the temporary
file is complete, the destination still old; ``replaced``: renamed) and the run folder adds
its own points (``locked``, the swap of an ``--overwrite``: ``swap-aside``, ``swap-install``,
``swapped``). A first, uninterrupted run records every point it passes; then, for each kind
of point, a forked copy of the process runs the same command and is killed there with
``os._exit`` (no clean-up runs: the lock, the temporary files and half-done renames stay,
as after a SIGKILL). A resume must then give the uninterrupted run's result bit for bit, or
refuse with a clear error; no earlier good file may be lost, and no temporary file or lock of
the killed process may remain.

Two scenarios: a new run into an empty folder, and an ``--overwrite`` of a finished run (the
earlier run's files must survive byte for byte: in place, or in ``replaced/<date>/``)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
import torch
from _robust import TASKS, tiny_frame

import mtlkit._io as io
from mtlkit.config import ConfigError, parse_config
from mtlkit.run import RunFolderError, prepare_from_config, run

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setattr("mtlkit.run.execute.write_report_safely", lambda run_dir, say: None)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # fork-safe, and the same arithmetic in the parent and the child
    yield
    torch.set_num_threads(threads)
    io.FAULT_HOOK = None


def _cfg(data: Path, seed: int):
    return parse_config({"name": "crash", "seed": seed, "data": {"path": str(data)},
                         "tasks": [t.to_dict() for t in TASKS], "model": {"trunk": {"name": "mlp", "hidden": [8]}},
                         "training": {"epochs": 1, "batch_size": 12, "checkpoint_every": 2}, "baselines": True})


def _run(cfg, out: Path, **kw):
    return run(cfg, prepare_from_config(cfg), out_dir=out, progress=False, **kw)


def _kind(point: str, path: Path, root: Path) -> str:
    """The kind of a point: its name and the file, numbers and task names folded."""
    rel = path.relative_to(root).as_posix() if path != root else "."
    rel = re.sub(r"stl-[^/]+", "stl-T", re.sub(r"baselines/[^/]+", "baselines/T", rel))
    return f"{point}:{re.sub(r'[0-9]+', '#', rel)}"


def _record(cfg, out: Path, **kw) -> list[str]:
    """Run once, uninterrupted, and return the kind of every point passed, in order."""
    seen: list[str] = []
    io.FAULT_HOOK = lambda point, path: seen.append(_kind(point, path, out))
    try:
        _run(cfg, out, **kw)
    finally:
        io.FAULT_HOOK = None
    return seen


def _crash_plan(seen: list[str]) -> list[tuple[str, int]]:
    """(kind, occurrence) to kill at: the first and the last occurrence of every kind."""
    plan: list[tuple[str, int]] = []
    for kind in dict.fromkeys(seen):
        n = seen.count(kind)
        plan += [(kind, 1)] + ([(kind, n)] if n > 1 else [])
    return plan


def _killed_at(cfg, out: Path, kind: str, occurrence: int, **kw) -> None:
    """Run in a forked child that dies (``os._exit``) at the point; wait for it."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 0
        try:
            torch.set_num_threads(1)
            count = {"n": 0}

            def hook(point: str, path: Path) -> None:
                if _kind(point, path, out) == kind:
                    count["n"] += 1
                    if count["n"] == occurrence:
                        os._exit(137)

            io.FAULT_HOOK = hook
            _run(cfg, out, **kw)
        except BaseException:
            code = 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 137, f"the child did not reach {kind} #{occurrence}"


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _result(out: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    import json

    from safetensors.torch import load_file

    s = json.loads((out / "summary.json").read_text())
    metrics = {"mtl": s["mtl"]["test"], "baselines": {k: v["test"] for k, v in (s["baselines"] or {}).items()}}
    weights = {f"{p.parent.relative_to(out).as_posix()}/{k}": v for p in sorted(out.rglob("model.safetensors"))
               if "replaced" not in p.relative_to(out).parts for k, v in load_file(str(p)).items()}
    return metrics, weights


def _same_result(out: Path, ref: tuple[dict, dict[str, torch.Tensor]]) -> str | None:
    metrics, weights = _result(out)
    if metrics != ref[0]:
        return f"metrics differ: {metrics} != {ref[0]}"
    if sorted(weights) != sorted(ref[1]) or any(not torch.equal(weights[k], ref[1][k]) for k in weights):
        return "weights differ"
    return None


def _leftovers(out: Path) -> list[str]:
    """Temporary files and locks of the killed process that a resume should have removed."""
    return [p.relative_to(out).as_posix() for p in out.rglob("*")
            if (p.name.endswith(".tmp") or p.name.startswith(".lock")) and "replaced" not in p.parts]


def _check_after_kill(cfg, out: Path, ref, kind: str, n: int, **kw) -> str | None:
    """Resume after the kill; ``None`` when all is well, else what went wrong."""
    try:
        _run(cfg, out, resume=True)
    except (ConfigError, RunFolderError, FileNotFoundError) as exc:  # a clear refusal ...
        if not re.search(r"Nothing to resume|differs from the checkpointed run", str(exc)):
            return f"{kind} #{n}: unclear refusal {type(exc).__name__}: {exc}"
        try:  # ... after which the command itself, run again, succeeds
            _run(cfg, out, **kw)
        except Exception as again:
            return f"{kind} #{n}: refused ({exc}), then the command failed: {again}"
    except Exception as exc:
        return f"{kind} #{n}: resume failed with {type(exc).__name__}: {exc}"
    bad = _same_result(out, ref)
    if bad:
        return f"{kind} #{n}: {bad}"
    left = _leftovers(out)
    return f"{kind} #{n}: left behind {left}" if left else None


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    """The data, the uninterrupted new run (A) and the uninterrupted overwrite of A by B, with
    the kinds of points each passes."""
    root = tmp_path_factory.mktemp("crash")
    tiny_frame(60).to_csv(root / "d.csv", index=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("mtlkit.run.execute.write_report_safely", lambda run_dir, say: None)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            a, b = _cfg(root / "d.csv", 0), _cfg(root / "d.csv", 1)
            seen_new = _record(a, root / "A")
            shutil.copytree(root / "A", root / "AB")
            seen_over = _record(b, root / "AB", overwrite=True)
            ref_a, ref_b = _result(root / "A"), _result(root / "AB")
        finally:
            torch.set_num_threads(threads)
    return {"root": root, "a": a, "b": b, "seen_new": seen_new, "seen_over": seen_over, "ref_a": ref_a,
            "ref_b": ref_b, "files_a": _files(root / "A")}


def test_the_points_cover_every_kind_of_write(references):
    new, over = set(references["seen_new"]), set(references["seen_over"])
    for kind in ("locked:.lock", "written:config.yaml", "replaced:run.json", "written:checkpoints/mtl/ckpt-#.json",
                 "replaced:checkpoints/stl-T/manifest.json", "written:model.safetensors",
                 "replaced:baselines/T/model.json", "written:summary.json"):
        assert kind in new, (kind, sorted(new))
    for kind in ("written:.next/config.yaml", "written:.next/checkpoints/mtl/ckpt-#.safetensors",
                 "replaced:.next/summary.json", "replaced:.next/.swap.json", "swap-aside:model.safetensors",
                 "swap-install:checkpoints", "swapped:."):
        assert kind in over, (kind, sorted(over))


def _crash_everywhere(references, tmp_path, scenario: str, plan: list[tuple[str, int]]) -> list[str]:
    problems = []
    for i, (kind, n) in enumerate(plan):
        out = tmp_path / f"run{i}"
        if scenario == "new":
            cfg, ref, kw = references["a"], references["ref_a"], {}
        else:
            cfg, ref, kw = references["b"], references["ref_b"], {"overwrite": True}
            shutil.copytree(references["root"] / "A", out)
        _killed_at(cfg, out, kind, n, **kw)
        problem = _check_after_kill(cfg, out, ref, kind, n, **kw)
        if problem is None and scenario == "overwrite":
            problem = _earlier_run_kept(out, references["files_a"], kind, n)
        if problem:
            problems.append(problem)
        shutil.rmtree(out, ignore_errors=True)
    return problems


def _earlier_run_kept(out: Path, files_a: dict[str, bytes], kind: str, n: int) -> str | None:
    """Every file of the earlier run A, byte for byte, in ``replaced/<date>/``."""
    kept = [d for d in (out / "replaced").iterdir() if d.is_dir()] if (out / "replaced").is_dir() else []
    for d in kept:
        files = _files(d)
        if all(files.get(name) == data for name, data in files_a.items()):
            return None
    return f"{kind} #{n}: the earlier run's files are not all in replaced/ ({[d.name for d in kept]})"


QUICK = {"new": ["written:checkpoints/mtl/ckpt-#.safetensors", "replaced:model.safetensors",
                 "written:summary.json"],
         "overwrite": ["written:.next/config.yaml", "replaced:.next/checkpoints/stl-T/manifest.json",
                       "swap-aside:summary.json", "swap-install:model.json", "swapped:."]}


@pytest.mark.parametrize("scenario", ["new", "overwrite"])
def test_kill_at_key_points_then_resume(references, tmp_path, scenario):
    """A few points of each scenario (the whole list is the slow test below)."""
    seen = references["seen_new" if scenario == "new" else "seen_over"]
    plan = [(k, 1) for k in QUICK[scenario]]
    assert all(k in seen for k, _ in plan)
    problems = _crash_everywhere(references, tmp_path, scenario, plan)
    assert not problems, "\n".join(problems)


@pytest.mark.slow
@pytest.mark.parametrize("scenario", ["new", "overwrite"])
def test_kill_at_every_point_then_resume(references, tmp_path, scenario):
    plan = _crash_plan(references["seen_new" if scenario == "new" else "seen_over"])
    assert len(plan) >= 20
    problems = _crash_everywhere(references, tmp_path, scenario, plan)
    assert not problems, f"{len(problems)} of {len(plan)} points:\n" + "\n".join(problems)
