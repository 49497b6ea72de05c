"""Reproduction 3 of issue 7: ten related targets on one shared layer vs ten separate models.

    python examples/auxiliary/sp500_related_targets.py          # the README table (seeds 0, 1, 2)
    python examples/auxiliary/sp500_related_targets.py --smoke  # seconds: 1 seed, 1 epoch, 2 targets

Next-day up/down of the 10 stocks in river's SP500 data (AAPL ... XOM, 2013-2018) from the
10 stocks' returns over the last 10 trading days, as configured in ``sp500.yaml``: one hidden
layer of 32 units shared by ten binary heads, equal λ, vs ten single-task models with the
same layer (the run's single-task baselines). Each seed runs exactly what
``mtlkit train examples/auxiliary/sp500.yaml --set seed=<s>`` runs (without writing a run
folder). Printed: the test ROC AUC of every target (mean ± std over seeds), how many seeds
the shared model wins, Δm on the AUC (``mtlkit.evaluation.delta_m``, negative = the shared
model is better) and the run's own Δm over all binary metrics (accuracy, F1, AUC).

The test days are the chronologically last 20 %; the chance level of an AUC on n_up / n_down
test days has standard deviation sqrt((n_up + n_down + 1) / (12 n_up n_down)) (Hanley &
McNeil 1982, at AUC = 0.5), printed as "chance ± sd" to read the table against.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path

import torch

from mtlkit.config import load_config
from mtlkit.evaluation import delta_m
from mtlkit.run import prepare_from_config, run

CONFIG = Path(__file__).resolve().parent / "sp500.yaml"


def fmt(values: list[float], digits: int = 3) -> str:
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--smoke", action="store_true", help="1 seed, 1 epoch, 2 targets (a test that it runs)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    seeds = [0] if args.smoke else list(range(args.seeds))
    overrides = ["training.monitor_conflicts=false"]
    if args.smoke:
        overrides += ["training.epochs=1", "tasks=[{name: AAPL, kind: binary}, {name: AMZN, kind: binary}]"]

    mtl: dict[str, list[float]] = {}
    stl: dict[str, list[float]] = {}
    dm_auc, dm_all, epochs_mtl = [], [], []
    t0 = time.perf_counter()
    for seed in seeds:
        cfg = load_config(CONFIG, [f"seed={seed}", *overrides])
        prepared = prepare_from_config(cfg)
        res = run(cfg, prepared, out_dir=None, progress=False)
        s = res.summary
        tasks = res.tasks
        mt = s["mtl"]["test"]
        st = {k: v["test"] for k, v in s["baselines"].items()}
        for t in tasks:
            mtl.setdefault(t.name, []).append(mt[t.name]["roc_auc"])
            stl.setdefault(t.name, []).append(st[t.name]["roc_auc"])
        dm_auc.append(delta_m(mt, st, tasks, metrics={t.name: ["roc_auc"] for t in tasks}))
        dm_all.append(s["delta_m"])
        epochs_mtl.append(s["mtl"]["best_epoch"])
        print(f"  seed {seed} done ({time.perf_counter() - t0:.0f} s)", flush=True)

    test = prepared.test
    n = len(test)
    print(f"\nSP500 next-day up/down, {len(prepared.train)} train / {len(prepared.val)} validation / {n} test "
          f"days (test = the last 20 %); seeds {seeds}; best MTL epochs {epochs_mtl}\n")
    print("| target | up-days in test | chance ± sd | AUC, 10 heads on one shared layer | AUC, separate model "
          "| seeds shared > separate |")
    print("|---|---|---|---|---|---|")
    for t in tasks:
        y = test.targets[t.name].numpy()
        n_up = int(y.sum())
        sd = math.sqrt((n + 1) / (12 * n_up * (n - n_up)))
        wins = sum(a > b for a, b in zip(mtl[t.name], stl[t.name]))
        print(f"| {t.name} | {n_up / n:.2f} | 0.500 ± {sd:.3f} | {fmt(mtl[t.name])} | {fmt(stl[t.name])} "
              f"| {wins}/{len(seeds)} |")
    mean_m = [statistics.mean(mtl[t.name][i] for t in tasks) for i in range(len(seeds))]
    mean_s = [statistics.mean(stl[t.name][i] for t in tasks) for i in range(len(seeds))]
    print(f"| **mean of {len(tasks)}** | | | {fmt(mean_m)} | {fmt(mean_s)} | "
          f"{sum(a > b for a, b in zip(mean_m, mean_s))}/{len(seeds)} |")
    print(f"\nΔm on AUC (%; negative = shared model better): {fmt(dm_auc, 2)}  per seed "
          f"{[round(v, 2) for v in dm_auc]}")
    print(f"Δm over accuracy, F1 and AUC (the run summary's delta_m): {fmt(dm_all, 2)}")
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
