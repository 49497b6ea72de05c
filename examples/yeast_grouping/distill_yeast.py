"""Yeast: distil the 14 single-task networks into one multi-task student.

For each seed: train the all-in-one network and the 14 single-task baselines (the
teachers), then a student with the same architecture as the all-in-one network trained
with the distillation loss (alpha = 0.5, T = 2), and one with teacher annealing (BAM!).
Reports the mean test F1 and Δm (accuracy, F1, ROC-AUC) against the teachers.

    python examples/yeast_grouping/distill_yeast.py [--seeds 0 1 2] [--quick]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from mtlkit.analysis._format import markdown_table
from mtlkit.config import load_config
from mtlkit.distill import distill
from mtlkit.evaluation import delta_m
from mtlkit.run import prepare_from_config, run

CONFIG = Path(__file__).with_name("config.yaml")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--quick", action="store_true", help="1 seed, 3 epochs.")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    seeds = [0] if args.quick else args.seeds
    rows: dict[str, list[tuple[float, float]]] = {}
    for seed in seeds:
        cfg = load_config(CONFIG, [f"seed={seed}", *(["training.epochs=3"] if args.quick else [])])
        prepared = prepare_from_config(cfg)
        tasks = prepared.tasks
        base = run(cfg, prepared, out_dir=None, progress=False)  # all-in-one + the 14 teachers
        teach = {k: v["test"] for k, v in base.summary["baselines"].items()}
        systems = {"teachers (14 single-task)": teach, "all-in-one (labels only)": base.summary["mtl"]["test"]}
        for label, anneal in (("student α=0.5, T=2", False), ("student, annealed α", True)):
            res = distill(cfg, base.baselines, prepared=prepared, alpha=0.5, temperature=2.0, anneal=anneal,
                          compare=False)
            systems[label] = res.summary["student"]["test"]
        for label, test in systems.items():
            f1 = float(np.mean([test[t.name]["f1"] for t in tasks]))
            rows.setdefault(label, []).append((f1, delta_m(test, teach, tasks)))
        print(f"seed {seed} done", flush=True)

    def ms(v):
        a = np.asarray(v, dtype=float)
        return f"{a.mean():.3f} ± {a.std(ddof=1):.3f}" if len(a) > 1 else f"{a.mean():.3f}"

    print(f"Seeds {seeds}{' (quick)' if args.quick else ''}; mean ± sd over seeds\n")
    print(markdown_table(["model", "mean test F1", "Δm vs teachers (%)"],
                         [[k, ms([a for a, _ in v]), ms([b for _, b in v])] for k, v in rows.items()]))


if __name__ == "__main__":
    main()
