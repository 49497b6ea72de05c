"""Data-parallel training: step time and throughput for 1 vs 2 processes, and the bytes each
rank all-reduces per step, for Equal (DDP) and a gradient method (MGDA, parameter level).

    .venv/bin/python benchmarks/distributed.py            # K in {2, 10}, 40 steps each
    .venv/bin/python benchmarks/distributed.py --steps 80 --batch 512
    .venv/bin/python benchmarks/distributed.py --methods equal_bn equal_bn_unsynced --ks 2

Setup: synthetic regression data (64 features), hard sharing with an MLP trunk
64 -> 256 -> 256 (82,432 shared parameters) and K linear heads, Adam, global batch ``--batch``
(default 256), so a step sees the same samples in every configuration:

* ``1 proc x 1 thread``: one process, the whole batch;
* ``1 proc x 2 threads``: the same with two intra-op threads (the fair single-process
  baseline on a 2-core machine);
* ``2 procs x 1 thread``: :class:`mtlkit.training.distributed.DistributedTrainer` over gloo,
  each rank computing on half the batch.

Step times are wall-clock medians over the steps after ``--warmup`` (each process times its
own ``train_step``; rank 0's figures are shown), and the median over ``--repeats`` jobs per
setup, run interleaved; samples/s = global batch / median step time. The process CPU time per
step is shown too (it counts every thread of the process, so 2 threads can show up to twice the
wall time). The machine is shared and small, so the times are noisy: compare within one run.

Communication is the payload each rank hands to all-reduce per step (what a ring all-reduce
moves is about 2 (R-1)/R times that per rank): for Equal, DDP's gradient buckets (counted by a
communication hook) plus mtlkit's loss all-reduce; for MGDA, the loss all-reduce, the K x P
Jacobian of the shared parameters and the flattened bucket of the heads' gradients.

``equal_bn`` / ``equal_bn_unsynced`` (and ``mgda_bn`` / ``mgda_bn_unsynced``): Equal (MGDA at
the parameter level) with batch norm after each trunk layer, with the global batch's
statistics (``sync_batch_norm``, the default; small all-reduces per layer, one in the forward
and one per backward pass) or with each rank's own (``sync_batch_norm=False``): the price of
the former.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

FEATURES, HIDDEN, N = 64, [256, 256], 8192


class _Done(Exception):
    """Raised after the last timed step."""


def _data(k: int):
    from mtlkit import Task
    from mtlkit.data import from_arrays

    r = np.random.default_rng(0)
    x = r.normal(size=(N, FEATURES)).astype("float32")
    w = r.normal(size=(FEATURES, k))
    y = np.tanh(x @ w / 8) + 0.1 * r.normal(size=(N, k))
    tasks = [Task(f"t{i}", "regression") for i in range(k)]
    return from_arrays(x, {t.name: y[:, i] for i, t in enumerate(tasks)}, tasks), tasks


#: method name -> (aggregator, batch norm in the trunk, sync_batch_norm)
METHODS = {"equal": (None, False, None), "mgda": ("mgda", False, None),
           "equal_bn": (None, True, True), "equal_bn_unsynced": (None, True, False),
           "mgda_bn": ("mgda", True, True), "mgda_bn_unsynced": ("mgda", True, False)}


def _bench(k: int, method: str, steps: int, batch: int, warmup: int) -> dict[str, Any]:
    from mtlkit.aggregation import MGDA
    from mtlkit.architectures import build_model
    from mtlkit.training import Callback, seed_everything
    from mtlkit.training.distributed import DistributedTrainer

    data, tasks = _data(k)
    seed_everything(0)
    aggregator, batch_norm, sync = METHODS[method]
    model = build_model({"name": "hard_sharing", "trunk": {"name": "mlp", "hidden": HIDDEN, "batch_norm": batch_norm}},
                        tasks, (FEATURES,))
    ddp_traffic = {"bytes": 0, "calls": 0}

    class CountDDP(Callback):
        """Counts DDP's own gradient buckets (registered once the model is wrapped)."""

        def on_fit_start(self, trainer):
            ddp = getattr(trainer.comm, "_ddp", None)
            if ddp is not None:
                from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

                def hook(state, bucket):
                    buf = bucket.buffer()
                    ddp_traffic["bytes"] += buf.numel() * buf.element_size()
                    ddp_traffic["calls"] += 1
                    return allreduce_hook(state, bucket)

                ddp.register_comm_hook(None, hook)

    times: list[float] = []
    cpu: list[float] = []
    epochs = max(1, -(-steps * batch // N))
    t = DistributedTrainer(model, tasks, callbacks=[CountDDP()], aggregator=MGDA() if aggregator == "mgda" else None, epochs=epochs, batch_size=batch,
              lr=1e-3, seed=0, progress=False, monitor_conflicts=False, sync_batch_norm=sync)
    step = t.train_step

    def timed_step(b):
        t0, c0 = time.perf_counter(), time.process_time()
        out = step(b)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        if len(times) >= steps:  # every rank stops after the same step
            raise _Done
        return out

    t.train_step = timed_step  # type: ignore[method-assign]
    with contextlib.suppress(_Done):
        t.fit(data)
    n = len(times)
    med = statistics.median(times[warmup:])
    comm = t.comm_stats()
    for once in ("initial state", "buffers", "validation score", "checkpoint"):  # not per step
        comm["bytes"].pop(once, None)
        comm["calls"].pop(once, None)
    return {"k": k, "method": method, "steps": n, "median_ms": med * 1000, "samples_per_s": batch / med,
            "cpu_ms": statistics.median(cpu[warmup:]) * 1000,
            "shared_params": sum(p.numel() for p in model.shared_parameters()),
            "params": sum(p.numel() for p in model.parameters()),
            "bytes_per_step": (sum(comm["bytes"].values()) + ddp_traffic["bytes"]) / max(n, 1),
            "calls_per_step": (sum(comm["calls"].values()) + ddp_traffic["calls"]) / max(n, 1),
            "detail_bytes_per_step": {**{key: v / max(n, 1) for key, v in comm["bytes"].items()},
                                      **({"ddp buckets": ddp_traffic["bytes"] / n} if ddp_traffic["calls"] else {})}}


def _worker(rank: int, world: int, port: int, threads: int, out: str, args: dict[str, Any]) -> None:
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world)})
    torch.set_num_threads(threads)
    from mtlkit.training.distributed import init_from_env, shutdown

    init_from_env(timeout=300)
    rows = []
    for k in args["ks"]:
        for method in args["methods"]:
            rows.append(_bench(k, method, args["steps"], args["batch"], args["warmup"]))
    if rank == 0:
        Path(out).write_text(json.dumps(rows))
    shutdown()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _job(world: int, threads: int, args: dict[str, Any]) -> list[dict[str, Any]]:
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as d:
        out = str(Path(d) / "rows.json")
        mp.start_processes(_worker, args=(world, _free_port(), threads, out, args), nprocs=world,
                           start_method="spawn")
        return json.loads(Path(out).read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--ks", type=int, nargs="+", default=[2, 10])
    ap.add_argument("--methods", nargs="+", default=["equal", "mgda"], choices=sorted(METHODS))
    ap.add_argument("--repeats", type=int, default=3, help="jobs per setup, interleaved (median of medians)")
    a = ap.parse_args()
    args = {"steps": a.steps, "warmup": a.warmup, "batch": a.batch, "ks": a.ks, "methods": a.methods}
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    configs = [("1 proc x 1 thread", 1, 1), ("1 proc x 2 threads", 1, 2), ("2 procs x 1 thread", 2, 1)]
    runs: dict[str, list[list[dict[str, Any]]]] = {name: [] for name, _, _ in configs}
    for rep in range(a.repeats):  # interleaved, rotating the order: load changes hit every setup
        for name, world, threads in configs[rep % 3:] + configs[:rep % 3]:
            runs[name].append(_job(world, threads, args))
    results = {name: [{**rows[0][i], **{key: statistics.median(r[i][key] for r in rows)
                                        for key in ("median_ms", "samples_per_s", "cpu_ms")},
                       "range_ms": (min(r[i]["median_ms"] for r in rows), max(r[i]["median_ms"] for r in rows))}
                      for i in range(len(rows[0]))] for name, rows in runs.items()}
    print(f"global batch {a.batch}, {a.steps} steps (median over the last {a.steps - a.warmup}), "
          f"{a.repeats} interleaved job(s) per setup (median of their medians; range in brackets), "
          f"torch {torch.__version__}, {os.cpu_count()} CPUs\n")
    print("| K | method | setup | step ms (wall) | CPU ms / step (rank 0) | samples/s | "
          "all-reduce payload per step (per rank), KiB | calls |")
    print("|---|---|---|---|---|---|---|---|")
    for i, row in enumerate(results[configs[0][0]]):
        for name, _, _ in configs:
            r = results[name][i]
            comm = (f"{r['bytes_per_step'] / 1024:,.1f} ("
                    + ", ".join(f"{k} {v / 1024:,.1f}" for k, v in r["detail_bytes_per_step"].items()) + ")"
                    if r["calls_per_step"] else "-")
            lo, hi = r["range_ms"]
            print(f"| {row['k']} | {row['method']} | {name} | {r['median_ms']:.1f} [{lo:.1f}-{hi:.1f}] | "
                  f"{r['cpu_ms']:.1f} | {r['samples_per_s']:,.0f} | {comm} | {r['calls_per_step']:.0f} |")
    print()
    for i, row in enumerate(results["2 procs x 1 thread"]):
        if row["method"] != "mgda" or i == 0 or results["2 procs x 1 thread"][i - 1]["method"] != "equal":
            continue
        eq = results["2 procs x 1 thread"][i - 1]
        print(f"K={row['k']}: MGDA moves {row['bytes_per_step'] / eq['bytes_per_step']:.1f}x the bytes of Equal "
              f"per step ({row['shared_params']:,} shared of {row['params']:,} parameters)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
