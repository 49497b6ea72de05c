"""Distributed data-parallel training (``torchrun`` / ``torch.distributed``), gradient
methods included.

Launch with ``mtlkit train CONFIG --nproc-per-node N`` or ``torchrun --nproc-per-node N -m
mtlkit train CONFIG``: the runner (:func:`mtlkit.run.run`) calls
:func:`init_from_env`, which reads torchrun's ``WORLD_SIZE`` / ``RANK`` / ``MASTER_ADDR`` /
``MASTER_PORT`` and starts the default process group (gloo for CPU tensors, NCCL for CUDA
tensors when a GPU is present) with a timeout, and then trains with
:class:`DistributedTrainer`. The contract: **R processes with a local batch of B/R give the
same parameters as one process with a batch of B** (same seed), for loss-space weightings
and gradient-space aggregators alike. Randomness in the forward pass (dropout) is the exception: each
process draws its shard's masks from its own generator, so N processes train another model
than one process (``docs/scaling.md``, Limits).

How each part of a step is made global (``docs/scaling.md`` has the derivations):

* **Data.** Every rank draws the *same* global batch from the shared, seeded generator
  (plain shuffled passes or any task sampler, so every rank follows the same task schedule)
  and keeps its contiguous slice: a disjoint shard of each global batch.
* **Losses.** One all-reduce of 2K numbers (per task: Σ labelled entries × local loss and the
  labelled count) gives every rank the loss of the global batch, the mean over all its
  labelled entries, and which tasks are present. The loss tensor the rest of the step sees
  has that global *value* (so weightings, stateful or not, the non-finite check and the
  logged metrics agree on every rank) and the gradient of the local loss scaled by
  ``R · n_local / n_global`` (so that averaging gradients over ranks gives the exact gradient
  of the global loss, even when missing labels make the shards unequal).
* **Gradients.** Plain loss-space training uses :class:`~torch.nn.parallel.
  DistributedDataParallel` (bucketed all-reduce overlapped with the backward pass). With a
  gradient-space aggregator DDP's hooks are not used: at parameter level the K×P Jacobian is
  averaged over ranks in one all-reduce before aggregation, so every rank aggregates the same
  matrix and takes the same step; at representation level each rank's Gramian J_r J_rᵀ is
  all-reduced (K×K numbers) and scaled by 1/R². The gradients that are still local (task
  heads, weighting parameters) are averaged in one flattened bucket.
* **Batch norm.** Batch-norm layers normalise with the statistics of the global batch
  (:class:`_GlobalBatchNorm`, ``sync_batch_norm``), on every device; not with GREAT or a
  vmapped Jacobian engine, where each rank uses its shard's statistics.
* **Writes.** Rank 0 alone writes ``metrics.jsonl``, checkpoints and the run folder; every
  rank resumes from the checkpoint rank 0 chooses, broadcast as bytes (safetensors + JSON:
  no pickle, no shared file system needed). Buffers (batch-norm statistics) are averaged
  once per epoch, and rank 0's validation score is broadcast, so early stopping and the
  chosen epoch are identical on every rank.
* **Failures.** Every collective runs under the process-group timeout; a dead or stalled
  worker raises :class:`DistributedError` naming the rank and the operation, never a hang.
"""

from __future__ import annotations

import atexit
import contextlib
import inspect
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NoReturn, cast

import torch
import torch.distributed as dist
from torch import Tensor, nn

from mtlkit import _batch
from mtlkit.training.checkpoint import (
    CheckpointError,
    CheckpointManager,
    flatten_state,
    unflatten_state,
)
from mtlkit.training.comm import Comm
from mtlkit.training.trainer import Batch, Trainer

if TYPE_CHECKING:
    from mtlkit.architectures._base import MultiTaskModel

#: default seconds a collective may wait for the other ranks (env ``MTLKIT_DIST_TIMEOUT``)
DEFAULT_TIMEOUT_S = 600.0
_timeout_used: float | None = None  # the timeout the running process group was started with


class DistributedError(RuntimeError):
    """A collective operation failed or timed out: another worker crashed or stalled."""


# ---------------------------------------------------------------------------- process group
def world_size() -> int:
    """Processes in the job: the process group's size, else ``WORLD_SIZE``, else 1."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def rank() -> int:
    """This process's rank: the process group's, else ``RANK``, else 0."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0") or 0)


def is_main_process() -> bool:
    """True on rank 0 and in a single process: the process that writes files and prints.

    >>> is_main_process()
    True
    """
    return rank() == 0


def is_distributed() -> bool:
    """True when a process group with more than one process is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def default_backend() -> str:
    """``"cpu:gloo,cuda:nccl"`` when a GPU and NCCL are present (each tensor goes through the
    backend of its device), else ``"gloo"``."""
    if torch.cuda.is_available() and dist.is_nccl_available():
        return "cpu:gloo,cuda:nccl"
    return "gloo"


def timeout_seconds(timeout: float | None = None) -> float:
    """The collective timeout: ``timeout``, else ``$MTLKIT_DIST_TIMEOUT``, else 600 s."""
    if timeout is None:
        raw = os.environ.get("MTLKIT_DIST_TIMEOUT")
        try:
            timeout = float(raw) if raw else DEFAULT_TIMEOUT_S
        except ValueError:
            raise ValueError(f"MTLKIT_DIST_TIMEOUT must be a number of seconds. Got {raw!r}.") from None
    if not timeout > 0:
        raise ValueError(f"The 'timeout' must be a positive number of seconds. Got {timeout!r}.")
    return float(timeout)


def init_from_env(*, timeout: float | None = None, backend: str | None = None) -> bool:
    """Start the default process group from torchrun's environment variables.

    Does nothing (returns False) in a single process (``WORLD_SIZE`` unset or 1) or when a
    process group is already running (e.g. started by the user's own script). Otherwise
    initialises it with ``backend`` (default :func:`default_backend`) and ``timeout``
    seconds for every collective (default ``$MTLKIT_DIST_TIMEOUT`` or 600), selects the GPU
    ``LOCAL_RANK`` when CUDA is present, registers its shutdown at exit and returns True.

    >>> init_from_env()  # a plain process: nothing to do
    False
    """
    if not dist.is_available():
        return False
    if dist.is_initialized():
        return False
    size = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if size <= 1:
        return False
    missing = [v for v in ("RANK", "MASTER_ADDR", "MASTER_PORT") if not os.environ.get(v)]
    if missing:
        raise RuntimeError(f"WORLD_SIZE={size} but {', '.join(missing)} is not set: launch with torchrun "
                           f"(or mtlkit train --nproc-per-node N), which sets them.")
    global _timeout_used
    seconds = timeout_seconds(timeout)
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    try:
        dist.init_process_group(backend or default_backend(), timeout=timedelta(seconds=seconds))
    except Exception as exc:  # rendezvous failures: name the address and the rank
        raise DistributedError(
            f"Rank {os.environ.get('RANK')} of {size} could not join the process group at "
            f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')} within {seconds:g} s: {exc}"
        ) from exc
    _timeout_used = seconds
    atexit.register(shutdown)
    return True


def shutdown() -> None:
    """Destroy the default process group if one is running.

    Unreachable DDP wrappers (their reducers hold the group and gloo work objects) are
    collected first, while the interpreter is fully alive."""
    if dist.is_available() and dist.is_initialized():
        import gc

        gc.collect()
        dist.destroy_process_group()


def exit_worker(code: int = 0) -> NoReturn:
    """End a torchrun worker process that has finished its work: destroy the process group
    (:func:`shutdown`), flush the standard streams and leave with ``os._exit(code)``.

    Skipping the interpreter's and the C++ runtime's teardown is deliberate: with gloo, a
    worker that left through the normal exit path was seen, rarely, to abort in that teardown
    ("terminate called without an active exception", SIGABRT) after all its work was done,
    which made torchrun report the whole job as failed. Everything the run writes is written
    and closed (atomically) before this is called."""
    try:
        shutdown()
    finally:
        for stream in (sys.stdout, sys.stderr):
            # a closed or broken stream must not turn a finished run into a failure
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


def torchrun_command(nproc_per_node: int, module_args: Sequence[str], *,
                     torchrun_args: Sequence[str] = ("--standalone",)) -> list[str]:
    """The command that runs ``python -m mtlkit <module_args>`` in ``nproc_per_node``
    processes through ``torch.distributed.run`` (torchrun).

    >>> torchrun_command(2, ["train", "cfg.yaml"])[2:]
    ['torch.distributed.run', '--standalone', '--nproc-per-node', '2', '-m', 'mtlkit', 'train', 'cfg.yaml']
    """
    if not isinstance(nproc_per_node, int) or isinstance(nproc_per_node, bool) or nproc_per_node < 1:
        raise ValueError(f"The 'nproc_per_node' parameter must be a positive int. Got {nproc_per_node!r}.")
    return [sys.executable, "-m", "torch.distributed.run", *torchrun_args, "--nproc-per-node",
            str(nproc_per_node), "-m", "mtlkit", *module_args]


def launch(nproc_per_node: int, module_args: Sequence[str], *,
           torchrun_args: Sequence[str] = ("--standalone",), env: dict[str, str] | None = None) -> int:
    """Run :func:`torchrun_command` as a subprocess and return its exit code.

    ``--standalone`` runs a single-node job on a free local port; for several nodes run
    ``torchrun`` yourself with its rendezvous options (``docs/scaling.md``)."""
    if os.environ.get("TORCHELASTIC_RUN_ID") or (dist.is_available() and dist.is_initialized()):
        raise RuntimeError("Already running inside a distributed job (torchrun): do not pass "
                           "--nproc-per-node to the workers.")
    run_env = dict(os.environ if env is None else env)
    run_env.setdefault("OMP_NUM_THREADS", "1")
    return subprocess.run(torchrun_command(nproc_per_node, module_args, torchrun_args=torchrun_args),
                          env=run_env, check=False).returncode


# ---------------------------------------------------------------------------- collectives
class _Comm:
    """The collectives of one process group, with clear errors and a tally of the payload
    (bytes of the tensors reduced or broadcast by this rank; DDP's own traffic excluded)."""

    def __init__(self, group: Any = None) -> None:
        self.group = group
        self.rank = dist.get_rank(group) if is_distributed() else 0
        self.size = dist.get_world_size(group) if is_distributed() else 1
        self.calls: dict[str, int] = {}
        self.bytes: dict[str, int] = {}

    def _run(self, what: str, tensor: Tensor, fn: Any) -> None:
        self.calls[what] = self.calls.get(what, 0) + 1
        self.bytes[what] = self.bytes.get(what, 0) + tensor.numel() * tensor.element_size()
        try:
            fn()
        except RuntimeError as exc:
            raise DistributedError(
                f"Rank {self.rank} of {self.size}: the {what} collective failed or timed out "
                f"(timeout {_timeout_used or timeout_seconds():g} s, MTLKIT_DIST_TIMEOUT): another worker probably "
                f"crashed or stalled; see its error. Resume from the last checkpoint with --resume "
                f"(torchrun --max-restarts restarts the job automatically). Cause: {exc}"
            ) from exc

    def all_reduce_(self, tensor: Tensor, what: str) -> Tensor:
        """Sum ``tensor`` over ranks, in place."""
        self._run(what, tensor, lambda: dist.all_reduce(tensor, op=dist.ReduceOp.SUM, group=self.group))
        return tensor

    def broadcast_(self, tensor: Tensor, what: str, src: int = 0) -> Tensor:
        self._run(what, tensor, lambda: dist.broadcast(tensor, src=src, group=self.group))
        return tensor

    def broadcast_bytes(self, payload: bytes | None, what: str) -> bytes:
        """Rank 0's ``payload`` on every rank (the others pass None)."""
        n = torch.tensor([len(payload) if payload is not None and self.rank == 0 else 0], dtype=torch.int64)
        self.broadcast_(n, what)
        buf = (torch.frombuffer(bytearray(payload), dtype=torch.uint8) if self.rank == 0 and payload
               else torch.zeros(int(n.item()), dtype=torch.uint8))
        if buf.numel():
            self.broadcast_(buf, what)
        return bytes(buf.numpy().tobytes())


def _flat(tensors: Sequence[Tensor]) -> Tensor:
    return torch.cat([t.reshape(-1) for t in tensors]) if tensors else torch.zeros(0)


def _buckets(tensors: Sequence[Tensor]) -> dict[tuple[torch.device, torch.dtype], list[int]]:
    """Indices of ``tensors`` grouped by (device, dtype): one flat bucket each."""
    out: dict[tuple[torch.device, torch.dtype], list[int]] = {}
    for i, t in enumerate(tensors):
        out.setdefault((t.device, t.dtype), []).append(i)
    return out


def broadcast_module_state(module: nn.Module, comm: _Comm) -> None:
    """Copy rank 0's parameters and buffers into ``module`` on every rank (one broadcast per
    dtype)."""
    tensors = [t.data for t in list(module.parameters()) + list(module.buffers()) if t.numel()]
    for idx in _buckets(tensors).values():
        group = [tensors[i] for i in idx]
        flat = comm.broadcast_(_flat(group), "initial state")
        offset = 0
        for t in group:
            t.copy_(flat[offset:offset + t.numel()].view_as(t))
            offset += t.numel()


def average_buffers(module: nn.Module, comm: _Comm) -> None:
    """Average the floating-point buffers (batch-norm running statistics) over ranks."""
    bufs = [b for b in module.buffers() if b.is_floating_point() and b.numel()]
    for idx in _buckets(bufs).values():
        group = [bufs[i] for i in idx]
        flat = comm.all_reduce_(_flat(group), "buffers")
        flat /= comm.size
        offset = 0
        for b in group:
            b.copy_(flat[offset:offset + b.numel()].view_as(b))
            offset += b.numel()


# ---------------------------------------------------------------------------- batch norm
class _SumOverRanks(torch.autograd.Function):
    """Forward: the sum of ``t`` over ranks. Backward: the sum over ranks of the incoming
    gradient (each rank's loss depends on every rank's ``t`` through the sum)."""

    @staticmethod
    def forward(ctx: Any, t: Tensor, comm: _Comm) -> Tensor:
        ctx.comm = comm
        return comm.all_reduce_(t.detach().contiguous().clone(), "batch-norm statistics")

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return ctx.comm.all_reduce_(grad.contiguous().clone(), "batch-norm gradients"), None


class _GlobalBatchNorm:
    """Replaces the ``forward`` of one batch-norm module while a :class:`DistributedTrainer`
    fits: in training mode it normalises with the mean and variance of the *global* batch
    (the union of every rank's shard) and updates the running statistics with them, exactly
    as one process would; in evaluation mode it is the module's own forward.

    The per-channel sum, sum of squares and count travel in one all-reduce (float64) per
    layer and forward, and their gradient in one all-reduce per layer and backward. This is
    the synchronised batch norm of Peng et al. 2018 ("MegDet", CVPR; ``torch.nn.SyncBatchNorm``),
    written for every device since PyTorch's needs a GPU. The variance is E[x²] − E[x]²
    computed in float64; the running variance uses the unbiased estimate n/(n−1), as
    PyTorch's batch norm does."""

    def __init__(self, module: nn.modules.batchnorm._BatchNorm, comm: _Comm) -> None:
        self.module = module
        self.comm = comm

    def __call__(self, x: Tensor) -> Tensor:
        bn = self.module
        if not bn.training:
            return type(bn).forward(bn, x)
        bn._check_input_dim(x)
        c = x.shape[1]
        dims = [0, *range(2, x.dim())]
        xd = x.to(torch.float64)
        count = torch.tensor([x.numel() / c if c else 0.0], dtype=torch.float64, device=x.device)
        total = _SumOverRanks.apply(torch.cat([xd.sum(dims), (xd * xd).sum(dims), count]), self.comm)
        n = float(total[-1].detach())
        if n <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training batch norm "
                             f"({type(bn).__name__}), got {n:g} over all ranks: use a larger batch_size.")
        mean = total[:c] / n
        var = (total[c:2 * c] / n - mean * mean).clamp_min(0)
        shape = [1, c] + [1] * (x.dim() - 2)
        y = (x - mean.to(x.dtype).view(shape)) * torch.rsqrt(var + bn.eps).to(x.dtype).view(shape)
        if bn.affine:
            y = y * bn.weight.view(shape) + bn.bias.view(shape)
        if bn.track_running_stats and bn.running_mean is not None and bn.running_var is not None:
            with torch.no_grad():
                assert bn.num_batches_tracked is not None
                bn.num_batches_tracked.add_(1)
                f = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked)
                bn.running_mean.mul_(1 - f).add_(mean.detach().to(bn.running_mean.dtype), alpha=f)
                unbiased = var.detach() * (n / (n - 1))
                bn.running_var.mul_(1 - f).add_(unbiased.to(bn.running_var.dtype), alpha=f)
        return y

    def __deepcopy__(self, memo: dict[int, Any]) -> _GlobalBatchNorm:
        import copy

        return _GlobalBatchNorm(copy.deepcopy(self.module, memo), self.comm)


def batch_norm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The batch-norm modules of ``model`` (``BatchNorm1d/2d/3d`` and subclasses)."""
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
            and not isinstance(m, nn.SyncBatchNorm)]


# ---------------------------------------------------------------------------- losses
class _GlobalValue(torch.autograd.Function):
    """Forward: the global loss values (bit-identical on every rank). Backward: the gradient
    of the local losses times ``scale`` (so that the mean over ranks is the global gradient)."""

    @staticmethod
    def forward(ctx: Any, local: Tensor, value: Tensor, scale: Tensor) -> Tensor:
        ctx.save_for_backward(scale)
        return value.clone()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        (scale,) = ctx.saved_tensors
        return grad * scale, None, None


class _Forward(nn.Module):
    """What DDP wraps: the model's forward, through ``encode``/``decode`` when the step needs
    the shared representation. The representation is kept in ``rep`` rather than returned:
    DDP passes its outputs through an autograd node of its own, and a returned copy would not
    be on the path from the representation to the task outputs."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.rep: Tensor | None = None

    def forward(self, x: Tensor, with_rep: bool = False) -> dict[str, Tensor]:
        if with_rep:
            model = cast("MultiTaskModel", self.model)
            self.rep = model.encode(x)
            return model.decode(self.rep)
        self.rep = None
        return self.model(x)


class _GlobalConflicts:
    """The trainer's :class:`~mtlkit.training.ConflictMonitor`, fed with the global
    representation Jacobian's Gramian: cosines and norm ratios are functions of J Jᵀ, so the
    monitor receives a K×K square root of the all-reduced (1/R²) Σ_r J_r J_rᵀ and its
    statistics equal those of one process on the global batch. A parameter-level Jacobian
    (:meth:`update_parameters`) is averaged over ranks instead."""

    def __init__(self, inner: Any, comm: _Comm) -> None:
        self.inner = inner
        self.comm = comm

    def __getattr__(self, name: str) -> Any:  # epoch_summary, state_dict, load_state_dict ...
        return getattr(self.inner, name)

    @torch.no_grad()
    def update_parameters(self, jacobian: Tensor, idx: Sequence[int]) -> None:
        """A parameter-level Jacobian: the global one is the mean over ranks (one all-reduce)."""
        j = self.comm.all_reduce_(jacobian.detach().contiguous().clone(), "conflict statistics")
        self.inner.update(j / self.comm.size, idx)

    @torch.no_grad()
    def update(self, jacobian: Tensor, idx: Sequence[int]) -> None:
        j = jacobian.detach().to(torch.float64)
        g = self.comm.all_reduce_((j @ j.T).contiguous(), "conflict statistics") / float(self.comm.size) ** 2
        vals, vecs = torch.linalg.eigh((g + g.T) / 2)
        root = vecs @ torch.diag(vals.clamp_min(0).sqrt()) @ vecs.T  # root @ root.T == g
        self.inner.update(root, idx)


class _RankZeroCheckpoints:
    """Rank 0 reads and writes the checkpoint folder; the other ranks never touch it and
    receive rank 0's newest good checkpoint as bytes (no shared file system needed)."""

    def __init__(self, inner: CheckpointManager, comm: _Comm) -> None:
        self.inner = inner
        self.comm = comm

    def __getattr__(self, name: str) -> Any:  # directory, keep, config_hash, manifest ...
        return getattr(self.inner, name)

    def save(self, state: dict[str, Any], *, step: int, epoch: int) -> Any:
        if self.comm.rank == 0:
            return self.inner.save(state, step=step, epoch=epoch)
        return None

    def latest(self) -> tuple[dict[str, Any], dict[str, Any]] | None:
        from safetensors.torch import load, save

        payload = None
        if self.comm.rank == 0:
            try:
                found = self.inner.latest()
            except CheckpointError as exc:
                doc: dict[str, Any] = {"error": str(exc)}
                tensors: dict[str, Tensor] = {}
            else:
                if found is None:
                    doc, tensors = {"found": False}, {}
                else:
                    tree, tensors = flatten_state(found[0])
                    doc = {"found": True, "state": tree, "entry": found[1]}
            head = json.dumps(doc).encode("utf-8")
            body = save(tensors) if tensors else b""
            payload = len(head).to_bytes(8, "little") + head + body
        data = self.comm.broadcast_bytes(payload, "checkpoint")
        n = int.from_bytes(data[:8], "little")
        doc = json.loads(data[8:8 + n].decode("utf-8"))
        if "error" in doc:
            raise CheckpointError(doc["error"])
        if not doc["found"]:
            return None
        body = data[8 + n:]
        tensors = load(body) if body else {}
        return unflatten_state(doc["state"], tensors), doc["entry"]


# ---------------------------------------------------------------------------- the comm object
class ProcessGroupComm(Comm):
    """The :class:`~mtlkit.training.comm.Comm` of a process group: what each part of a step
    shares between ranks (the module docstring gives the derivations).

    Args:
        group: the process group (default: the default group, see :func:`init_from_env`).
        use_ddp: wrap the model in ``DistributedDataParallel`` for plain loss-space
            training (False: the same flattened all-reduce as for gradient methods).
        find_unused_parameters: passed to DDP.
    """

    def __init__(self, group: Any = None, *, use_ddp: bool = True, find_unused_parameters: bool = True) -> None:
        if not isinstance(use_ddp, bool):
            raise ValueError(f"The 'use_ddp' parameter of DistributedTrainer must be a bool. Got {use_ddp!r}.")
        if not isinstance(find_unused_parameters, bool):
            raise ValueError(f"The 'find_unused_parameters' parameter of DistributedTrainer must be a bool. "
                             f"Got {find_unused_parameters!r}.")
        self.c = _Comm(group)
        self.group, self.size, self.rank = group, self.c.size, self.c.rank
        self.use_ddp, self.find_unused_parameters = use_ddp, find_unused_parameters
        self.sync_batch_norm = False
        self.level = "parameters"
        self._ddp: nn.Module | None = None
        self._ddp_param_ids: set[int] = set()
        self._weighting_params: list[nn.Parameter] = []

    # ------------------------------------------------------------------ set-up
    def attach(self, trainer: Trainer) -> None:
        """Resolve ``sync_batch_norm`` and refuse what cannot be made global."""
        self.level = trainer.settings.level
        self.sync_batch_norm = _resolve_sync_bn(trainer)
        trainer.sync_batch_norm = self.sync_batch_norm  # type: ignore[attr-defined]
        agg = trainer.aggregator
        if self.size > 1 and agg is not None and self.level == "representation" and not agg.gramian_based:
            raise ValueError(
                f"{agg} cannot run at level='representation' in distributed training: each rank "
                f"holds only its own samples' columns of the representation Jacobian, and only "
                f"Gramian-based aggregators (gramian_based=True: their result is w(G) @ J) can "
                f"be computed from the all-reduced Gramian. Use level='parameters' (the Jacobian "
                f"is averaged over ranks) or a Gramian-based aggregator."
            )

    def setup(self, trainer: Trainer) -> None:
        self._weighting_params = trainer.weighting_parameters()
        if self.size <= 1:
            return
        if self.use_ddp and trainer.aggregator is None and self._ddp is None:
            self._ddp = self._wrap_ddp(trainer)
            self._ddp_param_ids = {id(p) for p in trainer.model.parameters()}
        else:
            broadcast_module_state(trainer.model, self.c)
        broadcast_module_state(trainer.weighting, self.c)

    def _wrap_ddp(self, trainer: Trainer) -> nn.Module:
        from torch.nn.parallel import DistributedDataParallel

        kwargs: dict[str, Any] = {"find_unused_parameters": self.find_unused_parameters,
                                  "process_group": self.group}
        # buffers are averaged once per epoch instead of rank 0's copied before every forward
        params = inspect.signature(DistributedDataParallel.__init__).parameters
        kwargs["forward_sync_buffers" if "forward_sync_buffers" in params else "broadcast_buffers"] = False
        if trainer.device.type == "cuda":
            kwargs["device_ids"] = [trainer.device.index if trainer.device.index is not None
                                    else torch.cuda.current_device()]
        return DistributedDataParallel(_Forward(trainer.model), **kwargs)

    @contextlib.contextmanager
    def fit_context(self, trainer: Trainer) -> Iterator[None]:
        """Batch norm with the global batch's statistics while fitting; the fitted model is a
        plain module again afterwards (its own batch-norm forward)."""
        patched: list[nn.Module] = []
        if self.size > 1 and self.sync_batch_norm:
            layer: nn.Module
            for layer in batch_norm_layers(trainer.model):
                setattr(layer, "forward", _GlobalBatchNorm(layer, self.c))  # noqa: B010 (an instance attribute)
                patched.append(layer)
        try:
            yield
        finally:
            for layer in patched:
                layer.__dict__.pop("forward", None)

    # ------------------------------------------------------------------ the step
    def forward(self, trainer: Trainer, x: Tensor, need_rep: bool) -> tuple[dict[str, Tensor], Tensor | None]:
        if self._ddp is not None and torch.is_grad_enabled():
            out = self._ddp(x, with_rep=need_rep and bool(getattr(trainer.model, "has_representation", False)))
            inner = cast(_Forward, self._ddp.module)
            rep, inner.rep = inner.rep, None
            return out, rep
        return super().forward(trainer, x, need_rep)

    def sync_losses(self, local: Tensor, counts: Tensor) -> tuple[Tensor, Tensor] | None:
        """Global task losses and present mask, from one all-reduce of 2K numbers.

        Value: L_k = Σ_r n_rk L_rk / Σ_r n_rk (the loss of the global batch, n_rk the labelled
        entries of task k on rank r). Gradient: R n_rk / N_k · ∂L_rk, whose mean over ranks is
        ∂L_k. A task is present when some rank has a label for it."""
        if self.size <= 1:
            return None
        counts = counts.to(device=local.device, dtype=torch.float64)
        values = local.detach().to(torch.float64)
        buf = torch.cat([torch.where(counts > 0, values * counts, torch.zeros_like(values)), counts])
        self.c.all_reduce_(buf, "losses")
        k = local.shape[0]
        total, n = buf[:k], buf[k:]
        value = torch.where(n > 0, total / n.clamp_min(1), torch.zeros_like(total))
        scale = torch.where(n > 0, self.size * counts / n.clamp_min(1), torch.zeros_like(n))
        synced = _GlobalValue.apply(local, value.to(local.dtype), scale.to(local.dtype))
        return synced, (n > 0).cpu()

    def sync_grads(self, params: Sequence[nn.Parameter]) -> None:
        """Average the local gradients of ``params`` over ranks: one flattened bucket per
        (device, dtype), one all-reduce. Parameters whose gradient DDP already averaged are
        skipped. A gradient that is None on every rank stays None (a per-parameter flag
        travels in the same bucket)."""
        if self.size <= 1:
            return
        seen: set[int] = set(self._ddp_param_ids)
        todo: list[nn.Parameter] = []
        for p in params:
            if id(p) not in seen:
                seen.add(id(p))
                todo.append(p)
        for idx in _buckets(todo).values():
            group = [todo[i] for i in idx]
            ref = group[0]
            parts = [p.grad.reshape(-1) if p.grad is not None else torch.zeros(p.numel(), dtype=p.dtype,
                                                                                device=p.device)
                     for p in group]
            flags = torch.tensor([p.grad is not None for p in group], dtype=ref.dtype, device=ref.device)
            flat = self.c.all_reduce_(torch.cat([*parts, flags]), "gradients")
            flat /= self.size
            offset = 0
            for p, has in zip(group, flat[-len(group):].tolist()):
                n = p.numel()
                if has > 0:
                    p.grad = flat[offset:offset + n].view_as(p)
                offset += n

    def sync_jacobian(self, j: Tensor, what: str = "jacobian") -> Tensor:
        """The mean over ranks of a K×P parameter-level Jacobian (one all-reduce)."""
        if self.size <= 1:
            return j
        return self.c.all_reduce_(j.detach().contiguous().clone(), what) / self.size

    def gramian(self, j: Tensor, level: str) -> Tensor:
        """Parameter level: J Jᵀ of the already averaged Jacobian. Representation level: the
        global Gramian (1/R²) Σ_r J_r J_rᵀ (one all-reduce of K×K numbers), since rank r's
        rows are R times its block of columns of the global representation Jacobian."""
        from mtlkit.aggregation._base import gramian

        g = gramian(j)
        if self.size <= 1 or level != "representation":
            return g
        g = self.c.all_reduce_(g.detach().contiguous().clone(), "gramian")
        return g / float(self.size) ** 2

    def batches(self, trainer: Trainer, batches: Iterator[Batch]) -> Iterator[Batch]:
        """This rank's contiguous slice of every global batch (same order on every rank);
        after the epoch's last batch, the model's buffers are averaged over ranks."""
        if self.size <= 1:
            yield from batches
            return
        for x, ys, ms in batches:
            lo, hi = _shard(_batch.rows(x), self.rank, self.size)  # x: a tensor or {name: tensor}
            yield _batch.take(x, slice(lo, hi)), {k: v[lo:hi] for k, v in ys.items()}, {k: m[lo:hi] for k, m in ms.items()}
        average_buffers(trainer.model, self.c)

    def agree(self, score: float) -> float:
        """Rank 0's score on every rank: early stopping and the best epoch agree even if float
        rounding made the validation metrics differ in the last bit."""
        if self.size <= 1:
            return score
        return float(self.c.broadcast_(torch.tensor([score], dtype=torch.float64), "validation score").item())

    def wrap_conflicts(self, monitor: Any) -> Any:
        return _GlobalConflicts(monitor, self.c) if self.size > 1 else monitor

    def wrap_checkpoints(self, manager: Any) -> Any:
        return _RankZeroCheckpoints(manager, self.c) if self.size > 1 else manager

    def stats(self) -> dict[str, dict[str, int]]:
        return {"calls": dict(self.c.calls), "bytes": dict(self.c.bytes)}


def _resolve_sync_bn(trainer: Trainer) -> bool:
    """``sync_batch_norm`` as it will run: None means on for a model with batch-norm layers,
    except where a step cannot hold the collective (then True is refused)."""
    wanted = trainer.settings.sync_batch_norm
    # steps with one backward pass per task through the trunk (the parameter-level Jacobian,
    # GradNorm's and DB-MTL's gradients) call the batch norm's gradient all-reduce once per
    # task: every rank makes the same calls (a task's loss keeps its graph on a shard
    # without its labels), but only the plain loop engine calls them outside vmap
    per_task = ((trainer.aggregator is not None and trainer.settings.level == "parameters")
                or bool(getattr(trainer.weighting, "needs_gradients", False)))
    why = None
    if getattr(trainer.weighting, "gradients_at", None) == "representation":
        why = (f"the weighting {type(trainer.weighting).__name__} differentiates the representation "
               f"gradients a second time (create_graph)")
    elif per_task and trainer.settings.jacobian_engine != "loop":
        why = (f"the {trainer.settings.jacobian_engine!r} Jacobian engine vmaps the per-task backward passes, "
               f"which cannot hold a collective; use jacobian_engine='loop'")
    if wanted and why:
        raise ValueError(f"sync_batch_norm=True is not available here: {why}. Pass sync_batch_norm=False "
                         f"(per-rank statistics).")
    return (why is None and bool(batch_norm_layers(trainer.model))) if wanted is None else wanted


class DistributedTrainer(Trainer):
    """:class:`~mtlkit.training.Trainer` for data-parallel training over a process group: a
    Trainer whose communication object is a :class:`ProcessGroupComm`.

    Run one per process (torchrun starts them); with R processes and ``batch_size=B``, each
    rank computes on B/R samples of every global batch and the parameters after every step
    equal those of a single process training on the whole batch B with the same seed (up to
    float rounding), for every weighting and for gradient-space aggregators at parameter
    level; at representation level for the Gramian-based aggregators (``gramian_based``).
    In a single process (no process group) it is exactly a :class:`Trainer`; start the process
    group (:func:`init_from_env`) before constructing it. Any trainer (distillation,
    affinity ...) runs distributed the same way: pass ``comm=ProcessGroupComm()``.

    Only rank 0 writes ``metrics.jsonl`` (``run_dir``) and checkpoints
    (``checkpoint_dir``) and shows progress; every rank resumes from rank 0's newest good
    checkpoint with ``fit(..., resume=True)``. The metrics of the history are global on
    every rank (losses of the global batch; validation on the full validation split).

    Plain loss-space training (no aggregator) uses ``DistributedDataParallel`` for the model
    gradients; with an aggregator the Jacobian (parameter level) or the Gramian
    (representation level) is all-reduced instead, and DDP is not used, so nothing is
    averaged twice. ``docs/scaling.md`` explains the derivations and the communication cost.
    DDP itself: Li et al. 2020, "PyTorch Distributed: Experiences on Accelerating Data Parallel
    Training", VLDB (https://arxiv.org/abs/2006.15704).

    Args:
        model, tasks, **kwargs: as for :class:`~mtlkit.training.Trainer`.
        use_ddp, find_unused_parameters, group: as for :class:`ProcessGroupComm`.
        sync_batch_norm (a Trainer setting): batch norm with the statistics of the global
            batch (:class:`_GlobalBatchNorm`), so that R processes compute what one process
            computes. None (default): on for a model with batch-norm layers, except with
            GREAT (which differentiates gradients twice) and with a vmapped Jacobian engine
            (``batched``, ``two-stage``) for per-task gradients; there each rank normalises
            its shard with the shard's statistics, and True is refused.

    >>> import torch
    >>> from mtlkit import Task, from_arrays
    >>> from mtlkit.architectures import build_model
    >>> tasks = [Task("a", "regression"), Task("b", "binary")]
    >>> x = torch.randn(32, 3)
    >>> data = from_arrays(x, {"a": x[:, 0], "b": (x[:, 1] > 0).float()}, tasks)
    >>> model = build_model({"name": "hard_sharing", "trunk": {"name": "mlp", "hidden": [8]}}, tasks, (3,))
    >>> t = DistributedTrainer(model, tasks, epochs=1, batch_size=8, progress=False)
    >>> t.world_size, len(t.fit(data).records)  # a plain process: world size 1
    (1, 1)
    """

    def __init__(self, model: nn.Module, tasks: Sequence[Any], *, use_ddp: bool = True,
                 find_unused_parameters: bool = True, group: Any = None, **kwargs: Any) -> None:
        if kwargs.get("sync_batch_norm") is not None and not isinstance(kwargs["sync_batch_norm"], bool):
            raise ValueError(f"The 'sync_batch_norm' parameter of DistributedTrainer must be a bool or None. "
                             f"Got {kwargs['sync_batch_norm']!r}.")
        comm = ProcessGroupComm(group, use_ddp=use_ddp, find_unused_parameters=find_unused_parameters)
        if comm.size > 1 and comm.rank != 0:
            kwargs["run_dir"] = None
            kwargs["progress"] = False
        super().__init__(model, tasks, comm=comm, **kwargs)
        self.world_size, self.rank = comm.size, comm.rank


def _shard(n: int, rank: int, size: int) -> tuple[int, int]:
    """[lo, hi) of rank ``rank``'s contiguous share of ``n`` rows (sizes differ by at most 1).

    >>> [_shard(7, r, 2) for r in range(2)]
    [(0, 4), (4, 7)]
    """
    base, extra = divmod(n, size)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (1 if rank < extra else 0)
