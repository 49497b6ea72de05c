"""The CUDA check of issue 22, in one prepared run of a few minutes on a CUDA machine.

    .venv/bin/python benchmarks/gpu_check.py            # everything below
    .venv/bin/python benchmarks/gpu_check.py --quick    # K = 4, fp32 only, no memory table

On a machine without CUDA it says so and exits with status 0 (the CUDA figures of
``docs/performance.md`` then stay "not yet measured").

What it prints, on the problem of ``benchmarks/peers.py`` (MLP trunk 64 -> 512 -> 512 -> 512,
K regression heads, batch 256, SGD), on ``cuda``:

1. the step time of the hand-written loop, our plain step, the floor and every registered
   aggregator at parameter level (and TorchJD's where installed), at K = 4 and 10, in fp32,
   bf16 and fp16 (``training.precision``), with the goals' ratios; in fp32 each Gramian method
   also with ``training.gramian_engine: jacobian``; wall clock with ``torch.cuda.synchronize``
   around every timed block;
2. host synchronisations per step (``torch.cuda.set_sync_debug_mode``) of the plain step and
   of every method (documented: 1 for a plain step — the update decision —, 2 for an exact
   step, plus what a method's own solver reads);
3. the peak memory (``torch.cuda.max_memory_allocated``) of every method next to plain
   training and the K×P Jacobian, at K = 10.

Record the output in ``docs/performance.md`` with the date and the GPU.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def syncs_per_step(fn, steps: int = 3, *, set_mode=None, synchronize=None) -> float:
    """Synchronising calls per call of ``fn`` (after one warm call): the warnings that
    ``set_mode("warn")`` makes the device raise at every synchronisation (default:
    ``torch.cuda.set_sync_debug_mode`` and ``torch.cuda.synchronize``; a CPU test passes its
    own pair, which warns at every host read of a tensor, to check this counting)."""
    import torch

    set_mode = set_mode or torch.cuda.set_sync_debug_mode
    synchronize = synchronize or torch.cuda.synchronize
    fn()
    synchronize()
    set_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(steps):
                fn()
    finally:
        set_mode(0)
    return sum("synchroniz" in str(w.message) for w in caught) / steps


def sync_table(methods: list[str], k: int, precision: str) -> None:
    import peers

    p = peers.make_problem(k, "cuda")
    extra = {} if precision == "fp32" else {"precision": precision}
    print(f"\n### Host synchronisations per step, K = {k}, {precision} (set_sync_debug_mode)\n")
    print("| step | syncs per step |")
    print("|---|---:|")
    print(f"| hand-written | {syncs_per_step(peers.hand(p)):.1f} |")
    print(f"| plain (Trainer) | {syncs_per_step(peers.ours(p, None, **extra)):.1f} |")
    for m in methods:
        try:
            print(f"| {m} | {syncs_per_step(peers.ours(p, m, **extra)):.1f} |", flush=True)
        except Exception as exc:  # a method that fails on CUDA is a finding, not a crash
            print(f"| {m} | error: {type(exc).__name__}: {exc} |", flush=True)


def table_namespace(precision: str, *, rounds: int, steps: int, device: str = "cuda") -> argparse.Namespace:
    """The options of ``peers.table_for`` for one precision. In fp32 each Gramian method also
    runs with ``gramian_engine: jacobian`` (the layer Gramian of ``mtlkit.autogram`` is the
    default there; it is off under autocast)."""
    return argparse.Namespace(device=device, precision=precision, block=None, no_torchjd=False, rounds=rounds,
                              steps=steps, warmup=2, vs_jacobian=precision == "fp32")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=5)
    args = ap.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("No CUDA device on this machine: nothing to check. The CUDA figures of docs/performance.md "
              "stay 'not yet measured'; run this script where a GPU is at hand.")
        return 0
    import peers

    from mtlkit._registry import AGGREGATORS

    name = torch.cuda.get_device_name()
    print(f"{datetime.date.today().isoformat()}, {name}, torch {torch.__version__}, CUDA {torch.version.cuda}; "
          f"command: python benchmarks/gpu_check.py {' '.join(sys.argv[1:])}", flush=True)
    methods = AGGREGATORS.names()
    ks = [4] if args.quick else [4, 10]
    precisions = ["fp32"] if args.quick else ["fp32", "bf16", "fp16"]
    for precision in precisions:
        if precision == "bf16" and not torch.cuda.is_bf16_supported():
            print("\n(bf16 is not supported by this GPU: skipped)")
            continue
        for k in ks:
            ns = table_namespace(precision, rounds=args.rounds, steps=args.steps)
            print(f"\n## {precision}", flush=True)
            peers.table_for(k, ns, methods, peers.CLOCKS["wall"])
    sync_table(methods, 4, "fp32")
    if not args.quick:
        sync_table(methods, 4, "fp16")
        ns = argparse.Namespace(device="cuda", precision="fp32", block=None, no_torchjd=True)
        peers.memory_table(10, ns, methods)
    print(f"\nCUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '(unset)')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
