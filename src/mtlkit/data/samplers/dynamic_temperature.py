"""Dynamic task sampling: p_t updated every epoch from each task's gap to its reference, with
a temperature that is constant or follows the per-epoch schedule of multilingual NMT."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from mtlkit._checks import check_choice, check_float, check_int
from mtlkit._registry import SAMPLERS
from mtlkit.data.samplers._base import TaskSampler, size_probabilities
from mtlkit.data.samplers._gap import PerformanceGap, check_references, validation_metrics
from mtlkit.tasks import Task

SCHEDULES = ("constant", "linear")


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

    where T is the epoch's temperature T_k (constant unless ``temperature_schedule`` says
    otherwise, below).

    Choices where the paper is silent or specific to its setting: the gap is relative to
    |r_t| (the paper's tasks all use EM/F1 on one scale; dividing makes mixed metrics
    comparable, as in Sharma et al. 2017's normalised gap); the temperature T sharpens
    (T < 1) or flattens (T > 1) the gap distribution, T = 1 being the paper's rule; the floor
    ε (``min_probability``, default 0 as in the paper) keeps tasks that reached their reference
    from vanishing; a task whose metric is missing (NaN) gets gap 0.

    The temperature is state, updated at every epoch end (``temperature_schedule``):

    * ``"constant"`` (default): T_k = T for every epoch k — the behaviour above.
    * ``"linear"``: the dynamic temperature of Wang, Zhai & Hassan Awadalla (2020),
      "Multi-task Learning for Multilingual Neural Machine Translation" (EMNLP 2020), which
      starts from a low temperature (the data sizes: high-resource languages first) and raises
      it every epoch for N warm-up epochs, oversampling the low-resource ones more and more:

          T_k = T_0 + (min(k, N) / N) · (T − T_0)      (k = 0, 1, ... the epoch index)

      with T_0 = ``initial_temperature``, T = ``temperature`` and N = ``warmup_epochs`` (the
      example command of the authors' code: T_0 = 1, T = 5, N = 5). The rule is a function of
      the epoch count only, not of validation results. Formula as in the authors' code
      (github.com/ywang07/multi-mt-mono, ``translation_mtl_curr.py``, ``get_sampling_temperature``:
      T_0 + k (T − T_0) / N while k < N). Choices: the first epoch (k = 0) uses T_0, as the
      authors build the first epoch's data at the starting temperature; from k = N on T stays
      at the stated end point T (their code keeps the data drawn at k = N − 1, i.e. stops one
      step short of T); T_k applies wherever this sampler uses a temperature — the size
      distribution n_t^{1/T_k} of the paper and also the gap distribution g_t^{1/T_k}
      (Gottumukkala et al. have no temperature; T = 1 is their rule).

    The temperature of the epoch is logged in the epoch summary (``"temperature"``) and saved in
    :meth:`state_dict`, so a resumed run continues with the same temperature.

    Args:
        references: ``{task: value}`` or ``{task: {metric: value}}`` (e.g. the single-task
            baselines' validation metrics); may be given later with :meth:`set_references`.
        metric: the validation metric compared (one name, ``{task: name}``, or None for each
            task's main metric).
        temperature: T > 0, for the gap distribution and for the size-based fallback (the
            end point of the ``"linear"`` schedule).
        min_probability: ε in [0, 1/K].
        temperature_schedule: ``"constant"`` (T every epoch) or ``"linear"`` (Wang et al.
            2020: from T_0 to T over N epochs).
        initial_temperature: T_0 > 0, the first epoch's temperature under ``"linear"``.
        warmup_epochs: N ≥ 1, the epochs ``"linear"`` takes to reach T.
        epoch_budget: ``"sum"`` | ``"largest"`` | steps per epoch (see :class:`TaskSampler`).
        exclusive: mask every task but the drawn one in its batch.

    >>> s = DynamicTemperature(references={"a": 0.8, "b": 0.9}, metric="accuracy")
    >>> s.probabilities({"a": 100, "b": 100})  # before any validation: ∝ n_t
    {'a': 0.5, 'b': 0.5}
    >>> s.on_epoch_end(0, {"val": {"a": {"accuracy": 0.6}, "b": {"accuracy": 0.85}}})
    >>> {k: round(v, 4) for k, v in s.probabilities({"a": 100, "b": 100}).items()}  # g = .25, .0556
    {'a': 0.8182, 'b': 0.1818}
    >>> w = DynamicTemperature(references={"a": 0.8, "b": 0.9}, metric="accuracy",
    ...                        temperature_schedule="linear", initial_temperature=1.0,
    ...                        temperature=5.0, warmup_epochs=4)
    >>> temps = [w.current_temperature]
    >>> for epoch in range(5):
    ...     w.on_epoch_end(epoch, {})
    ...     temps.append(w.current_temperature)
    >>> temps  # T_0 = 1 to T = 5 in N = 4 epochs, then constant
    [1.0, 2.0, 3.0, 4.0, 5.0, 5.0]
    """

    paper = ("Gottumukkala et al. 2020, Dynamic Sampling Strategies for Multi-Task Reading Comprehension; "
             "temperature schedule: Wang et al. 2020, Multi-task Learning for Multilingual NMT")
    adaptive = True
    needs_references = True

    def __init__(self, *, references: Mapping[str, Any] | None = None,
                 metric: str | Mapping[str, str] | None = None, temperature: float = 1.0,
                 min_probability: float = 0.0, epoch_budget: str | int = "sum",
                 exclusive: bool = True, temperature_schedule: str = "constant",
                 initial_temperature: float = 1.0, warmup_epochs: int = 5) -> None:
        super().__init__(epoch_budget=epoch_budget, exclusive=exclusive)
        self.temperature = check_float("DynamicTemperature", "temperature", temperature, low=0.0, low_open=True)
        self.temperature_schedule = check_choice("DynamicTemperature", "temperature_schedule",
                                                 temperature_schedule, options=SCHEDULES)
        self.initial_temperature = check_float("DynamicTemperature", "initial_temperature",
                                               initial_temperature, low=0.0, low_open=True)
        self.warmup_epochs = check_int("DynamicTemperature", "warmup_epochs", warmup_epochs, low=1)
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
        #: the temperature of the next epoch's draws, and of the last epoch drawn
        self._temperature = self.temperature_at(0)
        self._epoch_temperature: float | None = None

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

    def temperature_at(self, epoch: int) -> float:
        """T_k of epoch ``k`` (0-based) under ``temperature_schedule``."""
        if self.temperature_schedule == "constant":
            return self.temperature
        k = min(max(int(epoch), 0), self.warmup_epochs)
        return self.initial_temperature + k / self.warmup_epochs * (self.temperature - self.initial_temperature)

    @property
    def current_temperature(self) -> float:
        """The temperature of the next epoch's probabilities."""
        return self._temperature

    def on_epoch_end(self, epoch: int, record: Mapping[str, Any]) -> None:
        """Move the temperature to the next epoch's, T_{epoch+1}, and recompute the gaps from
        the epoch's validation metrics (a second call for the same epoch changes nothing)."""
        self._temperature = self.temperature_at(int(epoch) + 1)
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
        temp = self._temperature
        if self._gaps is not None:
            w = {t: (self._gaps.get(t, 0.0) ** (1.0 / temp) if n > 0 else 0.0)
                 for t, n in sizes.items()}
            total = sum(w.values())
            if total > 0:
                return {t: (eps + (1.0 - k * eps) * w[t] / total) if sizes[t] > 0 else 0.0
                        for t in sizes}
        base = size_probabilities(sizes, temp)
        return {t: (eps + (1.0 - k * eps) * base[t]) if sizes[t] > 0 else 0.0 for t in sizes}

    def task_sequence(self, sizes: Mapping[str, int], steps: int,
                      generator: torch.Generator) -> list[str]:
        self._epoch_temperature = self._temperature  # the temperature this epoch is drawn at
        return super().task_sequence(sizes, steps, generator)

    def epoch_summary(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(super().epoch_summary())
        out["temperature"] = self._epoch_temperature if self._epoch_temperature is not None \
            else self._temperature
        if self._gaps is not None:
            out["gaps"] = dict(self._gaps)
        return out

    def extra_state(self) -> dict[str, Any]:
        return {"gaps": self._gaps, "last_epoch": self._last_epoch, "references": self.references,
                "temperature": self._temperature, "epoch_temperature": self._epoch_temperature}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        self._gaps = dict(state["gaps"]) if state.get("gaps") is not None else None
        self._last_epoch = state.get("last_epoch")
        if state.get("references") is not None:
            self.set_references(state["references"])
        if state.get("temperature") is not None:  # absent from checkpoints written before it was state
            self._temperature = float(state["temperature"])
        e = state.get("epoch_temperature")
        self._epoch_temperature = None if e is None else float(e)
