"""Side by side, in one run: mtlkit's training step against a hand-written PyTorch loop, the
floor of the exact gradient methods, and TorchJD.

    .venv/bin/python benchmarks/peers.py                     # K = 4, 10, 40; every method
    .venv/bin/python benchmarks/peers.py --ks 4 --quick      # a smoke run (seconds)
    .venv/bin/python benchmarks/peers.py --memory            # also the peak-memory table

The shared problem (issue 22): an MLP trunk 64 -> 512 -> 512 -> 512 (ReLU), K linear
regression heads, batch 256 with about 10 % of the labels missing (masked losses), SGD with
lr 1e-3 and no momentum. Every variant trains its own copy of the same initial model on the
same batch, on the CPU (``--device`` for another).

Rows:

* ``hand``: a hand-written loop (forward, the K masked losses of ``Task.compute_loss``, their
  sum, ``backward``, ``SGD.step``) — the reference of goal 1;
* ``hand (plain torch)``: the same with the masked MSE written out in plain torch (for
  information: it shows what the loss functions themselves cost);
* ``plain``: ``Trainer.train_step`` with no aggregator (goal 1: <= 1.05x ``hand``);
* ``floor``: forward, K ``torch.autograd.grad`` calls through the trunk, then one plain step
  (backward of the sum, ``SGD.step``) on the same graph — the least an exact per-task-gradient
  method costs; every parameter-level method is ``Trainer.train_step`` with that aggregator
  (goal 2: <= 1.10x the floor);
* ``torchjd``: TorchJD's documented path (``mtl_backward`` + ``jac_to_grad``) with its own
  aggregator of the same name and hyperparameters, when ``torchjd`` is installed (the
  ``bench`` extra).

Timing: ``--rounds`` rounds; in each, every group of compared variants (hand-written and
plain; the floor, a method and TorchJD's method) runs ``--steps`` steps of each, one variant
right after the other, the groups in a freshly shuffled order. The table shows the median ms
per step; a ratio is the median over the rounds of the ratio of two blocks of the same group
(timed seconds apart, so a burst of load on a shared machine hits both alike).
``--clock cpu`` (default with one thread) is process CPU time, robust on a shared machine;
``--clock wall`` elapsed time (default with more threads).

``--math``: the aggregation math alone at the largest K, on the Jacobian of the problem's
first step: the Gramian, each method's weights from it (its whole ``aggregate`` for a method
that is not a weighting of the Gramian) and ``w @ J``, in ms and as a share of the floor.

``--memory``: every variant runs 3 steps in turn in one child process (after one step on a
tiny problem that loads its code), which reports the growth of its peak resident set size
(``VmHWM``, reset between variants) over the state after building the model and the data (on
CUDA: ``torch.cuda.max_memory_allocated``), next to plain training and the size of the K×P
Jacobian; ``--block N`` adds each Gramian-based method, and each method that consumes the
Jacobian's rows one at a time (GradDrop), with ``jacobian_block_size: N``; ``--vs-jacobian``
adds each Gramian-based method with ``gramian_engine: jacobian``.
"""

from __future__ import annotations

import os

# one BLAS thread for the K×K solvers: spinning BLAS threads would be billed to the process
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import contextlib
import copy
import gc
import json
import random
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mtlkit import HardSharing, Task, Trainer
from mtlkit._registry import AGGREGATORS
from mtlkit.aggregation._base import Aggregator
from mtlkit.architectures.backbones import mlp

warnings.filterwarnings("ignore", category=RuntimeWarning)

Batch = tuple[Tensor, dict[str, Tensor], dict[str, Tensor]]


@dataclass
class Problem:
    k: int
    tasks: list[Task]
    model: HardSharing  # the initial model: every variant trains a deep copy
    batch: Batch
    device: torch.device
    precision: str = "fp32"

    def autocast(self) -> Any:
        """The hand-written loops' autocast (the same as ``training.precision``)."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def scaler(self) -> Any:
        return torch.amp.GradScaler(self.device.type) if self.precision == "fp16" else None

    @property
    def shared_numel(self) -> int:
        return sum(p.numel() for p in self.model.shared_parameters())


def make_problem(k: int, device: str = "cpu", batch: int = 256, seed: int = 0, precision: str = "fp32",
                 width: int = 512) -> Problem:
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    tasks = [Task(f"t{i}", "regression") for i in range(k)]
    model = HardSharing(mlp(64, (width, width, width)), tasks)
    x = torch.randn(batch, 64, generator=g)
    ys = {t.name: torch.randn(batch, 1, generator=g) for t in tasks}
    ms = {t.name: torch.rand(batch, 1, generator=g) > 0.1 for t in tasks}
    dev = torch.device(device)
    to = lambda d: {n: v.to(dev) for n, v in d.items()}  # noqa: E731
    return Problem(k, tasks, model.to(dev), (x.to(dev), to(ys), to(ms)), dev, precision)


def _sgd(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.0)


def _update(loss: Tensor, opt: torch.optim.Optimizer, scaler: Any) -> None:
    """``backward`` and ``step``, through the gradient scaler under fp16."""
    if scaler is None:
        loss.backward()
        opt.step()
        return
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()


# ------------------------------------------------------------------ the variants
def hand(p: Problem) -> Callable[[], None]:
    model = copy.deepcopy(p.model)
    opt = _sgd(model)
    x, ys, ms = p.batch
    tasks = p.tasks
    scaler = p.scaler()

    def step() -> None:
        with p.autocast():
            out = model(x)
            loss = sum(t.compute_loss(out[t.name], ys[t.name], ms[t.name]) for t in tasks)
        opt.zero_grad(set_to_none=True)
        _update(loss, opt, scaler)  # type: ignore[arg-type]

    return step


def hand_plain_torch(p: Problem) -> Callable[[], None]:
    model = copy.deepcopy(p.model)
    opt = _sgd(model)
    x, ys, ms = p.batch
    names = [t.name for t in p.tasks]
    fms = {n: m.float() for n, m in ms.items()}
    counts = {n: m.sum().clamp_min(1) for n, m in fms.items()}

    scaler = p.scaler()

    def step() -> None:
        with p.autocast():
            out = model(x)
            loss = sum((F.mse_loss(out[n], ys[n], reduction="none") * fms[n]).sum() / counts[n] for n in names)
        opt.zero_grad(set_to_none=True)
        _update(loss, opt, scaler)  # type: ignore[arg-type]

    return step


def floor(p: Problem) -> Callable[[], None]:
    model = copy.deepcopy(p.model)
    opt = _sgd(model)
    shared = list(model.shared_parameters())
    x, ys, ms = p.batch
    tasks = p.tasks

    scaler = p.scaler()

    def step() -> None:
        with p.autocast():
            out = model(x)
            losses = [t.compute_loss(out[t.name], ys[t.name], ms[t.name]) for t in tasks]
        opt.zero_grad(set_to_none=True)  # first: the last step's gradients are not held meanwhile
        for loss in losses:
            torch.autograd.grad(loss if scaler is None else scaler.scale(loss), shared, retain_graph=True)
        _update(sum(losses), opt, scaler)  # type: ignore[arg-type]

    return step


def ours(p: Problem, method: str | None, **settings: Any) -> Callable[[], None]:
    model = copy.deepcopy(p.model)
    if p.precision != "fp32":
        settings.setdefault("precision", p.precision)
    agg = AGGREGATORS.build(method) if method else None
    tr = Trainer(model, p.tasks, aggregator=agg, optimizer="sgd", lr=1e-3, momentum=0.0,
                 batch_size=p.batch[0].shape[0], progress=False, device=str(p.device), **settings)
    tr.setup()
    batch = p.batch
    return lambda: tr.train_step(batch) and None


#: our registry name -> TorchJD's aggregator with the same hyperparameters
def torchjd_aggregator(name: str, k: int) -> Any:
    import torchjd.aggregation as tj

    table: dict[str, Callable[[], Any]] = {
        "mean": tj.Mean, "mgda": tj.MGDA, "pcgrad": tj.PCGrad, "graddrop": tj.GradDrop, "imtl_g": tj.IMTLG,
        "aligned_mtl": lambda: tj.AlignedMTL(scale_mode="min"), "upgrad": tj.UPGrad, "dualproj": tj.DualProj,
        "config": tj.ConFIG, "gradvac": lambda: tj.GradVac(beta=0.01), "cagrad": lambda: tj.CAGrad(c=0.5),
        "fairgrad": lambda: tj.FairGrad(alpha=1.0), "nash_mtl": lambda: tj.NashMTL(n_tasks=k),
        "krum": lambda: tj.Krum(n_byzantine=0, n_selected=1), "trimmed_mean": lambda: tj.TrimmedMean(trim_number=1),
    }
    if name not in table:
        return None
    agg = table[name]()
    agg(torch.randn(k, 3))  # refuses here when an optional dependency (cvxpy ...) is missing
    return agg


def torchjd_step(p: Problem, name: str) -> Callable[[], None] | None:
    """TorchJD's documented path; under fp16 none (it has no loss scaling), under bf16 its
    forward pass autocast like ours."""
    if p.precision == "fp16":
        return None
    try:
        from torchjd.autojac import jac_to_grad, mtl_backward

        agg = torchjd_aggregator(name, p.k)
    except Exception:
        return None
    if agg is None:
        return None
    model = copy.deepcopy(p.model)
    opt = _sgd(model)
    shared = list(model.shared_parameters())
    x, ys, ms = p.batch
    tasks = p.tasks

    def step() -> None:
        with p.autocast():
            rep = model.encode(x)
            out = model.decode(rep)
            losses = [t.compute_loss(out[t.name], ys[t.name], ms[t.name]) for t in tasks]
        opt.zero_grad(set_to_none=True)
        mtl_backward(losses, features=rep)
        jac_to_grad(shared, agg)
        opt.step()

    return step


# ------------------------------------------------------------------ timing
CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


def run_rounds(fns: dict[str, Callable[[], None]], groups: list[tuple[str, ...]], rounds: int, steps: int,
               warmup: int, clock: Callable[[], float], sync: Callable[[], None]
               ) -> dict[tuple[int, str], list[float]]:
    """ms per step, one value per round, for every (group, variant). A group is a reference
    and what is compared with it (the floor, a method, TorchJD's method), timed one right
    after the other, so that a ratio compares blocks of the same moment of a shared machine;
    the groups run in a freshly shuffled order every round."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    sync()
    out: dict[tuple[int, str], list[float]] = {(g, n): [] for g, group in enumerate(groups) for n in group}
    order = list(range(len(groups)))
    rng = random.Random(0)
    gc.collect()
    gc.disable()  # a collection inside a timed block would land on one variant; one per round instead
    try:
        for _ in range(rounds):
            rng.shuffle(order)
            gc.collect()
            for g in order:
                for n in groups[g]:
                    sync()
                    t0 = clock()
                    for _ in range(steps):
                        fns[n]()
                    sync()
                    out[(g, n)].append((clock() - t0) * 1000.0 / steps)
    finally:
        gc.enable()
    return out


class Times:
    """Medians and paired ratios of :func:`run_rounds`' measurements."""

    def __init__(self, groups: list[tuple[str, ...]], t: dict[tuple[int, str], list[float]]) -> None:
        self.groups, self.t = groups, t

    def __contains__(self, name: str) -> bool:
        return any(name in g for g in self.groups)

    def ms(self, name: str) -> float:
        """Median ms per step of ``name`` over all its blocks."""
        return statistics.median(v for (_, n), vals in self.t.items() if n == name for v in vals)

    def ratio(self, a: str, b: str) -> float:
        """Median over the rounds of a / b, both timed in the same group."""
        g = next(i for i, grp in enumerate(self.groups) if a in grp and b in grp)
        return statistics.median(x / y for x, y in zip(self.t[(g, a)], self.t[(g, b)]))


# ------------------------------------------------------------------ tables
def table_for(k: int, args: argparse.Namespace, methods: list[str], clock: Callable[[], float]) -> list[str]:
    p = make_problem(k, args.device, precision=args.precision)
    sync = torch.cuda.synchronize if p.device.type == "cuda" else (lambda: None)
    fns: dict[str, Callable[[], None]] = {"hand": hand(p), "hand (plain torch)": hand_plain_torch(p),
                                          "plain": ours(p, None, **_settings(args)), "floor": floor(p)}
    groups: list[tuple[str, ...]] = [("hand", "plain"), ("hand", "hand (plain torch)")]
    compile_s = None
    if getattr(args, "compile", False):  # training.compile: true (the first step pays the compilation)
        fns["plain (compile)"] = ours(p, None, compile=True, **_settings(args))
        groups.append(("plain", "plain (compile)"))
        t0, c0 = time.perf_counter(), time.process_time()
        fns["plain (compile)"]()
        compile_s = (time.perf_counter() - t0, time.process_time() - c0)
    for m in methods:
        fns[m] = ours(p, m, **_settings(args))
        tj = None if args.no_torchjd else torchjd_step(p, m)
        if tj is not None:
            fns[f"{m} (torchjd)"] = tj
        if compile_s is not None:  # the exact method with training.compile: true as well
            fns[f"{m} (compile)"] = ours(p, m, compile=True, **_settings(args))
            fns[f"{m} (compile)"]()
        jac = getattr(args, "vs_jacobian", False) and getattr(AGGREGATORS.get(m), "gramian_based", False)
        if jac:  # the same method with the Gramian always from the K×P Jacobian
            fns[f"{m} (jacobian)"] = ours(p, m, **{**_settings(args), "gramian_engine": "jacobian"})
        groups.append(("floor", m, *((f"{m} (torchjd)",) if tj is not None else ()),
                       *((f"{m} (compile)",) if compile_s is not None else ()),
                       *((f"{m} (jacobian)",) if jac else ())))
    t = Times(groups, run_rounds(fns, groups, args.rounds, args.steps, args.warmup, clock, sync))
    lines = [f"\n### K = {k} ({p.shared_numel / 1e6:.2f} M shared parameters, batch 256; median ms per step "
             f"over {args.rounds} rounds of {args.steps} steps; a ratio is the median over the rounds of the "
             f"ratio of two blocks timed one after the other)\n",
             f"hand-written plain sum: {t.ms('hand'):.2f} ms; with the masked MSE in plain torch: "
             f"{t.ms('hand (plain torch)'):.2f} ms ({t.ratio('hand (plain torch)', 'hand'):.3f}x)"
             + (f"; floor: {t.ms('floor'):.2f} ms" if "floor" in t else "") + "\n",
             f"plain (Trainer.train_step): {t.ms('plain'):.2f} ms = **{t.ratio('plain', 'hand'):.3f}x "
             f"hand-written** (goal <= 1.05)\n",
             *([f"plain with training.compile: {t.ms('plain (compile)'):.2f} ms = "
                f"{t.ratio('plain (compile)', 'plain'):.3f}x plain (its first step, the compilation: "
                f"{compile_s[0]:.1f} s elapsed, {compile_s[1]:.1f} s CPU)\n"] if compile_s is not None else []),
             "| method | ms | / floor (goal <= 1.10) | TorchJD ms | ours / TorchJD (goal <= 1) |",
             "|---|---:|---:|---:|---:|"]
    if compile_s is not None:
        lines[-2] += " with training.compile ms | compiled / ours |"
        lines[-1] += "---:|---:|"
    if getattr(args, "vs_jacobian", False):
        lines[-2] += " gramian_engine: jacobian ms | / floor | ours / it |"
        lines[-1] += "---:|---:|---:|"
    for m in methods:
        tj = f"{m} (torchjd)"
        theirs = (f"{t.ms(tj):.2f} | {t.ratio(m, tj):.3f}") if tj in t else "— | —"
        comp = f" {t.ms(m + ' (compile)'):.2f} | {t.ratio(m + ' (compile)', m):.3f} |" if compile_s is not None else ""
        jc = f"{m} (jacobian)"
        vj = (f" {t.ms(jc):.2f} | {t.ratio(jc, 'floor'):.3f} | {t.ratio(m, jc):.3f} |" if jc in t
              else " — | — | — |") if getattr(args, "vs_jacobian", False) else ""
        lines.append(f"| {m} | {t.ms(m):.2f} | {t.ratio(m, 'floor'):.3f} | {theirs} |{comp}{vj}")
    print("\n".join(lines), flush=True)
    return lines


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if args.precision != "fp32":
        out["precision"] = args.precision
    if args.block:
        out["jacobian_block_size"] = args.block
    engine = getattr(args, "gramian_engine", "auto")  # gpu_check.py builds its own namespace
    if engine != "auto":
        out["gramian_engine"] = engine
    return out


# ------------------------------------------------------------------ aggregation math
def math_table(k: int, methods: list[str], repeats: int = 7) -> list[str]:
    from mtlkit.aggregation._base import gramian
    from mtlkit.jacobian import jacobian

    p = make_problem(k)
    model = copy.deepcopy(p.model)
    x, ys, ms = p.batch
    out = model(x)
    losses = [t.compute_loss(out[t.name], ys[t.name], ms[t.name]) for t in p.tasks]
    j = jacobian(losses, list(model.shared_parameters()))
    g = gramian(j)
    step = floor(p)
    step()
    timers: dict[str, Callable[[], Any]] = {"floor (whole step)": step, "Gramian J Jᵀ": lambda: gramian(j),
                                            "w @ J": lambda: torch.full((k,), 1.0 / k) @ j}
    timers.update(_incremental_gramians(j))
    tasks = list(range(k))
    for m in methods:
        agg = AGGREGATORS.build(m)
        if getattr(agg, "gramian_based", False):
            timers[m] = lambda a=agg: a.weights_from(g, tasks=tasks)
        else:
            timers[m] = lambda a=agg: a.aggregate(j, tasks=tasks)
    t: dict[str, list[float]] = {n: [] for n in timers}
    for _ in range(repeats):
        for n, fn in timers.items():
            t0 = time.process_time()
            fn()
            t[n].append((time.process_time() - t0) * 1000.0)
    fl = statistics.median(t["floor (whole step)"])
    lines = [f"\n### Aggregation math alone, K = {k} (CPU ms, median of {repeats}; share of the floor's "
             f"{fl:.1f} ms)\n", "| part | ms | share of the floor |", "|---|---:|---:|"]
    for n in list(timers)[1:]:
        v = statistics.median(t[n])
        what = n if n in ("Gramian J Jᵀ", "w @ J") or n.startswith("Gramian") else \
            f"{n}: {'weights from the Gramian' if getattr(AGGREGATORS.get(n), 'gramian_based', False) else 'aggregate(J)'}"
        lines.append(f"| {what} | {v:.2f} | {100 * v / fl:.1f} % |")
    print("\n".join(lines), flush=True)
    return lines


def _incremental_gramians(j: Tensor) -> dict[str, Callable[[], Any]]:
    """The Gramian built while the Jacobian's rows arrive (issue 22: overlap it with the
    backward passes), for comparison with the one product after the last row: row i's
    entries G[i, :i+1] as soon as row i exists (a matrix-vector product over the rows so
    far), the same 8 rows at a time, and the lower triangle from the two halves of the rows."""
    k = j.shape[0]

    def by_row() -> Tensor:
        g = j.new_empty(k, k)
        for i in range(k):
            torch.mv(j[: i + 1], j[i], out=g[i, : i + 1])
        return g

    def by_rows(m: int = 8) -> Tensor:
        g = j.new_empty(k, k)
        for s in range(0, k, m):
            e = min(k, s + m)
            torch.mm(j[s:e], j[:e].T, out=g[s:e, :e])
        return g

    def halves() -> Tensor:
        h = k // 2
        g = j.new_empty(k, k)
        a, b = j[:h], j[h:]
        torch.mm(a, a.T, out=g[:h, :h])
        torch.mm(b, a.T, out=g[h:, :h])
        torch.mm(b, b.T, out=g[h:, h:])
        return g

    return {"Gramian, row by row as rows arrive": by_row, "Gramian, 8 rows at a time as they arrive": by_rows,
            "Gramian, lower triangle from two halves": halves}


# ------------------------------------------------------------------ memory
def _rss_mb(field: str) -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return float(line.split()[1]) / 1024.0
    raise OSError(f"no {field} in /proc/self/status")


def _reset_peak_rss() -> None:
    """Linux: writing 5 to ``clear_refs`` resets the peak resident set size (VmHWM)."""
    with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
        fh.write("5")


def _variant(variant: str, p: Problem, extra: dict[str, Any]) -> Callable[[], None] | None:
    name, _, block = variant.partition(" (block ")
    if block:  # "upgrad (block 65536)": training.jacobian_block_size
        extra = {**extra, "jacobian_block_size": int(block.rstrip(")"))}
    if name in ("hand", "floor"):
        return hand(p) if name == "hand" else floor(p)
    if name.endswith(" (jacobian)"):  # training.gramian_engine: jacobian
        return ours(p, name.split()[0], **{**extra, "gramian_engine": "jacobian"})
    if name.endswith(" (torchjd)"):
        return torchjd_step(p, name.split()[0])
    return ours(p, None if name == "plain" else name, **extra)


def _measure(variant: str, k: int, device: str, precision: str, extra: dict[str, Any]) -> float | None:
    """Peak memory of 3 steps of ``variant`` beyond the state after building its model and
    data (MB). One step on a tiny problem with the same K first loads the variant's code
    (imports, caches; a solver may take another path, and import other modules, at another
    K), so that only what the steps allocate is counted. The peak is then taken over steps
    2-4 of the real problem, against the memory before step 1: what step 1 allocates and
    keeps (a workspace, a method's state) counts, a one-off spike of a first call at these
    shapes does not. :func:`memory_child` measures each variant twice and keeps the second:
    the first run of some code in the process grows the heap for good (glibc keeps the small
    allocations' arena), by up to 3 MB at K = 4 for the first Gramian method."""
    warm = _variant(variant, make_problem(k, device, batch=8, precision=precision, width=8), extra)
    if warm is None:
        return None
    warm()
    del warm
    p = make_problem(k, device, precision=precision)
    fn = _variant(variant, p, extra)
    assert fn is not None
    gc.collect()
    cuda = p.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated() / 2**20
    else:
        before = _rss_mb("VmRSS")
    fn()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    else:
        _reset_peak_rss()
    for _ in range(3):
        fn()
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else _rss_mb("VmHWM")
    return peak - before


def memory_child(variants: list[str], k: int, device: str, extra: dict[str, Any]) -> None:
    """One process for every variant (see :func:`memory_table`); one JSON line each."""
    torch.set_num_threads(1)
    precision = extra.pop("precision", "fp32")
    with contextlib.suppress(ImportError):  # the solvers import SciPy on first use, at some K only:
        import scipy.optimize  # noqa: F401  # its code is not a method's memory
    for v in variants:
        try:
            _measure(v, k, device, precision, dict(extra))  # the first run in the process of some code
            mb = _measure(v, k, device, precision, dict(extra))  # grows the heap for good (up to 3 MB)
        except Exception as exc:  # a variant that cannot run here (a missing extra ...)
            print(json.dumps({"variant": v, "mb": None, "error": f"{type(exc).__name__}: {exc}"}), flush=True)
        else:
            print(json.dumps({"variant": v, "mb": mb}), flush=True)
        gc.collect()


def memory_table(k: int, args: argparse.Namespace, methods: list[str]) -> list[str]:
    """Every variant measured in turn in one child process, whose large allocations are
    returned to the system when freed (``MALLOC_MMAP_THRESHOLD_``: glibc maps every
    allocation over 64 KB on its own), so that a variant's peak is not hidden by memory that
    an earlier one freed; the peak RSS is reset between variants."""
    jac_mb = k * make_problem(1).shared_numel * 4 / 2**20
    what = "max allocated" if args.device.startswith("cuda") else "growth of the peak RSS"
    lines = [f"\n### Peak memory, K = {k} ({what} over steps 2-4, MB, beyond the state after building "
             f"the model and the data; the K×P float32 Jacobian is {jac_mb:.0f} MB)\n",
             "| variant | MB | beyond plain | beyond plain / Jacobian |", "|---|---:|---:|---:|"]
    print("\n".join(lines), flush=True)
    variants = ["plain", "hand", "floor", *methods]
    if getattr(args, "vs_jacobian", False):
        variants += [f"{m} (jacobian)" for m in methods if getattr(AGGREGATORS.get(m), "gramian_based", False)]
    if args.block:  # Gramian methods (block-wise Gramian) and methods that consume the rows one at a time
        variants += [f"{m} (block {args.block})" for m in methods
                     if getattr(AGGREGATORS.get(m), "gramian_based", False)
                     or AGGREGATORS.get(m).row_stream is not Aggregator.row_stream]
    if not args.no_torchjd:
        variants += [f"{m} (torchjd)" for m in methods]
    cmd = [sys.executable, __file__, "--memory-child", str(k), *variants, "--device", args.device,
           "--precision", args.precision]
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    plain: float | None = None
    assert proc.stdout is not None
    for raw in proc.stdout:
        try:
            res = json.loads(raw)
        except ValueError:
            continue
        mb, v = res["mb"], res["variant"]
        if v == "plain":
            plain = mb
        if mb is None:
            if "error" in res:
                print(f"<!-- {v}: {res['error'][:200]} -->", flush=True)
            continue
        beyond = mb - plain if plain is not None else float("nan")
        lines.append(f"| {v} | {mb:.0f} | {beyond:.0f} | {beyond / jac_mb:.2f} |")
        print(lines[-1], flush=True)
    proc.wait()
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ks", type=int, nargs="+", default=[4, 10, 40])
    ap.add_argument("--methods", nargs="*", default=None, help="aggregators (default: every registered one)")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--steps", type=int, default=1, help="steps per timed block")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--clock", choices=sorted(CLOCKS), default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32")
    ap.add_argument("--block", type=int, default=None, help="training.jacobian_block_size for our methods")
    ap.add_argument("--gramian-engine", choices=["auto", "jacobian", "layerwise"], default="auto",
                    help="training.gramian_engine for our methods (default auto)")
    ap.add_argument("--vs-jacobian", action="store_true",
                    help="also each Gramian-based method with gramian_engine: jacobian (the K x P Jacobian's Gramian)")
    ap.add_argument("--no-torchjd", action="store_true")
    ap.add_argument("--compile", action="store_true", help="also the plain step with training.compile: true")
    ap.add_argument("--memory", action="store_true", help="also the peak-memory table (at the largest K)")
    ap.add_argument("--memory-only", action="store_true")
    ap.add_argument("--math", action="store_true", help="also the aggregation math alone at the largest K")
    ap.add_argument("--math-only", action="store_true", help="only the aggregation math at the largest K")
    ap.add_argument("--quick", action="store_true", help="3 rounds of 2 steps, methods mean, mgda, upgrad")
    ap.add_argument("--memory-child", nargs="+", metavar="K VARIANT", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        extra = _settings(args)
        memory_child(args.memory_child[1:], int(args.memory_child[0]), args.device, extra)
        return
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    clock = CLOCKS[args.clock or ("cpu" if args.threads == 1 and args.device == "cpu" else "wall")]
    if args.quick:
        args.rounds, args.steps = 3, 2
    methods = args.methods if args.methods is not None else (
        ["mean", "mgda", "upgrad"] if args.quick else AGGREGATORS.names())
    head = (f"torch {torch.__version__}, {os.cpu_count()} CPUs, threads {torch.get_num_threads()}, "
            f"clock {args.clock or ('cpu' if args.threads == 1 and args.device == 'cpu' else 'wall')}, "
            f"device {args.device}, precision {args.precision}; command: python benchmarks/peers.py "
            + " ".join(sys.argv[1:]))
    print(head, flush=True)
    if not (args.memory_only or args.math_only):
        for k in args.ks:
            table_for(k, args, methods, clock)
    if args.math or args.math_only:
        math_table(max(args.ks), methods)
    if args.memory or args.memory_only:
        for k in args.ks:  # the Jacobian is K×P: the fixed P-sized costs weigh most at small K
            memory_table(k, args, methods)


if __name__ == "__main__":
    main()
