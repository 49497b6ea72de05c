"""Multi-task recommenders on MovieLens 100K (the click -> conversion funnel): shared-bottom,
MMoE, PLE, ESMM and AITM against single-task models on the same leave-one-out split.

    python benchmarks/recommenders.py            # all users, 3 seeds
    python benchmarks/recommenders.py --quick    # 30 users, 1 seed, 1 epoch (a smoke run)

Prints one markdown row per model and task: test AUC, GAUC and NDCG@10 (mean ± sd over the
seeds; candidates: the held-out movie + ``--test-negatives`` sampled unrated movies per user)
and training samples/s. A plain loop (Adam, sum of the task losses + the model's extra
losses) so every model gets the same budget. Needs the recsys extra (recbole, --no-deps).

When ``torch_rechub`` is importable (the bench extra: ``pip install --no-deps torch-rechub``),
its ``MMOE`` and ``ESMM`` are trained on the same split, with the same loop, epochs, batch
size, optimiser and learning rate, and printed in the same table (rows ``rechub-mmoe``,
``rechub-esmm``). Their inputs are the same ID fields (all embeddings 16 wide, as
torch-rechub's ESMM needs one width; the bags as mean-pooled sequence features with padding
index 0; zip hashed into 1,000 buckets as on our side); ESMM's loss is the paper's
``BCE(pCTR, click) + BCE(pCTCVR, conversion)`` as for ours, MMoE's the sum of the two BCEs.

Variants of our models' input (docs/recommenders.md): ``--batch-norm`` (the trunk with
``batch_norm: true``, as torch-rechub's MLPs), ``--init-std S`` (the ID embeddings start at
N(0, S²); mtlkit's default is 0.01, ``nn.Embedding``'s 1) and ``--field-dim D`` (every ID field
D wide).
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


def rechub_inputs(bundle, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Our ID columns as torch-rechub's ``{feature name: tensor}`` (padding -1 -> 0)."""
    from mtlkit.architectures._embeddings import hash_ids

    out, col = {}, 0
    for f in bundle.info["input"]["fields"]:
        length = f.get("length", 1)
        ids = x[:, col:col + length].round().long()
        col += length
        if "hash_buckets" in f:
            ids = hash_ids(ids, f["hash_buckets"])
        out[f["name"]] = ids.clamp_min(0) if length > 1 else ids[:, 0].clamp_min(0)
    return out


def rechub_model(name: str, bundle):
    from torch_rechub.basic.features import SequenceFeature, SparseFeature
    from torch_rechub.models.multi_task import ESMM, MMOE

    feats = {}
    for f in bundle.info["input"]["fields"]:
        vocab = f.get("vocab") or f.get("hash_buckets")
        if f.get("length", 1) > 1:
            share = f.get("share")
            feats[f["name"]] = SequenceFeature(f["name"], vocab_size=vocab or 0, embed_dim=16, pooling="mean",
                                               shared_with=share, padding_idx=0)
        else:
            feats[f["name"]] = SparseFeature(f["name"], vocab_size=vocab, embed_dim=16)
    if feats["history"].shared_with is not None:
        feats["history"].vocab_size = feats["item"].vocab_size
    if name == "rechub-mmoe":
        return MMOE(list(feats.values()), ["classification", "classification"], n_expert=3,
                    expert_params={"dims": [64, 32]}, tower_params_list=[{"dims": [16]}, {"dims": [16]}])
    user = [feats[k] for k in ("user", "gender", "age", "occupation", "zip", "history")]
    item = [feats[k] for k in ("item", "year", "genres")]
    return ESMM(user, item, cvr_params={"dims": [64, 32, 16]}, ctr_params={"dims": [64, 32, 16]})


def rechub_probs(name: str, m, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = m(x)
    if name == "rechub-mmoe":  # one probability column per task, in task order
        return {"click": out[:, 0], "conversion": out[:, 1]}
    return {"click": out[:, 1], "conversion": out[:, 2]}  # ESMM: [pCVR, pCTR, pCTCVR]


def train_eval_rechub(name: str, bundle, epochs: int, batch: int, seed: int, k: int):
    """torch-rechub's model on the same data, loop and budget as :func:`train_eval`."""
    torch.manual_seed(seed)
    m = rechub_model(name, bundle)
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    xs, ys = rechub_inputs(bundle, bundle.data.x), bundle.data.targets
    n, seen, t0 = len(bundle.data.x), 0, time.perf_counter()
    bce = torch.nn.functional.binary_cross_entropy
    for _ in range(epochs):
        m.train()
        for idx in torch.randperm(n).split(batch):
            p = rechub_probs(name, m, {key: v[idx] for key, v in xs.items()})
            loss = sum(bce(p[t].clamp(1e-7, 1 - 1e-7), ys[t][idx]) for t in ("click", "conversion"))
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen += len(idx)
    speed = seen / (time.perf_counter() - t0)
    m.eval()
    with torch.no_grad():
        p = rechub_probs(name, m, rechub_inputs(bundle, bundle.test.x))
    users = bundle.test.x[:, bundle.info["user_column"]].numpy()
    res = {t: ranking_metrics(p[t].numpy(), bundle.test.targets[t].numpy(), users, ks=(k,))
           for t in ("click", "conversion")}
    return res, speed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--n-users", type=int, default=None)
    ap.add_argument("--test-negatives", type=int, default=99)
    ap.add_argument("--archs", nargs="*", default=list(ARCHS))
    ap.add_argument("--batch-norm", action="store_true",
                    help="our models' trunk with batch_norm: true (torch-rechub's MLPs have BatchNorm)")
    ap.add_argument("--init-std", type=float, default=None,
                    help="standard deviation of our ID embeddings' initial weights (default: mtlkit's, 0.01)")
    ap.add_argument("--field-dim", type=int, default=None, help="every ID field of our models this wide")
    ap.add_argument("--no-references", action="store_true",
                    help="leave out the single-task and torch-rechub rows (re-run some architectures only)")
    a = ap.parse_args()
    if a.quick:
        a.seeds, a.epochs, a.n_users, a.test_negatives = 1, 1, a.n_users or 30, 9
    k = 10
    bundle = load("movielens", n_users=a.n_users, negatives=2, test_negatives=a.test_negatives)
    if a.batch_norm:
        bundle.default_trunk["batch_norm"] = True
    if a.init_std is not None:
        from mtlkit.data import embedding

        embedding.INIT_STD = a.init_std
    if a.field_dim is not None:
        for f in bundle.default_trunk["input"]["fields"]:
            f["dim"] = a.field_dim
    print(f"MovieLens 100K funnel: {len(bundle.data)} training impressions, {len(bundle.test)} test rows; "
          f"candidates: {bundle.info['candidates']}")
    rows: dict[tuple[str, str], list] = {}
    models = [(arch, ARCHS[arch], bundle.tasks) for arch in a.archs]
    models += [] if a.no_references else [("single-task", {"tower_hidden": [16]}, [t]) for t in bundle.tasks]
    for name, params, tasks in models:
        arch = "shared_bottom" if name == "single-task" else name
        single = [__import__("dataclasses").replace(t, given=None) for t in tasks] if len(tasks) == 1 else tasks
        for seed in range(a.seeds):
            res, speed = train_eval(arch, params, single, bundle, a.epochs, 512, seed, k)
            for task, r in res.items():
                rows.setdefault((name, task), []).append((r["auc"], r["gauc"], r[f"ndcg@{k}"], speed))

    try:
        import torch_rechub  # noqa: F401

        rechub = [] if a.no_references else ["rechub-mmoe", "rechub-esmm"]
    except ImportError:
        rechub = []
        print("torch_rechub is not installed (pip install --no-deps torch-rechub): its rows are left out.")
    for name in rechub:
        for seed in range(a.seeds):
            res, speed = train_eval_rechub(name, bundle, a.epochs, 512, seed, k)
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
