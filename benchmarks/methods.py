"""Every method, old and new: its step time against the floor, and its Δm on two real datasets.

    .venv/bin/python benchmarks/methods.py            # the full table (about 15 min on 2 cores)
    .venv/bin/python benchmarks/methods.py --quick    # a smoke run (seconds): K = 4, 1 seed, penguins

**Step time** (the shared problem of issue 22, :func:`benchmarks.peers.make_problem`: an MLP
trunk 64 -> 512 -> 512 -> 512, K linear regression heads, batch 256 with about 10 % of the
labels missing, SGD lr 1e-3) at K = 4 and 10. ``floor`` is the forward pass, K
``torch.autograd.grad`` calls through the trunk and one plain step (the least an exact
per-task-gradient method costs, :func:`benchmarks.peers.floor`); every registered aggregator
(``Trainer.train_step`` at parameter level) and every registered weighting (``Trainer.train_step``
with that weighting; a bilevel one draws its validation batch from the same data) is timed in
rounds against it with :func:`benchmarks.peers.run_rounds`: the median ms per step, and the
median over the rounds of the ratio to the floor timed right before or after it. ``plain``
(equal weighting, one backward) is a row too: a loss-space method's natural reference.

**Δm** (the multi-task model against single-task models of the same trunk and budget, in %,
:mod:`mtlkit.evaluation.delta_m`, through :func:`mtlkit.run.run_seeds`: every seed splits the
data anew and trains both; the single-task references are cached per seed and shared by all
methods): mean ± sd over ``--seeds`` seeds (default 0, 1, 2) for every weighting (with the
mean gradient), every aggregator (with equal weighting, parameter level) and the architectures
added by issue 21 (``dselect_k``, ``learning_to_branch`` with its search and retrain phases,
``mtan``) on the same trunk; a method that cannot run on the data says why in its cell. The
budgets:

* **yeast** (built-in, ``river``; 2,417 genes, 103 features, 14 binary tasks): split
  60/20/20, MLP 103 -> 64 -> 32, Adam lr 1e-3, batch 256, 4 epochs;
* **penguins** (``examples/tabular/penguins.csv``, the palmerpenguins table: 344 rows; species
  3 classes, sex binary with missing labels, body mass regression): split 60/20/20 stratified
  on species, MLP -> 32, Adam lr 1e-2, batch 32, 15 epochs.

Small budgets: the figures compare methods at equal cost, not each method at its best. Times
are process CPU time with one torch thread (``--clock wall`` for elapsed time).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import copy
import math
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import CLOCKS, Problem, Times, floor, make_problem, ours, run_rounds

from mtlkit import MultiTaskData, Trainer
from mtlkit._registry import AGGREGATORS, WEIGHTINGS

warnings.filterwarnings("ignore")
ROOT = Path(__file__).resolve().parents[1]
#: the architectures of issue 21 (Δm part)
ARCHITECTURES = ["dselect_k", "learning_to_branch", "mtan"]


# ------------------------------------------------------------------ step time
def weighted(p: Problem, name: str) -> Callable[[], None]:
    """``Trainer.train_step`` with the weighting ``name`` (set up on the batch's data, so
    size-based weightings see the counts and bilevel ones draw validation batches)."""
    model = copy.deepcopy(p.model)
    tr = Trainer(model, p.tasks, weighting=WEIGHTINGS.build(name), optimizer="sgd", lr=1e-3, momentum=0.0,
                 batch_size=p.batch[0].shape[0], progress=False, device=str(p.device), seed=0)
    x, ys, ms = p.batch
    data = MultiTaskData(x, ys, ms)
    tr.setup(data)
    tr.validation_data = data
    batch = p.batch
    return lambda: tr.train_step(batch) and None


def step_times(ks: list[int], weightings: list[str], aggregators: list[str], args: argparse.Namespace
               ) -> dict[int, Times]:
    out = {}
    for k in ks:
        p = make_problem(k)
        fns: dict[str, Callable[[], None]] = {"floor": floor(p), "plain": ours(p, None)}
        groups: list[tuple[str, ...]] = [("floor", "plain")]
        for name in aggregators:
            fns[f"agg:{name}"] = ours(p, name)
            groups.append(("floor", f"agg:{name}"))
        for name in weightings:
            fns[f"w:{name}"] = weighted(p, name)
            groups.append(("floor", f"w:{name}"))
        out[k] = Times(groups, run_rounds(fns, groups, args.rounds, args.steps, args.warmup,
                                          CLOCKS[args.clock], lambda: None))
    return out


# ------------------------------------------------------------------ Δm
def dataset_config(name: str, quick: bool) -> dict[str, Any]:
    if name == "yeast":
        return {"name": "yeast", "data": {"dataset": "yeast", "split": {"train": 0.6, "val": 0.2, "test": 0.2}},
                "model": {"trunk": {"name": "mlp", "hidden": [64, 32]}},
                "training": {"epochs": 1 if quick else 4, "batch_size": 256,
                             "optimizer": {"name": "adam", "lr": 1e-3}},
                "baselines": ["neural"]}
    if name == "penguins":
        return {"name": "penguins",
                "data": {"path": str(ROOT / "examples" / "tabular" / "penguins.csv"),
                         "features": {"island": "categorical", "bill_length_mm": "numeric",
                                      "bill_depth_mm": "numeric", "flipper_length_mm": "numeric",
                                      "year": "categorical"},
                         "split": {"train": 0.6, "val": 0.2, "test": 0.2, "stratify": "species"}},
                "tasks": [{"name": "species", "kind": "multiclass", "num_classes": 3},
                          {"name": "sex", "kind": "binary", "positive_class": "female"},
                          {"name": "body_mass_g", "kind": "regression"}],
                "model": {"trunk": {"name": "mlp", "hidden": [32]}},
                "training": {"epochs": 2 if quick else 15, "batch_size": 32,
                             "optimizer": {"name": "adam", "lr": 1e-2}},
                "baselines": ["neural"]}
    raise SystemExit(f"Unknown dataset {name!r}: choose yeast or penguins.")


def method_config(base: dict[str, Any], kind: str, name: str) -> dict[str, Any]:
    cfg = copy.deepcopy(base)
    if kind == "weighting":
        cfg["training"]["weighting"] = {"name": name}
    elif kind == "aggregator":
        cfg["training"]["aggregator"] = {"name": name}
    else:
        cfg["model"]["architecture"] = {"name": name}
    return cfg


def delta_m_row(base: dict[str, Any], kind: str, name: str, seeds: list[int], work: Path,
                prepared: dict[int, Any]) -> str:
    """'mean ± sd' of Δm (%) over the seeds, or why the method does not run here."""
    from mtlkit.config import parse_config
    from mtlkit.run import prepare_from_config, run_seeds

    cfg = parse_config(method_config(base, kind, name), source=f"methods.py {kind} {name}")

    def data(cfg_s: Any) -> Any:
        if cfg_s.seed not in prepared:
            prepared[cfg_s.seed] = prepare_from_config(cfg_s)
        return prepared[cfg_s.seed]

    try:
        res = run_seeds(cfg, seeds, out_dir=work / f"{kind}-{name}", data=data, cache_dir=work / ".references",
                        report=False)
    except Exception as exc:  # a method that cannot run on this data says why, in the table
        return "n/a: " + str(exc).splitlines()[0][:70]
    dm = res.record["delta_m"]
    if dm["mean"] is None:
        return "n/a: no Δm"
    sd = "" if dm["sd"] is None or not math.isfinite(dm["sd"]) else f" ± {dm['sd']:.2f}"
    return f"{dm['mean']:+.2f}{sd}"


# ------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="K = 4, 1 round, 1 seed, penguins, tiny budgets")
    ap.add_argument("--ks", type=int, nargs="+", help="values of K of the step-time table (default 4 10)")
    ap.add_argument("--methods", nargs="+", help="registry names to include (default: all)")
    ap.add_argument("--datasets", nargs="+", help="yeast and/or penguins (default both; quick: penguins)")
    ap.add_argument("--seeds", type=int, nargs="+", help="seeds of the Δm runs (default 0 1 2; quick: 0)")
    ap.add_argument("--rounds", type=int, help="timing rounds (default 5; quick 1)")
    ap.add_argument("--steps", type=int, help="steps per timed block (default 2; quick 1)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--clock", choices=sorted(CLOCKS), default="cpu")
    ap.add_argument("--no-time", action="store_true", help="skip the step-time table")
    ap.add_argument("--no-delta-m", action="store_true", help="skip the Δm table")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    args.rounds = args.rounds or (1 if args.quick else 5)
    args.steps = args.steps or (1 if args.quick else 2)
    ks = args.ks or ([4] if args.quick else [4, 10])
    seeds = args.seeds or ([0] if args.quick else [0, 1, 2])
    datasets = args.datasets or (["penguins"] if args.quick else ["yeast", "penguins"])
    keep = set(args.methods) if args.methods else None
    aggs = [n for n in AGGREGATORS.names() if keep is None or n in keep]
    ws = [n for n in WEIGHTINGS.names() if keep is None or n in keep]
    archs = [n for n in ARCHITECTURES if keep is None or n in keep]
    t0 = time.perf_counter()
    times = {} if args.no_time else step_times(ks, ws, aggs, args)
    t_time = time.perf_counter() - t0
    rows: list[tuple[str, str, str]] = [("plain", "-", "plain")] if times else []
    rows += [("aggregator", n, f"agg:{n}") for n in aggs] + [("weighting", n, f"w:{n}") for n in ws]
    rows += [("architecture", n, "") for n in archs]
    dms: dict[tuple[str, str], dict[str, str]] = {}
    if not args.no_delta_m:
        with tempfile.TemporaryDirectory() as tmp:
            for ds in datasets:
                base, prepared = dataset_config(ds, args.quick), {}
                for kind, name, _ in rows:
                    if kind != "plain":
                        cell = delta_m_row(base, kind, name, seeds, Path(tmp) / ds, prepared)
                        dms.setdefault((kind, name), {})[ds] = cell
                        print(f"  {ds} {kind} {name}: {cell}", file=sys.stderr, flush=True)
    t_all = time.perf_counter() - t0
    print_table(rows, times, dms, ks, datasets if not args.no_delta_m else [], seeds, args)
    print(f"\n(step times {t_time:.0f} s, total {t_all:.0f} s wall-clock)")


def print_table(rows: list[tuple[str, str, str]], times: dict[int, Times], dms: dict[tuple[str, str], dict[str, str]],
                ks: list[int], datasets: list[str], seeds: list[int], args: argparse.Namespace) -> None:
    if times:
        print(f"Step time: median {args.clock.upper()} ms per step over {args.rounds} rounds of {args.steps} steps "
              f"(× floor: the median over rounds of the paired ratio); floor at "
              + ", ".join(f"K={k}: {times[k].ms('floor'):.2f} ms" for k in ks))
    if datasets:
        print(f"Δm (%): mean ± sd over seeds {seeds}, against single-task models of the same trunk and budget")
    head = ["kind", "method"] + [f"K={k} ms (× floor)" for k in ks if times] + [f"Δm {d}" for d in datasets]
    print("\n| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for kind, name, key in rows:
        cells = [kind, name]
        for k in ks if times else []:
            cells.append(f"{times[k].ms(key):.2f} ({times[k].ratio(key, 'floor'):.2f}×)" if key else "-")
        cells += [dms.get((kind, name), {}).get(d, "-") for d in datasets]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
