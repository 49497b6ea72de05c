"""Trainer overhead: ms/step of mtlkit's Trainer (equal weights) vs a hand-written PyTorch
loop on the same model, data and batch size. Target: <= 1.05x.

    python benchmarks/overhead.py            # full
    python benchmarks/overhead.py --quick    # fewer steps

Both loops do the same work per step: forward, K masked task losses, their sum, backward,
Adam step. Timings are medians over repeated blocks of steps, interleaved to share noise.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from mtlkit import HardSharing, MultiTaskData, Task, Trainer
from mtlkit.architectures import lenet, mlp


def make_case(name: str, n: int, k: int):
    g = torch.Generator().manual_seed(0)
    if name == "mlp":
        x = torch.randn(n, 64, generator=g)
        tasks = [Task(f"t{i}", "regression") for i in range(k)]
        targets = {t.name: torch.randn(n, 1, generator=g) for t in tasks}
        trunk = lambda: mlp(64, (512, 512, 256))  # noqa: E731  ~0.43M params
    else:
        x = torch.rand(n, 1, 36, 36, generator=g)
        tasks = [Task(f"t{i}", "multiclass", num_classes=10) for i in range(k)]
        targets = {t.name: torch.randint(0, 10, (n,), generator=g) for t in tasks}
        trunk = lambda: lenet(1, (36, 36))  # noqa: E731
    return MultiTaskData(x, targets, None, tasks), tasks, trunk


def hand_loop(model, data, tasks, batches, opt):
    for idx in batches:
        x = data.x[idx]
        out = model(x)
        loss = 0.0
        for t in tasks:
            loss = loss + t.compute_loss(out[t.name], data.targets[t.name][idx], data.masks[t.name][idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def trainer_loop(trainer, data, batches):
    for idx in batches:
        trainer.train_step(data.batch(idx))


def bench(name: str, steps: int, repeats: int, batch: int = 256, k: int = 2) -> tuple[float, float]:
    data, tasks, trunk = make_case(name, batch * steps, k)
    torch.manual_seed(0)
    m1 = HardSharing(trunk(), tasks)
    torch.manual_seed(0)
    m2 = HardSharing(trunk(), tasks)
    opt = torch.optim.Adam(m1.parameters(), lr=1e-3)
    tr = Trainer(m2, tasks, lr=1e-3, batch_size=batch, progress=False, monitor_conflicts=False)
    tr.setup(data)
    batches = [torch.arange(i * batch, (i + 1) * batch) for i in range(steps)]
    hand_loop(m1, data, tasks, batches[:3], opt)  # warm-up
    trainer_loop(tr, data, batches[:3])
    th, tt = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        hand_loop(m1, data, tasks, batches, opt)
        th.append((time.perf_counter() - t0) / steps * 1000)
        t0 = time.perf_counter()
        trainer_loop(tr, data, batches)
        tt.append((time.perf_counter() - t0) / steps * 1000)
    return statistics.median(th), statistics.median(tt)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    steps, repeats = (10, 3) if a.quick else (30, 7)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, batch 256, 2 tasks")
    print(f"{'model':<8} {'hand ms/step':>13} {'Trainer ms/step':>16} {'ratio':>7}")
    for name in ("mlp", "lenet"):
        h, t = bench(name, steps, repeats)
        print(f"{name:<8} {h:>13.2f} {t:>16.2f} {t / h:>7.3f}")


if __name__ == "__main__":
    main()
