"""Does ``mtlkit tune`` find a better multi-task configuration than the default one?

    python benchmarks/tune.py                 # yeast + adult, 8 trials, 3 seeds, 6 epochs
    python benchmarks/tune.py --quick         # the same, smallest settings (a smoke run)
    python benchmarks/tune.py --trials 20 --seeds 5 --epochs 10

On two real built-in datasets, **yeast** (2,417 genes × 103 features, 14 binary tasks) and
**adult** (census; ``income`` and ``marital``, a random subset of ``--adult-rows`` training
and half as many test rows), two arms are compared, each over the same seeds (``--seeds``:
seeds 0, 1, ...; the seed draws the split, the initialisation and the batch order):

* **default**: the dataset's default config (hard sharing, MLP trunk, Equal weighting, Adam
  lr 1e-3, ``--epochs`` epochs, early stopping patience 3) trained over the seeds with
  :func:`mtlkit.run.run_seeds`;
* **tuned**: :func:`mtlkit.tune.tune` with ``--trials`` trials on seed 0's validation split
  (objective: validation Δm against the single-task references; TPE seeded, median pruning)
  over the weighting (equal / uncertainty / dwa), the learning rate (log-uniform 3e-4..1e-2)
  and the trunk's dropout (0..0.3); its best config is then retrained over the same seeds.

Printed per dataset and arm: test Δm (mean ± sd over seeds, 95 % t-interval; negative =
multi-task better than its single-task references), the paired difference tuned − default
across seeds (same seeds, same splits) with its interval, the mean test value of the tasks'
main metric (raw, without references: a tuned learning rate also changes the references of
Δm), the verdicts, and the compute of each arm: epochs trained by the multi-task models
(search trials + retrain for the tuned arm) and wall seconds of the whole arm, references
included. The tuned arm spends the search on top of the retrain: its total compute is the
default arm's plus the search, stated, not equalised.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from mtlkit.config import parse_config
from mtlkit.evaluation.stats import describe
from mtlkit.run.seeds import run_seeds
from mtlkit.tune import tune

SEARCH = {"training.weighting.name": {"choices": ["equal", "uncertainty", "dwa"]},
          "training.optimizer.lr": {"low": 3e-4, "high": 1e-2, "log": True},
          "model.trunk.dropout": {"low": 0.0, "high": 0.3}}


def base_config(dataset: str, epochs: int, adult_rows: int) -> dict[str, Any]:
    data: dict[str, Any] = {"dataset": dataset}
    if dataset == "adult":
        data.update(options={"marital": "binary", "n": adult_rows, "n_test": adult_rows // 2},
                    split={"train": 0.8, "val": 0.2, "test": 0.0})
    batch = 256 if dataset == "adult" else 64
    return {"name": f"bench-{dataset}", "seed": 0, "data": data,
            "model": {"trunk": {"name": "mlp", "hidden": [128, 64], "dropout": 0.1}},
            "training": {"epochs": epochs, "batch_size": batch, "patience": 3,
                         "optimizer": {"name": "adam", "lr": 1e-3}, "weighting": {"name": "equal"}},
            "baselines": True}


def main_metric_mean(rec: dict[str, Any]) -> list[float]:
    """Per seed, the mean over primary tasks of the test main metric of the multi-task model."""
    per_seed: list[list[float]] = [[] for _ in rec["seeds"]]
    for task, metric in (rec.get("main_metric") or {}).items():
        entry = (rec["metrics"].get(task) or {}).get(metric) or {}
        for i, v in enumerate((entry.get("mtl") or {}).get("values") or []):
            per_seed[i].append(v)
    return [statistics.fmean(v) for v in per_seed if v]


def epochs_of(run_dir: Path, seeds: list[int]) -> int:
    total = 0
    for s in seeds:
        summary = json.loads((run_dir / f"seed-{s}" / "summary.json").read_text())
        total += int(summary["mtl"].get("epochs_run") or 0)
    return total


def run_dataset(dataset: str, args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    seeds = list(range(args.seeds))
    cfg = base_config(dataset, args.epochs, args.adult_rows)
    t0 = time.perf_counter()
    default = run_seeds(parse_config(cfg), seeds, out_dir=work / dataset / "default",
                        cache_dir=work / dataset / "refs", report=False)
    t_default = time.perf_counter() - t0
    t0 = time.perf_counter()
    tuned = tune(parse_config({**cfg, "search": SEARCH}), trials=args.trials, out_dir=work / dataset / "tuned",
                 seeds=args.seeds, report=False, log=(print if args.verbose else None),
                 cache_dir=work / dataset / "refs")  # the references of both arms are shared
    t_tuned = time.perf_counter() - t0
    search_epochs = sum(int(r["epochs_run"] or 0) for r in tuned.trials)
    rows = []
    for arm, rec, secs, epochs in (
            ("default", default.record, t_default, epochs_of(work / dataset / "default", seeds)),
            ("tuned", tuned.seeds.record, t_tuned,
             search_epochs + epochs_of(work / dataset / "tuned" / "best", seeds))):
        rows.append({"dataset": dataset, "arm": arm, "dm": rec["delta_m"], "main": describe(main_metric_mean(rec)),
                     "verdicts": [v["verdict"] for v in rec["verdicts"].values()], "seconds": secs,
                     "epochs": epochs, "values": rec["delta_m"].get("values") or []})
    diff = [b - a for a, b in zip(rows[0]["values"], rows[1]["values"])]
    rows[1]["diff"] = describe(diff)
    rows[1]["best"] = tuned.record["best"]
    return rows


def _ci(d: dict[str, Any], digits: int = 2) -> str:
    if d.get("mean") is None:
        return "n/a"
    sd = f" ± {d['sd']:.{digits}f}" if d.get("sd") is not None else ""
    ci = f" [{d['ci_low']:+.{digits}f}, {d['ci_high']:+.{digits}f}]" if d.get("ci_low") is not None else ""
    return f"{d['mean']:+.{digits}f}{sd}{ci}"


def print_table(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print(f"\nSettings: {args.trials} trials, {args.seeds} seeds (0..{args.seeds - 1}), {args.epochs} epochs, "
          f"adult rows {args.adult_rows}, torch threads {torch.get_num_threads()}.")
    print("| dataset | arm | test Δm % (mean ± sd [95 % CI]) | tuned − default Δm (paired) | mean main metric "
          "| verdicts (helps/hurts/no evidence) | MTL epochs | wall s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        v = r["verdicts"]
        counts = f"{v.count('multi-task helps')}/{v.count('multi-task hurts')}/" \
                 f"{v.count('no evidence at this budget')}"
        print(f"| {r['dataset']} | {r['arm']} | {_ci(r['dm'])} | {_ci(r['diff']) if 'diff' in r else '-'} | "
              f"{_ci(r['main'], 4)} | {counts} | {r['epochs']} | {r['seconds']:.0f} |")
    for r in rows:
        if "best" in r:
            print(f"{r['dataset']}: best trial {r['best']['number']} (validation Δm {r['best']['value']:+.2f} %): "
                  + json.dumps(r["best"]["params"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smallest settings: 2 trials, 2 seeds, 2 epochs")
    ap.add_argument("--datasets", nargs="+", default=["yeast", "adult"], choices=["yeast", "adult"])
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--adult-rows", type=int, default=4000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None, help="keep the runs here (default: a temporary folder)")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.trials, args.seeds, args.epochs, args.adult_rows = 2, 2, 2, 600
    torch.set_num_threads(args.threads)
    work = args.out or Path(tempfile.mkdtemp(prefix="mtlkit-tune-bench-"))
    try:
        rows = [r for d in args.datasets for r in run_dataset(d, args, work)]
        print_table(rows, args)
    finally:
        if args.out is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
