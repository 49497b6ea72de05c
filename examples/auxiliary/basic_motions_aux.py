"""Reproduction 1 of issue 7: auxiliary time-series statistics for activity recognition.

    python examples/auxiliary/basic_motions_aux.py            # the README table (5 seeds, λ 0.1 and 1.0)
    python examples/auxiliary/basic_motions_aux.py --tune     # how the number of epochs was chosen
    python examples/auxiliary/basic_motions_aux.py --per-class 3   # low-data variant (3 series per class)
    python examples/auxiliary/basic_motions_aux.py --smoke    # seconds: 1 seed, 2 epochs

BasicMotions (UEA archive, Bagnall et al. 2018): 6-channel smartwatch series (3-D accelerometer
and gyroscope, 100 steps), four activities, the archive's own split of 40 training and 40 test
series. A 1-D CNN (``cnn1d`` trunk, hard sharing) is trained on ``activity`` alone (baseline)
and with auxiliary regression heads on the shared representation, each with loss weight λ:
the per-channel standard deviation (``std``), sum of absolute changes (``abs_changes``) and
magnitudes of the first 8 Fourier coefficients (``fourier``), each alone and all three
together. The auxiliary targets are computed from each series itself (z-scored per column),
so they need no extra labels. Printed: macro-F1 and accuracy of ``activity`` on the 40 test
series, mean ± std over seeds, and for each variant how many seeds beat / tie / lose to the
baseline of the same seed.

Protocol: the settings of ``basic_motions.yaml`` (trunk, optimiser, batch size); the number
of epochs was chosen once with ``--tune`` (baseline only, 30 train / 10 validation series);
the table's models then train on all 40 training series for that fixed number of epochs (no
validation split, no early stopping) and are scored once on the test split.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mtlkit.config import RunConfig, load_config
from mtlkit.run import build_model_for, evaluate_outputs, make_trainer, prepare_from_config
from mtlkit.training.trainer import predict_raw, seed_everything

CONFIG = Path(__file__).resolve().parent / "basic_motions.yaml"
EPOCHS = 60  # chosen with --tune (see README.md)

GENERATORS: dict[str, dict[str, Any]] = {
    "std": {"generator": "std", "standardize": True},
    "abs_changes": {"generator": "abs_changes", "standardize": True},
    "fourier": {"generator": "fourier", "k": 8, "standardize": True},
}
VARIANTS: list[tuple[str, list[str]]] = [
    ("baseline (activity only)", []),
    ("+ std", ["std"]),
    ("+ sum of abs. changes", ["abs_changes"]),
    ("+ Fourier coefficients (k=8)", ["fourier"]),
    ("+ all three", ["std", "abs_changes", "fourier"]),
]


def make_config(aux: list[str], lam: float, seed: int, *, epochs: int, validation: bool) -> RunConfig:
    """The YAML config with this seed/epochs, the auxiliary generators, and (for the table)
    all 40 training series as training data."""
    overrides = [f"seed={seed}", f"training.epochs={epochs}", "training.monitor_conflicts=false"]
    if not validation:
        overrides += ["data.split.train=1.0", "data.split.val=0.0"]
    cfg = load_config(CONFIG, overrides)
    cfg.auxiliary = [dict(GENERATORS[name], weight=lam) for name in aux]
    return cfg


def fit_once(cfg: RunConfig, *, per_class: int | None = None) -> tuple[dict[str, float], Any, float]:
    """Train one model as ``mtlkit train`` does (without writing a run folder) and score the
    primary task on the test split. Returns (test metrics of 'activity', trainer, fit seconds)."""
    prepared = prepare_from_config(cfg)
    train = prepared.train
    if per_class is not None:  # a seeded, class-balanced subset of the training series
        y = train.targets["activity"].numpy()
        rng = np.random.default_rng(cfg.seed)
        idx = np.concatenate([rng.choice(np.flatnonzero(y == c), per_class, replace=False) for c in np.unique(y)])
        train = train.subset(np.sort(idx))
    seed_everything(cfg.seed)
    model = build_model_for(cfg, prepared, prepared.tasks)
    trainer = make_trainer(cfg, model, prepared.tasks, run_dir=None, progress=False)
    t0 = time.perf_counter()
    trainer.fit(train, prepared.val if len(prepared.val) else None)
    fit_s = time.perf_counter() - t0
    primary = [t for t in prepared.tasks if t.role == "primary"]
    metrics, _, _ = evaluate_outputs(primary, predict_raw(model, prepared.test), prepared.test)
    return metrics["activity"], trainer, fit_s


def fmt(values: list[float], digits: int = 3) -> str:
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def tune(seeds: list[int], max_epochs: int) -> None:
    """Baseline on 30 train / 10 validation series: mean validation curves over seeds."""
    curves = []
    for seed in seeds:
        _, trainer, _ = fit_once(make_config([], 0.1, seed, epochs=max_epochs, validation=True))
        curves.append([(r["val"]["activity"]["macro_f1"], r["val_loss"]["activity"],
                        r["train_loss"] if not isinstance(r["train_loss"], dict) else r["train_loss"]["activity"])
                       for r in trainer.history.records])
    arr = np.asarray(curves)  # (seeds, epochs, 3)
    print(f"Baseline on 30 train / 10 validation series (seeds {seeds}); mean over seeds:\n")
    print("| epoch | val macro-F1 | val loss | train loss |")
    print("|---|---|---|---|")
    for e in range(9, max_epochs, 10):
        f1, vl, tl = arr[:, e].mean(0)
        print(f"| {e + 1} | {f1:.3f} | {vl:.4f} | {tl:.4f} |")
    best = int(arr[:, :, 1].mean(0).argmin()) + 1
    print(f"\nlowest mean validation loss at epoch {best}; "
          f"first epoch with mean val macro-F1 = its max: {int(arr[:, :, 0].mean(0).argmax()) + 1}")


def table(seeds: list[int], lambdas: list[float], epochs: int, per_class: int | None) -> None:
    rows = []
    base: dict[int, float] = {}
    t_start = time.perf_counter()
    for name, aux in VARIANTS:
        for lam in (lambdas if aux else [0.0]):
            f1s, accs, fits = [], [], []
            for seed in seeds:
                m, _, fit_s = fit_once(make_config(aux, lam, seed, epochs=epochs, validation=False),
                                       per_class=per_class)
                f1s.append(m["macro_f1"])
                accs.append(m["accuracy"])
                fits.append(fit_s)
                if not aux:
                    base[seed] = m["macro_f1"]
            vs = [(f > base[s] + 1e-9) - (f < base[s] - 1e-9) for f, s in zip(f1s, seeds)]
            rows.append((name, "–" if not aux else f"{lam:g}", fmt(f1s), fmt(accs),
                         " ".join(f"{v:.3f}" for v in f1s),
                         "–" if not aux else f"{vs.count(1)} / {vs.count(0)} / {vs.count(-1)}",
                         f"{statistics.mean(fits):.1f}"))
            print(f"  done: {name} λ={lam:g} ({time.perf_counter() - t_start:.0f} s)", flush=True)
    n_train = 40 if per_class is None else 4 * per_class
    print(f"\nBasicMotions, {n_train} training series, 40 test series; cnn1d, Adam 1e-3, batch 16, "
          f"{epochs} epochs; seeds {seeds}\n")
    print("| model | λ | test macro-F1 | test accuracy | macro-F1 per seed | seeds better / tied / worse "
          "than baseline | fit s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=5, help="number of seeds (0, 1, ...)")
    ap.add_argument("--lambdas", type=float, nargs="+", default=[0.1, 1.0], help="auxiliary loss weights λ")
    ap.add_argument("--epochs", type=int, default=None,
                    help=f"default {EPOCHS}; with --per-class, as many optimiser steps as {EPOCHS} epochs of 40 series")
    ap.add_argument("--per-class", type=int, default=None, help="train on this many series per class")
    ap.add_argument("--tune", action="store_true", help="print the baseline's validation curves and stop")
    ap.add_argument("--tune-epochs", type=int, default=150)
    ap.add_argument("--smoke", action="store_true", help="1 seed, 2 epochs, one λ (a test that it runs)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    seeds = list(range(args.seeds))
    if args.epochs is None:
        batch = load_config(CONFIG).training.batch_size
        steps_full = EPOCHS * math.ceil(40 / batch)
        n = 40 if args.per_class is None else 4 * args.per_class
        args.epochs = steps_full // math.ceil(n / batch)
    if args.smoke:
        seeds, args.epochs, args.lambdas, args.tune_epochs = [0], 2, args.lambdas[:1], 10
    if args.tune:
        tune(seeds, args.tune_epochs)
    else:
        table(seeds, args.lambdas, args.epochs, args.per_class)


if __name__ == "__main__":
    main()
