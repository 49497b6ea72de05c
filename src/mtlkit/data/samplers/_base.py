"""The sampler contract: which task's data the next batch comes from.

A sampler turns a :class:`~mtlkit.data.MultiTaskData` (typically a
:class:`~mtlkit.data.multi.MultiTaskDataset` of several per-task datasets) into the batches
of one epoch. Every sampler here draws *per-task* batches:

1. the epoch's number of steps S is fixed by the ``epoch_budget`` rule;
2. S task indices are drawn i.i.d. from the task probabilities p (one
   ``torch.multinomial`` call on the trainer's seeded generator);
3. for each drawn task t, the next ``batch_size`` rows of a shuffled pass over t's labelled
   rows form the batch (a new shuffled pass starts when one is used up; the last batch of a
   pass may be smaller, so no row repeats within a pass).

With ``exclusive=True`` (the default) every other task is masked in the batch, so each step
optimises exactly the drawn task (the multi-task sampling recipe of MT-DNN and multilingual
NMT); with ``exclusive=False`` the other labels the rows happen to carry are kept.

Subclasses implement :meth:`TaskSampler.probabilities` (from the per-task sizes n_t);
adaptive ones also :meth:`TaskSampler.on_epoch_end`. The realised number of batches per task
is reported by :meth:`TaskSampler.epoch_summary` for the run record.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

from mtlkit._batch import Inputs
from mtlkit._checks import check_bool, check_choice, check_int
from mtlkit._params import HasParams
from mtlkit.data._dataset import MultiTaskData
from mtlkit.data.multi import labelled_rows, restrict_to_task
from mtlkit.tasks import Task

Batch = tuple[Inputs, dict[str, Tensor], dict[str, Tensor]]  # inputs: a tensor or {name: tensor}
BUDGETS = ("sum", "largest")


def epoch_steps(sizes: Mapping[str, int], batch_size: int, epoch_budget: str | int) -> int:
    """Steps per epoch under a budget rule.

    ``"sum"``: ⌈Σ_t n_t / B⌉ (one pass over the sum of the datasets); ``"largest"``:
    ⌈max_t n_t / B⌉ (as many batches as one pass over the largest dataset); an integer: that
    fixed number of steps.

    >>> epoch_steps({"a": 100, "b": 30}, 32, "sum"), epoch_steps({"a": 100, "b": 30}, 32, "largest")
    (5, 4)
    """
    if isinstance(epoch_budget, int) and not isinstance(epoch_budget, bool):
        return int(epoch_budget)
    total = sum(sizes.values()) if epoch_budget == "sum" else max(sizes.values(), default=0)
    return max(1, math.ceil(total / batch_size))


def check_budget(owner: str, epoch_budget: Any) -> str | int:
    """The ``epoch_budget`` of a sampler: one of :data:`BUDGETS` or a number of steps."""
    what = "'sum', 'largest' or a positive integer (steps per epoch)"
    if isinstance(epoch_budget, str):
        return check_choice(owner, "epoch_budget", epoch_budget, options=BUDGETS, what=what)
    return check_int(owner, "epoch_budget", epoch_budget, low=1, what=what)


def size_probabilities(sizes: Mapping[str, int], temperature: float) -> dict[str, float]:
    """p_t ∝ n_t^{1/T} over the tasks with n_t > 0 (T = ∞ gives uniform).

    >>> size_probabilities({"a": 900, "b": 100}, 2.0)
    {'a': 0.75, 'b': 0.25}
    """
    names = list(sizes)
    n = torch.tensor([float(sizes[k]) for k in names], dtype=torch.float64)
    if math.isinf(temperature):
        w = (n > 0).double()
    else:
        w = torch.where(n > 0, n.clamp_min(1e-300) ** (1.0 / temperature), torch.zeros_like(n))
    if float(w.sum()) <= 0:
        raise ValueError(f"No task has a labelled sample: sizes {dict(sizes)}.")
    return dict(zip(names, (w / w.sum()).tolist()))


class _Stream:
    """Shuffled passes over one task's labelled rows."""

    def __init__(self, rows: Tensor) -> None:
        self.rows = rows
        self.order: Tensor | None = None
        self.pos = 0

    def take(self, n: int, generator: torch.Generator) -> Tensor:
        if self.order is None or self.pos >= len(self.order):
            self.order = self.rows[torch.randperm(len(self.rows), generator=generator)]
            self.pos = 0
        out = self.order[self.pos:self.pos + n]
        self.pos += len(out)
        return out


class TaskSampler(HasParams):
    """Base class of the task samplers (see the module docstring).

    Args:
        epoch_budget: ``"sum"`` (one pass over the sum of the task sizes), ``"largest"``
            (one pass over the largest) or a fixed number of steps per epoch.
        exclusive: mask every task but the drawn one in its batch.
    """

    #: citation shown by ``mtlkit list``
    paper: ClassVar[str] = ""
    #: updates its probabilities from validation metrics in :meth:`on_epoch_end`
    adaptive: ClassVar[bool] = False
    #: needs a reference score per task (single-task baselines or targets)
    needs_references: ClassVar[bool] = False

    def __init__(self, *, epoch_budget: str | int = "sum", exclusive: bool = True) -> None:
        self.epoch_budget = check_budget(type(self).__name__, epoch_budget)
        self.exclusive = check_bool(type(self).__name__, "exclusive", exclusive)
        self._streams: dict[str, _Stream] = {}
        self._counts: dict[str, int] = {}
        self._probs: dict[str, float] = {}
        self._tasks: list[Task] | None = None
        self._epoch_start: dict[str, Any] | None = None

    # ------------------------------------------------------------------ capabilities
    @property
    def max_tasks_per_batch(self) -> int | None:
        """1 when each batch trains one task (``exclusive``), else None (no limit)."""
        return 1 if self.exclusive else None

    def setup(self, tasks: Sequence[Task]) -> None:
        """Called once with the Task specs (adaptive samplers read their metrics)."""
        self._tasks = list(tasks)

    # ------------------------------------------------------------------ probabilities
    def probabilities(self, sizes: Mapping[str, int]) -> dict[str, float]:  # pragma: no cover
        """Task probabilities for the next epoch, from the labelled rows per task."""
        raise NotImplementedError

    @staticmethod
    def sizes_of(data: MultiTaskData) -> dict[str, int]:
        return {k: len(v) for k, v in labelled_rows(data).items()}

    def num_batches(self, data: MultiTaskData, batch_size: int) -> int:
        return epoch_steps(self.sizes_of(data), batch_size, self.epoch_budget)

    # ------------------------------------------------------------------ the epoch
    def task_sequence(self, sizes: Mapping[str, int], steps: int,
                      generator: torch.Generator) -> list[str]:
        """The tasks of ``steps`` batches: i.i.d. draws from :meth:`probabilities` (tasks with no
        labelled row are never drawn). Records the probabilities for :meth:`epoch_summary`."""
        probs = self.probabilities(sizes)
        names = list(sizes)
        p = torch.tensor([float(probs.get(k, 0.0)) if sizes[k] > 0 else 0.0 for k in names],
                         dtype=torch.float64)
        if not bool(torch.isfinite(p).all()) or bool((p < 0).any()) or float(p.sum()) <= 0:
            raise ValueError(f"{type(self).__name__} produced invalid task probabilities {probs} "
                             f"for task sizes {dict(sizes)}.")
        p = p / p.sum()
        self._probs = dict(zip(names, p.tolist()))
        draws = torch.multinomial(p, steps, replacement=True, generator=generator)
        return [names[i] for i in draws.tolist()]

    def batches(self, data: MultiTaskData, batch_size: int, generator: torch.Generator | None,
                epoch: int) -> Iterator[Batch]:
        """The per-task batches of one epoch (see the module docstring)."""
        if generator is None:
            generator = torch.Generator().manual_seed(epoch)
        rows = labelled_rows(data)
        sizes = {k: len(v) for k, v in rows.items()}
        for k in sizes:  # (re)start a stream when the task's rows changed
            s = self._streams.get(k)
            if s is None or len(s.rows) != len(rows[k]) or not torch.equal(s.rows, rows[k]):
                self._streams[k] = _Stream(rows[k])
        # a checkpoint taken mid-epoch stores the streams as they were here, so that replaying
        # the epoch from the generator state at its start reproduces the same batches
        self._epoch_start = self._streams_state()
        steps = epoch_steps(sizes, batch_size, self.epoch_budget)
        plan = self.task_sequence(sizes, steps, generator)
        self._counts = dict.fromkeys(sizes, 0)
        for t in plan:
            idx = self._streams[t].take(batch_size, generator)
            self._counts[t] += 1
            b = data.batch(idx)
            yield restrict_to_task(b, t) if self.exclusive else b
        self._epoch_start = None

    def on_epoch_end(self, epoch: int, record: Mapping[str, Any]) -> None:
        """Called after each epoch's evaluation with the epoch record (adaptive samplers)."""

    def epoch_summary(self) -> dict[str, dict[str, float]]:
        """The last epoch's task probabilities and realised batch counts per task."""
        return {"probabilities": dict(self._probs), "counts": dict(self._counts)}

    # ------------------------------------------------------------------ state
    def _streams_state(self) -> dict[str, Any]:
        return {k: {"rows": s.rows.tolist(), "order": None if s.order is None else s.order.tolist(),
                    "pos": s.pos} for k, s in self._streams.items()}

    def state_dict(self) -> dict[str, Any]:
        """JSON-able state. Mid-epoch, the per-task streams are those of the epoch's start (the
        trainer resumes a mid-epoch checkpoint by replaying the epoch's draws)."""
        streams = self._epoch_start if self._epoch_start is not None else self._streams_state()
        return {"streams": streams, "counts": dict(self._counts), "probabilities": dict(self._probs),
                **self.extra_state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._streams = {}
        for k, s in state.get("streams", {}).items():
            st = _Stream(torch.tensor(s["rows"], dtype=torch.long))
            st.order = None if s["order"] is None else torch.tensor(s["order"], dtype=torch.long)
            st.pos = int(s["pos"])
            self._streams[k] = st
        self._counts = dict(state.get("counts", {}))
        self._probs = dict(state.get("probabilities", {}))
        self._epoch_start = None
        self.load_extra_state(state)

    def extra_state(self) -> dict[str, Any]:
        return {}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        pass

    # ------------------------------------------------------------------ display
