"""The Trainer: a model, its tasks, the methods, the settings, a communication object and
hooks, put together. The step lives in :mod:`~mtlkit.training.step`, the epoch loop in
:mod:`~mtlkit.training.loop`, everything optional in :mod:`~mtlkit.training.callbacks`, the
options in :class:`~mtlkit.training.settings.TrainerSettings`. It reads capability flags of the
weighting / aggregator / schedule, never their names."""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mtlkit import _batch
from mtlkit.aggregation._base import Aggregator
from mtlkit.data._dataset import MultiTaskData, batch_starts
from mtlkit.jacobian import jacobian
from mtlkit.tasks import Task, check_tasks
from mtlkit.training import loop, state, step
from mtlkit.training.callbacks import (
    Callback,
    Checkpoints,
    ConflictHook,
    MetricsFile,
    NonFiniteGuard,
    NonFiniteLossError,
    ProgressBar,
    as_callback,
)
from mtlkit.training.checkpoint import CheckpointManager
from mtlkit.training.comm import Comm
from mtlkit.training.compat import check_components, conflicts_site
from mtlkit.training.loop import History
from mtlkit.training.monitor import ConflictMonitor
from mtlkit.training.precision import Precision
from mtlkit.training.settings import (
    TrainerSettings,
    make_optimizer,
    make_scheduler,
    seed_everything,
)
from mtlkit.weighting._base import Weighting
from mtlkit.weighting.equal import Equal
from mtlkit.weighting.static import Static

Batch = tuple[Tensor, dict[str, Tensor], dict[str, Tensor]]

__all__ = ["Batch", "History", "NonFiniteLossError", "Trainer", "predict_raw", "seed_everything"]


class Trainer:
    """Train any multi-task model (``forward(x) -> {task: Tensor}``) on :class:`MultiTaskData`.

    Args:
        model: the model. Models with ``has_representation`` (all mtlkit architectures)
            support representation-level gradient methods and the cheap conflict monitor.
        tasks: the task specs. Each ``Task.weight`` is the task's prior λ_k (default 1, or
            0.1 for an auxiliary task): a named weighting sees λ_k L_k, whichever it is, so the
            effective weight is λ_k · w_k; with none named the objective is Σ λ_k L_k.
        weighting: a loss-space :class:`~mtlkit.weighting.Weighting` (default: Static from the
            tasks' λ, i.e. Equal when every λ is 1).
        aggregator: a gradient-space :class:`~mtlkit.aggregation.Aggregator` (default none:
            one backward of the weighted sum).
        sampler: an object with ``batches(data, batch_size, generator, epoch)`` yielding
            batches (default: shuffled passes over the data).
        schedule: an object with ``select(step, present, ctx) -> bool (K,)`` choosing the
            tasks optimised at a step (default: every task with labels in the batch).
        callbacks: :class:`~mtlkit.training.callbacks.Callback` objects, or callables
            ``cb(trainer, record)`` run after each epoch.
        settings: a :class:`~mtlkit.training.settings.TrainerSettings`; or give its fields as
            keyword arguments (``lr=3e-3, epochs=5``): ``level`` (``parameters`` | ``representation``),
            ``optimizer``/``lr``/``weight_decay``/``momentum``, ``scheduler``, ``clip_grad_norm``,
            ``epochs``, ``batch_size``, ``eval_batch_size``, ``patience`` (early stopping; the
            best epoch's weights are restored when validation data is given), ``monitor``
            (``"task:metric"``; default the single primary task's main metric, else the mean
            relative improvement of the primary tasks against epoch 1), ``seed``, ``device``,
            ``progress``, ``monitor_conflicts`` (gradient-conflict statistics per epoch, on the
            shared representation or the last shared layer: ``conflicts_at``),
            ``jacobian_engine``, ``jacobian_block_size``, ``gramian_engine``, ``precision`` (``fp32`` | ``bf16`` |
            ``fp16``), ``compile``, ``max_nonfinite_steps``, ``checkpoint_every``,
            ``keep_checkpoints``, ``sync_batch_norm``.
        comm: the :class:`~mtlkit.training.comm.Comm` (default: one process;
            :class:`~mtlkit.training.DistributedTrainer` passes a process group's).
        run_dir: when given, one JSON line per epoch is appended to ``metrics.jsonl`` there.
        checkpoint_dir: write crash-safe checkpoints there (every epoch, and every
            ``checkpoint_every`` steps), keeping the last ``keep_checkpoints``.
        config_hash: recorded in the checkpoints' manifest.
    """

    def __init__(self, model: nn.Module, tasks: Sequence[Task], *, weighting: Weighting | None = None,
                 aggregator: Aggregator | None = None, sampler: Any = None, schedule: Any = None,
                 callbacks: Sequence[Any] = (), settings: TrainerSettings | None = None,
                 comm: Comm | None = None, run_dir: str | Path | None = None,
                 checkpoint_dir: str | Path | None = None, config_hash: str | None = None,
                 **options: Any) -> None:
        self.settings = TrainerSettings.resolve(settings, options)
        self.tasks = check_tasks(tasks)
        self.task_names = [t.name for t in self.tasks]
        self.model = model
        lam = [float(t.weight if t.weight is not None else 1.0) for t in self.tasks]
        # the prior λ: with no weighting named it is the weighting itself (Static, or Equal when
        # every λ is 1); a named weighting sees the losses λ_k L_k
        self.prior = torch.tensor(lam if weighting is not None else [1.0] * len(lam))
        if weighting is None:
            weighting = Equal() if all(v == 1.0 for v in lam) else Static(weights=dict(zip(self.task_names, lam)))
        self.weighting = weighting
        self.aggregator, self.sampler, self.schedule = aggregator, sampler, schedule
        check_components(model, self.settings, weighting=self.weighting, aggregator=aggregator,
                         schedule=schedule, sampler=sampler, tasks=self.tasks)
        self.device = torch.device(self.settings.device)
        self.precision = Precision(self.settings.precision, self.device)
        self.plan = step.StepPlan(deferred=False, prior=None)  # decided at setup
        self.comm = comm if comm is not None else Comm()
        self.history = History()
        self.step_count = self.epoch = 0
        self.generator = torch.Generator().manual_seed(self.settings.seed)
        self.method_generator = torch.Generator().manual_seed(self.settings.seed + 1)
        self.validation_generator = torch.Generator().manual_seed(self.settings.seed + 2)
        self.validation_data: MultiTaskData | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler: Any = None
        self.guard = NonFiniteGuard(self.settings.max_nonfinite_steps)
        self.resumed_from: str | None = None
        self.extended_from: int | None = None
        self.epoch_state: dict[str, Any] | None = None
        self.fit_state: dict[str, Any] | None = None
        self.step_losses: list[Tensor] | None = None
        self.num_batches: int | None = None
        self.shared: list[nn.Parameter] = []
        self.last_shared: list[nn.Parameter] = []
        self.trainable: list[nn.Parameter] = []
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.checkpoint_dir, self.config_hash = checkpoint_dir, config_hash
        self.conflicts_at = conflicts_site(model) if self.settings.monitor_conflicts else None
        self.user_callbacks = [as_callback(cb) for cb in callbacks]
        self.comm.attach(self)
        self.hooks: list[Callback] = self._build_hooks()

    def _build_hooks(self) -> list[Callback]:
        """The built-in hooks this trainer's settings ask for, then the user's callbacks."""
        hooks: list[Callback] = []
        self.conflict_hook = self.checkpoints = None
        if self.conflicts_at:
            self.conflict_hook = ConflictHook(self.comm.wrap_conflicts(ConflictMonitor(self.task_names)),
                                              self.conflicts_at)
            hooks.append(self.conflict_hook)
        if self.settings.progress and self.comm.is_writer:
            hooks.append(ProgressBar())
        hooks.append(MetricsFile())  # writes while run_dir is set (it may be set later)
        if self.checkpoint_dir is not None:
            manager = CheckpointManager(self.checkpoint_dir, keep=self.settings.keep_checkpoints,
                                        config_hash=self.config_hash)
            self.checkpoints = self.comm.wrap_checkpoints(manager)
            hooks.append(Checkpoints(self.checkpoints, self.settings.checkpoint_every))
        return hooks + self.user_callbacks

    def add_callback(self, callback: Any) -> None:
        """Add a hook (before fitting)."""
        cb = as_callback(callback)
        self.user_callbacks.append(cb)
        self.hooks.append(cb)

    # ------------------------------------------------------------------ settings as attributes
    def __getattr__(self, name: str) -> Any:  # trainer.lr, trainer.batch_size, ...
        settings = self.__dict__.get("settings")
        if settings is not None and name in TrainerSettings.__dataclass_fields__:
            return getattr(settings, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def epochs(self) -> int:
        return self.settings.epochs

    @epochs.setter
    def epochs(self, value: int) -> None:
        self.settings = self.settings.replace(epochs=value)

    @property
    def nonfinite_skipped(self) -> int:
        return self.guard.skipped

    @property
    def conflicts(self) -> Any:
        """The gradient-conflict monitor, or None when conflicts are not monitored."""
        return self.conflict_hook.monitor if self.conflict_hook is not None else None

    def components(self) -> dict[str, Any]:
        """The method objects (weighting, aggregator, sampler, schedule)."""
        return {"weighting": self.weighting, "aggregator": self.aggregator, "sampler": self.sampler,
                "schedule": self.schedule}

    def parts(self) -> dict[str, Any]:
        """Keyword arguments that build another trainer with the same methods, settings,
        communication object, folders and user callbacks: ``Other(model, tasks, **t.parts())``."""
        return {**self.components(), "settings": self.settings, "comm": self.comm, "run_dir": self.run_dir,
                "checkpoint_dir": self.checkpoint_dir, "config_hash": self.config_hash,
                "callbacks": list(self.user_callbacks)}

    # ------------------------------------------------------------------ setup
    def setup(self, train: MultiTaskData | None = None) -> None:
        """Prepare optimiser, scheduler and the methods (``fit`` and ``train_step`` call it)."""
        self.model.to(self.device)
        if self.settings.compile:
            self.model.compile()  # in place: the same module, its forward compiled on first use
        sizes = train.labelled_counts() if train is not None and hasattr(train, "labelled_counts") else None
        self.weighting.setup_from_tasks(self.tasks, sizes)
        self.weighting.to(self.device)  # after setup: per-task tensors are created there
        for obj in (self.sampler, self.schedule):
            fn = getattr(obj, "setup", None)
            if callable(fn):  # a method that declares needs_task_sizes gets the labelled counts
                fn(self.tasks, **({"task_sizes": sizes} if getattr(obj, "needs_task_sizes", False) else {}))
        params = list(self.model.parameters()) + self.weighting_parameters()
        if not any(p.requires_grad for p in params):
            raise ValueError(f"The model {type(self.model).__name__} has no trainable parameters.")
        s = self.settings
        self.optimizer = make_optimizer(s.optimizer, params, lr=s.lr, weight_decay=s.weight_decay,
                                        momentum=s.momentum)
        self.scheduler = make_scheduler(s.scheduler, self.optimizer, s.epochs)
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        shared_fn = getattr(self.model, "shared_parameters", None)
        self.shared = [p for p in shared_fn() if p.requires_grad] if callable(shared_fn) else []
        last_fn = getattr(self.model, "last_shared_parameters", None)
        self.last_shared = list(last_fn()) if callable(last_fn) else self.shared[-2:]
        self.plan = step.make_plan(self)
        self.comm.setup(self)

    def weighting_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.weighting.parameters() if p.requires_grad]

    # ------------------------------------------------------------------ the step
    def train_step(self, batch: Batch) -> step.StepResult:
        """One optimisation step (sets the trainer up first when needed). Returns a
        :class:`~mtlkit.training.step.StepResult`, which unpacks as (losses, weights, present)."""
        if self.optimizer is None:
            self.setup()
        return step.train_step(self, batch)

    def grad_fn(self, losses: Tensor | Sequence[Tensor], wrt: Sequence[Tensor]) -> Tensor:
        """Jacobians for gradient-reading weightings (GradNorm, DB-MTL), global over processes."""
        return self.comm.sync_jacobian(jacobian(losses, wrt, engine=self.settings.jacobian_engine),
                                       "weighting gradients")

    def _losses(self, out: Mapping[str, Tensor], ys: dict[str, Tensor], ms: dict[str, Tensor]
                ) -> tuple[Tensor, Tensor]:
        """Per-task losses (K,) and present mask (K,): :func:`~mtlkit.training.step.task_losses`."""
        return step.task_losses(self, out, ys, ms)

    def _batches(self, data: MultiTaskData, epoch: int) -> Iterator[Batch]:
        """This process's batches of an epoch (the sampler's, else shuffled passes)."""
        if self.sampler is not None:
            it = iter(self.sampler.batches(data, self.settings.batch_size, self.generator, epoch))
        else:
            it = data.iter_batches(self.settings.batch_size, shuffle=True, generator=self.generator,
                                   min_last=loop.min_last_batch(self.model, self.comm.size))
        return self.comm.batches(self, it)

    def _num_batches(self, data: MultiTaskData) -> int | None:
        if self.sampler is not None:
            n = getattr(self.sampler, "num_batches", None)
            return n(data, self.settings.batch_size) if callable(n) else None
        return len(batch_starts(len(data), self.settings.batch_size, loop.min_last_batch(self.model, self.comm.size)))

    # ------------------------------------------------------------------ fit
    def fit(self, train: MultiTaskData, val: MultiTaskData | None = None, *, resume: bool = False) -> History:
        """Train for ``epochs`` (or until early stopping) and return the :class:`History`.

        With ``resume=True`` and a ``checkpoint_dir``, training continues from the newest
        good checkpoint exactly where it stopped (mid-epoch included): same batches, same
        random numbers, same result as a run never interrupted; a finished run whose
        ``epochs`` is now larger continues to the new budget (``extended_from``). ``epochs`` is the
        total: after a fit, raise ``trainer.epochs`` and call ``fit`` again to train more (a
        ``fit`` with nothing left to train is an error that says so)."""
        return loop.fit(self, train, val, resume=resume)

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_now(self) -> None:
        """Write a checkpoint now (model, optimiser, methods, RNG, epoch position)."""
        hook = next((h for h in self.hooks if isinstance(h, Checkpoints)), None)
        if hook is None:
            return
        ep = self.epoch_state
        if ep is not None and self.conflict_hook is not None:
            ep["monitor"] = self.conflict_hook.monitor.state_dict()
        hook.save(self, {"trainer": self.state_dict(), "fit": self.fit_state, "epoch_state": ep})

    save_checkpoint = checkpoint_now

    def rng_states(self) -> dict[str, Any]:
        return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
                "method": self.method_generator.get_state()}

    def set_rng_states(self, st: dict[str, Any]) -> None:
        torch.set_rng_state(st["torch"])
        np.random.set_state(st["numpy"])
        random.setstate(st["python"])
        self.method_generator.set_state(st["method"])

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def predict_raw(self, data: MultiTaskData | Tensor) -> dict[str, Tensor]:
        """Raw outputs (logits / values) per task for every sample, in eval mode."""
        return predict_raw(self.model, data, batch_size=self.settings.eval_batch_size, device=self.device)

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
        return state.trainer_state(self)

    def load_state_dict(self, st: dict[str, Any]) -> None:
        state.load_trainer_state(self, st)

    def comm_stats(self) -> dict[str, dict[str, int]]:
        """Collectives issued by this trainer so far: calls and payload bytes per purpose
        (``losses``, ``jacobian``, ``gramian``, ``gradients`` ...). DDP's own gradient
        all-reduce is not included (it moves the model's gradient bytes once per step)."""
        return self.comm.stats()


@torch.no_grad()
def predict_raw(model: nn.Module, data: MultiTaskData | _batch.Inputs, *, batch_size: int = 1024,
                device: str | torch.device = "cpu") -> dict[str, Tensor]:
    """Raw outputs per task of ``model`` on all samples of ``data``, in eval mode."""
    was = model.training
    model.eval()
    x_all = data.x if isinstance(data, MultiTaskData) else _batch.as_inputs(data)  # a tensor or {name: tensor}
    chunks: dict[str, list[Tensor]] = {}
    try:
        for s in range(0, _batch.rows(x_all), batch_size):
            out = model(_batch.to_device(_batch.take(x_all, slice(s, s + batch_size)), device))
            for k, v in out.items():
                chunks.setdefault(k, []).append(v.detach().cpu())
    finally:
        model.train(was)
    return {k: torch.cat(v) for k, v in chunks.items()}

