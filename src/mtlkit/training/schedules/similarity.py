"""Similarity schedule: auxiliary tasks optimised with probability from their running gradient
cosine similarity with the primary task."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from mtlkit._registry import SCHEDULES
from mtlkit.tasks import Task
from mtlkit.training.schedules._base import Schedule
from mtlkit.weighting._base import StepContext


@SCHEDULES.register()
class Similarity(Schedule):
    """For a primary task: schedule each auxiliary task with probability max(0, running cos).

    Du, Czarnecki, Jayakumar, Farajtabar, Pascanu & Lakshminarayanan (2018), "Adapting
    Auxiliary Losses Using Gradient Similarity" (arXiv:1812.02224): an auxiliary loss helps
    the main task when its gradient points the same way, so it is used only while
    cos(∇L_main, ∇L_aux) > 0 (their weighted variant scales it by max(0, cos)). As a schedule:
    at every step the primary task is optimised, and each auxiliary task a is optimised with
    probability

        p_a = min(1, max(ε, max(0, s_a))),   s_a ← β s_a + (1 − β) cos(g_primary, g_a),

    a Bernoulli draw whose expectation is Du et al.'s weighted variant. The cosine is taken
    at representation level (gradients of the losses w.r.t. the shared representation of the
    batch, cheap: only the heads are differentiated) through ``ctx.grad_fn``; without a
    representation it falls back to the shared parameters (exact but one backward per task).
    Choices: s_a starts at the first observed cosine (an auxiliary never measured has p_a = 1);
    the running mean (β = ``decay``) smooths the noisy per-batch cosine; s_a is updated only
    on batches where both tasks are present; the Bernoulli draws use the trainer's seeded
    ``ctx.generator`` (without one, an auxiliary is kept iff p_a > 0: Du et al.'s unweighted rule).

    Needs the task losses of the step in ``ctx.extra["losses"]`` and the representation in
    ``ctx.representation`` (``needs_representation = True``).

    Args:
        primary: the primary task's name.
        decay: β in [0, 1) of the running mean of the cosine.
        min_probability: ε in [0, 1], a floor on every auxiliary's probability.

    >>> import torch
    >>> rep = torch.ones(1, 2, requires_grad=True)
    >>> losses = torch.stack([rep[0, 0], rep[0, 0] + rep[0, 1], -rep[0, 0]])
    >>> from mtlkit.jacobian import jacobian
    >>> ctx = StepContext(task_names=["main", "aux1", "aux2"], representation=rep,
    ...                   grad_fn=lambda ls, wrt: jacobian(ls, wrt), extra={"losses": losses},
    ...                   generator=torch.Generator().manual_seed(0))
    >>> s = Similarity(primary="main")
    >>> s.select(0, torch.ones(3, dtype=torch.bool), ctx).tolist()  # aux1 drawn w.p. 0.71
    [True, False, False]
    >>> {k: round(v, 4) for k, v in s.probabilities().items()}
    {'aux1': 0.7071, 'aux2': 0.0}
    """

    paper = "Du et al. 2018, Adapting Auxiliary Losses Using Gradient Similarity"
    needs_representation = True
    #: compares the primary's gradient with the auxiliaries' in the same batch
    min_tasks_per_step = 2

    def __init__(self, *, primary: str, decay: float = 0.9, min_probability: float = 0.0) -> None:
        super().__init__()
        if not isinstance(primary, str) or not primary:
            raise ValueError(f"The 'primary' parameter of Similarity must be a task name. Got {primary!r}.")
        for name, v, hi_open in (("decay", decay, True), ("min_probability", min_probability, False)):
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) \
                and v >= 0.0 and (v < 1.0 if hi_open else v <= 1.0)
            if not ok:
                rng = "[0, 1)" if hi_open else "[0, 1]"
                raise ValueError(f"The '{name}' parameter of Similarity must be a float in {rng}. Got {v!r}.")
        self.primary = primary
        self.decay = float(decay)
        self.min_probability = float(min_probability)
        self._sim: dict[str, float] = {}
        self._aux: list[str] | None = None

    def setup(self, tasks: Sequence[Task]) -> None:
        super().setup(tasks)
        names = [t.name for t in tasks]
        self._check_primary(names)
        self._aux = [n for n in names if n != self.primary]

    def _check_primary(self, names: list[str]) -> None:
        if self.primary not in names:
            raise ValueError(f"The 'primary' task {self.primary!r} of Similarity is not among the "
                             f"tasks {names}.")

    @torch.no_grad()
    def _update(self, names: list[str], idx: list[int], jac: Tensor) -> None:
        j = jac.detach().double()
        norms = j.norm(dim=1)
        ip = names.index(self.primary)
        row_p = idx.index(ip)
        if float(norms[row_p]) == 0.0:
            return
        for r, k in enumerate(idx):
            if k == ip or float(norms[r]) == 0.0:
                continue
            cos = float(j[r] @ j[row_p] / (norms[r] * norms[row_p]))
            a = names[k]
            prev = self._sim.get(a)
            self._sim[a] = cos if prev is None else self.decay * prev + (1.0 - self.decay) * cos

    def probability(self, task: str) -> float:
        s = self._sim.get(task)
        if s is None:
            return 1.0
        return min(1.0, max(self.min_probability, max(0.0, s)))

    def probabilities(self) -> dict[str, float] | None:
        if self._aux is None:
            return None
        return {a: self.probability(a) for a in self._aux}

    def choose(self, step: int, present: Tensor, ctx: StepContext, names: list[str]) -> Tensor:
        self._check_primary(names)
        if self._aux is None:
            self._aux = [n for n in names if n != self.primary]
        ip = names.index(self.primary)
        idx = present.nonzero()[:, 0].tolist()
        if present[ip] and len(idx) >= 2:
            losses = ctx.extra.get("losses") if ctx.extra else None
            if losses is None or ctx.grad_fn is None:
                raise RuntimeError(
                    "The Similarity schedule needs the step's task losses in ctx.extra['losses'] and "
                    "ctx.grad_fn; the Trainer provides them for schedules with "
                    "needs_representation = True."
                )
            if ctx.representation is not None:
                wrt: Sequence[Tensor] = [ctx.representation]
            elif ctx.shared_parameters:
                wrt = list(ctx.shared_parameters)
            else:
                raise RuntimeError("The Similarity schedule needs a shared representation or shared "
                                   "parameters to compare task gradients; the model exposes neither.")
            jac = ctx.grad_fn([losses[k] for k in idx], wrt)
            self._update(names, idx, jac)
        g = ctx.generator
        out = torch.zeros_like(present)
        out[ip] = present[ip]
        for k, a in enumerate(names):
            if k == ip or not present[k]:
                continue
            p = self.probability(a)
            u = float(torch.rand((), generator=g, dtype=torch.float64)) if g is not None else 0.0
            out[k] = u < p
        return out

    def extra_state(self) -> dict[str, Any]:
        return {"similarity": dict(self._sim)}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        self._sim = {k: float(v) for k, v in state.get("similarity", {}).items()}
