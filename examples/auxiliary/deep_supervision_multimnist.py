"""Reproduction 4 of issue 7: an auxiliary head on an early block (deep supervision).

    python examples/auxiliary/deep_supervision_multimnist.py          # the README table (seeds 0, 1, 2)
    python examples/auxiliary/deep_supervision_multimnist.py --smoke  # seconds: 1 seed, 1 epoch, 200 images

MultiMNIST (two real MNIST digits on a 36×36 canvas; ``quick`` size: 2,000 train(+validation)
and 500 test images, test digits from a disjoint pool). The main task is ``left``, the class of
the top-left digit, read at the end of a LeNet (conv1 → conv2 → fc). Variants, all with the
settings of ``deep_supervision_multimnist.yaml`` (Adam 2e-3, batch 64, 8 epochs, the epoch with
the best validation accuracy of ``left`` kept):

* plain: the LeNet trained on ``left`` alone (the run's single-task baseline);
* DS, same digit: a second head for ``left`` itself on ``conv1`` (pooled 4×4), λ = 0.1 — the
  companion objective of Deeply-Supervised Nets (Lee et al. 2015);
* DS, other digit: a head for ``right`` on ``conv1``, λ = 0.1 — a different, "low-level" task
  supervised at a lower layer (Søgaard & Goldberg 2016); this is the YAML config;
* control, other digit at the end: ``right`` with λ = 0.1 on the same final representation as
  ``left`` (hard sharing), to separate "an extra task" from "an extra task at an early block".

Printed: test accuracy and macro-F1 of ``left`` (mean ± std over seeds), and how many seeds
each variant beats the plain model of the same seed.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from mtlkit import MultiTaskData, Task
from mtlkit.config import load_config
from mtlkit.datasets import load
from mtlkit.run import build_model_for, evaluate_outputs, make_trainer, prepare
from mtlkit.training.trainer import predict_raw, seed_everything

CONFIG = Path(__file__).resolve().parent / "deep_supervision_multimnist.yaml"

LEFT = {"name": "left", "kind": "multiclass", "num_classes": 10}
VARIANTS: list[tuple[str, list[dict[str, Any]], dict[str, Any]]] = [
    ("plain LeNet (left only)", [LEFT], {"name": "hard_sharing"}),
    ("DS: same digit ('left') on conv1", [LEFT, {"name": "left_early", "kind": "multiclass", "num_classes": 10,
                                                 "role": "auxiliary", "weight": 0.1}],
     {"name": "deep_supervision", "attach": {"left_early": "conv1"}, "pool_size": 4}),
    ("DS: other digit ('right') on conv1", [LEFT, {"name": "right", "kind": "multiclass", "num_classes": 10,
                                                   "role": "auxiliary", "weight": 0.1}],
     {"name": "deep_supervision", "attach": {"right": "conv1"}, "pool_size": 4}),
    ("control: other digit at the end", [LEFT, {"name": "right", "kind": "multiclass", "num_classes": 10,
                                                "role": "auxiliary", "weight": 0.1}],
     {"name": "hard_sharing"}),
]


def add_copy(data: MultiTaskData, name: str, source: str) -> MultiTaskData:
    """The same data with a copy of ``source``'s labels under the task name ``name``."""
    return MultiTaskData(data.x, {**data.targets, name: data.targets[source]},
                         {**data.masks, name: data.masks[source]}, None)


def fmt(values: list[float], digits: int = 4) -> str:
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--smoke", action="store_true", help="1 seed, 1 epoch, 200 images (a test that it runs)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    seeds = [0] if args.smoke else list(range(args.seeds))
    base = ["training.monitor_conflicts=false", "training.monitor=left:accuracy"]
    if args.smoke:
        base += ["training.epochs=1", "data.options={n_train: 200, n_test: 100}"]

    cfg0 = load_config(CONFIG, base)
    bundle = load(cfg0.data.dataset, **cfg0.data.options)  # the same images for every seed
    data, test = add_copy(bundle.data, "left_early", "left"), add_copy(bundle.test, "left_early", "left")
    split = cfg0.data.split
    results: dict[str, dict[str, list[float]]] = {}
    t0 = time.perf_counter()
    for seed in seeds:
        for name, task_specs, arch in VARIANTS:
            cfg = load_config(CONFIG, [*base, f"seed={seed}"])
            cfg.model.architecture = arch
            tasks = [Task(**spec) for spec in task_specs]
            prepared = prepare(data, tasks, test=test, fractions=(split.train, split.val, split.test),
                               seed=seed, standardize=cfg.data.standardize, default_trunk=bundle.default_trunk)
            seed_everything(seed)
            model = build_model_for(cfg, prepared, tasks)
            trainer = make_trainer(cfg, model, tasks, run_dir=None, progress=False)
            t1 = time.perf_counter()
            trainer.fit(prepared.train, prepared.val)
            fit_s = time.perf_counter() - t1
            m, _, _ = evaluate_outputs(tasks[:1], predict_raw(model, prepared.test), prepared.test)
            r = results.setdefault(name, {"acc": [], "f1": [], "fit": [], "epoch": []})
            r["acc"].append(m["left"]["accuracy"])
            r["f1"].append(m["left"]["macro_f1"])
            r["fit"].append(fit_s)
            r["epoch"].append(trainer.history.best_epoch)
        print(f"  seed {seed} done ({time.perf_counter() - t0:.0f} s)", flush=True)

    plain = results[VARIANTS[0][0]]["acc"]
    print(f"\nMultiMNIST ({len(bundle.data)} train+val / {len(bundle.test)} test images), main task 'left'; "
          f"LeNet, {cfg0.training.epochs} epochs, best validation epoch kept; seeds {seeds}\n")
    print("| model | test accuracy (left) | test macro-F1 (left) | accuracy per seed | seeds better than plain "
          "| best epochs | fit s |")
    print("|---|---|---|---|---|---|---|")
    for name, _, _ in VARIANTS:
        r = results[name]
        wins = "–" if name == VARIANTS[0][0] else f"{sum(a > b for a, b in zip(r['acc'], plain))}/{len(seeds)}"
        print(f"| {name} | {fmt(r['acc'])} | {fmt(r['f1'])} | {' '.join(f'{v:.3f}' for v in r['acc'])} | {wins} "
              f"| {r['epoch']} | {statistics.mean(r['fit']):.1f} |")
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
