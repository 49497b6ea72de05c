"""Similarity schedule: auxiliary tasks optimised with probability from their running gradient
cosine similarity with the primary task, never below a floor."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from mtlkit._checks import check_float
from mtlkit._registry import SCHEDULES
from mtlkit.tasks import Task
from mtlkit.training.schedules._base import Schedule
from mtlkit.weighting._base import StepContext


@SCHEDULES.register()
class Similarity(Schedule):
    """For a primary task: schedule each auxiliary task with probability max(ε, running cos).

    Du, Czarnecki, Jayakumar, Farajtabar, Pascanu & Lakshminarayanan (2018), "Adapting
    Auxiliary Losses Using Gradient Similarity" (arXiv:1812.02224): an auxiliary loss helps
    the main task when its gradient points the same way, so it is used only while
    cos(∇L_main, ∇L_aux) > 0 (their weighted variant scales it by max(0, cos)). The paper's
    rule is the gradient cosine alone; it involves no count of training samples. As a
    schedule: at every step the primary task is optimised, and each auxiliary task a is
    optimised with probability

        p_a = min(1, max(ε, s_a)),   s_a ← β s_a + (1 − β) cos(g_primary, g_a),

    a Bernoulli draw whose expectation is Du et al.'s weighted variant wherever s_a ≥ ε.

    The floor ε (``min_probability``, default 0.1) is ours. Du et al. gate only the auxiliary's
    contribution to the *shared* parameters; its own head is always trained on its loss, so its
    gradient can come to agree with the main task's. A schedule optimises a task entirely or
    not at all, so with ε = 0 an auxiliary whose randomly initialised head starts with a
    negative cosine is never trained, its head never changes and the cosine stays negative: an
    exact copy of the primary task was locked out this way with seed 1 (cosine −0.2 to −0.26).
    The floor keeps every auxiliary trainable; ε = 0 restores the paper's unfloored rule.

    The cosine is taken at representation level (gradients of the losses w.r.t. the shared
    representation of the batch, cheap: only the heads are differentiated) through
    ``ctx.grad_fn``; without a representation it falls back to the shared parameters (exact but
    one backward per task). Choices where the paper is silent: s_a starts at the first observed
    cosine (an auxiliary never measured has p_a = 1); the running mean (β = ``decay``) smooths
    the noisy per-batch cosine; s_a is updated only on batches where both tasks are present;
    the Bernoulli draws use the trainer's seeded ``ctx.generator`` (without one, torch's global
    generator).

    Needs the task losses of the step in ``ctx.extra["losses"]`` and the representation in
    ``ctx.representation`` (``needs_representation = True``). The epoch summary reports the
    probabilities and the running similarities s_a.

    Args:
        primary: the primary task's name.
        decay: β in [0, 1) of the running mean of the cosine.
        min_probability: ε in [0, 1], the floor on every auxiliary's probability (0: Du et
            al.'s rule without a floor).

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
    >>> {k: round(v, 4) for k, v in s.similarities().items()}
    {'aux1': 0.7071, 'aux2': -1.0}
    >>> {k: round(v, 4) for k, v in s.probabilities().items()}  # aux2 opposed: the floor
    {'aux1': 0.7071, 'aux2': 0.1}
    """

    paper = "Du et al. 2018, Adapting Auxiliary Losses Using Gradient Similarity"
    needs_representation = True
    #: compares the primary's gradient with the auxiliaries' in the same batch
    min_tasks_per_step = 2

    def __init__(self, *, primary: str, decay: float = 0.9, min_probability: float = 0.1) -> None:
        super().__init__()
        if not isinstance(primary, str) or not primary:
            raise ValueError(f"The 'primary' parameter of Similarity must be a task name. Got {primary!r}.")
        self.primary = primary
        self.decay = check_float("Similarity", "decay", decay, low=0.0, high=1.0, high_open=True)
        self.min_probability = check_float("Similarity", "min_probability", min_probability,
                                           low=0.0, high=1.0)
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
        """p_a = min(1, max(ε, s_a)); 1 for an auxiliary not measured yet."""
        s = self._sim.get(task)
        if s is None:
            return 1.0
        return min(1.0, max(self.min_probability, s))

    def probabilities(self) -> dict[str, float] | None:
        if self._aux is None:
            return None
        return {a: self.probability(a) for a in self._aux}

    def similarities(self) -> dict[str, float]:
        """The running cosine s_a of every auxiliary measured so far."""
        return dict(self._sim)

    def epoch_summary(self) -> dict[str, Any]:
        out = super().epoch_summary()
        out["similarity"] = self.similarities()
        return out

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
            out[k] = float(torch.rand((), generator=g, dtype=torch.float64)) < p
        return out

    def extra_state(self) -> dict[str, Any]:
        return {"similarity": dict(self._sim)}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        self._sim = {k: float(v) for k, v in state.get("similarity", {}).items()}
