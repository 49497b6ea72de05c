"""The training loop. It owns the loop and nothing method-specific: it reads capability
flags of the weighting / aggregator / schedule, never their names."""

from __future__ import annotations

import copy
import json
import math
import random
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from torch import Tensor, nn

from mtlkit.aggregation._base import Aggregator, GramianWeightedAggregator
from mtlkit.architectures._base import NO_REPRESENTATION
from mtlkit.data._dataset import MultiTaskData
from mtlkit.jacobian import assign_grads, jacobian, representation_jacobian
from mtlkit.tasks import Task, check_tasks
from mtlkit.training.checkpoint import CheckpointManager
from mtlkit.training.monitor import ConflictMonitor
from mtlkit.training.schedules import check_compatible
from mtlkit.weighting._base import StepContext, Weighting
from mtlkit.weighting.equal import Equal
from mtlkit.weighting.static import Static

if TYPE_CHECKING:
    from rich.progress import Progress

    from mtlkit.architectures._base import MultiTaskModel

Batch = tuple[Tensor, dict[str, Tensor], dict[str, Tensor]]


class NonFiniteLossError(RuntimeError):
    """Training produced a non-finite loss or gradient too many steps in a row."""


@dataclass
class History:
    """Per-epoch records (the lines of ``metrics.jsonl``) and the chosen epoch."""

    records: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    stopped_early: bool = False

    def series(self, key: str, task: str, metric: str | None = None) -> list[float]:
        out = []
        for r in self.records:
            v = r.get(key, {}).get(task)
            if metric is not None and isinstance(v, dict):
                v = v.get(metric)
            out.append(float("nan") if v is None else float(v))
        return out


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def make_optimizer(name: str, params: Iterable[nn.Parameter], *, lr: float, weight_decay: float = 0.0,
                   momentum: float = 0.9) -> torch.optim.Optimizer:
    name = name.lower()
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"The learning rate 'lr' must be a positive float. Got {lr!r}.")
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay, momentum=momentum)
    raise ValueError(f"Unknown optimizer {name!r}; choose adam, adamw or sgd.")


def make_scheduler(name: str | None, optimizer: torch.optim.Optimizer, epochs: int, *,
                   step_size: int | None = None, gamma: float = 0.1):
    if name in (None, "none"):
        return None
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs))
    if name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size or max(1, epochs // 3), gamma=gamma)
    raise ValueError(f"Unknown scheduler {name!r}; choose none, cosine or step.")


class Trainer:
    """Train any multi-task model (``forward(x) -> {task: Tensor}``) on :class:`MultiTaskData`.

    Args:
        model: the model. Models with ``has_representation`` (all mtlkit architectures)
            support representation-level gradient methods and the cheap conflict monitor.
        tasks: the task specs (their ``weight`` is the static λ when ``weighting`` is None).
        weighting: a loss-space :class:`~mtlkit.weighting.Weighting` (default: Static from
            the tasks' λ, i.e. Equal when every λ is 1).
        aggregator: a gradient-space :class:`~mtlkit.aggregation.Aggregator` (default none:
            one backward of the weighted sum).
        level: ``parameters`` (exact Jacobian of the shared parameters) or
            ``representation`` (Jacobian of the shared representation, one backward).
        optimizer, lr, weight_decay, momentum: ``adam`` | ``adamw`` | ``sgd`` and its settings.
        scheduler: ``none`` | ``cosine`` | ``step`` (stepped per epoch).
        clip_grad_norm: clip the global gradient norm to this value.
        epochs, batch_size: the budget.
        patience: early stopping after this many epochs without validation improvement
            (the best epoch's weights are restored at the end either way when validation
            data is given).
        monitor: the early-stopping criterion: ``"task:metric"``; default the main metric
            of the single primary task, else the mean relative improvement over all
            primary tasks' main metrics against epoch 1.
        seed: seeds parameters' init (when the model is built after), shuffling and methods.
        run_dir: when given, one JSON line per epoch is appended to ``metrics.jsonl`` there.
        monitor_conflicts: log gradient-conflict statistics per epoch: on the shared
            representation, or, for a model without one, on the parameters of its last shared
            layer (``conflicts_at`` says which; a model without shared parameters has none).
        sampler: an object with ``batches(data, batch_size, generator, epoch)`` yielding
            batches (default: shuffled passes over the data).
        schedule: an object with ``select(step, present, ctx) -> bool (K,)`` choosing the
            tasks optimised at a step (default: every task with labels in the batch).
        callbacks: callables ``cb(trainer, record)`` run after each epoch.
        max_nonfinite_steps: consecutive skipped non-finite steps before stopping.
        checkpoint_dir: write crash-safe checkpoints there (every epoch, and every
            ``checkpoint_every`` steps when given), keeping the last ``keep_checkpoints``.
    """

    def __init__(self, model: nn.Module, tasks: Sequence[Task], *, weighting: Weighting | None = None,
                 aggregator: Aggregator | None = None, level: str = "parameters",
                 optimizer: str = "adam", lr: float = 1e-3, weight_decay: float = 0.0,
                 momentum: float = 0.9, scheduler: str | None = None, clip_grad_norm: float | None = None,
                 epochs: int = 10, batch_size: int = 64, eval_batch_size: int = 1024,
                 patience: int | None = None, monitor: str | None = None, seed: int = 0,
                 device: str | torch.device = "cpu", progress: bool = True,
                 run_dir: str | Path | None = None, monitor_conflicts: bool = False,
                 sampler: Any = None, schedule: Any = None,
                 callbacks: Sequence[Callable[[Trainer, dict[str, Any]], None]] = (),
                 jacobian_engine: str = "loop", max_nonfinite_steps: int = 20,
                 checkpoint_dir: str | Path | None = None, checkpoint_every: int | None = None,
                 keep_checkpoints: int = 2, config_hash: str | None = None) -> None:
        self.tasks = check_tasks(tasks)
        self.task_names = [t.name for t in self.tasks]
        self.model = model
        if weighting is None:
            lam = {t.name: float(t.weight if t.weight is not None else 1.0) for t in self.tasks}
            weighting = Equal() if all(v == 1.0 for v in lam.values()) else Static(weights=lam)
        if not isinstance(weighting, Weighting):
            raise TypeError(f"weighting must be a mtlkit Weighting. Got {type(weighting).__name__}.")
        if aggregator is not None and not isinstance(aggregator, Aggregator):
            raise TypeError(f"aggregator must be a mtlkit Aggregator. Got {type(aggregator).__name__}.")
        from mtlkit.jacobian import ENGINES

        if jacobian_engine not in ENGINES:
            raise ValueError(f"The 'jacobian_engine' must be one of {', '.join(ENGINES)}. Got {jacobian_engine!r}.")
        if jacobian_engine == "two-stage" and not getattr(model, "has_representation", False):
            raise ValueError(f"jacobian_engine='two-stage' pulls the task gradients back through one shared "
                             f"representation; the model {type(model).__name__} has none. Use 'loop' or 'batched'.")
        if level not in ("parameters", "representation"):
            raise ValueError(f"The 'level' must be 'parameters' or 'representation'. Got {level!r}.")
        has_rep = bool(getattr(model, "has_representation", False))
        if aggregator is not None and level == "representation" and not has_rep:
            raise ValueError(
                f"level='representation' needs a model with a shared representation; "
                f"{type(model).__name__} has none. Use level='parameters'."
            )
        _check_gradients_at(model, weighting)
        shared_fn = getattr(model, "shared_parameters", None)
        if aggregator is not None and level == "parameters" and callable(shared_fn) \
                and not any(p.requires_grad for p in shared_fn()):
            warnings.warn(f"The model {type(model).__name__} has no shared parameters, so the aggregator "
                          f"{aggregator} has no task gradients to combine: every parameter gets its own "
                          f"task's (weighted) gradient, which is plain loss-space training.",
                          UserWarning, stacklevel=2)
        if aggregator is not None and not weighting.aggregator_compatible:
            raise ValueError(f"The weighting {weighting} cannot be combined with a gradient-space "
                             f"aggregator ({aggregator}).")
        check_compatible(schedule, weighting, aggregator, sampler=sampler)
        if epochs < 1 or batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1. Got epochs={epochs}, batch_size={batch_size}.")
        if isinstance(max_nonfinite_steps, bool) or not isinstance(max_nonfinite_steps, int) \
                or max_nonfinite_steps < 1:
            raise ValueError(f"The 'max_nonfinite_steps' parameter must be a positive integer. "
                             f"Got {max_nonfinite_steps!r}.")
        if monitor:
            _check_monitor(monitor, self.tasks)
        self.weighting = weighting
        self.aggregator = aggregator
        self.level = level
        self.optimizer_name, self.lr, self.weight_decay, self.momentum = optimizer, lr, weight_decay, momentum
        self.scheduler_name = scheduler
        self.clip_grad_norm = clip_grad_norm
        self.epochs, self.batch_size, self.eval_batch_size = epochs, batch_size, eval_batch_size
        self.patience, self.monitor = patience, monitor
        self.seed = seed
        self.device = torch.device(device)
        self.progress = progress
        self.run_dir = Path(run_dir) if run_dir is not None else None
        # where the conflict monitor reads the task gradients: the shared representation (cheap:
        # the heads only) or, for a model without one (MMoE, PLE, cross-stitch ...), the
        # parameters of its last shared layer (as GradNorm does); none without shared parameters
        has_shared = callable(shared_fn) and any(p.requires_grad for p in shared_fn())
        self.conflicts_at = (None if not monitor_conflicts else "representation" if has_rep
                             else "last_shared_parameters" if has_shared else None)
        self.conflicts = ConflictMonitor(self.task_names) if self.conflicts_at else None
        self.sampler, self.schedule = sampler, schedule
        self.callbacks = list(callbacks)
        self.jacobian_engine = jacobian_engine
        self.max_nonfinite_steps = max_nonfinite_steps
        self.history = History()
        self.step_count = 0
        self.epoch = 0
        self.generator = torch.Generator().manual_seed(seed)
        self.method_generator = torch.Generator().manual_seed(seed + 1)
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler = None
        self._nonfinite_run = 0
        self.nonfinite_skipped = 0
        self.checkpoint_every = checkpoint_every
        self.checkpoints = (CheckpointManager(checkpoint_dir, keep=keep_checkpoints, config_hash=config_hash)
                            if checkpoint_dir is not None else None)
        self.resumed_from: str | None = None
        self._ep: dict[str, Any] | None = None
        self._loss_list: list[Tensor] | None = None

    # ------------------------------------------------------------------ helpers
    @property
    def _contract(self) -> MultiTaskModel:
        """The model typed as the :class:`MultiTaskModel` contract. Any ``nn.Module`` is
        accepted: each optional method is called only after a ``hasattr`` check."""
        return cast("MultiTaskModel", self.model)

    def _shared_params(self) -> list[nn.Parameter]:
        if hasattr(self.model, "shared_parameters"):
            return [p for p in self._contract.shared_parameters() if p.requires_grad]
        return []

    def _has_rep(self) -> bool:
        return bool(getattr(self.model, "has_representation", False))

    def _forward(self, x: Tensor, need_rep: bool) -> tuple[dict[str, Tensor], Tensor | None]:
        if need_rep and self._has_rep():
            rep = self._contract.encode(x)
            return self._contract.decode(rep), rep
        return self.model(x), None

    def _losses(self, out: dict[str, Tensor], ys: dict[str, Tensor], ms: dict[str, Tensor]
                ) -> tuple[Tensor, Tensor]:
        if not isinstance(out, Mapping):
            raise TypeError(f"The model {type(self.model).__name__} must return a dict {{task name: Tensor}}; "
                            f"it returned a {type(out).__name__}.")
        losses, present = [], []
        for t in self.tasks:
            if t.name not in out:
                raise KeyError(f"The model returned no output for task {t.name!r}; it returned {sorted(out)}.")
            pred = out[t.name]
            if not isinstance(pred, Tensor) or not pred.is_floating_point():
                raise TypeError(f"The model's output for task {t.name!r} must be a floating-point Tensor "
                                f"(logits or values). Got {getattr(pred, 'dtype', type(pred).__name__)}.")
            y = ys[t.name].to(self.device)
            m = ms[t.name].to(self.device)
            want = (y.shape[0], *t.output_shape)
            if tuple(pred.shape) != want:
                raise ValueError(f"The model's output for task {t.name!r} has shape {tuple(pred.shape)}; "
                                 f"expected {want} for a {t.kind} task.")
            losses.append(t.compute_loss(pred, y, m))
            present.append(bool(m.any()))
        self._loss_list = losses  # per-task graphs: a row of the stack would traverse every head
        return torch.stack(losses), torch.tensor(present)

    def setup(self, train: MultiTaskData) -> None:
        """Prepare optimiser, scheduler and the weighting (called by :meth:`fit`)."""
        self.model.to(self.device)
        sizes = train.labelled_counts() if hasattr(train, "labelled_counts") else None
        self.weighting.setup_from_tasks(self.tasks, sizes)
        self.weighting.to(self.device)  # after setup: per-task tensors are created there
        for obj in (self.sampler, self.schedule):
            fn = getattr(obj, "setup", None)
            if callable(fn):
                fn(self.tasks)
        params = list(self.model.parameters()) + [p for p in self.weighting.parameters() if p.requires_grad]
        if not any(p.requires_grad for p in params):
            raise ValueError(f"The model {type(self.model).__name__} has no trainable parameters.")
        self.optimizer = make_optimizer(self.optimizer_name, params, lr=self.lr,
                                        weight_decay=self.weight_decay, momentum=self.momentum)
        self.scheduler = make_scheduler(self.scheduler_name, self.optimizer, self.epochs)
        self._params = [p for p in self.model.parameters() if p.requires_grad]
        self._shared = self._shared_params()
        self._last_shared = (list(self._contract.last_shared_parameters())
                             if hasattr(self.model, "last_shared_parameters") else self._shared[-2:])

    # ------------------------------------------------------------------ one step
    def train_step(self, batch: Batch) -> tuple[Tensor, Tensor, Tensor]:
        """One optimisation step. Returns (losses (K,), weights (K,), present (K,))."""
        assert self.optimizer is not None
        x, ys, ms = batch
        x = x.to(self.device)
        need_rep = self.level == "representation" or self.conflicts is not None or \
            self.jacobian_engine == "two-stage" or \
            bool(getattr(self.weighting, "needs_gradients", False)) or \
            bool(getattr(self.schedule, "needs_representation", False))
        self._loss_list = None
        observe = getattr(self.model, "observe_batch", None)
        if callable(observe):  # e.g. the adversarial discriminator learns each sample's tasks
            observe({k: m.to(self.device) for k, m in ms.items()})
        out, rep = self._forward(x, need_rep)
        losses, present = self._losses(out, ys, ms)
        shared = self._shared
        ctx = StepContext(step=self.step_count, epoch=self.epoch, task_names=self.task_names,
                          present=present, shared_parameters=shared,
                          last_shared_parameters=self._last_shared,
                          representation=rep, grad_fn=self._grad_fn, generator=self.method_generator,
                          extra={"losses": losses})
        if self.schedule is not None:
            chosen = self.schedule.select(self.step_count, present, ctx).to(present.device)
            present = present & chosen
            ctx.present = present
        if not bool(present.any()):
            self.step_count += 1
            return losses.detach(), torch.zeros_like(losses).detach(), present
        bad = [self.task_names[k] for k in range(len(losses))
               if present[k] and not torch.isfinite(losses[k])]
        if bad:
            self._skip_nonfinite(bad, "loss")
            return losses.detach(), torch.zeros_like(losses).detach(), present
        res = self.weighting(self._sync_losses(losses), ctx)
        extras = self._contract.extra_losses() if hasattr(self.model, "extra_losses") else {}
        extra_sum = cast(Tensor, sum(extras.values())) if extras else None  # extras is non-empty
        if extras and self._ep is not None:
            acc = self._ep.setdefault("extra_losses", {})
            for name, v in extras.items():
                acc[name] = acc.get(name, 0.0) + float(v.detach())
        self.optimizer.zero_grad(set_to_none=True)
        if self.conflicts is not None and rep is not None:
            idx = present.nonzero()[:, 0].tolist()
            src = self._loss_list if self._loss_list is not None else list(losses.unbind())
            j_rep = representation_jacobian([src[k] for k in idx], rep)
            self.conflicts.update(j_rep.detach(), idx)
        elif self.conflicts is not None and self.conflicts_at == "last_shared_parameters" and self._last_shared:
            idx = present.nonzero()[:, 0].tolist()
            src = self._loss_list if self._loss_list is not None else list(losses.unbind())
            # the plain loop engine: one small backward pass per task, never vmapped
            j_last = jacobian([src[k] for k in idx], self._last_shared, engine="loop")
            self.conflicts.update_parameters(j_last.detach(), idx)
        if self.aggregator is None or (self.level == "parameters" and not shared):
            # no shared parameters (e.g. soft sharing): nothing to aggregate
            total = res.objective if extra_sum is None else res.objective + extra_sum
            total.backward()
            self._sync_grads(self._params)
        else:
            unsynced = self._aggregated_backward(losses, res.objective, res.weights.detach(), present, shared,
                                                 rep, extra_sum)
            self._sync_grads(unsynced)
        grads = [p.grad for p in self._params if p.grad is not None]
        # one fused foreach reduction: the total norm is non-finite iff some gradient entry is
        total_norm = torch.nn.utils.get_total_norm(grads) if grads else torch.zeros(())
        if not bool(torch.isfinite(total_norm)):
            self.optimizer.zero_grad(set_to_none=True)
            self._skip_nonfinite([n for n, k in zip(self.task_names, present.tolist()) if k], "gradient")
            return losses.detach(), res.weights.detach(), present
        if self.clip_grad_norm:
            torch.nn.utils.clip_grads_with_norm_(self._params, self.clip_grad_norm, total_norm)
        self.optimizer.step()
        self._nonfinite_run = 0
        if getattr(self.weighting, "needs_post_step_losses", False):
            with torch.no_grad():
                out2, _ = self._forward(x, False)
                after, _ = self._losses(out2, ys, ms)
            self.weighting.after_step(after, ctx)
        self.step_count += 1
        return losses.detach(), res.weights.detach(), present

    def _grad_fn(self, losses: Tensor | Sequence[Tensor], wrt: Sequence[Tensor]) -> Tensor:
        return jacobian(losses, wrt, engine=self.jacobian_engine)

    def _aggregated_backward(self, losses: Tensor, objective: Tensor, w: Tensor, present: Tensor,
                             shared: list[nn.Parameter], rep: Tensor | None, extra_sum: Tensor | None
                             ) -> list[nn.Parameter]:
        """Shared parameters get the aggregated direction, the others their own (weighted)
        gradient. Returns the parameters whose gradients are still local to this process."""
        assert self.aggregator is not None
        idx = present.nonzero()[:, 0].tolist()
        src = self._loss_list if self._loss_list is not None else list(losses.unbind())
        weighted = [w[k] * src[k] for k in idx]
        if self.level == "representation":
            assert rep is not None
            j = representation_jacobian(weighted, rep)
            d = self._aggregate(j, idx, weighted)
            rep.backward(d.view_as(rep).to(rep.dtype), retain_graph=True)
        else:
            j = self._sync_jacobian(jacobian(weighted, shared, engine=self.jacobian_engine, representation=rep))
            d = self._aggregate(j, idx, weighted)
            # a Gramian-based direction is the fresh product w @ J: handed over without a copy
            assign_grads(shared, d, copy=not getattr(self.aggregator, "gramian_based", False))
        shared_ids = {id(p) for p in shared}
        others = [p for p in self.model.parameters() if p.requires_grad and id(p) not in shared_ids]
        others += [p for p in self.weighting.parameters() if p.requires_grad]
        rest = objective if extra_sum is None else objective + extra_sum
        if others:
            g = torch.autograd.grad(rest, others, retain_graph=extra_sum is not None, allow_unused=True)
            for p, gi in zip(others, g):
                if gi is not None:
                    p.grad = gi if p.grad is None else p.grad + gi
        if extra_sum is not None and shared and extra_sum.requires_grad:
            g = torch.autograd.grad(extra_sum, shared, allow_unused=True)
            for p, gi in zip(shared, g):
                if gi is not None:
                    p.grad = gi if p.grad is None else p.grad + gi
        if self.level == "representation" or extra_sum is not None:
            return list(self._params)
        return others

    def _aggregate(self, j: Tensor, idx: list[int], weighted: Sequence[Tensor]) -> Tensor:
        """The direction for the shared part; stateful methods learn which tasks the rows
        are (``tasks``) and loss-normalised ones get the (weighted) losses."""
        assert self.aggregator is not None
        extras: dict[str, Any] = {"tasks": idx}
        if getattr(self.aggregator, "needs_losses", False):
            extras["losses"] = torch.stack([v.detach() for v in weighted])
        if getattr(self.aggregator, "gramian_based", False):
            # a Gramian-based aggregator follows the GramianWeightedAggregator contract
            agg = cast(GramianWeightedAggregator, self.aggregator)
            if getattr(agg, "reads_gramian", True):
                wts = agg.weights_from(self._gramian(j), **extras)
            else:  # weights that do not depend on J Jᵀ (Mean): the Gramian is not formed
                wts = agg.weights_of(j, **extras)
            self._agg_weights_sum[idx] += wts.detach().to(self._agg_weights_sum)
            self._agg_weights_n[idx] += 1
            return wts.to(j.dtype) @ j
        return self.aggregator(j, **extras)

    # ---------------------------------------------------------- hooks for distributed training
    def _sync_losses(self, losses: Tensor) -> Tensor:
        """Losses as the weighting sees them (distributed: value of the global mean,
        gradient of the local losses). Single process: unchanged."""
        return losses

    def _sync_grads(self, params: Sequence[nn.Parameter]) -> None:
        """Average the local gradients of ``params`` over processes (no-op here)."""

    def _sync_jacobian(self, j: Tensor) -> Tensor:
        """Average the parameter-level Jacobian over processes (identity here)."""
        return j

    def _gramian(self, j: Tensor) -> Tensor:
        """The K×K Gramian of the (global) Jacobian."""
        from mtlkit.aggregation._base import gramian

        return gramian(j)

    def _skip_nonfinite(self, tasks: list[str], what: str) -> None:
        self._nonfinite_run += 1
        self.nonfinite_skipped += 1
        if self._ep is not None:
            per_task = self._ep.setdefault("nonfinite_tasks", {})
            for name in tasks:
                per_task[name] = per_task.get(name, 0) + 1
        if self._nonfinite_run == 1 and self._nonfinite_run < self.max_nonfinite_steps:
            warnings.warn(f"Step {self.step_count}: non-finite {what} for task(s) {tasks}; the step is "
                          f"skipped (training stops after {self.max_nonfinite_steps} in a row).",
                          RuntimeWarning, stacklevel=3)
        self.step_count += 1
        if self._nonfinite_run >= self.max_nonfinite_steps:
            raise NonFiniteLossError(
                f"Non-finite {what} for task(s) {tasks} in {self._nonfinite_run} consecutive steps; "
                f"training stopped. Likely causes: a learning rate that is too high, or bad labels "
                f"(e.g. huge regression targets) for these tasks."
            )

    # ------------------------------------------------------------------ batches
    def _batches(self, data: MultiTaskData, epoch: int) -> Iterator[Batch]:
        if self.sampler is not None:
            return iter(self.sampler.batches(data, self.batch_size, self.generator, epoch))
        return data.iter_batches(self.batch_size, shuffle=True, generator=self.generator)

    def _num_batches(self, data: MultiTaskData) -> int | None:
        if self.sampler is not None:
            n = getattr(self.sampler, "num_batches", None)
            return n(data, self.batch_size) if callable(n) else None
        return math.ceil(len(data) / self.batch_size)

    # ------------------------------------------------------------------ fit
    def fit(self, train: MultiTaskData, val: MultiTaskData | None = None, *, resume: bool = False) -> History:
        """Train for ``epochs`` (or until early stopping) and return the :class:`History`.

        With ``resume=True`` and a ``checkpoint_dir``, training continues from the newest
        good checkpoint exactly where it stopped (mid-epoch included): same batches, same
        random numbers, same result as a run never interrupted."""
        if len(train) == 0:
            raise ValueError("The training data is empty.")
        seed_everything(self.seed)
        if self.optimizer is None:
            self.setup(train)
        counts = train.labelled_counts() if hasattr(train, "labelled_counts") else {}
        empty = [t for t in self.task_names if counts.get(t, 1) == 0]
        if empty:
            raise ValueError(f"Task(s) {empty} have no labelled training sample: every label is missing.")
        k = len(self.tasks)
        fit_state: dict[str, Any] = {"best_score": -math.inf, "best_state": None, "bad_epochs": 0,
                                     "baseline_val": None, "done": False}
        ep: dict[str, Any] | None = None
        metrics_path = self.run_dir / "metrics.jsonl" if self.run_dir is not None else None
        if metrics_path is not None:
            metrics_path.parent.mkdir(parents=True, exist_ok=True)
        if resume and self.checkpoints is not None:
            found = self.checkpoints.latest()
            if found is not None:
                state, entry = found
                self.load_state_dict(state["trainer"])
                fit_state = state["fit"]
                ep = state.get("epoch_state")
                self.resumed_from = entry["name"]
                if metrics_path is not None:  # drop lines written after the checkpoint
                    from mtlkit.runs import atomic_write

                    atomic_write(metrics_path, "".join(json.dumps(_jsonable(r)) + "\n"
                                                       for r in self.history.records))
        self._fit_state = fit_state
        if fit_state["done"]:
            if fit_state["best_state"] is not None:
                self.model.load_state_dict(fit_state["best_state"])
            return self.history
        for epoch in range(self.epoch, self.epochs):
            self.epoch = epoch
            self.model.train()
            t0 = time.perf_counter()
            replay = 0
            if ep is None:
                ep = {"gen_start": self.generator.get_state(), "batch_index": 0,
                      "loss_sum": torch.zeros(k), "loss_n": torch.zeros(k), "w_sum": torch.zeros(k),
                      "agg_sum": torch.zeros(k, dtype=torch.float64), "agg_n": torch.zeros(k),
                      "nonfinite_before": self.nonfinite_skipped, "elapsed": 0.0, "monitor": None}
            else:  # resumed mid-epoch: replay the epoch's batch draws up to the checkpoint
                replay = int(ep["batch_index"])
                rng_now = self._rng_states()
                self.generator.set_state(ep["gen_start"])
                if ep.get("monitor") is not None and self.conflicts is not None:
                    self.conflicts.load_state_dict(ep["monitor"])
            self._ep = ep
            self._agg_weights_sum, self._agg_weights_n = ep["agg_sum"], ep["agg_n"]
            with _Progress(self.progress, f"epoch {epoch + 1}/{self.epochs}", self._num_batches(train)) as bar:
                for i, batch in enumerate(self._batches(train, epoch)):
                    if i < replay:
                        if i == replay - 1:
                            self._set_rng_states(rng_now)
                        continue
                    skipped = self.nonfinite_skipped
                    losses, wts, present = self.train_step(batch)
                    if self.nonfinite_skipped != skipped:  # a skipped step teaches nothing: not averaged
                        present = torch.zeros_like(present)
                    ep["loss_sum"] += torch.where(present, losses.cpu().float(), torch.zeros(k))
                    ep["loss_n"] += present.float()
                    ep["w_sum"] += wts.cpu().float()
                    ep["batch_index"] = i + 1
                    bar.advance(self.task_names, (ep["loss_sum"] / ep["loss_n"].clamp_min(1)).tolist())
                    if self.checkpoint_every and self.step_count % self.checkpoint_every == 0:
                        ep["elapsed"] += time.perf_counter() - t0
                        t0 = time.perf_counter()
                        self.save_checkpoint()
            steps = int(ep["batch_index"])
            mean_losses = ep["loss_sum"] / ep["loss_n"].clamp_min(1)
            self.weighting.on_epoch_end(epoch, mean_losses)
            if self.scheduler is not None:
                self.scheduler.step()
            record: dict[str, Any] = {
                "epoch": epoch + 1,
                "train_loss": dict(zip(self.task_names, mean_losses.tolist())),
                "weights": dict(zip(self.task_names, (ep["w_sum"] / max(steps, 1)).tolist())),
                "steps": steps,
                "task_steps": dict(zip(self.task_names, ep["loss_n"].tolist())),
                "lr": self.optimizer.param_groups[0]["lr"] if self.optimizer else None,
                "time_s": round(ep["elapsed"] + time.perf_counter() - t0, 4),
                "nonfinite_skipped": self.nonfinite_skipped - int(ep["nonfinite_before"]),
            }
            if ep.get("nonfinite_tasks"):
                record["nonfinite_tasks"] = dict(ep["nonfinite_tasks"])
            if ep.get("extra_losses"):
                record["penalties"] = {k: v / max(steps, 1) for k, v in ep["extra_losses"].items()}
            ep = None
            self._ep = None
            if self.aggregator is not None and self._agg_weights_n.sum() > 0:
                aw = self._agg_weights_sum / self._agg_weights_n.clamp_min(1)
                record["aggregator_weights"] = dict(zip(self.task_names, aw.tolist()))
            if self.conflicts is not None:
                record["conflicts"] = {**self.conflicts.epoch_summary(), "measured_on": self.conflicts_at}
            for name, obj in (("sampling", self.sampler), ("schedule", self.schedule)):
                fn = getattr(obj, "epoch_summary", None)
                if callable(fn):
                    record[name] = fn()
            extra_fn = getattr(self.model, "sharing_summary", None)
            if callable(extra_fn):
                summary = extra_fn()
                if summary:
                    record["sharing"] = summary
            if val is not None and len(val):
                val_metrics = self.evaluate(val)
                record["val"] = val_metrics
                record["val_loss"] = self.loss_on(val)
                if fit_state["baseline_val"] is None:
                    fit_state["baseline_val"] = val_metrics
                score = self._score(val_metrics, fit_state["baseline_val"])
                record["val_score"] = score
                if score > fit_state["best_score"] + 1e-12:
                    fit_state["best_score"], fit_state["bad_epochs"] = score, 0
                    fit_state["best_state"] = copy.deepcopy(self.model.state_dict())
                    self.history.best_epoch = epoch + 1
                else:
                    fit_state["bad_epochs"] += 1
            for obj in (self.sampler, self.schedule):
                fn = getattr(obj, "on_epoch_end", None)
                if callable(fn):
                    fn(epoch, record)
            self.history.records.append(record)
            if metrics_path is not None:
                with open(metrics_path, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(_jsonable(record)) + "\n")
            for cb in self.callbacks:
                cb(self, record)
            self.epoch = epoch + 1
            stop = self.patience is not None and fit_state["bad_epochs"] >= self.patience
            if stop:
                self.history.stopped_early = True
            if stop or self.epoch >= self.epochs:
                fit_state["done"] = True
            if self.checkpoints is not None:
                self.save_checkpoint()
            if stop:
                break
        if fit_state["best_state"] is not None:
            self.model.load_state_dict(fit_state["best_state"])
        return self.history

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self) -> None:
        """Write a checkpoint now (model, optimiser, methods, RNG, epoch position)."""
        if self.checkpoints is None:
            return
        bad = [k for k, v in self.model.state_dict().items() if v.is_floating_point() and not torch.isfinite(v).all()]
        if bad:
            raise NonFiniteLossError(
                f"The model's weights became non-finite at step {self.step_count} (tensors {bad[:3]}); no "
                f"checkpoint is written and the previous ones are kept. Likely cause: a learning rate that "
                f"is too high."
            )
        ep = getattr(self, "_ep", None)
        if ep is not None and self.conflicts is not None:
            ep["monitor"] = self.conflicts.state_dict()
        state = {"trainer": self.state_dict(), "fit": getattr(self, "_fit_state", None), "epoch_state": ep}
        self.checkpoints.save(state, step=self.step_count, epoch=self.epoch)

    def _rng_states(self) -> dict[str, Any]:
        return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
                "method": self.method_generator.get_state()}

    def _set_rng_states(self, st: dict[str, Any]) -> None:
        torch.set_rng_state(st["torch"])
        np.random.set_state(st["numpy"])
        random.setstate(st["python"])
        self.method_generator.set_state(st["method"])

    def _score(self, metrics: dict[str, dict[str, float]], base: dict[str, dict[str, float]]) -> float:
        """Higher is better: the monitored metric, or the mean relative improvement."""
        if self.monitor:
            task, _, metric = self.monitor.partition(":")
            t = next((t for t in self.tasks if t.name == task), None)
            if t is None:
                raise ValueError(f"monitor names unknown task {task!r}; tasks are {self.task_names}.")
            metric = metric or t.main_metric
            v = metrics[task][metric]
            return v if t.metric(metric).higher_is_better else -v
        primary = [t for t in self.tasks if t.role == "primary"] or self.tasks
        if len(primary) == 1:
            t = primary[0]
            v = metrics[t.name][t.main_metric]
            if not math.isfinite(v):
                return -math.inf
            return v if t.metric(t.main_metric).higher_is_better else -v
        terms = []
        for t in primary:
            v, b = metrics[t.name][t.main_metric], base[t.name][t.main_metric]
            if not (math.isfinite(v) and math.isfinite(b)):
                continue
            sign = 1.0 if t.metric(t.main_metric).higher_is_better else -1.0
            terms.append(sign * (v - b) / (abs(b) if b != 0 else 1.0))
        return float(np.mean(terms)) if terms else -math.inf

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def predict_raw(self, data: MultiTaskData | Tensor) -> dict[str, Tensor]:
        """Raw outputs (logits / values) per task for every sample, in eval mode."""
        return predict_raw(self.model, data, batch_size=self.eval_batch_size, device=self.device)

    def evaluate(self, data: MultiTaskData) -> dict[str, dict[str, float]]:
        out = self.predict_raw(data)
        return {t.name: t.evaluate(out[t.name], data.targets[t.name], data.masks[t.name]) for t in self.tasks}

    @torch.no_grad()
    def loss_on(self, data: MultiTaskData) -> dict[str, float]:
        out = self.predict_raw(data)
        return {t.name: float(t.compute_loss(out[t.name], data.targets[t.name], data.masks[t.name]))
                for t in self.tasks}

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs (tensors and JSON-able values only)."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict() if self.optimizer else None,
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "weighting": self.weighting.state_dict(),
            "aggregator": self.aggregator.state_dict() if self.aggregator is not None else None,
            "sampler": self.sampler.state_dict() if hasattr(self.sampler, "state_dict") else None,
            "schedule": self.schedule.state_dict() if hasattr(self.schedule, "state_dict") else None,
            "generator": self.generator.get_state(),
            "method_generator": self.method_generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": np.random.get_state(),
            "python_rng": random.getstate(),
            "epoch": self.epoch,
            "step": self.step_count,
            "history": self.history.records,
            "best_epoch": self.history.best_epoch,
            "stopped_early": self.history.stopped_early,
            "nonfinite_skipped": self.nonfinite_skipped,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        if state.get("optimizer") and self.optimizer is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        if state.get("scheduler") and self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.weighting.load_state_dict(state["weighting"])
        if self.aggregator is not None and state.get("aggregator") is not None:
            self.aggregator.load_state_dict(state["aggregator"])
        if state.get("sampler") is not None and hasattr(self.sampler, "load_state_dict"):
            self.sampler.load_state_dict(state["sampler"])
        if state.get("schedule") is not None and hasattr(self.schedule, "load_state_dict"):
            self.schedule.load_state_dict(state["schedule"])
        self.generator.set_state(state["generator"])
        self.method_generator.set_state(state["method_generator"])
        torch.set_rng_state(state["torch_rng"])
        np.random.set_state(state["numpy_rng"])
        random.setstate(state["python_rng"])
        self.epoch = int(state["epoch"])
        self.step_count = int(state["step"])
        self.history = History(records=list(state.get("history", [])), best_epoch=state.get("best_epoch"),
                               stopped_early=bool(state.get("stopped_early", False)))
        self.nonfinite_skipped = int(state.get("nonfinite_skipped", 0))


def _check_monitor(monitor: str, tasks: Sequence[Task]) -> None:
    """``monitor`` is ``"task"`` or ``"task:metric"`` naming a task and one of its metrics."""
    task, _, metric = monitor.partition(":")
    spec = next((t for t in tasks if t.name == task), None)
    if spec is None:
        raise ValueError(f"The 'monitor' {monitor!r} names unknown task {task!r}; tasks are "
                         f"{[t.name for t in tasks]}.")
    names = [m.name for m in spec.metrics]
    if metric and metric not in names:
        raise ValueError(f"The 'monitor' {monitor!r} names unknown metric {metric!r} of task {task!r}; "
                         f"its metrics are {names}.")


@torch.no_grad()
def predict_raw(model: nn.Module, data: MultiTaskData | Tensor, *, batch_size: int = 1024,
                device: str | torch.device = "cpu") -> dict[str, Tensor]:
    """Raw outputs per task of ``model`` on all samples of ``data``, in eval mode."""
    was = model.training
    model.eval()
    x_all = data.x if isinstance(data, MultiTaskData) else torch.as_tensor(data)
    chunks: dict[str, list[Tensor]] = {}
    try:
        for s in range(0, x_all.shape[0], batch_size):
            out = model(x_all[s:s + batch_size].to(device))
            for k, v in out.items():
                chunks.setdefault(k, []).append(v.detach().cpu())
    finally:
        model.train(was)
    return {k: torch.cat(v) for k, v in chunks.items()}


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Tensor):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


class _Progress:
    """A rich progress bar showing per-task running losses (silent when disabled)."""

    def __init__(self, enabled: bool, label: str, total: int | None) -> None:
        self.enabled, self.label, self.total = enabled, label, total
        self._p: Progress | None = None
        self._n = 0

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                               TimeElapsedColumn(), TextColumn("{task.fields[losses]}"), transient=False)
            self._p.__enter__()
            self._id = self._p.add_task(self.label, total=self.total, losses="")
        return self

    def advance(self, names: list[str], losses: list[float]) -> None:
        if self._p is None:
            return
        self._n += 1
        if self._n % 10 == 1 or self._n == self.total:
            txt = " ".join(f"{n}={v:.3f}" for n, v in zip(names[:6], losses[:6]))
            self._p.update(self._id, completed=self._n, losses=txt)

    def __exit__(self, *exc: Any) -> None:
        if self._p is not None:
            self._p.update(self._id, completed=self._n)
            self._p.__exit__(*exc)


def _check_gradients_at(model: nn.Module, weighting: Weighting) -> None:
    """Refuse, before any training, a weighting whose gradients are taken at a part of the
    model that this model does not have (``Weighting.gradients_at``)."""
    where = getattr(weighting, "gradients_at", None)
    name = type(weighting).__name__
    arch = type(model).__name__
    if where == "representation" and not getattr(model, "has_representation", False):
        raise ValueError(f"{name} needs one shared representation that every task head reads; the model "
                         f"{arch} has none (has_representation is False, as for {NO_REPRESENTATION}). "
                         f"Use hard_sharing, fusion or siamese.")
    if where in ("shared_parameters", "last_shared_parameters"):
        fn = getattr(model, where, None)
        if fn is None and where == "last_shared_parameters":
            fn = getattr(model, "shared_parameters", None)
        params = [p for p in fn() if p.requires_grad] if callable(fn) else []
        if not params:
            what = "shared parameters" if where == "shared_parameters" else "last shared layer"
            raise ValueError(f"{name} measures the task gradients on the model's {what} ({where}()); the "
                             f"model {arch} has no shared parameters (e.g. soft_sharing keeps one column per "
                             f"task). Use a loss weighting without gradients (uncertainty, dwa, famo ...) "
                             f"or an architecture with a shared trunk.")
