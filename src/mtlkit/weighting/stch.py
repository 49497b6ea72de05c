"""STCH: smooth Tchebycheff scalarisation (Lin et al. 2024)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from mtlkit._checks import check_float, check_int
from mtlkit._registry import WEIGHTINGS
from mtlkit.weighting._base import (
    StepContext,
    Weighting,
    WeightingResult,
    present_of,
)


def stch_value(values: Tensor, mu: float, preference: Tensor | None = None,
               ideal: Tensor | None = None) -> Tensor:
    """The smooth Tchebycheff scalarisation of the paper (eq. 8 of the ICML version)::

        g_μ(f | λ) = μ · log Σ_i exp(λ_i (f_i − z_i*) / μ)

    of the objective values ``values`` f (K,), preference λ (default 1) and ideal point z*
    (default 0). It lies between max_i λ_i(f_i − z_i*) and that maximum + μ log K, so it tends
    to the Tchebycheff scalarisation as μ → 0; as μ → ∞ it is μ log K + mean_i λ_i(f_i − z_i*)
    + O(1/μ), whose gradient is the mean of the λ_i ∇f_i.

    >>> import torch
    >>> stch_value(torch.tensor([1.0, 3.0]), mu=0.01)  # ≈ max
    tensor(3.)
    """
    a = values if ideal is None else values - ideal
    if preference is not None:
        a = preference * a
    return mu * torch.logsumexp(a / mu, dim=0)


@WEIGHTINGS.register()
class STCH(Weighting):
    """Smooth Tchebycheff scalarisation of the log-losses, after a warm-up on Σ log L.

    Lin, Zhang, Yang, Liu, Wang & Zhang, "Smooth Tchebycheff Scalarization for Multi-Objective
    Optimization", ICML 2024 (https://arxiv.org/abs/2402.19078). The scalarisation of the
    paper, g_μ(f | λ) = μ log Σ_i exp(λ_i (f_i − z_i)/μ) (:func:`stch_value`), is applied as
    in the authors' multi-task code (github.com/Xi-L/STCH, ``STCH_MTL``, the same as LibMTL's
    ``STCH``), to the log-losses f_i = log(L_i + ε) with the reference point
    z_i = log(L̄_i + ε), L̄_i the task's mean batch loss over epoch ``warmup_epoch``:

    * epochs ``0 .. warmup_epoch − 1``: the objective is Σ_i log(L_i + ε) (weights 1/(L_i + ε));
    * epoch ``warmup_epoch``: the same, and every batch loss is added to L̄_i;
    * later epochs: ``K · μ · log Σ_i exp(λ_i log((L_i + ε)/(L̄_i + ε)) / μ)``, whose weights
      ∂/∂L_i are K·s_i·λ_i/(L_i + ε), s = softmax(λ_i log((L_i + ε)/(L̄_i + ε))/μ): the task
      that is worst *relative to its own warm-up loss* gets the largest share. The factor K
      keeps the scale of the warm-up objective (the shares s sum to 1, the K warm-up weights
      sum to K).

    So z* is not a running minimum of the losses: in log space the ideal point of a loss that
    can reach 0 is −∞; the authors normalise each loss by its warm-up mean instead, which
    makes the K objectives commensurable. The task priors λ_k·L_k the trainer passes cancel
    in log((λ_k L_k + ε)/(λ_k L̄_k + ε)) (up to ε): task priorities go in ``preference``.

    The phase is read from ``ctx.epoch``; the per-task sums and counts behind L̄ are state
    (``state_dict()``), so a resumed run continues exactly, mid-epoch included. A task absent from a batch is left
    out of the log-sum-exp (weight 0) and out of L̄; a task never present in the warm-up epoch
    gets L̄_i = 1 (no normalisation).

    Args:
        mu: μ > 0, the smoothing (official code and LibMTL: 1.0).
        warmup_epoch: the (0-based) epoch whose mean losses are L̄; it and the epochs before it
            use Σ log L, STCH starts with the next one (the official code's and LibMTL's
            ``STCH_warmup_epoch``, default 4: epochs 0–3 plain, epoch 4 plain + L̄, STCH from
            epoch 5).
        preference: λ_i > 0 per task (default 1 for every task, the authors' MTL setting).
        eps: ε > 0 in log(L + ε) (the official code adds 1e-20 inside the log).

    >>> import torch
    >>> w = STCH(mu=1.0, warmup_epoch=0); w.setup(["a", "b"])
    >>> w(torch.tensor([2.0, 4.0]), StepContext(epoch=0)).weights  # warm-up: 1/L
    tensor([0.5000, 0.2500])
    >>> w(torch.tensor([1.0, 2.0]), StepContext(epoch=1)).weights  # L/L̄ = (½, ½): K·½/L
    tensor([1.0000, 0.5000])
    """

    paper = ("Lin, Zhang, Yang, Liu, Wang & Zhang 2024, Smooth Tchebycheff Scalarization for "
             "Multi-Objective Optimization (ICML)")
    stateful = True

    def __init__(self, *, mu: float = 1.0, warmup_epoch: int = 4,
                 preference: Mapping[str, float] | None = None, eps: float = 1e-8) -> None:
        super().__init__()
        self.mu = check_float("STCH", "mu", mu, low=0.0, low_open=True)
        self.warmup_epoch = check_int("STCH", "warmup_epoch", warmup_epoch, low=0)
        if preference is not None:
            if not isinstance(preference, Mapping):
                raise ValueError(f"The 'preference' parameter of STCH must be a mapping "
                                 f"{{task: positive float}} or None. Got {preference!r}.")
            preference = {str(k): check_float("STCH", "preference", v, low=0.0, low_open=True,
                                              what=f"a mapping to positive floats (task {k!r})")
                          for k, v in preference.items()}
        self.preference = dict(preference) if preference is not None else None
        self.eps = check_float("STCH", "eps", eps, low=0.0, low_open=True)
        # Σ of the batch losses of each task over the warm-up epoch, and their count
        self.register_buffer("nadir_sum", torch.zeros(0, dtype=torch.float64))
        self.register_buffer("nadir_count", torch.zeros(0, dtype=torch.float64))

    def setup(self, task_names: Sequence[str], task_sizes: Mapping[str, int] | None = None) -> None:
        super().setup(task_names, task_sizes)
        if self.preference is not None:
            unknown = set(self.preference) - set(self.task_names)
            if unknown:
                raise ValueError(f"STCH preference names unknown task(s) {sorted(unknown)}; "
                                 f"tasks are {self.task_names}.")
        k = len(self.task_names)
        self.nadir_sum = torch.zeros(k, dtype=torch.float64)
        self.nadir_count = torch.zeros(k, dtype=torch.float64)

    def _preference(self, k: int, like: Tensor) -> Tensor:
        names = getattr(self, "task_names", None)
        if self.preference is None or names is None or len(names) != k:
            return torch.ones(k, dtype=like.dtype, device=like.device)
        return torch.tensor([self.preference.get(t, 1.0) for t in names], dtype=like.dtype, device=like.device)

    @property
    def nadir(self) -> Tensor:
        """L̄: the mean loss of each task over the warm-up epoch so far (1 where none)."""
        seen = self.nadir_count > 0
        return torch.where(seen, self.nadir_sum / self.nadir_count.clamp_min(1), torch.ones_like(self.nadir_sum))

    def forward(self, losses: Tensor, ctx: StepContext) -> WeightingResult:
        k = losses.shape[0]
        if self.nadir_sum.shape != (k,):
            self.nadir_sum = torch.zeros(k, dtype=torch.float64, device=self.nadir_sum.device)
            self.nadir_count = torch.zeros(k, dtype=torch.float64, device=self.nadir_sum.device)
        p = present_of(losses, ctx)
        zero = torch.zeros_like(losses)
        if not bool(p.any()):
            return WeightingResult((losses * 0.0).sum(), zero)
        logs = torch.log(losses + self.eps)
        if ctx.epoch <= self.warmup_epoch:
            if ctx.epoch == self.warmup_epoch:
                on = p.to(self.nadir_sum.device)
                value = losses.detach().to(device=self.nadir_sum.device, dtype=torch.float64)
                self.nadir_sum = self.nadir_sum + torch.where(on, value, torch.zeros_like(value))
                self.nadir_count = self.nadir_count + on.to(torch.float64)
            objective = torch.where(p, logs, zero).sum()
            weights = torch.where(p, 1.0 / (losses.detach() + self.eps), zero)
            return WeightingResult(objective, weights)
        ref = torch.log(self.nadir.to(losses) + self.eps)
        a = self._preference(k, losses) * (logs - ref) / self.mu
        a = torch.where(p, a, torch.full_like(a, -math.inf))
        objective = k * self.mu * torch.logsumexp(a, dim=0)
        s = torch.softmax(a.detach(), dim=0)
        weights = torch.where(p, k * s * self._preference(k, losses) / (losses.detach() + self.eps), zero)
        return WeightingResult(objective, weights)
