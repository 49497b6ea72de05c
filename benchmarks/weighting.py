"""Step time of every registered loss-space weighting, relative to Equal.

    python benchmarks/weighting.py            # K in {2, 10, 40}, 21 repeats of 10 steps
    python benchmarks/weighting.py --quick    # K in {2, 10}, 9 repeats of 5 steps
    python benchmarks/weighting.py --tasks 2 40 --repeats 11 --steps 30

Setup: an MLP trunk (64 inputs -> 256 -> 128, ReLU) shared by K regression heads
(``HardSharing``), Adam, batches of 256 samples built once (every task labelled), one torch
thread (``--threads``). Each weighting gets a fresh model with the same seed and a
``mtlkit.Trainer``; after ``--warmup`` steps, ``Trainer.train_step`` is timed over ``--steps``
consecutive steps, ``--repeats`` times, in CPU time of the process (``time.process_time``:
time the process spends descheduled on a busy machine does not count; ``--wall`` for
wall-clock). The repeats of all weightings are interleaved
(rounds, each timing every weighting once in a shuffled order), so a load spike on a shared
machine hits every method alike; the figure is the median ms/step, and ×Equal the median over
rounds of its time divided by Equal's time in the same round (paired, which cancels slow
drifts of the machine's load). ``static`` costs exactly what ``equal`` does: its ratio shows
the noise floor of the run.

The issue's targets: loss-space methods other than GradNorm and DBMTL ≤ 1.1× Equal, FAMO
≤ 1.3× (one extra forward). GradNorm and DBMTL take K backward passes for their per-task
gradients (DBMTL over all shared parameters, GradNorm over the last shared layer only);
GREAT differentiates through the gradients (double backward). Methods without a target show
"-".
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import torch

from mtlkit import HardSharing, MultiTaskData, Task, Trainer
from mtlkit._registry import WEIGHTINGS
from mtlkit.architectures.backbones import mlp

TARGETS = {"famo": 1.3, "gradnorm": None, "dbmtl": None, "great": None}


def build_case(k: int, n_batches: int, batch_size: int = 256, features: int = 64):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n_batches * batch_size, features, generator=g)
    mix = torch.randn(features, k, generator=g) / features**0.5
    y = torch.tanh(x @ mix) + 0.1 * torch.randn(x.shape[0], k, generator=g)
    tasks = [Task(f"t{i}", "regression") for i in range(k)]
    data = MultiTaskData(x, {t.name: y[:, i:i + 1] for i, t in enumerate(tasks)})
    batches = [data.batch(torch.arange(i * batch_size, (i + 1) * batch_size)) for i in range(n_batches)]
    return data, tasks, batches


def make_trainer(name: str, data, tasks) -> Trainer:
    torch.manual_seed(0)
    model = HardSharing(mlp(data.x.shape[1], (256, 128)), tasks)
    trainer = Trainer(model, tasks, weighting=WEIGHTINGS.build(name), lr=1e-3, progress=False, seed=0)
    trainer.setup(data)
    trainer.validation_data = data  # bilevel weightings (auto_lambda ...) draw validation batches
    return trainer


CLOCK = time.process_time


def time_steps(trainer: Trainer, batches, steps: int) -> float:
    start = CLOCK()
    for i in range(steps):
        trainer.train_step(batches[i % len(batches)])
    return (CLOCK() - start) / steps * 1000.0


def bench(k: int, names: list[str], *, steps: int, repeats: int, warmup: int
          ) -> dict[str, tuple[float, float]]:
    """{weighting: (median ms/step, median over rounds of its time / Equal's time in the
    same round)}. Each round times every weighting once, in a freshly shuffled order."""
    data, tasks, batches = build_case(k, n_batches=8)
    trainers = {n: make_trainer(n, data, tasks) for n in names}
    for t in trainers.values():
        time_steps(t, batches, warmup)
    times: dict[str, list[float]] = {n: [] for n in names}
    order = list(names)
    rng = random.Random(k)
    for _ in range(repeats):
        rng.shuffle(order)
        for n in order:
            times[n].append(time_steps(trainers[n], batches, steps))
    ref = times["equal"]
    return {n: (statistics.median(v), statistics.median(a / b for a, b in zip(v, ref)))
            for n, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="K in {2, 10}, fewer steps and repeats")
    ap.add_argument("--tasks", type=int, nargs="+", help="values of K (default 2 10 40)")
    ap.add_argument("--steps", type=int, help="timed steps per repeat")
    ap.add_argument("--repeats", type=int, help="repeats per weighting (median)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", nargs="+", help="weightings to time (Equal is always timed)")
    ap.add_argument("--wall", action="store_true",
                    help="time wall-clock (perf_counter) instead of the process's CPU time")
    args = ap.parse_args()
    global CLOCK
    if args.wall:
        CLOCK = time.perf_counter
    torch.set_num_threads(args.threads)
    ks = args.tasks or ([2, 10] if args.quick else [2, 10, 40])
    steps = args.steps or (5 if args.quick else 10)
    repeats = args.repeats or (9 if args.quick else 21)
    names = WEIGHTINGS.names()
    if args.only:
        names = sorted({"equal", *args.only})
    results = {k: bench(k, names, steps=steps, repeats=repeats, warmup=args.warmup) for k in ks}

    clock = "wall-clock" if args.wall else "CPU"
    print(f"{clock} ms/step (median of {repeats} × {steps} steps), MLP 64-256-128, batch 256, "
          f"{args.threads} thread(s); ×Equal in parentheses\n")
    head = "| weighting | " + " | ".join(f"K={k}" for k in ks) + " | target |"
    print(head)
    print("|" + "---|" * (len(ks) + 2))
    for n in names:
        cells = []
        for k in ks:
            ms, ratio = results[k][n]
            cells.append(f"{ms:.2f} ({ratio:.2f}×)")
        target = TARGETS.get(n, 1.1)
        tcell = "-" if target is None else f"≤ {target}×"
        if target is not None and any(results[k][n][1] > target for k in ks):
            tcell += " (over)"
        print(f"| {n} | " + " | ".join(cells) + f" | {tcell} |")


if __name__ == "__main__":
    main()
