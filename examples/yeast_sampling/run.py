"""Task sampling on yeast split into 14 per-task datasets of very different sizes.

    python examples/yeast_sampling/run.py            # 3 seeds, 20 epochs (~10 min on a busy 2-core CPU)
    python examples/yeast_sampling/run.py --quick    # 1 seed, 3 epochs (smoke test)

Yeast (Elisseeff & Weston 2002): 2,417 genes × 103 features, 14 binary gene-function labels.
The rows are split once 60/20/20 into train/validation/test. Each task then keeps its labels
on only a fraction of the training rows — 100%, 20%, 5%, 100%, 20%, 5%, … across Class1..14 —
and becomes its own dataset (its rows, its one label); the 14 datasets are combined by
:class:`mtlkit.data.multi.MultiTaskDataset`. Validation and test keep every label, so all
methods are scored on the same rows.

Compared, with one shared MLP (103 → 128 → 64, one linear head per task) and the same number
of steps per epoch (one pass over the sum of the datasets):

* ``mixed``: no sampler, shuffled mixed batches over the combined rows (all tasks, masked);
* ``proportional`` (p_t ∝ n_t), ``temperature`` T = 2 (p_t ∝ n_t^½), ``uniform`` (1/K);
* ``dynamic``: p_t ∝ the relative gap of the task's validation ROC-AUC to its single-task
  model's (Gottumukkala et al. 2020), starting from p_t ∝ n_t.

Against 14 single-task models (same trunk, one head, each trained on its task's rows only for
the same number of optimisation steps, best validation epoch kept). Reported on the test rows:
per-task macro-F1 of the 0.5-thresholded predictions (mean of the F1 of both classes), ROC-AUC,
and Δm = mean_t −(M_mtl − M_stl)/M_stl × 100 (negative = better than single-task), averaged
over seeds.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import f1_score, roc_auc_score

from mtlkit import HardSharing, Task, Trainer
from mtlkit.architectures import mlp
from mtlkit.data import MultiTaskData, split_indices
from mtlkit.data.multi import MultiTaskDataset
from mtlkit.data.samplers import DynamicTemperature, Proportional, Temperature, Uniform

FRACTIONS = (1.0, 0.2, 0.05)
HERE = Path(__file__).resolve().parent


def load() -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Inputs (N, 103) and labels (N, 14) of yeast."""
    try:
        from mtlkit.datasets import load_yeast

        b = load_yeast()
        names = [t.name for t in b.tasks]
        return b.data.x.float(), torch.stack([b.data.targets[n] for n in names], 1).float(), names
    except ImportError:
        import pandas as pd

        spec = importlib.util.find_spec("river")
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit("This example reads yeast from the river package: pip install river") from None
        df = pd.read_csv(Path(spec.submodule_search_locations[0]) / "datasets" / "yeast.csv.gz")
        feats = [c for c in df.columns if c.startswith("Att")]
        names = [c for c in df.columns if c.startswith("Class")]
        return (torch.tensor(df[feats].to_numpy(np.float32)), torch.tensor(df[names].to_numpy(np.float32)),
                names)


def build_data(split_seed: int = 0):
    x, y, names = load()
    tr, va, te = split_indices(len(x), (0.6, 0.2, 0.2), seed=split_seed)
    mean, std = x[tr].mean(0), x[tr].std(0).clamp_min(1e-6)
    x = (x - mean) / std
    tasks = [Task(n, "binary") for n in names]
    rng = np.random.default_rng(split_seed)
    parts, fraction = {}, {}
    for j, n in enumerate(names):
        f = FRACTIONS[j % len(FRACTIONS)]
        rows = np.sort(rng.choice(tr, size=max(1, round(f * len(tr))), replace=False))
        parts[n] = MultiTaskData(x[rows], {n: y[rows, j]})
        fraction[n] = f
    train = MultiTaskDataset(parts, tasks)

    def full(idx):
        return MultiTaskData(x[idx], {n: y[idx, j] for j, n in enumerate(names)}, None, tasks)

    return train, full(va), full(te), tasks, fraction, len(tr)


def scores(trainer: Trainer, data: MultiTaskData, names: list[str]) -> dict[str, dict[str, float]]:
    out = trainer.predict_raw(data)
    res = {}
    for n in names:
        if n not in out:
            continue
        y = data.targets[n].numpy()
        p = torch.sigmoid(out[n]).numpy()
        res[n] = {"macro_f1": float(f1_score(y, p >= 0.5, average="macro", zero_division=0)),
                  "f1": float(f1_score(y, p >= 0.5, zero_division=0)),
                  "roc_auc": float(roc_auc_score(y, p)) if len(np.unique(y)) > 1 else float("nan")}
    return res


def model_for(tasks: list[Task], seed: int) -> HardSharing:
    torch.manual_seed(seed)
    return HardSharing(mlp(103, (128, 64)), tasks)


def single_task(train, val, test, tasks, seed, steps, batch_size, lr):
    """One model per task on its own rows, ``steps`` optimisation steps, best validation epoch."""
    val_out, test_out = {}, {}
    for t in tasks:
        d = train.subset(train.task_indices(t.name))
        d = MultiTaskData(d.x, {t.name: d.targets[t.name]}, {t.name: d.masks[t.name]}, [t])
        per_epoch = math.ceil(len(d) / batch_size)
        epochs = max(1, math.ceil(steps / per_epoch))
        tv = MultiTaskData(val.x, {t.name: val.targets[t.name]}, None, [t])
        tr = Trainer(model_for([t], seed), [t], epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                     progress=False)
        tr.fit(d, tv)
        val_out[t.name] = scores(tr, val, [t.name])[t.name]
        test_out[t.name] = scores(tr, test, [t.name])[t.name]
    return val_out, test_out


def multi_task(train, val, test, tasks, seed, sampler, epochs, batch_size, lr):
    tr = Trainer(model_for(tasks, seed), tasks, sampler=sampler, epochs=epochs, batch_size=batch_size,
                 lr=lr, seed=seed, progress=False)
    hist = tr.fit(train, val)
    sampling = [r.get("sampling") for r in hist.records]
    return scores(tr, test, [t.name for t in tasks]), sampling, hist.best_epoch


def delta_m(mtl: dict, stl: dict, metric: str) -> float:
    terms = [-(mtl[t][metric] - stl[t][metric]) / abs(stl[t][metric]) * 100
             for t in mtl if stl[t][metric] not in (0.0,) and math.isfinite(stl[t][metric])]
    return float(np.mean(terms))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1 seed, 3 epochs")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--out", type=Path, default=HERE / "results.json")
    ap.add_argument("--tables", type=Path, metavar="RESULTS_JSON",
                    help="only print the tables of a saved results.json")
    args = ap.parse_args()
    if args.tables is not None:
        res = json.loads(args.tables.read_text())
        print_tables(res, list(res["sizes"]), res["fraction"])
        return
    if args.quick:
        args.seeds, args.epochs = 1, 3
    torch.set_num_threads(1)
    train, val, test, tasks, fraction, n_train = build_data()
    names = [t.name for t in tasks]
    sizes = train.sizes
    print(f"train rows per task: {sizes}  (sum {sum(sizes.values())}, train split {n_train})")
    stl_steps = args.epochs * math.ceil(n_train / args.batch_size)
    results: dict = {"config": vars(args) | {"out": str(args.out)}, "sizes": sizes, "fraction": fraction,
                     "runs": {}}
    t_start = time.perf_counter()
    for seed in range(args.seeds):
        stl_val, stl_test = single_task(train, val, test, tasks, seed, stl_steps, args.batch_size, args.lr)
        runs = {"single_task": {"test": stl_test}}
        refs = {n: {"roc_auc": stl_val[n]["roc_auc"]} for n in names}
        methods = {
            "mixed": None,
            "proportional": Proportional(),
            "temperature_2": Temperature(temperature=2.0),
            "uniform": Uniform(),
            "dynamic": DynamicTemperature(references=refs, metric="roc_auc"),
        }
        for name, sampler in methods.items():
            test_scores, sampling, best = multi_task(train, val, test, tasks, seed, sampler, args.epochs,
                                                     args.batch_size, args.lr)
            runs[name] = {"test": test_scores, "sampling": sampling, "best_epoch": best,
                          "delta_m_macro_f1": delta_m(test_scores, stl_test, "macro_f1"),
                          "delta_m_roc_auc": delta_m(test_scores, stl_test, "roc_auc")}
            print(f"seed {seed} {name:14s} Δm(macro-F1) {runs[name]['delta_m_macro_f1']:+6.2f}%  "
                  f"Δm(AUC) {runs[name]['delta_m_roc_auc']:+6.2f}%  best epoch {best}  "
                  f"[{time.perf_counter() - t_start:.0f}s]", flush=True)
        results["runs"][seed] = runs
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print_tables(results, names, fraction)
    print(f"\nwrote {args.out}  ({time.perf_counter() - t_start:.0f}s)")


def print_tables(results: dict, names: list[str], fraction: dict[str, float]) -> None:
    seeds = list(results["runs"])
    methods = list(results["runs"][seeds[0]])
    groups = {f: [n for n in names if fraction[n] == f] for f in FRACTIONS}

    def stat(vals):
        vals = np.asarray(vals, dtype=float)
        return f"{vals.mean():.3f} ± {vals.std():.3f}" if len(vals) > 1 else f"{vals.mean():.3f}"

    print("\n| method | macro-F1 (all) | " + " | ".join(f"macro-F1 ({int(f * 100)}% tasks)" for f in FRACTIONS)
          + " | ROC-AUC (all) | Δm macro-F1 % | Δm AUC % |")
    print("|---" * (5 + len(FRACTIONS)) + "|")
    for m in methods:
        runs = [results["runs"][s][m] for s in seeds]
        cells = [stat([np.mean([r["test"][n]["macro_f1"] for n in names]) for r in runs])]
        cells += [stat([np.mean([r["test"][n]["macro_f1"] for n in g]) for r in runs]) for g in groups.values()]
        cells.append(stat([np.mean([r["test"][n]["roc_auc"] for n in names]) for r in runs]))
        if m == "single_task":
            cells += ["0 (reference)", "0 (reference)"]
        else:
            dm = [r["delta_m_macro_f1"] for r in runs]
            da = [r["delta_m_roc_auc"] for r in runs]
            cells += [f"{np.mean(dm):+.2f} ± {np.std(dm):.2f}", f"{np.mean(da):+.2f} ± {np.std(da):.2f}"]
        print(f"| {m} | " + " | ".join(cells) + " |")
    # the realised share of steps per size group, mean over epochs and seeds
    print("\n| sampler | steps on 100% tasks | 20% tasks | 5% tasks |")
    print("|---|---|---|---|")
    for m in methods:
        if m in ("single_task", "mixed"):
            continue
        shares = {f: [] for f in FRACTIONS}
        for s in seeds:
            for ep in results["runs"][s][m]["sampling"]:
                total = sum(ep["counts"].values())
                for f, g in groups.items():
                    shares[f].append(sum(ep["counts"][n] for n in g) / total)
        print(f"| {m} | " + " | ".join(f"{100 * np.mean(shares[f]):.1f}%" for f in FRACTIONS) + " |")
    if "dynamic" in methods:
        print("\ndynamic: share of steps per size group by epoch (mean over seeds)\n")
        print("| epoch | 100% tasks | 20% tasks | 5% tasks |")
        print("|---|---|---|---|")
        n_ep = min(len(results["runs"][s]["dynamic"]["sampling"]) for s in seeds)
        for e in range(n_ep):
            row = []
            for g in groups.values():
                vals = []
                for s in seeds:
                    c = results["runs"][s]["dynamic"]["sampling"][e]["counts"]
                    vals.append(sum(c[n] for n in g) / sum(c.values()))
                row.append(f"{100 * np.mean(vals):.1f}%")
            print(f"| {e + 1} | " + " | ".join(row) + " |")
    print("\nper-task test macro-F1 (mean over seeds)\n")
    print("| task | rows | " + " | ".join(methods) + " |")
    print("|---" * (2 + len(methods)) + "|")
    for n in names:
        row = [f"{np.mean([results['runs'][s][m]['test'][n]['macro_f1'] for s in seeds]):.3f}" for m in methods]
        print(f"| {n} | {results['sizes'][n]} | " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
