"""Similarity schedule: auxiliary tasks optimised according to their similarity to the primary
task. Default rule: MultiDDS (Wang, Tsvetkov & Neubig 2020), a sampling distribution that starts
at the task sizes and is moved by the gradient cosine with the primary task; option: Du et al.
(2018), the running gradient cosine alone. Every auxiliary keeps a floor probability."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from mtlkit._checks import check_choice, check_float
from mtlkit._registry import SCHEDULES
from mtlkit.tasks import Task
from mtlkit.training.schedules._base import Schedule
from mtlkit.weighting._base import StepContext

RULES = ("multidds", "gradient_cosine")


@SCHEDULES.register()
class Similarity(Schedule):
    """For a primary task: schedule each auxiliary task by its similarity to the primary task.

    **rule="multidds"** (default): Wang, Tsvetkov & Neubig (2020), "Balancing Training for
    Multilingual Neural Machine Translation", ACL (arXiv:2004.06748), MultiDDS. A distribution
    P(t) = softmax(ψ)_t over the K tasks starts at the size-based temperature distribution
    P₀(t) ∝ n_t^{1/T} (n_t: labelled training samples of task t) and, after each step, takes
    one REINFORCE step on the rewards R_t = cos(g_primary, g_t):

        ψ ← ψ + η Σ_t R_t ∇_ψ log P(t)      i.e.   ψ_j ← ψ_j + η (R_j − P(j) Σ_t R_t),

    so a task's share grows with its similarity to the primary task and starts from its number
    of training samples. As a schedule the primary task is optimised at every step and each
    auxiliary a with probability

        p_a = max(ε, min(1, P(a) / P(primary))),

    so the expected number of samples an auxiliary is trained on, relative to the primary
    task's, is MultiDDS's ratio P(a)/P(primary) (capped at 1: the primary is trained at every
    step), never below the floor ε.

    Choices where the paper is ambiguous or does not apply (stated, ours): the paper's "dev"
    gradient is the primary task's gradient on the *same* training batch (a schedule sees only
    the training batch), hence R_primary = cos(g_p, g_p) = 1; the rewards of the tasks present
    in the batch enter the sum (the paper samples one batch of every language per update);
    ψ is updated at every step where the primary task and an auxiliary are present, by plain
    gradient ascent with step η (``learning_rate``; the paper's "GradientUpdate" leaves the
    optimiser open); T (``temperature``, default 1: proportional to n_t) sets the initial
    distribution; without task sizes (a Trainer set up without training data) every n_t is
    taken equal. With a single primary task the paper's stabilised reward (MultiDDS-S, the
    mean cosine with each dev objective) equals this reward.

    **rule="gradient_cosine"**: Du, Czarnecki, Jayakumar, Farajtabar, Pascanu &
    Lakshminarayanan (2018), "Adapting Auxiliary Losses Using Gradient Similarity"
    (arXiv:1812.02224): p_a = max(ε, min(1, s_a)), s_a ← β s_a + (1 − β) cos(g_primary, g_a)
    (β = ``decay``; s_a starts at the first observed cosine; p_a = 1 until measured): a
    Bernoulli draw whose expectation is their weighted variant wherever s_a ≥ ε. Sizes play no
    part.

    The floor ε (``min_probability``, default 0.1) is ours, for both rules: a schedule trains a
    task entirely or not at all, so an auxiliary whose random head starts with a negative cosine
    would otherwise never be trained, its head (hence the cosine) would never change, and it
    would stay locked out (an exact copy of the primary task was, with seed 1 under Du et al.'s
    rule). ε = 0 gives the unfloored rules.

    Cosines are taken at representation level (gradients w.r.t. the batch's shared
    representation, through ``ctx.grad_fn``), else at the shared parameters. Draws use the
    trainer's seeded ``ctx.generator``. The epoch summary reports the probabilities p_a, the
    latest reward / running cosine per auxiliary (``"similarity"``) and, for MultiDDS, the
    distribution P (``"distribution"``). All of it is saved and restored on resume.

    Args:
        primary: the primary task's name.
        rule: ``"multidds"`` (sizes and similarity, default) or ``"gradient_cosine"`` (Du et al.).
        temperature: T > 0 of the initial distribution P₀ ∝ n^{1/T} (multidds).
        learning_rate: η ≥ 0, the step on ψ (multidds).
        decay: β in [0, 1) of the running mean of the cosine (gradient_cosine).
        min_probability: ε in [0, 1], the floor on every auxiliary's probability.

    >>> import torch
    >>> from mtlkit.jacobian import jacobian
    >>> rep = torch.ones(1, 2, requires_grad=True)
    >>> losses = torch.stack([rep[0, 0], rep[0, 0] + rep[0, 1], -rep[0, 0]])
    >>> ctx = StepContext(task_names=["main", "aux1", "aux2"], representation=rep,
    ...                   grad_fn=lambda ls, wrt: jacobian(ls, wrt), extra={"losses": losses},
    ...                   generator=torch.Generator().manual_seed(0))
    >>> s = Similarity(primary="main", learning_rate=1.0)
    >>> s.setup([Task(n, "regression") for n in ["main", "aux1", "aux2"]],
    ...         task_sizes={"main": 100, "aux1": 100, "aux2": 400})
    >>> {k: round(v, 4) for k, v in s.probabilities().items()}  # P₀ ∝ n: aux2 is 4× main
    {'aux1': 1.0, 'aux2': 1.0}
    >>> _ = s.select(0, torch.ones(3, dtype=torch.bool), ctx)  # rewards 1, 0.71, -1
    >>> {k: round(v, 4) for k, v in s.probabilities().items()}
    {'aux1': 0.7461, 'aux2': 0.3801}
    """

    paper = ("Wang, Tsvetkov & Neubig 2020, Balancing Training for Multilingual Neural Machine "
             "Translation (MultiDDS); rule='gradient_cosine': Du et al. 2018, Adapting Auxiliary "
             "Losses Using Gradient Similarity")
    needs_representation = True
    #: the Trainer passes the labelled training samples per task to :meth:`setup`
    needs_task_sizes = True
    #: compares the primary's gradient with the auxiliaries' in the same batch
    min_tasks_per_step = 2

    def __init__(self, *, primary: str, rule: str = "multidds", temperature: float = 1.0,
                 learning_rate: float = 0.01, decay: float = 0.9, min_probability: float = 0.1) -> None:
        super().__init__()
        if not isinstance(primary, str) or not primary:
            raise ValueError(f"The 'primary' parameter of Similarity must be a task name. Got {primary!r}.")
        self.primary = primary
        self.rule = check_choice("Similarity", "rule", rule, options=RULES)
        self.temperature = check_float("Similarity", "temperature", temperature, low=0.0, low_open=True)
        self.learning_rate = check_float("Similarity", "learning_rate", learning_rate, low=0.0)
        self.decay = check_float("Similarity", "decay", decay, low=0.0, high=1.0, high_open=True)
        self.min_probability = check_float("Similarity", "min_probability", min_probability,
                                           low=0.0, high=1.0)
        self._sim: dict[str, float] = {}
        self._psi: dict[str, float] = {}
        self._aux: list[str] | None = None

    def setup(self, tasks: Sequence[Task], task_sizes: Mapping[str, int] | None = None) -> None:
        super().setup(tasks)
        names = [t.name for t in tasks]
        self._check_primary(names)
        self._aux = [n for n in names if n != self.primary]
        if self.rule == "multidds" and not self._psi:
            self._init_psi(names, task_sizes)

    def _check_primary(self, names: list[str]) -> None:
        if self.primary not in names:
            raise ValueError(f"The 'primary' task {self.primary!r} of Similarity is not among the "
                             f"tasks {names}.")

    def _init_psi(self, names: list[str], sizes: Mapping[str, int] | None) -> None:
        """ψ₀ = log(n_t) / T, so softmax(ψ₀) ∝ n^{1/T} (equal n_t without sizes)."""
        if sizes is not None:
            missing = [n for n in names if n not in sizes]
            bad = {n: sizes[n] for n in names if n in sizes and not sizes[n] > 0}
            if missing or bad:
                raise ValueError(f"Similarity(rule='multidds') needs a positive number of training "
                                 f"samples for every task; missing {missing}, not positive {bad}.")
        self._psi = {n: (math.log(float(sizes[n])) if sizes is not None else 0.0) / self.temperature
                     for n in names}

    def distribution(self) -> dict[str, float]:
        """MultiDDS's P(t) = softmax(ψ)_t over all tasks ({} before setup or under Du's rule)."""
        if not self._psi:
            return {}
        names = list(self._psi)
        p = torch.softmax(torch.tensor([self._psi[n] for n in names], dtype=torch.float64), 0)
        return dict(zip(names, p.tolist(), strict=True))

    @torch.no_grad()
    def _cosines(self, names: list[str], idx: list[int], jac: Tensor) -> dict[str, float]:
        """cos(g_primary, g_t) of every present task t with a nonzero gradient (primary: 1)."""
        j = jac.detach().double()
        norms = j.norm(dim=1)
        row_p = idx.index(names.index(self.primary))
        if float(norms[row_p]) == 0.0:
            return {}
        return {names[k]: float(j[r] @ j[row_p] / (norms[r] * norms[row_p]))
                for r, k in enumerate(idx) if float(norms[r]) > 0.0}

    def _update(self, cos: Mapping[str, float]) -> None:
        aux = {a: c for a, c in cos.items() if a != self.primary}
        if not aux:
            return
        if self.rule == "gradient_cosine":
            for a, c in aux.items():
                prev = self._sim.get(a)
                self._sim[a] = c if prev is None else self.decay * prev + (1.0 - self.decay) * c
            return
        self._sim.update(aux)
        p = self.distribution()
        total = sum(cos.values())
        for t in self._psi:  # ψ_j += η (R_j − P(j) Σ_t R_t): the gradient of Σ_t R_t log P(t)
            self._psi[t] += self.learning_rate * (cos.get(t, 0.0) - p[t] * total)

    def probability(self, task: str) -> float:
        """p_a for an auxiliary: max(ε, min(1, P(a)/P(primary))) (multidds) or max(ε, min(1,
        s_a)) (gradient_cosine; 1 while not measured)."""
        if self.rule == "multidds":
            if not self._psi:
                return 1.0
            r = math.exp(self._psi[task] - self._psi[self.primary])
        else:
            s = self._sim.get(task)
            if s is None:
                return 1.0
            r = s
        return max(self.min_probability, min(1.0, r))

    def probabilities(self) -> dict[str, float] | None:
        if self._aux is None:
            return None
        return {a: self.probability(a) for a in self._aux}

    def similarities(self) -> dict[str, float]:
        """Per auxiliary measured so far: its latest reward cos(g_primary, g_a) (multidds) or its
        running cosine s_a (gradient_cosine)."""
        return dict(self._sim)

    def epoch_summary(self) -> dict[str, Any]:
        out = super().epoch_summary()
        out["similarity"] = self.similarities()
        if self.rule == "multidds":
            out["distribution"] = self.distribution()
        return out

    def _measure(self, present: Tensor, ctx: StepContext, names: list[str]) -> None:
        ip = names.index(self.primary)
        idx = present.nonzero()[:, 0].tolist()
        if not (present[ip] and len(idx) >= 2):
            return
        losses = ctx.extra.get("losses") if ctx.extra else None
        if losses is None or ctx.grad_fn is None:
            raise RuntimeError(
                "The Similarity schedule needs the step's task losses in ctx.extra['losses'] and "
                "ctx.grad_fn; the Trainer provides them for schedules with needs_representation = True."
            )
        if ctx.representation is not None:
            wrt: Sequence[Tensor] = [ctx.representation]
        elif ctx.shared_parameters:
            wrt = list(ctx.shared_parameters)
        else:
            raise RuntimeError("The Similarity schedule needs a shared representation or shared "
                               "parameters to compare task gradients; the model exposes neither.")
        self._update(self._cosines(names, idx, ctx.grad_fn([losses[k] for k in idx], wrt)))

    def choose(self, step: int, present: Tensor, ctx: StepContext, names: list[str]) -> Tensor:
        self._check_primary(names)
        if self._aux is None:
            self._aux = [n for n in names if n != self.primary]
        if self.rule == "multidds" and not self._psi:
            self._init_psi(names, ctx.task_sizes)
        self._measure(present, ctx, names)
        ip = names.index(self.primary)
        out = torch.zeros_like(present)
        out[ip] = present[ip]
        for k, a in enumerate(names):
            if k == ip or not present[k]:
                continue
            p = self.probability(a)
            out[k] = float(torch.rand((), generator=ctx.generator, dtype=torch.float64)) < p
        return out

    def extra_state(self) -> dict[str, Any]:
        return {"similarity": dict(self._sim), "psi": dict(self._psi)}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        self._sim = {k: float(v) for k, v in state.get("similarity", {}).items()}
        self._psi = {k: float(v) for k, v in state.get("psi", {}).items()}
