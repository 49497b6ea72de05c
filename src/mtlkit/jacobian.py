"""The only autograd plumbing: task losses -> Jacobian of shared parameters or representation.

Two engines give the K×P Jacobian of K task losses w.r.t. a list of tensors:

* ``"loop"``: K calls of ``torch.autograd.grad(L_k, wrt, retain_graph=True)`` (the floor);
* ``"batched"``: one ``torch.autograd.grad`` with ``is_grads_batched=True`` (vmap) over the
  K one-hot vectors of the stacked losses.

:func:`representation_jacobian` gives the K×(B·D) Jacobian w.r.t. the shared representation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def _flat(grads: Sequence[Tensor | None], wrt: Sequence[Tensor]) -> Tensor:
    return torch.cat([
        (g if g is not None else torch.zeros_like(w)).reshape(-1) for g, w in zip(grads, wrt)
    ])


def jacobian(losses: Tensor | Sequence[Tensor], wrt: Sequence[Tensor], *, engine: str = "loop",
             retain_graph: bool = True, chunk_size: int | None = None) -> Tensor:
    """(K, P) Jacobian of the K losses w.r.t. the flattened, concatenated ``wrt`` tensors.

    A loss with no path to ``wrt`` gives a zero row.
    """
    wrt = list(wrt)
    ls = list(losses) if not isinstance(losses, Tensor) else list(losses.unbind(0))
    if not wrt:
        return torch.zeros(len(ls), 0)
    if engine == "loop" or len(ls) == 1:
        rows = []
        for k, loss in enumerate(ls):
            if not loss.requires_grad:
                rows.append(torch.zeros(sum(w.numel() for w in wrt), dtype=wrt[0].dtype, device=wrt[0].device))
                continue
            g = torch.autograd.grad(loss, wrt, retain_graph=retain_graph or k < len(ls) - 1, allow_unused=True)
            rows.append(_flat(g, wrt))
        return torch.stack(rows)
    if engine != "batched":
        raise ValueError(f"The 'engine' parameter must be 'loop' or 'batched'. Got {engine!r}.")
    stacked = torch.stack(ls)
    eye = torch.eye(len(ls), dtype=stacked.dtype, device=stacked.device)
    chunks = [eye] if chunk_size is None else list(eye.split(chunk_size))
    out = []
    for i, ch in enumerate(chunks):
        g = torch.autograd.grad(stacked, wrt, grad_outputs=ch, is_grads_batched=True,
                                retain_graph=retain_graph or i < len(chunks) - 1, allow_unused=True)
        out.append(torch.cat([
            (gi if gi is not None else torch.zeros(ch.shape[0], *w.shape, dtype=w.dtype, device=w.device)
             ).reshape(ch.shape[0], -1) for gi, w in zip(g, wrt)], dim=1))
    return torch.cat(out)


def representation_jacobian(losses: Tensor | Sequence[Tensor], rep: Tensor, *,
                            retain_graph: bool = True) -> Tensor:
    """(K, B·D) Jacobian of the K losses w.r.t. the shared representation ``rep``."""
    return jacobian(losses, [rep], engine="loop", retain_graph=retain_graph)


def assign_grads(params: Sequence[Tensor], vector: Tensor, *, accumulate: bool = True) -> None:
    """Write a flat vector into ``.grad`` of ``params`` (adding to existing grads)."""
    offset = 0
    for p in params:
        n = p.numel()
        g = vector[offset:offset + n].view_as(p).to(p.dtype)
        if p.grad is None or not accumulate:
            p.grad = g.clone()
        else:
            p.grad.add_(g)
        offset += n
    if offset != vector.numel():
        raise ValueError(f"Vector of {vector.numel()} entries does not match {offset} parameter entries.")
