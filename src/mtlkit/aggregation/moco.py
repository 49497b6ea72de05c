"""MoCo: MGDA on tracked (bias-corrected) gradient estimates, with projected weight steps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mtlkit._checks import check_float
from mtlkit._registry import AGGREGATORS
from mtlkit.aggregation._base import Aggregator
from mtlkit.aggregation._simplex import project_to_simplex, task_ids


@AGGREGATORS.register()
class MoCo(Aggregator):
    """Multi-objective gradient correction: each task's gradient is tracked by a running
    estimate y_i, the weights λ on the simplex take one projected gradient step on MGDA's
    objective for the tracked gradients, and the update is ``d = Σ λ_i y_i``.

    Fernando, Shen, Liu, Chaudhury, Murugesan & Chen, "Mitigating Gradient Bias in
    Multi-objective Learning: A Provably Convergent Approach", ICLR 2023
    (https://arxiv.org/abs/2210.12624), Algorithm 1. At step k (k = 1, 2, …), with Y the
    K×P matrix of the y_i:

        y_i ← y_i − β_k (y_i − g_i),
        λ ← Π_Δ(λ − γ_k (YYᵀ + ρI) λ),
        d = Yᵀλ,

    Π_Δ the Euclidean projection onto the simplex (exact, by sorting), λ starting at 1/K,
    and the step sizes ``β_k = β k^{−β_σ}``, ``γ_k = γ k^{−γ_σ}`` (the decay of the authors'
    code; σ = 0 gives the constant step sizes of the paper's analysis).

    Not a weighting of the Gramian of the current Jacobian (d combines the tracked y_i,
    not the rows of J), so no weights are logged; ``lambda_`` holds λ. The state (Y, a
    K×P matrix in the Jacobian's dtype and on its device, λ and k) is in
    :meth:`state_dict`, per task index (``tasks=``): a step without some task leaves its
    y_i and λ_i alone. Use ``level="parameters"``, the paper's setting: at representation
    level the rows describe the samples of one batch, and tracking them across batches
    averages unrelated samples (the authors' code refuses it).

    Choices where the paper leaves room: y_i starts at the first gradient seen for task i
    (not at 0, so the first update is not shrunk by β); the paper's projection of y_i onto
    a ball of radius L_i (a device of the analysis) is not applied; the gradients are not
    normalised (the authors' multi-task code rescales each to L_i g_i/‖g_i‖ before
    tracking); γ acts on the raw YYᵀ, so its useful range depends on the gradients' scale.
    A y_i whose size changes (a smaller last batch at representation level) restarts at
    the new gradient. A non-finite Jacobian leaves the state untouched (and gives a
    non-finite direction, which the trainer skips). (YYᵀ)λ is computed as Y(Yᵀλ), two
    matrix–vector products, never forming the K×K matrix (the same value up to rounding); in
    the trainer the rows are tracked into the new estimates as they come
    (:meth:`row_stream`), without the K×P Jacobian.

    Args:
        beta: β ∈ (0, 1], the tracking rate (default 0.5, the authors' default).
        gamma: γ ≥ 0, the step size of λ (default 0.1).
        rho: ρ ≥ 0, the ℓ2 regularisation of λ (default 0.0).
        beta_sigma: β_σ ≥ 0, the decay exponent of β_k (default 0.5).
        gamma_sigma: γ_σ ≥ 0, the decay exponent of γ_k (default 0.5).

    >>> import torch
    >>> moco = MoCo(gamma=0.5, rho=0.0)
    >>> moco(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))  # y = g; λ = Π(½ − ½(½, 2)) = (7/8, 1/8)
    tensor([0.8750, 0.2500])
    >>> moco.lambda_
    {0: 0.875, 1: 0.125}
    """

    paper = ("Fernando, Shen, Liu, Chaudhury, Murugesan & Chen 2023, Mitigating Gradient Bias in Multi-objective "
             "Learning: A Provably Convergent Approach (ICLR; arXiv:2210.12624), MoCo")
    stateful = True
    permutation_invariant = True
    equals_mean_for_one_task = True
    keeps_jacobian = False  # reads the Jacobian during the call only
    # the trainer tracks each row into the new estimates as it comes (no K×P Jacobian: one
    # matrix less in memory and one pass less over it; benchmarks/peers.py)
    prefers_row_stream = True

    def __init__(self, *, beta: float = 0.5, gamma: float = 0.1, rho: float = 0.0, beta_sigma: float = 0.5,
                 gamma_sigma: float = 0.5) -> None:
        self.beta = check_float("MoCo", "beta", beta, low=0.0, high=1.0, low_open=True)
        self.gamma = check_float("MoCo", "gamma", gamma, low=0.0)
        self.rho = check_float("MoCo", "rho", rho, low=0.0)
        self.beta_sigma = check_float("MoCo", "beta_sigma", beta_sigma, low=0.0)
        self.gamma_sigma = check_float("MoCo", "gamma_sigma", gamma_sigma, low=0.0)
        self._y: dict[int, Tensor] = {}
        self._lambda: dict[int, float] = {}
        self._step = 0
        self._forget_buffers()

    def _forget_buffers(self) -> None:
        # the K×P tensor whose rows are the tracked y_i of ``_rows`` (in that order), and the
        # free one of the two alternating buffers (see ``_workspace``)
        self._buffer: Tensor | None = None
        self._rows: tuple[int, ...] = ()
        self._spare: Tensor | None = None

    def direction(self, jacobian: Tensor, tasks: Sequence[int] | None = None) -> Tensor:
        k = jacobian.shape[0]
        ids = task_ids(k, tasks)
        beta_k = self.beta * (self._step + 1) ** (-self.beta_sigma)
        j = jacobian.detach()
        y_new = self._workspace(j)
        if self._same_rows(ids, j):
            # the same tasks in the same order as the last step: one fused lerp over K×P
            torch.lerp(self._buffer, j, beta_k, out=y_new)  # type: ignore[arg-type]
        else:
            for i, t in enumerate(ids):
                y = self._y.get(t)
                if y is None or y.shape != j[i].shape:
                    y_new[i].copy_(j[i])
                else:
                    torch.lerp(y.to(dtype=j.dtype, device=j.device), j[i], beta_k, out=y_new[i])
        return self._step_weights(y_new, ids)

    def row_stream(self, k: int, like: Tensor, tasks: Sequence[int] | None = None) -> _Stream:
        """The rows one at a time: each row's pieces are tracked into the new estimates as they
        come (``y_i ← lerp(y_i, g_i, β_k)`` while the piece is in cache), so the K×P Jacobian is
        never formed: the state and the buffer of the new estimates only. Bit for bit the same
        estimates, weights and direction as :meth:`direction`."""
        return _Stream(self, task_ids(k, tasks), like)

    def _same_rows(self, ids: list[int], j: Tensor) -> bool:
        b = self._buffer
        return self._rows == tuple(ids) and b is not None and b.shape == j.shape and b.dtype == j.dtype \
            and b.device == j.device

    def _step_weights(self, y_new: Tensor, ids: list[int]) -> Tensor:
        """λ's projected step with (Y Yᵀ)λ of the new estimates, the state committed, and
        the direction ``Yᵀλ`` (the estimates' mean, state untouched, when they are not finite)."""
        k, step = len(ids), self._step + 1
        gamma_k = self.gamma * step ** (-self.gamma_sigma)
        lam = np.array([self._lambda.get(t, 1.0 / k) for t in ids])
        # (Y Yᵀ) λ as Y (Yᵀ λ): two matrix-vector products instead of the K×K Gramian (K times
        # fewer multiply-adds). Entry i is the dot product of y_i with Yᵀλ, so a non-finite
        # entry of y_i makes it non-finite whatever λ is (NaN·x = NaN, ±inf·0 = NaN): the K×P
        # finiteness check is only needed when this K-vector is not finite
        g_lam = _host(y_new @ (torch.as_tensor(lam, dtype=y_new.dtype, device=y_new.device) @ y_new))
        if not np.all(np.isfinite(g_lam)):
            if not bool(torch.isfinite(y_new).all()):
                return y_new.mean(dim=0)  # non-finite: the trainer skips the step; state kept
            y64 = y_new.double()  # the products overflowed the dtype
            g_lam = _host(y64 @ (torch.as_tensor(lam, dtype=torch.float64, device=y64.device) @ y64))
        new = project_to_simplex(lam - gamma_k * (g_lam + self.rho * lam))
        self._step = step
        self._commit(y_new, ids)
        self._lambda.update(zip(ids, new.tolist()))
        return torch.as_tensor(new, dtype=y_new.dtype, device=y_new.device) @ y_new

    def _workspace(self, j: Tensor) -> Tensor:
        """A K×P tensor for the new estimates that no tracked y_i lives in: the buffer of the
        step before last when it is free and fits (two buffers alternate, so a step allocates
        nothing and a skipped step leaves the state untouched), else a new one."""
        spare = self._spare
        if spare is not None and spare.shape == j.shape and spare.dtype == j.dtype and spare.device == j.device:
            return spare
        self._spare = None
        return torch.empty(j.shape, dtype=j.dtype, device=j.device)

    def _commit(self, y_new: Tensor, ids: list[int]) -> None:
        """The rows of ``y_new`` become the tracked y_i of ``ids``; the previous buffer is
        reused next step only when no tracked y_i remains in it."""
        old = self._buffer
        self._y.update((t, y_new[i]) for i, t in enumerate(ids))
        self._buffer, self._rows = y_new, tuple(ids)
        self._spare = old if old is not None and set(self._y) <= set(ids) else None

    @property
    def lambda_(self) -> dict[int, float]:
        """The current weights λ, per task index."""
        return dict(self._lambda)

    @property
    def tracked_(self) -> dict[int, Tensor]:
        """The current gradient estimates y_i, per task index."""
        return {t: y.clone() for t, y in self._y.items()}

    def reset(self) -> None:
        self._y = {}
        self._lambda = {}
        self._step = 0
        self._forget_buffers()

    def state_dict(self) -> dict[str, Any]:
        return {"y": {str(t): y.clone() for t, y in self._y.items()},
                "lambda": {str(t): v for t, v in self._lambda.items()}, "step": self._step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            return
        if "y" in state:
            self._y = {int(t): torch.as_tensor(y).clone() for t, y in state["y"].items()}
            self._forget_buffers()
        if "lambda" in state:
            self._lambda = {int(t): float(v) for t, v in state["lambda"].items()}
        if "step" in state:
            self._step = int(state["step"])


class _Stream:
    """:meth:`MoCo.row_stream`: the new estimates row by row, then :meth:`MoCo._step_weights`."""

    def __init__(self, owner: MoCo, ids: list[int], like: Tensor) -> None:
        self.owner, self.ids = owner, ids
        shape = torch.Size((len(ids), like.numel()))
        self.y_new = owner._workspace(like.new_empty(1).expand(shape))  # shape, dtype, device only
        self.same = owner._same_rows(ids, self.y_new)
        self.beta_k = owner.beta * (owner._step + 1) ** (-owner.beta_sigma)

    def add(self, i: int, row: Sequence[tuple[int, Tensor]]) -> None:
        dest = self.y_new[i]
        owner = self.owner
        old = owner._buffer[i] if self.same and owner._buffer is not None else owner._y.get(self.ids[i])
        if old is not None and old.shape != dest.shape:
            old = None
        if old is not None:
            old = old.to(dtype=dest.dtype, device=dest.device)
        end = 0
        for offset, g in sorted(row, key=lambda piece: piece[0]):
            self._untouched(dest, old, end, offset)  # entries no piece covers: g = 0 there
            n = g.numel()
            if old is None:
                dest[offset:offset + n].copy_(g)
            else:
                torch.lerp(old[offset:offset + n], g, self.beta_k, out=dest[offset:offset + n])
            end = offset + n
        self._untouched(dest, old, end, dest.numel())

    def _untouched(self, dest: Tensor, old: Tensor | None, start: int, stop: int) -> None:
        if stop <= start:
            return
        if old is None:
            dest[start:stop].zero_()
        else:
            seg = old[start:stop]
            torch.lerp(seg, torch.zeros_like(seg), self.beta_k, out=dest[start:stop])

    def finish(self) -> Tensor:
        return self.owner._step_weights(self.y_new, self.ids)


def _host(v: Tensor) -> np.ndarray:
    """A K-vector as float64 numpy (one device->host copy)."""
    return v.detach().to(device="cpu", dtype=torch.float64).numpy()
