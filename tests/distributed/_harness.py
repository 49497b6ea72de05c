"""Helpers of the distributed tests: a free port, a 2-process gloo job via
``torch.multiprocessing`` (spawn), the tiny data, model and the method cases.

Worker functions live here (not in the test modules) so the spawned children import them by
name; each child sets torchrun's environment variables and calls ``init_from_env`` itself,
exactly as ``mtlkit train`` does under torchrun."""

from __future__ import annotations

import os
import socket
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mtlkit.tasks import Task

N, F, BATCH, EPOCHS, SEED = 48, 5, 16, 2, 3
TASKS = [Task("a", "binary"), Task("b", "regression"), Task("c", "multiclass", num_classes=3)]
TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_data(*, missing: bool = True, sparse: bool = False):
    """48 samples, 5 features, a binary, a regression and a 3-class task; task b lacks labels on
    a third of the rows (so the two ranks' shards hold different label counts), or, with
    ``sparse``, on all but 6 rows (so a rank's shard often has none while the other's has some)."""
    from mtlkit.data import from_arrays

    r = np.random.default_rng(0)
    x = r.normal(size=(N, F)).astype("float32")
    b = 2 * x[:, 0] - x[:, 2]
    if missing:
        b[r.choice(N, N - 6 if sparse else N // 3, replace=False)] = np.nan
    labels = {"a": (x[:, 0] + x[:, 1] > 0).astype(float), "b": b, "c": r.integers(0, 3, N)}
    return from_arrays(x, labels, TASKS)


def make_model(*, batch_norm: bool = False, arch: str = "hard_sharing") -> torch.nn.Module:
    from mtlkit.architectures import build_model
    from mtlkit.training import seed_everything

    seed_everything(SEED)
    extra = {"num_experts": 2} if arch == "mmoe" else {}
    return build_model({"name": arch, "trunk": {"name": "mlp", "hidden": [16, 8], "batch_norm": batch_norm},
                        **extra}, TASKS, (F,))


def components(case: str) -> dict[str, Any]:
    """The trainer keyword arguments of a named case."""
    from mtlkit.aggregation import MGDA, CAGrad, NashMTL, PCGrad
    from mtlkit.data.samplers import Proportional
    from mtlkit.weighting import GradNorm, Uncertainty

    return {
        "equal": {},
        "equal_no_ddp": {"use_ddp": False},
        "equal_conflicts": {"monitor_conflicts": True},  # the conflict statistics are global too
        # ... also on the last shared layer of a model without one representation (MMoE)
        "mmoe_conflicts": {"monitor_conflicts": True},
        "uncertainty": {"weighting": Uncertainty()},
        "gradnorm": {"weighting": GradNorm()},
        "mgda": {"aggregator": MGDA()},
        "pcgrad": {"aggregator": PCGrad(seed=5)},
        "cagrad": {"aggregator": CAGrad()},
        "mgda_representation": {"aggregator": MGDA(), "level": "representation"},
        "cagrad_representation": {"aggregator": CAGrad(), "level": "representation"},
        # Nash-MTL's weights scale with the Gramian (G w = 1/w), so it checks the 1/R² scaling
        "nash_mtl_representation": {"aggregator": NashMTL(), "level": "representation"},
        "sampler": {"sampler": Proportional()},
        # a batch-norm trunk ("bn_" cases): the global batch's statistics (sync_batch_norm on
        # by default where each step backpropagates once through the trunk) ... SGD, because
        # the bias of a layer followed by batch norm has a gradient of zero up to rounding,
        # which Adam's normalisation would blow up to steps of ~lr in either run
        "bn_equal": {"optimizer": "sgd"},
        "bn_mgda_representation": {"aggregator": MGDA(), "level": "representation", "optimizer": "sgd"},
        # per-task backward passes through the synchronised batch norm (the loop engine)
        "bn_pcgrad": {"aggregator": PCGrad(seed=5), "optimizer": "sgd"},
        "bn_mgda_sparse": {"aggregator": MGDA(), "optimizer": "sgd"},
        "bn_gradnorm": {"weighting": GradNorm(), "optimizer": "sgd"},
        # ... and, for contrast, each rank's own shard statistics
        "bn_equal_unsynced": {"sync_batch_norm": False, "optimizer": "sgd"},
    }[case]


def train(case: str, *, distributed: bool, **extra: Any):
    """Train one case (default EPOCHS epochs of BATCH global samples); returns the trainer."""
    from mtlkit.training import Trainer
    from mtlkit.training.distributed import DistributedTrainer

    kwargs = {"epochs": EPOCHS, "batch_size": BATCH, "lr": 0.01, "seed": SEED, "progress": False,
              "monitor_conflicts": False, **components(case), **extra}
    cls: Any = DistributedTrainer if distributed else Trainer
    if not distributed:
        kwargs.pop("use_ddp", None)
        kwargs.pop("sync_batch_norm", None)
    t = cls(make_model(batch_norm=case.startswith("bn_"), arch="mmoe" if case.startswith("mmoe_") else "hard_sharing"),
            TASKS, **kwargs)
    t.fit(make_data(sparse=case.endswith("_sparse")))
    return t


def flat_params(trainer) -> np.ndarray:
    ps = list(trainer.model.parameters()) + list(trainer.weighting.parameters())
    return torch.cat([p.detach().reshape(-1) for p in ps]).double().numpy()


# ---------------------------------------------------------------------------- 2-process jobs
def _entry(rank: int, world: int, port: int, out: str, fn: Callable[..., None], args: tuple) -> None:
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world), "OMP_NUM_THREADS": "1"})
    torch.set_num_threads(1)
    from mtlkit.training.distributed import exit_worker, init_from_env, shutdown

    try:
        init_from_env(timeout=TIMEOUT_S)
        fn(rank, Path(out), *args)
    except BaseException:
        (Path(out) / f"error-{rank}.txt").write_text(traceback.format_exc())
        shutdown()
        raise
    exit_worker(0)  # as ``mtlkit train`` does: no runtime teardown after the work is done


def run_job(fn: Callable[..., None], out: Path, *args: Any, world: int = 2) -> None:
    """Run ``fn(rank, out, *args)`` in ``world`` spawned processes of one gloo job."""
    import torch.multiprocessing as mp

    out.mkdir(parents=True, exist_ok=True)
    try:
        mp.start_processes(_entry, args=(world, free_port(), str(out), fn, args), nprocs=world,
                           start_method="spawn")
    except mp.ProcessRaisedException as exc:
        errors = "\n".join(p.read_text() for p in sorted(out.glob("error-*.txt")))
        raise AssertionError(f"a worker failed:\n{errors or exc}") from None


# ---------------------------------------------------------------------------- worker bodies
def job_worker(rank: int, out: Path, cases: list[str]) -> None:
    """The one 2-process job of the suite (process start-up dominates its cost): every
    equivalence case, the rejection of non-Gramian aggregators at representation level, the
    rank-0-only writing and resume, and last the crash of a worker."""
    equivalence_worker(rank, out, cases)
    hooks_worker(rank, out)
    rejection_worker(rank, out)
    writing_worker(rank, out)
    crash_worker(rank, out)


def teacher_outputs() -> dict[str, torch.Tensor]:
    """Fixed teacher outputs for every training row (a distillation target per task)."""
    g = torch.Generator().manual_seed(7)
    return {"a": torch.randn(N, generator=g), "c": torch.randn(N, 3, generator=g)}


def hooked(kind: str, *, distributed: bool):
    """A DistillationTrainer / AffinityTrainer built from a (Distributed)Trainer with
    ``from_trainer``, as the run package builds them, and fitted on the full-label data."""
    from mtlkit.analysis import AffinityTrainer
    from mtlkit.distill import DistillationTrainer
    from mtlkit.training import Trainer
    from mtlkit.training.distributed import DistributedTrainer

    cls: Any = DistributedTrainer if distributed else Trainer
    base = cls(make_model(), TASKS, epochs=EPOCHS, batch_size=BATCH, lr=0.01, seed=SEED, progress=False)
    if kind == "distill":
        t: Any = DistillationTrainer.from_trainer(base, teacher_outputs=teacher_outputs(), alpha=0.3)
    else:
        t = AffinityTrainer.from_trainer(base, every=1)
    t.fit(make_data(missing=False))
    return t


def hooks_worker(rank: int, out: Path) -> None:
    """Distillation and TAG affinity under torchrun: the trainers built from a
    DistributedTrainer keep its communication object."""
    for kind in ("distill", "affinity"):
        t = hooked(kind, distributed=True)
        np.save(out / f"hook-{kind}-rank{rank}.npy", flat_params(t))
        if kind == "affinity":
            np.save(out / f"hook-affinity-matrix-rank{rank}.npy", t.affinity().matrix)


def _records(trainer) -> list[dict[str, Any]]:
    keep = ("train_loss", "weights", "aggregator_weights", "conflicts")
    return [{k: r[k] for k in keep if k in r} for r in trainer.history.records]


def equivalence_worker(rank: int, out: Path, cases: list[str]) -> None:
    """Train every case distributed; each rank saves its parameters and epoch records."""
    import json

    for case in cases:
        t = train(case, distributed=True)
        np.save(out / f"{case}-rank{rank}.npy", flat_params(t))
        (out / f"{case}-rank{rank}.json").write_text(json.dumps(_records(t)))
        (out / f"{case}-comm-rank{rank}.json").write_text(json.dumps(t.comm_stats()))
        # after fit the batch-norm layers have their own forward again
        (out / f"{case}-patched-rank{rank}.txt").write_text(
            str(sum("forward" in m.__dict__ for m in t.model.modules())))


def rejection_worker(rank: int, out: Path) -> None:
    from mtlkit.aggregation import GradDrop
    from mtlkit.training.distributed import DistributedTrainer

    try:
        DistributedTrainer(make_model(), TASKS, aggregator=GradDrop(), level="representation")
    except ValueError as exc:
        (out / f"rejected-rank{rank}.txt").write_text(str(exc))


def writing_worker(rank: int, out: Path) -> None:
    """Every rank is given its own run/checkpoint folder (``out/<run>/rank<r>``): only rank 0's
    may appear. A reference run of 3 epochs; then rank 0 copies its folder as if the job had
    crashed after step 5, and a new job resumes from it (rank 1's folder does not exist: it
    gets rank 0's checkpoint by broadcast)."""
    import torch.distributed as dist

    from mtlkit.aggregation import PCGrad
    from mtlkit.training.distributed import DistributedTrainer

    def make(run: str):
        d = out / run / f"rank{rank}"
        return DistributedTrainer(make_model(), TASKS, epochs=3, batch_size=BATCH, lr=0.01, seed=SEED,
                                  progress=False, monitor_conflicts=False, aggregator=PCGrad(seed=1),
                                  run_dir=d, checkpoint_dir=d / "ck", checkpoint_every=2, keep_checkpoints=50)

    data = make_data()
    ref = make("ref")
    ref.fit(data, data)
    np.save(out / f"ref-rank{rank}.npy", flat_params(ref))
    if rank == 0:
        _truncate_copy(out / "ref" / "rank0", out / "crashed" / "rank0", max_step=5)
    dist.barrier()
    res = make("crashed")
    res.fit(data, data, resume=True)
    (out / f"resumed-from-rank{rank}.txt").write_text(str(res.resumed_from))
    np.save(out / f"resumed-rank{rank}.npy", flat_params(res))
    np.save(out / f"val-rank{rank}.npy", np.array([r["val_score"] for r in res.history.records]))


def _truncate_copy(src: Path, dst: Path, *, max_step: int) -> None:
    """Copy a run folder keeping only the checkpoints up to ``max_step`` (what a crash at that
    step leaves behind; the trainer drops the metrics lines written after the checkpoint)."""
    import json
    import shutil

    shutil.copytree(src, dst)
    man_path = dst / "ck" / "manifest.json"
    man = json.loads(man_path.read_text())
    man["checkpoints"] = [c for c in man["checkpoints"] if c["step"] <= max_step]
    man_path.write_text(json.dumps(man))


def crash_worker(rank: int, out: Path) -> None:
    """Rank 1 exits abruptly after its first epoch; rank 0 must stop with a clear error."""
    from mtlkit.training.distributed import DistributedError

    callbacks = [lambda trainer, record: os._exit(0)] if rank == 1 else []
    try:
        train("mgda", distributed=True, epochs=50, callbacks=callbacks)
    except DistributedError as exc:
        (out / "rank0-error.txt").write_text(str(exc))
        return
    (out / "rank0-error.txt").write_text("no error")
