"""Multi-task recommenders on MovieLens 100K (the click -> conversion funnel): shared-bottom,
MMoE, PLE, ESMM and AITM against single-task models on the same leave-one-out split.

    python benchmarks/recommenders.py            # all users, 3 seeds
    python benchmarks/recommenders.py --quick    # 30 users, 1 seed, 1 epoch (a smoke run)

Prints one markdown row per model and task: test AUC, GAUC and NDCG@10 (mean ± sd over the
seeds; candidates: the held-out movie + ``--test-negatives`` sampled unrated movies per user)
and training samples/s. A plain loop (Adam, sum of the task losses + the model's extra
losses) so every model gets the same budget. Needs the recsys extra (recbole, --no-deps).
torch-rechub's side-by-side table is not done yet.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from mtlkit.architectures import build_model
from mtlkit.datasets import load
from mtlkit.evaluation.ranking import ranking_metrics

ARCHS = {"shared_bottom": {"tower_hidden": [16]}, "mmoe": {"num_experts": 3},
         "ple": {"levels": 1, "num_shared_experts": 2, "num_task_experts": 1},
         "esmm": {"tower_hidden": [16]}, "aitm": {"dim": 16}}


def train_eval(arch: str, params: dict, tasks, bundle, epochs: int, batch: int, seed: int, k: int):
    torch.manual_seed(seed)
    m = build_model({"name": arch, "trunk": bundle.default_trunk, **params}, tasks, bundle.data.input_shape)
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    x, ys, ms = bundle.data.x, bundle.data.targets, bundle.data.masks
    n, seen, t0 = len(x), 0, time.perf_counter()
    for _ in range(epochs):
        m.train()
        for idx in torch.randperm(n).split(batch):
            out = m(x[idx])
            loss = sum(t.compute_loss(out[t.name], ys[t.name][idx], ms[t.name][idx]) for t in tasks)
            loss = loss + sum(m.extra_losses().values(), torch.zeros(()))
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen += len(idx)
    speed = seen / (time.perf_counter() - t0)
    m.eval()
    with torch.no_grad():
        out = m(bundle.test.x)
    users = bundle.test.x[:, bundle.info["user_column"]].numpy()
    res = {}
    for t in tasks:
        p = torch.sigmoid(out[t.name]).numpy()
        res[t.name] = ranking_metrics(p, bundle.test.targets[t.name].numpy(), users, ks=(k,))
    return res, speed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--n-users", type=int, default=None)
    ap.add_argument("--test-negatives", type=int, default=99)
    ap.add_argument("--archs", nargs="*", default=list(ARCHS))
    a = ap.parse_args()
    if a.quick:
        a.seeds, a.epochs, a.n_users, a.test_negatives = 1, 1, a.n_users or 30, 9
    k = 10
    bundle = load("movielens", n_users=a.n_users, negatives=2, test_negatives=a.test_negatives)
    print(f"MovieLens 100K funnel: {len(bundle.data)} training impressions, {len(bundle.test)} test rows; "
          f"candidates: {bundle.info['candidates']}")
    rows: dict[tuple[str, str], list] = {}
    models = [(arch, ARCHS[arch], bundle.tasks) for arch in a.archs]
    models += [("single-task", {"tower_hidden": [16]}, [t]) for t in bundle.tasks]
    for name, params, tasks in models:
        arch = "shared_bottom" if name == "single-task" else name
        single = [__import__("dataclasses").replace(t, given=None) for t in tasks] if len(tasks) == 1 else tasks
        for seed in range(a.seeds):
            res, speed = train_eval(arch, params, single, bundle, a.epochs, 512, seed, k)
            for task, r in res.items():
                rows.setdefault((name, task), []).append((r["auc"], r["gauc"], r[f"ndcg@{k}"], speed))

    def ms(v: list[float]) -> str:
        return f"{statistics.mean(v):.4f} ± {statistics.stdev(v):.4f}" if len(v) > 1 else f"{v[0]:.4f}"

    print(f"\n| model | task | AUC | GAUC | NDCG@{k} | samples/s |")
    print("|--|--|--|--|--|--|")
    for (name, task), vals in rows.items():
        cols = list(zip(*vals))
        print(f"| {name} | {task} | {ms(list(cols[0]))} | {ms(list(cols[1]))} | {ms(list(cols[2]))} | "
              f"{statistics.mean(cols[3]):.0f} |")


if __name__ == "__main__":
    main()
