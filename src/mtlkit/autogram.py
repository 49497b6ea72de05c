"""The task Gramian of fully connected layers without their per-task weight gradients.

A Gramian-weighted aggregator (UPGrad, MGDA, IMTL-G, CAGrad, Nash-MTL, ...) needs only the
K×K Gramian G = J Jᵀ of the per-task gradients and, once its weights ``a`` are known, the
direction ``a @ J``. For an ``nn.Linear`` layer ``y = x Wᵀ + b`` applied to N rows, the
gradient of task k is ``∇_W L_k = Δ_kᵀ X`` and ``∇_b L_k = Δ_kᵀ 1``, where X (N × in) is the
layer's input and Δ_k = ∂L_k/∂y (N × out). So

    G_ij  (this layer's share)  = ⟨Δ_iᵀ X̃, Δ_jᵀ X̃⟩ = tr(Δ_iᵀ A Δ_j),   A = X Xᵀ + 1 1ᵀ,

(the 1 1ᵀ term only with a bias), and the direction is ``(Σ_k a_k Δ_k)ᵀ X`` (and its column
sums for the bias). The K backward passes are taken down to the layers' *outputs*, which
skips the K per-task weight-gradient products (K·N·out·in multiply-adds per layer) and the
layer's part of the K×P Jacobian; the Gramian costs N²·in + K·N²·out + K²·N·out instead of
K·N·out·in + K²·out·in. This is the identity behind "autogram" (TorchJD's Gramian engine;
Quinton & Rey, *Jacobian Descent for Multi-Objective Optimization*, 2024, arXiv:2406.16232,
compute the Gramian of the Jacobian without the Jacobian); the per-layer choice below is ours.

It pays when the layer is wide for the batch (in > N) and K is large: on this project's CPU
benchmark (``benchmarks/peers.py``, 512-wide layers, N = 256) the trick is chosen from K ≈ 10
on. A layer is handled this way only when every condition that makes the identity exact
holds at that step (see :meth:`LayerGramian.select`); any other shared parameter keeps its
rows of the Jacobian, and its Gramian is added. The result equals ``J Jᵀ`` and ``a @ J`` up
to float rounding (the sums are associated differently).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["LayerGramian", "eligible_linears", "prefers_layer"]

#: cost of the N×N product, A Δ and the per-layer J Jᵀ per multiply-add, relative to the
#: weight-gradient products of the backward pass (their shapes run at lower GEMM efficiency
#: on a CPU: measured 20-25 against 26-33 G multiply-adds/s on the benchmark machine) ...
_PRODUCT_COST = 1.5
#: ... and of the N batched K×out @ out×K products of tr(Δ_iᵀ (A Δ_j))
_BATCHED_COST = 2.6


def prefers_layer(k: int, n: int, n_in: int, n_out: int) -> bool:
    """True when the Gramian of one Linear layer (N rows, in → out) is estimated cheaper from
    its input and output gradients than from its K per-task weight gradients.

    >>> prefers_layer(40, 256, 512, 512), prefers_layer(4, 256, 64, 512), prefers_layer(40, 4096, 64, 64)
    (True, False, False)
    """
    direct = k * n * n_out * n_in + _PRODUCT_COST * k * k * n_out * n_in
    layer = _PRODUCT_COST * (n * n * n_in + k * n * n * n_out) + _BATCHED_COST * k * k * n * n_out
    return layer < direct


def eligible_linears(model: nn.Module, shared: Sequence[Tensor]) -> list[nn.Linear]:
    """The ``nn.Linear`` modules of ``model`` whose parameters are all shared and trainable,
    registered in no other module (no tied weights), with ``nn.Linear``'s own forward and no
    hooks of their own that could change what the layer receives or returns."""
    ids = {id(p) for p in shared}
    uses: dict[int, int] = {}
    for m in model.modules():
        for p in m._parameters.values():
            if p is not None:
                uses[id(p)] = uses.get(id(p), 0) + 1
    out = []
    for m in model.modules():
        if not isinstance(m, nn.Linear) or type(m).forward is not nn.Linear.forward:
            continue
        params = [p for p in (m._parameters.get("weight"), m._parameters.get("bias")) if p is not None]
        if any(id(p) not in ids or uses.get(id(p), 0) != 1 for p in params) or "weight" not in m._parameters:
            continue
        if m._forward_hooks or m._forward_pre_hooks:
            continue
        out.append(m)
    return out


@dataclass
class _Call:
    module: nn.Linear
    x: Tensor
    y: Tensor
    x_version: int
    y_version: int


class LayerGramian:
    """The Gramian engine of one trainer: captures the eligible layers' inputs and outputs
    during the step's forward pass and, at the backward pass, gives the K×K Gramian and sets
    the aggregated direction in ``.grad``.

    ``mode``: ``"auto"`` handles a layer this way when :func:`prefers_layer` says it is
    cheaper, ``"layerwise"`` every eligible layer that passes the step's checks.
    """

    def __init__(self, modules: Sequence[nn.Linear], shared: Sequence[Tensor], mode: str = "auto") -> None:
        self.modules = list(modules)
        self.shared = list(shared)
        self.mode = mode
        self.calls: list[_Call] = []
        self._ids = {id(m) for m in self.modules}
        self._buffers: dict[str, Tensor] = {}

    # ------------------------------------------------------------------ forward
    @contextlib.contextmanager
    def capture(self) -> Iterator[None]:
        """Record the eligible layers' calls during the ``with`` block (hooks removed after)."""
        self.calls = []
        handles = [m.register_forward_hook(self._hook) for m in self.modules]
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    def _hook(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        x = args[0] if args else None
        if isinstance(x, Tensor) and isinstance(output, Tensor):
            self.calls.append(_Call(module, x, output, x._version, output._version))  # type: ignore[arg-type]

    # ------------------------------------------------------------------ backward
    def select(self, k: int, roots: Sequence[Tensor]) -> list[_Call]:
        """The captured calls handled by the identity at this step: a layer called exactly
        once, in fp32, whose output is part of the graph and neither it nor its input was
        modified in place since, whose parameters have no other use in the task losses' graph
        (``roots``), and (mode ``"auto"``) for which it is estimated cheaper."""
        counts: dict[int, int] = {}
        for c in self.calls:
            counts[id(c.module)] = counts.get(id(c.module), 0) + 1
        chosen = []
        for c in self.calls:
            m, x, y = c.module, c.x, c.y
            if counts[id(m)] != 1 or y.grad_fn is None or y.dtype != torch.float32 or x.dtype != torch.float32:
                continue
            if x._version != c.x_version or y._version != c.y_version or x.shape[-1] != m.in_features:
                continue
            n = x.numel() // max(m.in_features, 1)
            if self.mode == "auto" and not prefers_layer(k, n, m.in_features, m.out_features):
                continue
            chosen.append(c)
        if chosen:
            chosen = _single_use(chosen, roots)
        return chosen

    def backward(self, rows: Sequence[Tensor], seeds: Sequence[Tensor], chosen: Sequence[_Call],
                 weights_from: Any) -> Tensor:
        """Gramian of the seeded rows (row k is the gradient of ``seeds[k] · rows[k]``), the
        aggregator's weights ``a = weights_from(G)`` and ``.grad`` of every shared parameter
        set to ``a @ J``. Returns ``a``."""
        k = len(rows)
        fast = {id(p) for c in chosen for p in c.module.parameters(recurse=False)}
        others = [p for p in self.shared if id(p) not in fast]
        deltas = [self._buffer(f"delta{i}", (c.y.numel() // c.module.out_features, k, c.module.out_features), c.y)
                  for i, c in enumerate(chosen)]
        p_other = sum(p.numel() for p in others)
        j_other = self._buffer("other", (k, p_other), self.shared[0]) if others else None
        wrt = [c.y for c in chosen] + others
        for r, (row, seed) in enumerate(zip(rows, seeds)):
            grads = torch.autograd.grad(row, wrt, grad_outputs=seed.to(row.dtype), retain_graph=True,
                                        allow_unused=True) if row.requires_grad else [None] * len(wrt)
            for d, c, g in zip(deltas, chosen, grads):
                if g is None:
                    d[:, r].zero_()
                else:
                    d[:, r].copy_(g.reshape(-1, c.module.out_features))
            if j_other is not None:
                torch.cat([g.reshape(-1) if g is not None else p.new_zeros(p.numel())
                           for g, p in zip(grads[len(chosen):], others)], out=j_other[r])
            del grads  # not alive through the next row's backward pass
        from mtlkit.aggregation._base import gramian

        g_mat = gramian(j_other) if j_other is not None else rows[0].new_zeros(k, k, dtype=torch.float32)
        for c, d in zip(chosen, deltas):
            g_mat += _layer_gramian(c, d)
        g_mat = (g_mat + g_mat.T) / 2
        a = weights_from(g_mat)
        a = a.to(dtype=torch.float32, device=g_mat.device)
        for c, d in zip(chosen, deltas):
            _layer_direction(c, d, a)
        self.release()
        if j_other is not None:
            direction = a @ j_other
            offset = 0
            for p in others:
                p.grad = direction[offset:offset + p.numel()].view_as(p)
                offset += p.numel()
        return a

    def _buffer(self, key: str, shape: tuple[int, ...], like: Tensor) -> Tensor:
        """A float32 tensor of ``shape`` in memory reused from step to step (one flat
        allocation per key, grown when a step needs more: K and N vary between steps)."""
        n = math.prod(shape)
        buf = self._buffers.get(key)
        if buf is None or buf.numel() < n or buf.device != like.device:
            buf = self._buffers[key] = torch.empty(n, dtype=torch.float32, device=like.device)
        return buf[:n].view(shape)

    def release(self) -> None:
        """Drop the step's captured tensors (they hold the step's autograd graph)."""
        self.calls = []


def _rows(c: _Call) -> Tensor:
    return c.x.detach().reshape(-1, c.module.in_features)


def _layer_gramian(c: _Call, delta: Tensor) -> Tensor:
    """tr(Δ_iᵀ A Δ_j) for every pair, A = X Xᵀ (+ 1 1ᵀ with a bias); ``delta`` is (N, K, out)."""
    x = _rows(c)
    n, k, out = delta.shape
    a_mat = x @ x.T
    if c.module.bias is not None:
        a_mat += 1.0
    m = (a_mat @ delta.view(n, k * out)).view(n, k, out)
    return torch.bmm(delta, m.transpose(1, 2)).sum(0)


def _layer_direction(c: _Call, delta: Tensor, a: Tensor) -> None:
    """``.grad`` of the layer's weight and bias: (Σ_k a_k Δ_k)ᵀ X and its column sums."""
    mixed = torch.matmul(a, delta)  # (N, out)
    c.module.weight.grad = mixed.T @ _rows(c)
    if c.module.bias is not None:
        c.module.bias.grad = mixed.sum(0)


def _single_use(chosen: list[_Call], roots: Sequence[Tensor]) -> list[_Call]:
    """The calls whose weight and bias each have exactly one consumer in the autograd graph of
    ``roots`` (a parameter used again elsewhere, e.g. through ``F.linear(z, layer.weight)``,
    would get gradient from that use too, which the identity does not see)."""
    wanted = {id(p) for c in chosen for p in c.module.parameters(recurse=False)}
    consumers: dict[int, int] = {}
    seen: set[Any] = set()
    stack = [r.grad_fn for r in roots if r.grad_fn is not None]
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        for nxt, _ in node.next_functions:
            if nxt is None:
                continue
            var = getattr(nxt, "variable", None)
            if var is not None:
                if id(var) in wanted:
                    consumers[id(var)] = consumers.get(id(var), 0) + 1
            elif nxt not in seen:
                stack.append(nxt)
    return [c for c in chosen
            if all(consumers.get(id(p), 0) <= 1 for p in c.module.parameters(recurse=False))]
