"""GradDrop: gradient sign dropout."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from mtlkit._checks import check_float, check_int, fail
from mtlkit._registry import AGGREGATORS
from mtlkit.aggregation._base import Aggregator
from mtlkit.aggregation._rng import SeededGenerator


@AGGREGATORS.register()
class GradDrop(Aggregator):
    """Gradient sign dropout: keep, coordinate by coordinate, only the gradients of one sign,
    chosen at random with the probability of that sign's share.

    Chen, Ngiam, Huang, Luong, Kretzschmar, Chai & Anguelov, "Just Pick a Sign: Optimizing
    Deep Multitask Models with Gradient Sign Dropout", NeurIPS 2020. For each coordinate
    the positive sign purity is P = ½ (1 + Σ_i g_i / Σ_i |g_i|); with U ~ Uniform(0, 1)
    (one draw per coordinate) the mask of task i is M_i = [P > U]·[g_i > 0] + [P < U]·[g_i < 0];
    the result is ``d = Σ_i (ℓ_i + (1 − ℓ_i) M_i) g_i`` with the leak ℓ_i.

    Not a weighting of the Gramian (the mask acts per coordinate), so no weights are
    logged. It works at both levels: the paper applies it to the gradients of a layer's
    activations, which is ``level="representation"`` (there each coordinate is one
    activation of one sample; the paper's batch-summed purity is not used). Seeded: the
    uniform draws come from the aggregator's own generator (state in :meth:`state_dict`).
    A Jacobian that requires grad (a method differentiating through the update) gets the same
    values through autograd-safe operations, the masks being constants of the graph.

    Args:
        leak: ℓ ∈ [0, 1], one float for every task or one per task index (a leak of 1 keeps
            that task's gradient whole; 0, the default, is plain GradDrop).
        seed: seed of the generator of the uniform draws.

    >>> import torch
    >>> GradDrop()(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))  # no sign conflict: the sum
    tensor([4., 6.])
    """

    paper = ("Chen, Ngiam, Huang, Luong, Kretzschmar, Chai & Anguelov 2020, Just Pick a Sign: Optimizing "
             "Deep Multitask Models with Gradient Sign Dropout (NeurIPS), GradDrop")
    stateful = True
    randomized = True
    permutation_invariant = True  # given the same draws: P and U do not depend on task order
    equals_mean_for_one_task = True  # one task: P ∈ {0, 1} keeps every coordinate
    keeps_jacobian = False  # reads the Jacobian during the call only
    fresh_direction = True  # a new P-vector (the draws' own, overwritten)

    @property
    def strongly_stationary(self) -> bool:  # type: ignore[override]
        """Without leak, coordinate j of d is the sum of the positive or of the negative
        entries of column j, 0 only for a zero column: d = 0 only for J = 0. A leak of 1 for
        every task gives Σ g_i (0 iff Jᵀ1 = 0). Other leaks can cancel a kept part."""
        leaks = self.leak if isinstance(self.leak, list) else [self.leak]
        return len(set(leaks)) == 1 and leaks[0] in (0.0, 1.0)

    def __init__(self, *, leak: float | Sequence[float] = 0.0, seed: int = 0) -> None:
        what = "a float in [0, 1] or a non-empty sequence of them"
        if isinstance(leak, (list, tuple)):
            if not leak:
                raise fail("GradDrop", "leak", leak, what)
            self.leak: float | list[float] = [
                check_float("GradDrop", "leak", v, low=0.0, high=1.0, what=what) for v in leak]
        else:
            self.leak = check_float("GradDrop", "leak", leak, low=0.0, high=1.0, what=what)
        self.seed = check_int("GradDrop", "seed", seed, low=0)
        self._rng = SeededGenerator(seed)

    def _leaks(self, k: int, tasks: Sequence[int] | None, ref: Tensor) -> Tensor:
        if isinstance(self.leak, float):
            return torch.full((k, 1), self.leak, dtype=ref.dtype, device=ref.device)
        ids = list(range(k)) if tasks is None else list(tasks)
        if max(ids) >= len(self.leak):
            raise ValueError(f"GradDrop has {len(self.leak)} per-task leaks but got task index {max(ids)}.")
        return torch.tensor([self.leak[t] for t in ids], dtype=ref.dtype, device=ref.device).unsqueeze(1)

    def direction(self, jacobian: Tensor, tasks: Sequence[int] | None = None) -> Tensor:
        k, p = jacobian.shape
        if jacobian.requires_grad and torch.is_grad_enabled():
            return self._differentiable(jacobian, self._uniforms(p, jacobian), tasks)
        leak = self._leaks(k, tasks, jacobian)
        if bool((leak == 0).all()):
            return self._blockwise(jacobian)
        u = self._uniforms(p, jacobian)
        pos_sum, total = _sign_sums(jacobian)
        pick = _keep_positive(pos_sum, total.sub(pos_sum), u)
        # d = Σ ℓ_i g_i + Σ (1 − ℓ_i) M_i g_i, where M_i g_i keeps one sign per coordinate
        keep = 1.0 - leak
        kept_pos = (keep * jacobian.clamp(min=0)).sum(dim=0)
        kept_neg = (keep * jacobian).sum(dim=0) - kept_pos
        return (leak * jacobian).sum(dim=0) + torch.lerp(kept_neg, kept_pos, pick)

    def _uniforms(self, p: int, like: Tensor) -> Tensor:
        """U ~ Uniform[0, 1), one per coordinate, from the aggregator's generator (on the CPU,
        so that the draws do not depend on the device), as a new P-vector. U = 0 needs no
        guard: P > 0 then keeps the positive part exactly when there is one."""
        return torch.rand(p, generator=self._rng.generator, dtype=like.dtype).to(like.device)

    def _blockwise(self, jacobian: Tensor) -> Tensor:
        """The direction without leak, written into the P-vector of the draws, one block of
        columns at a time (the K×block clamped copy and the block's sums stay in cache): no
        P-sized intermediate, so the call holds the Jacobian and its result only. Per block,
        with pos = Σ max(g_i, 0) and neg = Σ g_i − pos, coordinate j keeps pos_j where
        P_j > U_j, else neg_j (:func:`_keep_positive`); ``lerp(neg, pos, pick)`` is exactly neg
        at 0 and pos at 1 (``torch.where`` and bool -> float conversions are several times
        slower on a CPU). The two column sums are products with a row of ones: a
        matrix-vector product reads the K×block view faster than ``torch.sum`` over its rows
        (``benchmarks/peers.py --ks 40 --math-only --methods graddrop``: the call went from
        17.6–20.8 to 16.5–16.6 ms at K = 40 on the benchmark CPU; docs/performance.md §2).
        The draws are one ``torch.rand(P)``, as in :meth:`row_stream`."""
        k, p = jacobian.shape
        out = self._uniforms(p, jacobian)
        budget = min(_SCRATCH_ELEMENTS, k * p // _SCRATCH_SHARE)
        block = max(1, min(p, max(_MIN_BLOCK, budget // (k + 2))))
        scratch = self._block_scratch(k, block, jacobian)
        ones = jacobian.new_ones(1, k)
        for start in range(0, p, block):
            cols = jacobian[:, start:start + block]
            n = cols.shape[1]
            clamped = torch.clamp(cols, min=0, out=scratch[2:, :n])
            pos = torch.matmul(ones, clamped, out=scratch[0:1, :n])[0]
            neg = torch.matmul(ones, cols, out=scratch[1:2, :n])[0].sub_(pos)
            u = out[start:start + n]
            torch.lerp(neg, pos, _keep_positive(pos, neg, u), out=u)
        return out

    def _block_scratch(self, k: int, block: int, like: Tensor) -> Tensor:
        """(K + 2)×block floats kept from call to call (at most 2 MB in float32 and 1/16 of
        the Jacobian, unless that leaves a block fewer than 1,024 columns): rows 0 and 1 for
        a block's sums, the rest for its clamped copy. Kept because on a CPU a fresh buffer
        over glibc's mmap threshold costs its page faults at every call."""
        buf = getattr(self, "_buf", None)
        if (buf is None or buf.shape[0] < k + 2 or buf.shape[1] < block or buf.dtype != like.dtype
                or buf.device != like.device):
            buf = self._buf = like.new_empty(k + 2, block)
        return buf[:k + 2, :block]

    def row_stream(self, k: int, like: Tensor, tasks: Sequence[int] | None = None) -> _Stream:
        """The rows one at a time: P and the kept sums need only the per-coordinate sums
        Σ max(g_i, 0) and Σ g_i (and, with a leak, Σ ℓ_i g_i and the (1 − ℓ_i)-weighted
        ones), so the K×P Jacobian is never held: five P-vectors at most. The same uniform
        draws as :meth:`direction`; the sums are accumulated row by row in task order."""
        return _Stream(self, k, like, tasks)

    def _differentiable(self, jacobian: Tensor, u: Tensor, tasks: Sequence[int] | None) -> Tensor:
        """:meth:`direction` for a Jacobian that requires grad (e.g. of a second-order method):
        the same arithmetic without ``out=`` or in-place operations, which autograd refuses.
        The masks are constants of the graph (the paper drops gradients, it does not
        differentiate the choice), so ``∂d/∂g_i = ℓ_i + (1 − ℓ_i) M_i``."""
        pos_sum = jacobian.clamp(min=0).sum(dim=0)
        total = jacobian.sum(dim=0)
        neg_sum = total - pos_sum
        with torch.no_grad():
            pick = _keep_positive(pos_sum.detach(), neg_sum.detach(), u)
        leak = self._leaks(jacobian.shape[0], tasks, jacobian)
        if bool((leak == 0).all()):
            return torch.lerp(neg_sum, pos_sum, pick)
        keep = 1.0 - leak
        kept_pos = (keep * jacobian.clamp(min=0)).sum(dim=0)
        kept_neg = (keep * jacobian).sum(dim=0) - kept_pos
        return (leak * jacobian).sum(dim=0) + torch.lerp(kept_neg, kept_pos, pick)

    def reset(self) -> None:
        self._rng.reset()

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self._rng.state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state and "generator" in state:
            self._rng.load(state["generator"])


#: elements of the K×block temporary of :func:`_sign_sums` (1 MB in float32, cache-sized: 4 MB
#: blocks were slower at K = 10 and 40 on the benchmark CPU, 512 KB of L2 per core; see
#: `benchmarks/peers.py --math-only --methods graddrop`),
#: and the fewest columns per block
_BLOCK_ELEMENTS = 1 << 18
_MIN_BLOCK = 1024
#: the most elements of :meth:`GradDrop._blockwise`'s (K + 2)×block scratch (2 MB in float32),
#: and at most 1/16 of the Jacobian's (so that the scratch stays small beside it at small K).
#: On the benchmark CPU at K = 40 (40 × 558,592) the call took 19.7 ms with 2^18, 18.6 with
#: 2^19, 20.5 with 2^20 and 40 ms with 2^22 (fewer blocks: fewer dispatches; larger: out of
#: cache); at K = 4, 4.65 / 5.05 / 6.04 ms with 1/8, 1/16, 1/32 of the Jacobian
_SCRATCH_ELEMENTS = 1 << 19
_SCRATCH_SHARE = 16


class _Stream:
    """:meth:`GradDrop.row_stream`: running per-coordinate sums, then the direction."""

    def __init__(self, owner: GradDrop, k: int, like: Tensor, tasks: Sequence[int] | None) -> None:
        self.owner, self.k = owner, k
        owner._leaks(k, tasks, torch.empty(0))  # checks the task indices (on the CPU: no device read)
        ids = list(range(k)) if tasks is None else list(tasks)
        self.leak = [owner.leak] * k if isinstance(owner.leak, float) else [owner.leak[t] for t in ids]
        self.leaky = any(v != 0.0 for v in self.leak)
        n = 5 if self.leaky else 3
        self.sums = like.new_zeros(n, like.numel())  # pos, total, scratch[, kept pos, kept total + leaked]

    def add(self, i: int, row: Sequence[tuple[int, Tensor]]) -> None:
        keep = 1.0 - self.leak[i]
        for offset, g in row:  # each piece while it is in cache
            n = g.numel()
            pos, total, scratch = (self.sums[j, offset:offset + n] for j in range(3))
            torch.clamp(g, min=0, out=scratch)
            pos.add_(scratch)
            total.add_(g)
            if self.leaky:
                self.sums[3, offset:offset + n].add_(scratch, alpha=keep)
                self.sums[4, offset:offset + n].add_(g, alpha=keep)

    def finish(self) -> Tensor:
        pos_sum, total = self.sums[0], self.sums[1]
        u = self.owner._uniforms(pos_sum.numel(), pos_sum)
        if not self.leaky:
            neg_sum = total.sub_(pos_sum)
            return torch.lerp(neg_sum, pos_sum, _keep_positive(pos_sum, neg_sum, u))
        pick = _keep_positive(pos_sum, torch.sub(total, pos_sum, out=self.sums[2]), u)
        # Σ ℓ_i g_i = Σ g_i − Σ (1 − ℓ_i) g_i
        kept_pos, kept_total = self.sums[3], self.sums[4]
        leaked = total.sub_(kept_total)
        return leaked.add_(torch.lerp(kept_total.sub_(kept_pos), kept_pos, pick))


def _keep_positive(pos: Tensor, neg: Tensor, u: Tensor) -> Tensor:
    """``[P > U]`` per coordinate as 0/1 floats, written into ``u`` (1: keep the positive
    part), for the purity P = ½(1 + Σg/Σ|g|) = pos / (pos − neg), with pos = Σ max(g_i, 0) and
    neg = Σ min(g_i, 0), written without a division: P > U ⟺ pos > U·(pos − neg) ⟺
    pos + U·(neg − pos) > 0, i.e. ``lerp(pos, neg, U) > 0``. A zero column gives 0 (its
    direction is 0 either way). Two P-sized passes instead of the six of forming P."""
    torch.lerp(pos, neg, u, out=u)
    return torch.gt(u, 0, out=u)


def _sign_sums(jacobian: Tensor) -> tuple[Tensor, Tensor]:
    """``(Σ_i max(g_i, 0), Σ_i g_i)`` per column, over blocks of columns whose clamped copy
    stays in cache (so J is read from memory once; the same sums as unblocked)."""
    k, p = jacobian.shape
    block = max(_MIN_BLOCK, _BLOCK_ELEMENTS // k)
    pos = jacobian.new_empty(p)
    total = jacobian.new_empty(p)
    buf = jacobian.new_empty(k, min(block, p))
    for start in range(0, p, block):
        cols = jacobian[:, start:start + block]
        n = cols.shape[1]
        clamped = torch.clamp(cols, min=0, out=buf[:, :n])
        torch.sum(clamped, dim=0, out=pos[start:start + n])
        torch.sum(cols, dim=0, out=total[start:start + n])
    return pos, total
