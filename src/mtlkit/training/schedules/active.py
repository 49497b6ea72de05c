"""Active schedule (Sharma et al. 2017): tasks far from their target are optimised more."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from mtlkit._checks import check_int
from mtlkit._registry import SCHEDULES
from mtlkit.data.samplers._gap import PerformanceGap, check_references, validation_metrics
from mtlkit.tasks import Task
from mtlkit.training.schedules._base import Schedule, draw_without_replacement
from mtlkit.weighting._base import StepContext


@SCHEDULES.register()
class Active(Schedule):
    """Draw the optimised task(s) with probability increasing with the gap to a target.

    Sharma, Jha, Hegde & Ravindran (2017), "Learning to Multi-Task by Active Sampling"
    (arXiv:1702.06053; ICLR 2018), the adaptive method A5C: with target score ta_t and current
    score ca_t of task t,

        m_t = (ta_t − ca_t) / ta_t,        p_t = exp(m_t / τ) / Σ_j exp(m_j / τ),

    and the next task trained is drawn from p. Here ca_t is the task's validation metric after
    the last epoch (the paper averages the last episodes' scores; an epoch's validation value
    plays that role), the gap is divided by |ta_t| and its sign flipped for lower-is-better
    metrics, and p is updated once per epoch. Before the first validation, p is uniform. At a
    step, ``num_tasks`` distinct tasks are drawn from p restricted to the tasks present in the
    batch (renormalised), using the trainer's seeded ``ctx.generator``.

    Args:
        targets: ``{task: value}`` or ``{task: {metric: value}}``: per-task target scores
            (from the config, or the single-task baselines' validation metrics); may be given
            later with :meth:`set_references`.
        metric: the validation metric compared (one name, ``{task: name}``, or None for each
            task's main metric).
        temperature: τ > 0 of the softmax (small τ: almost always the task furthest behind;
            default 0.1, our choice).
        num_tasks: tasks optimised per step (1 as in the paper).

    >>> s = Active(targets={"a": 0.9, "b": 0.9}, metric="accuracy", temperature=0.1)
    >>> s.on_epoch_end(0, {"val": {"a": {"accuracy": 0.45}, "b": {"accuracy": 0.9}}})
    >>> {k: round(v, 4) for k, v in s.probabilities().items()}  # softmax([0.5, 0] / 0.1)
    {'a': 0.9933, 'b': 0.0067}
    """

    paper = "Sharma et al. 2017, Learning to Multi-Task by Active Sampling (A5C)"
    adaptive = True
    needs_references = True

    def __init__(self, *, targets: Mapping[str, Any] | None = None,
                 metric: str | Mapping[str, str] | None = None, temperature: float = 0.1,
                 num_tasks: int = 1) -> None:
        super().__init__()
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
                or not math.isfinite(temperature) or temperature <= 0:
            raise ValueError(f"The 'temperature' parameter of Active must be a positive float. "
                             f"Got {temperature!r}.")
        self.temperature = float(temperature)
        self.num_tasks = check_int("Active", "num_tasks", num_tasks, low=1)
        self._gap = PerformanceGap("Active", targets, metric)
        self.targets = self._gap.references
        self.metric = metric
        self._gaps: dict[str, float] | None = None
        self._names: list[str] | None = None
        self._last_epoch: int | None = None
        self._cache: tuple[list[str], Tensor] | None = None  # probabilities in the step's task order
        self._fallback = torch.Generator().manual_seed(0)

    @property
    def max_tasks_per_step(self) -> int:
        return self.num_tasks

    def setup(self, tasks: Sequence[Task]) -> None:
        super().setup(tasks)
        self._gap.setup(tasks)
        self._names = [t.name for t in tasks]

    @property
    def has_references(self) -> bool:
        """Whether the per-task references are known (else call :meth:`set_references`)."""
        return self._gap.references is not None

    def set_references(self, targets: Mapping[str, Any]) -> None:
        """Set the per-task targets (e.g. single-task baselines computed after construction)."""
        self._gap.references = check_references("Active", targets)
        self.targets = self._gap.references
        self._cache = None

    def on_epoch_end(self, epoch: int, record: Mapping[str, Any]) -> None:
        """Recompute the gaps m_t from the epoch's validation metrics (once per epoch)."""
        if self._last_epoch == epoch:
            return
        val = validation_metrics(record)
        if val is None:
            return
        self._last_epoch = epoch
        self._names = self._names or list(val)
        self._gaps = self._gap.gaps(self._names, val)
        self._cache = None

    def probabilities(self) -> dict[str, float] | None:
        if self._names is None:
            return None
        if self._gaps is None:
            return {t: 1.0 / len(self._names) for t in self._names}
        # a task without a finite validation value keeps the mean gap of the others
        finite = [v for v in self._gaps.values() if math.isfinite(v)]
        fill = sum(finite) / len(finite) if finite else 0.0
        m = torch.tensor([self._gaps[t] if math.isfinite(self._gaps[t]) else fill
                          for t in self._names], dtype=torch.float64)
        p = torch.softmax(m / self.temperature, dim=0)
        return dict(zip(self._names, p.tolist()))

    def choose(self, step: int, present: Tensor, ctx: StepContext, names: list[str]) -> Tensor:
        if self._names is None:
            self._names = list(names)
        if self._cache is None or self._cache[0] != names:
            probs = self.probabilities() or {}
            self._cache = (list(names), torch.tensor([probs.get(t, 0.0) for t in names], dtype=torch.float64))
        p = torch.where(present, self._cache[1], torch.zeros_like(self._cache[1]))
        out = torch.zeros_like(present)
        if float(p.sum()) <= 0:
            return out
        g = ctx.generator if ctx.generator is not None else self._fallback
        out[draw_without_replacement(p, self.num_tasks, g)] = True
        return out

    def extra_state(self) -> dict[str, Any]:
        return {"gaps": self._gaps, "names": self._names, "last_epoch": self._last_epoch,
                "targets": self.targets}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        self._gaps = dict(state["gaps"]) if state.get("gaps") is not None else None
        self._names = list(state["names"]) if state.get("names") is not None else self._names
        self._last_epoch = state.get("last_epoch")
        self._cache = None
        if state.get("targets") is not None:
            self.set_references(state["targets"])
