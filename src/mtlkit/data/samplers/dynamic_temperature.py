"""Dynamic task sampling: p_t updated every epoch from each task's gap to its reference."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from mtlkit._registry import SAMPLERS
from mtlkit.data.samplers._base import TaskSampler, check_positive, size_probabilities
from mtlkit.data.samplers._gap import PerformanceGap, check_references, validation_metrics
from mtlkit.tasks import Task


@SAMPLERS.register()
class DynamicTemperature(TaskSampler):
    """Sample tasks in proportion to how far they lag their single-task reference.

    Gottumukkala, Dua, Singh & Gardner (2020), "Dynamic Sampling Strategies for Multi-Task
    Reading Comprehension" (ACL 2020): after every epoch, each task's sampling probability is
    set proportional to the gap between its single-task performance and the multi-task
    model's current validation performance, so the tasks being forgotten are revisited.
    Until the first validation (and whenever no task lags) the sampler falls back to the static
    temperature distribution of Arivazhagan et al. (2019), p_t ∝ n_t^{1/T}.

    The formula followed, with c_t the validation value of task t's metric after the epoch
    and r_t its reference (a single-task baseline or a target):

        g_t = max(0, (r_t − c_t) / |r_t|)            (sign flipped for lower-is-better metrics)
        q_t = g_t^{1/T} / Σ_j g_j^{1/T}
        p_t = ε + (1 − K ε) q_t

    Choices where the paper is silent or specific to its setting: the gap is relative to
    |r_t| (the paper's tasks all use EM/F1 on one scale; dividing makes mixed metrics
    comparable, as in Sharma et al. 2017's normalised gap); the temperature T sharpens
    (T < 1) or flattens (T > 1) the gap distribution, T = 1 being the paper's rule; the floor
    ε (``min_probability``, default 0 as in the paper) keeps tasks that reached their reference
    from vanishing; a task whose metric is missing (NaN) gets gap 0.

    Args:
        references: ``{task: value}`` or ``{task: {metric: value}}`` (e.g. the single-task
            baselines' validation metrics); may be given later with :meth:`set_references`.
        metric: the validation metric compared (one name, ``{task: name}``, or None for each
            task's main metric).
        temperature: T > 0, for the gap distribution and for the size-based fallback.
        min_probability: ε in [0, 1/K].
        epoch_budget: ``"sum"`` | ``"largest"`` | steps per epoch (see :class:`TaskSampler`).
        exclusive: mask every task but the drawn one in its batch.

    >>> s = DynamicTemperature(references={"a": 0.8, "b": 0.9}, metric="accuracy")
    >>> s.probabilities({"a": 100, "b": 100})  # before any validation: ∝ n_t
    {'a': 0.5, 'b': 0.5}
    >>> s.on_epoch_end(0, {"val": {"a": {"accuracy": 0.6}, "b": {"accuracy": 0.85}}})
    >>> {k: round(v, 4) for k, v in s.probabilities({"a": 100, "b": 100}).items()}  # g = .25, .0556
    {'a': 0.8182, 'b': 0.1818}
    """

    paper = "Gottumukkala et al. 2020, Dynamic Sampling Strategies for Multi-Task Reading Comprehension"
    adaptive = True
    needs_references = True

    def __init__(self, *, references: Mapping[str, Any] | None = None,
                 metric: str | Mapping[str, str] | None = None, temperature: float = 1.0,
                 min_probability: float = 0.0, epoch_budget: str | int = "sum",
                 exclusive: bool = True) -> None:
        super().__init__(epoch_budget=epoch_budget, exclusive=exclusive)
        self.temperature = check_positive("DynamicTemperature", "temperature", temperature)
        if isinstance(min_probability, bool) or not isinstance(min_probability, (int, float)) \
                or not 0.0 <= float(min_probability) < 1.0:
            raise ValueError(f"The 'min_probability' parameter of DynamicTemperature must be a float "
                             f"in [0, 1/K]. Got {min_probability!r}.")
        self.min_probability = float(min_probability)
        self._gap = PerformanceGap("DynamicTemperature", references, metric)
        self.references = self._gap.references
        self.metric = metric
        self._gaps: dict[str, float] | None = None
        self._last_epoch: int | None = None

    def setup(self, tasks: Sequence[Task]) -> None:
        super().setup(tasks)
        self._gap.setup(tasks)

    @property
    def has_references(self) -> bool:
        """Whether the per-task references are known (else call :meth:`set_references`)."""
        return self._gap.references is not None

    def set_references(self, references: Mapping[str, Any]) -> None:
        """Set the per-task references (e.g. single-task baselines computed after construction)."""
        self._gap.references = check_references("DynamicTemperature", references)
        self.references = self._gap.references

    def on_epoch_end(self, epoch: int, record: Mapping[str, Any]) -> None:
        """Recompute the gaps from the epoch's validation metrics (a second call for the same
        epoch is ignored)."""
        if self._last_epoch == epoch:
            return
        val = validation_metrics(record)
        if val is None:
            return
        self._last_epoch = epoch
        gaps = self._gap.gaps(list(val), val)
        self._gaps = {k: (max(0.0, v) if math.isfinite(v) else 0.0) for k, v in gaps.items()}

    def probabilities(self, sizes: Mapping[str, int]) -> dict[str, float]:
        k = sum(1 for n in sizes.values() if n > 0)
        eps = self.min_probability
        if k * eps > 1.0 + 1e-12:
            raise ValueError(f"The 'min_probability' parameter of DynamicTemperature must be at most "
                             f"1/K = {1.0 / k:.4g} for K = {k} tasks. Got {eps!r}.")
        if self._gaps is not None:
            w = {t: (self._gaps.get(t, 0.0) ** (1.0 / self.temperature) if n > 0 else 0.0)
                 for t, n in sizes.items()}
            total = sum(w.values())
            if total > 0:
                return {t: (eps + (1.0 - k * eps) * w[t] / total) if sizes[t] > 0 else 0.0
                        for t in sizes}
        base = size_probabilities(sizes, self.temperature)
        return {t: (eps + (1.0 - k * eps) * base[t]) if sizes[t] > 0 else 0.0 for t in sizes}

    def epoch_summary(self) -> dict[str, dict[str, float]]:
        out = super().epoch_summary()
        if self._gaps is not None:
            out["gaps"] = dict(self._gaps)
        return out

    def extra_state(self) -> dict[str, Any]:
        return {"gaps": self._gaps, "last_epoch": self._last_epoch, "references": self.references}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        self._gaps = dict(state["gaps"]) if state.get("gaps") is not None else None
        self._last_epoch = state.get("last_epoch")
        if state.get("references") is not None:
            self.set_references(state["references"])
