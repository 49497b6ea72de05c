"""Step time of the gradient-space methods: ms per optimisation step and ratios.

    .venv/bin/python benchmarks/step_time.py            # full table (~5-10 min on 2 cores)
    .venv/bin/python benchmarks/step_time.py --quick    # K in {2, 10}, fewer repeats (~1-2 min)

Setups: (a) an MLP trunk 256 -> 512 -> 512 -> 256 (0.53 M shared parameters), batch 256,
K regression heads; (b) the MultiMNIST LeNet (``mtlkit.architectures.lenet``, 1x36x36
inputs), batch 256, 2 tasks of 10 classes.

Rows: ``equal`` = one backward of the summed losses (plain equal weighting); ``floor`` = the
forward pass plus K separate ``torch.autograd.grad`` calls for the shared parameters (the
least any exact parameter-level method must do), also with the ``batched`` and
``two-stage`` engines of :mod:`mtlkit.jacobian`; then every registered aggregator at
parameter level (whole step: forward, Jacobian, aggregation, head gradients, Adam step;
ratio to the floor) and at representation level (ratio to equal weighting); "/ mean" is
the ratio to Mean at the same level, i.e. the cost of the aggregation itself (Mean's step
already pays the head gradients, the write of ``.grad`` and the Adam step). The step
functions mirror :class:`mtlkit.Trainer` (with the per-task losses kept as a list): the
Gramian of :func:`mtlkit.aggregation._base.gramian`, not formed for Mean (whose weights do
not read it), the weights, and the direction ``w @ J`` handed to ``.grad`` without a copy. Times are
the best of ``--repeats`` runs after warm-up, in process CPU time by default (``--clock
cpu``: with one intra-op thread it equals the elapsed time of an idle machine, and it is
not inflated by other processes on a shared one; ``--clock wall`` for elapsed time);
``--threads`` sets torch's intra-op threads (default 1). Denormal floats are flushed to
zero (``torch.set_flush_denormal``): without it, tiny values in the LeNet's backward passes
made some methods' steps ~20 % slower than others' at random.

``--breakdown``: where a step's time goes. For each K of ``--ks`` (default 2, 10, 40) and
both levels, the best time of each phase of the step over ``--repeats`` rounds: forward,
Jacobian (K ``autograd.grad`` calls), Gramian, weights (the K×K solve), ``w @ J`` and the
write into ``.grad`` (parameter level) or the trunk backward of the direction
(representation level), the head gradients, the Adam step.

Peak memory at K = 40 (full run): for each method a fresh subprocess runs 3 steps and
reports the growth of its peak resident set size (``VmHWM``) over the state
after building the model and data.

If TorchJD is installed (benchmark only: ``pip install torchjd``), its aggregators are timed
in the same step on the same Jacobian (and its own ``mtl_backward`` engine), with the ratio
of our step time to theirs.
"""

from __future__ import annotations

import os

# single-threaded like torch below (must precede the numpy import): the K×K solvers' BLAS
# threads would otherwise spin and be billed to the process's CPU time
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import gc
import itertools
import json
import resource
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mtlkit import HardSharing, Task
from mtlkit._registry import AGGREGATORS
from mtlkit.aggregation._base import gramian
from mtlkit.architectures.backbones import lenet, mlp
from mtlkit.jacobian import assign_grads, jacobian, representation_jacobian

warnings.filterwarnings("ignore", message="NashMTL", category=RuntimeWarning)


@dataclass
class Setup:
    name: str
    model: HardSharing
    x: Tensor
    targets: list[Tensor]
    kinds: list[str]
    shared: list[nn.Parameter]
    heads: list[nn.Parameter]
    optimizer: torch.optim.Optimizer

    @property
    def k(self) -> int:
        return len(self.targets)

    def losses(self, out: dict[str, Tensor]) -> list[Tensor]:
        res = []
        for t, y, kind in zip(self.model.tasks, self.targets, self.kinds):
            p = out[t.name]
            res.append(F.cross_entropy(p, y) if kind == "multiclass" else F.mse_loss(p, y))
        return res


def mlp_setup(k: int, batch: int = 256) -> Setup:
    torch.manual_seed(0)
    tasks = [Task(f"t{i}", "regression") for i in range(k)]
    model = HardSharing(mlp(256, (512, 512, 256)), tasks)
    x = torch.randn(batch, 256)
    ys = [torch.randn(batch, 1) for _ in range(k)]
    return _finish(f"MLP 0.53M, K={k}", model, x, ys, ["regression"] * k)


def lenet_setup(batch: int = 256) -> Setup:
    torch.manual_seed(0)
    tasks = [Task("left", "multiclass", num_classes=10), Task("right", "multiclass", num_classes=10)]
    model = HardSharing(lenet(1, (36, 36)), tasks)
    x = torch.randn(batch, 1, 36, 36)
    ys = [torch.randint(0, 10, (batch,)) for _ in range(2)]
    return _finish("LeNet MultiMNIST, K=2", model, x, ys, ["multiclass"] * 2)


def _finish(name: str, model: HardSharing, x: Tensor, ys: list[Tensor], kinds: list[str]) -> Setup:
    shared = list(model.shared_parameters())
    ids = {id(p) for p in shared}
    heads = [p for p in model.parameters() if id(p) not in ids]
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    return Setup(name, model, x, ys, kinds, shared, heads, opt)


# ------------------------------------------------------------------ step functions
def _heads_backward(s: Setup, losses: list[Tensor]) -> None:
    grads = torch.autograd.grad(sum(losses), s.heads, allow_unused=True)
    for p, g in zip(s.heads, grads):
        if g is not None:
            p.grad = g


def _direction(agg, j: Tensor) -> Tensor:
    """As ``Trainer._aggregate``: the Gramian (skipped when the weights do not read it, as
    Mean's), the weights, their product with J."""
    if getattr(agg, "gramian_based", False) and hasattr(agg, "weights_from"):
        w = agg.weights_from(gramian(j)) if getattr(agg, "reads_gramian", True) else agg.weights_of(j)
        return w.to(j.dtype) @ j
    return agg(j)


def step_equal(s: Setup) -> None:
    s.optimizer.zero_grad(set_to_none=True)
    sum(s.losses(s.model(s.x))).backward()
    s.optimizer.step()


def step_floor(s: Setup, engine: str = "loop") -> None:
    rep = s.model.encode(s.x)
    losses = s.losses(s.model.decode(rep))
    jacobian(losses, s.shared, engine=engine, representation=rep, retain_graph=False)


def step_parameters(s: Setup, agg, engine: str = "loop") -> None:
    s.optimizer.zero_grad(set_to_none=True)
    rep = s.model.encode(s.x)
    losses = s.losses(s.model.decode(rep))
    j = jacobian(losses, s.shared, engine=engine, representation=rep)
    # as the trainer: a Gramian-based direction is written into .grad without a copy
    assign_grads(s.shared, _direction(agg, j), copy=not getattr(agg, "gramian_based", False))
    _heads_backward(s, losses)
    s.optimizer.step()


def step_representation(s: Setup, agg) -> None:
    s.optimizer.zero_grad(set_to_none=True)
    rep = s.model.encode(s.x)
    losses = s.losses(s.model.decode(rep))
    j = representation_jacobian(losses, rep)
    rep.backward(_direction(agg, j).view_as(rep).to(rep.dtype), retain_graph=True)
    _heads_backward(s, losses)
    s.optimizer.step()


def step_torchjd(s: Setup, agg) -> None:
    from torchjd.autojac import jac_to_grad, mtl_backward

    s.optimizer.zero_grad(set_to_none=True)
    rep = s.model.encode(s.x)
    losses = s.losses(s.model.decode(rep))
    mtl_backward(losses, features=rep)
    jac_to_grad(s.shared, agg)
    s.optimizer.step()


CLOCK = {"cpu": time.process_time, "wall": time.perf_counter}
clock = time.process_time


def best_ms(fns: dict[str, Callable[[], None]], repeats: int, warmup: int = 2) -> dict[str, float]:
    """Best time (ms) of each function over ``repeats`` interleaved rounds, so that a burst of
    load on the machine hits every method alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        for label, fn in fns.items():
            gc.collect()
            t0 = clock()
            fn()
            best[label] = min(best[label], clock() - t0)
    return {label: 1000.0 * v for label, v in best.items()}


# ------------------------------------------------------------------ tables
def bench_setup(s: Setup, repeats: int, names: list[str], tjd: dict | None) -> list[str]:
    kind = "CPU" if clock is time.process_time else "wall"
    lines = [f"\n### {s.name} ({kind} ms, threads={torch.get_num_threads()}, best of {repeats})\n"]
    fns: dict[str, Callable[[], None]] = {"equal": lambda: step_equal(s), "floor:loop": lambda: step_floor(s)}
    for n in names:
        fns[f"{n}:parameters"] = lambda a=AGGREGATORS.build(n): step_parameters(s, a)
        fns[f"{n}:representation"] = lambda a=AGGREGATORS.build(n): step_representation(s, a)
    t = best_ms(fns, repeats)
    # timed in rounds of their own: the large temporaries of the batched engines and of
    # TorchJD's engine leave the allocator in a state that slows whatever step runs next
    # (measured: +10-15 % on the first method of a round)
    engines = ("loop", "batched", "two-stage")
    t.update(best_ms({f"floor:{e}": lambda e=e: step_floor(s, e) for e in engines[1:]}, repeats))
    others: dict[str, Callable[[], None]] = {}
    for n, factory in (tjd or {}).items():
        others[f"{n}:torchjd"] = lambda a=factory(): step_parameters(s, a)
        others[f"{n}:torchjd-engine"] = lambda a=factory(): step_torchjd(s, a)
    if others:
        t.update(best_ms(others, repeats))
    eq, floor = t["equal"], t["floor:loop"]
    lines.append(f"equal weighting: {eq:.1f} ms; floor (forward + K autograd.grad): {floor:.1f} ms "
                 f"= {floor / eq:.2f}x equal; Jacobian engines: "
                 + ", ".join(f"{e} {t['floor:' + e]:.1f} ms ({t['floor:' + e] / floor:.2f}x)" for e in engines)
                 + "\n")
    lines.append("| method | parameters ms | / floor | / mean | representation ms | / equal | / mean |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|")
    mp, mr = t.get("mean:parameters", float("nan")), t.get("mean:representation", float("nan"))
    for n in names:
        tp, tr = t[f"{n}:parameters"], t[f"{n}:representation"]
        lines.append(f"| {n} | {tp:.1f} | {tp / floor:.2f} | {tp / mp:.2f} | {tr:.1f} | {tr / eq:.2f} | "
                     f"{tr / mr:.2f} |")
    if tjd:
        lines.append("\nTorchJD (its aggregator in the same step on the same Jacobian; and its own "
                     "mtl_backward + jac_to_grad engine):\n")
        lines.append("| method | ours ms | TorchJD aggregator ms | ours / TorchJD | TorchJD engine ms |")
        lines.append("|---|---:|---:|---:|---:|")
        for n in tjd:
            ours, theirs, full = t[f"{n}:parameters"], t[f"{n}:torchjd"], t[f"{n}:torchjd-engine"]
            lines.append(f"| {n} | {ours:.1f} | {theirs:.1f} | {ours / theirs:.2f} | {full:.1f} |")
    print("\n".join(lines), flush=True)
    return lines


def torchjd_factories(k: int) -> dict | None:
    try:
        import torchjd.aggregation as tj
    except ImportError:
        return None
    out = {"mean": tj.Mean, "mgda": tj.MGDA, "pcgrad": tj.PCGrad, "gradvac": tj.GradVac,
           "graddrop": tj.GradDrop, "imtl_g": tj.IMTLG, "aligned_mtl": tj.AlignedMTL,
           "upgrad": tj.UPGrad, "cagrad": lambda: tj.CAGrad(c=0.5),
           "nash_mtl": lambda: tj.NashMTL(n_tasks=k)}
    usable = {}
    for n, f in out.items():
        try:
            f()(torch.randn(k, 3))
            usable[n] = f
        except Exception:
            continue
    return usable


# ------------------------------------------------------------------ breakdown
def _phases(s: Setup, agg, level: str) -> dict[str, float]:
    """One step of ``step_parameters`` / ``step_representation``, timed phase by phase (s)."""
    marks = [("start", clock())]

    def mark(name: str) -> None:
        marks.append((name, clock()))

    s.optimizer.zero_grad(set_to_none=True)
    rep = s.model.encode(s.x)
    losses = s.losses(s.model.decode(rep))
    mark("forward")
    j = jacobian(losses, s.shared) if level == "parameters" else representation_jacobian(losses, rep)
    mark("jacobian")
    if getattr(agg, "gramian_based", False):
        g = gramian(j) if agg.reads_gramian else None
        mark("gramian")
        w = agg.weights_from(g) if g is not None else agg.weights_of(j)
        mark("weights")
        d = w.to(j.dtype) @ j
    else:
        d = agg(j)
        mark("weights")  # the whole aggregation of a non-Gramian method
    if level == "parameters":
        assign_grads(s.shared, d, copy=not getattr(agg, "gramian_based", False))
        mark("w@J + .grad")
    else:
        rep.backward(d.view_as(rep).to(rep.dtype), retain_graph=True)
        mark("w@J + trunk backward")
    _heads_backward(s, losses)
    mark("heads")
    s.optimizer.step()
    mark("adam")
    out = {name: t1 - t0 for (_, t0), (name, t1) in itertools.pairwise(marks)}
    out["total"] = marks[-1][1] - marks[0][1]
    return out


def breakdown(ks: list[int], repeats: int, names: list[str]) -> None:
    for k in ks:
        s = mlp_setup(k)
        for level in ("parameters", "representation"):
            print(f"\n### MLP K={k}, {level} level: best ms per phase over {repeats} rounds\n", flush=True)
            best: dict[str, dict[str, float]] = {}
            aggs = {n: AGGREGATORS.build(n) for n in names}
            for _ in range(2):
                for agg in aggs.values():
                    _phases(s, agg, level)
            for _ in range(repeats):
                for n, agg in aggs.items():
                    gc.collect()
                    for phase, v in _phases(s, agg, level).items():
                        best.setdefault(n, {})[phase] = min(best.get(n, {}).get(phase, float("inf")), v)
            cols = list(dict.fromkeys(c for row in best.values() for c in row))
            print("| method | " + " | ".join(cols) + " |")
            print("|---|" + "---:|" * len(cols))
            for n, row in best.items():
                print(f"| {n} | " + " | ".join(f"{1000 * row[c]:.2f}" if c in row else "" for c in cols) + " |")


# ------------------------------------------------------------------ memory
def _peak_rss_mb() -> float:
    """Peak resident set size of this process image. ``VmHWM`` (Linux) is reset by ``exec``;
    ``ru_maxrss`` is not — a child would inherit the parent's peak — so it is the fallback."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _memory_child(method: str, level: str, k: int) -> None:
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    s = mlp_setup(k)
    gc.collect()
    before = _peak_rss_mb()
    for _ in range(3):
        if method == "equal":
            step_equal(s)
        elif method == "floor":
            step_floor(s)
        elif level == "parameters":
            step_parameters(s, AGGREGATORS.build(method))
        else:
            step_representation(s, AGGREGATORS.build(method))
    print(json.dumps({"peak_growth_mb": _peak_rss_mb() - before}))


def memory_table(k: int, names: list[str]) -> list[str]:
    lines = [f"\n### Peak memory, MLP K={k} (growth of peak RSS over 3 steps, MB; the K×P float32 "
             f"Jacobian alone is {k * 525568 * 4 / 2**20:.0f} MB)\n",
             "| method | parameters | representation |", "|---|---:|---:|"]

    def run(method: str, level: str) -> str:
        cmd = [sys.executable, __file__, "--memory-child", method, level, str(k)]
        res = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ), check=False)
        try:
            return f"{json.loads(res.stdout.strip().splitlines()[-1])['peak_growth_mb']:.0f}"
        except (ValueError, IndexError, KeyError):
            return "error"

    lines.append(f"| equal | {run('equal', 'parameters')} | |")
    lines.append(f"| floor | {run('floor', 'parameters')} | |")
    for n in names:
        lines.append(f"| {n} | {run(n, 'parameters')} | {run(n, 'representation')} |")
        print(lines[-1], flush=True)
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="K in {2, 10}, 3 repeats, no memory table")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--clock", choices=sorted(CLOCK), default="cpu",
                    help="cpu: process CPU time (robust on a shared machine); wall: elapsed time")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--ks", type=int, nargs="*", default=None)
    ap.add_argument("--no-lenet", action="store_true")
    ap.add_argument("--no-torchjd", action="store_true")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--memory-only", action="store_true", help="only the peak-memory table")
    ap.add_argument("--breakdown", action="store_true", help="only the per-phase times of a step")
    ap.add_argument("--memory-child", nargs=3, metavar=("METHOD", "LEVEL", "K"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        method, level, k = args.memory_child
        _memory_child(method, level, int(k))
        return
    torch.set_num_threads(args.threads)
    # denormal floats in the backward passes stall this CPU at random (measured: +20 % on the
    # LeNet for some methods and not others); flush them so the table measures the methods
    torch.set_flush_denormal(True)
    global clock
    clock = CLOCK[args.clock]
    repeats = args.repeats or (3 if args.quick else 7)
    ks = args.ks or ([2, 10] if args.quick else [2, 4, 10, 40])
    names = AGGREGATORS.names()
    out = [f"torch {torch.__version__}, {os.cpu_count()} CPUs, command: python benchmarks/step_time.py"
           + (" --quick" if args.quick else "")]
    print(out[0], flush=True)
    if args.memory_only:
        print("\n".join(memory_table(40, names)))
        return
    if args.breakdown:
        breakdown(args.ks or [2, 10, 40], args.repeats or 7, names)
        return
    for k in ks:
        tjd = None if args.no_torchjd or k > 10 else torchjd_factories(k)
        out += bench_setup(mlp_setup(k), repeats, names, tjd)
    if not args.no_lenet:
        out += bench_setup(lenet_setup(), repeats, names, None if args.no_torchjd else torchjd_factories(2))
    if not args.quick and not args.no_memory:
        out += memory_table(40, names)
    print("\n".join(out))


if __name__ == "__main__":
    main()
