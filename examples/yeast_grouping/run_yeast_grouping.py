"""Yeast (14 binary labels): which tasks should share a network?

For each seed (a different train/val/test split and initialisation):

1. train all 14 tasks together once with TAG's look-ahead measurement (Fifty et al. 2021)
   switched on, giving the TAG affinity matrix; the gradient-cosine matrix of the same run
   comes from the conflict monitor;
2. choose groups for a budget of G = 2 and G = 3 networks from the TAG matrix (exact
   search), and, as controls, G = 3 from the cosine matrix and a random split of the tasks
   into groups of the same sizes as TAG's G = 3 served sets;
3. train one network per group (same config), the all-in-one network and the 14 single-task
   baselines, and evaluate every task on the test split with the network serving it.

Reported: per-task test F1 (mean over seeds) and Δm against the single-task models (all
three binary metrics, and F1 only), mean ± sd over seeds; the groups chosen per seed.

    python examples/yeast_grouping/run_yeast_grouping.py            # 3 seeds (~30 min on 2 busy cores)
    python examples/yeast_grouping/run_yeast_grouping.py --quick    # 1 seed, 3 epochs: a smoke test
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from mtlkit.analysis import AffinityTrainer, cosine_from_records, evaluate_groups, select_groups
from mtlkit.analysis._format import markdown_table
from mtlkit.analysis.grouping import restrict_config, restrict_prepared
from mtlkit.config import load_config
from mtlkit.evaluation import delta_m
from mtlkit.run import build_model_for, make_trainer, prepare_from_config, run, write_json
from mtlkit.training.trainer import seed_everything

CONFIG = Path(__file__).with_name("config.yaml")


def measure_affinity(cfg, prepared, every):
    """One all-task training run with the TAG look-ahead every `every` steps and the
    conflict monitor on: returns (TAG result, cosine result)."""
    c = cfg.model_copy(deep=True)
    c.training.monitor_conflicts = True
    seed_everything(c.seed)
    model = build_model_for(c, prepared, prepared.tasks)
    trainer = AffinityTrainer.from_trainer(make_trainer(c, model, prepared.tasks, run_dir=None, progress=False),
                                           every=every)
    trainer.fit(prepared.train, prepared.val)
    return trainer.affinity({"seed": c.seed}), cosine_from_records(trainer.history.records, trainer.task_names)


def random_grouping(tag, sizes, rng):
    perm = rng.permutation(len(tag.task_names))
    groups, start = [], 0
    for s in sizes:
        groups.append([tag.task_names[i] for i in perm[start:start + s]])
        start += s
    return evaluate_groups(tag, groups)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 seed, 3 epochs, look-ahead every 10 steps.")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--every", type=int, default=5, help="TAG look-ahead every N steps.")
    ap.add_argument("--out", type=Path, default=Path("runs/yeast_grouping"))
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    seeds = [0] if args.quick else args.seeds
    every = 10 if args.quick else args.every
    over = ["training.epochs=3"] if args.quick else []
    args.out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    per_seed = []
    for seed in seeds:
        t0 = time.perf_counter()
        cfg = load_config(CONFIG, [*over, f"seed={seed}"])
        prepared = prepare_from_config(cfg)
        names = [t.name for t in prepared.tasks]
        tasks = prepared.tasks
        print(f"[seed {seed}] all-in-one + 14 single-task baselines ...", flush=True)
        aio = run(cfg, prepared, out_dir=None, progress=False)
        stl = {k: v["test"] for k, v in aio.summary["baselines"].items()}
        print(f"[seed {seed}] TAG affinity (look-ahead every {every} steps) ...", flush=True)
        ta = time.perf_counter()
        tag, cos = measure_affinity(cfg, prepared, every)
        t_aff = time.perf_counter() - ta
        tag.save(args.out / f"seed{seed}" / "tag")
        cos.save(args.out / f"seed{seed}" / "cosine")
        groupings = {f"TAG G={g}": select_groups(tag, g) for g in (2, 3)}
        groupings["cosine G=3"] = select_groups(cos, 3)
        sizes = [len(groupings["TAG G=3"].served_by(k)) for k in range(len(groupings["TAG G=3"].groups))]
        groupings["random G=3"] = random_grouping(tag, sizes, np.random.default_rng(1000 + seed))
        cache: dict[frozenset, dict] = {}
        systems = {"single-task": {"test": stl, "params": aio.summary["stl_params_total"], "networks": 14},
                   "all-in-one": {"test": aio.summary["mtl"]["test"], "params": aio.summary["mtl"]["params"],
                                  "networks": 1}}
        for label, g in groupings.items():
            runs = []
            for k, grp in enumerate(g.groups):
                key = frozenset(grp)
                if key not in cache:
                    print(f"[seed {seed}] {label}: training group {k} {list(grp)} ...", flush=True)
                    c = restrict_config(cfg, prepared, grp, name=f"{cfg.name}-{len(cache)}")
                    r = run(c, restrict_prepared(prepared, grp), out_dir=None, progress=False)
                    cache[key] = r.summary["mtl"]
                runs.append(cache[key])
            test = {t: runs[g.serving[t]]["test"][t] for t in names}
            systems[label] = {"test": test, "params": int(sum(r["params"] for r in runs)),
                              "networks": len(g.groups), "groups": [list(x) for x in g.groups],
                              "serving": g.serving, "predicted_total": g.total}
        for s in systems.values():
            s["delta_m"] = delta_m(s["test"], stl, tasks)
            s["delta_m_f1"] = delta_m(s["test"], stl, tasks, metrics={t: ["f1"] for t in names})
            s["delta_m_vs_all_in_one"] = delta_m(s["test"], systems["all-in-one"]["test"], tasks)
        per_seed.append({"seed": seed, "systems": systems, "tag": tag.to_dict(), "cosine": cos.to_dict(),
                         "affinity_time_s": round(t_aff, 1), "time_s": round(time.perf_counter() - t0, 1),
                         "group_trainings": len(cache)})
        print(f"[seed {seed}] done in {time.perf_counter() - t0:.0f} s", flush=True)
        write_json(args.out / "results.json", {"seeds": per_seed, "config": str(CONFIG), "every": every,
                                               "quick": args.quick})
    text = report(per_seed, names, every, args.quick, time.perf_counter() - t_start)
    (args.out / "results.md").write_text(text, encoding="utf-8")
    print(text)


def report(per_seed, names, every, quick, seconds) -> str:
    labels = list(per_seed[0]["systems"])

    def ms(vals):
        v = np.array([x for x in vals if x is not None and np.isfinite(x)], dtype=float)
        if not len(v):
            return "n/a"
        return f"{v.mean():.2f} ± {v.std(ddof=1):.2f}" if len(v) > 1 else f"{v.mean():.2f}"

    rows = []
    for t in names:
        row = [t]
        for lab in labels:
            row.append(f"{np.mean([s['systems'][lab]['test'][t]['f1'] for s in per_seed]):.3f}")
        rows.append(row)
    rows.append(["**mean F1**", *[f"{np.mean([np.mean([s['systems'][lab]['test'][t]['f1'] for t in names]) for s in per_seed]):.3f}"
                                  for lab in labels]])
    out = [f"Seeds {[s['seed'] for s in per_seed]}{' (quick: 3 epochs)' if quick else ''}; TAG look-ahead every "
           f"{every} steps; total {seconds / 60:.1f} min.", "",
           "Per-task test F1 (threshold 0.5), mean over seeds:", "",
           markdown_table(["task", *labels], rows), "",
           "Δm in % against the 14 single-task networks (negative = better), mean ± sd over seeds:", "",
           markdown_table(["", *labels], [
               ["Δm (accuracy, F1, ROC-AUC)", *[ms([s["systems"][lab]["delta_m"] for s in per_seed]) for lab in labels]],
               ["Δm (F1 only)", *[ms([s["systems"][lab]["delta_m_f1"] for s in per_seed]) for lab in labels]],
               ["Δm vs all-in-one", *[ms([s["systems"][lab]["delta_m_vs_all_in_one"] for s in per_seed])
                                      for lab in labels]],
               ["networks", *[str(per_seed[0]["systems"][lab]["networks"]) for lab in labels]],
               ["parameters", *[f"{per_seed[0]['systems'][lab]['params']:,}" for lab in labels]]]),
           "", "Groups chosen (served tasks are in the group; a task may also help in another group):", ""]
    for s in per_seed:
        for lab in labels:
            if "groups" in s["systems"][lab]:
                gs = " | ".join(",".join(x.replace("Class", "C") for x in g) for g in s["systems"][lab]["groups"])
                out.append(f"- seed {s['seed']}, {lab}: {gs}")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
