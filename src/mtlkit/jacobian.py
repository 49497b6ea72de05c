"""The only autograd plumbing: task losses -> Jacobian of shared parameters or representation.

Engines for the K×P Jacobian of K task losses with respect to a list of tensors ``wrt``:

* ``"loop"``: K calls of ``torch.autograd.grad(L_k, wrt, retain_graph=True)`` — the floor
  every other engine is measured against;
* ``"batched"``: one ``torch.autograd.grad(..., is_grads_batched=True)`` (vmap) over the K
  one-hot vectors of the stacked losses, optionally in chunks of ``chunk_size`` rows;
* ``"two-stage"``: each task's gradient is first taken down to the shared representation
  (cheap: only the heads are traversed), then the K×|rep| matrix is pulled back through the
  trunk in one batched call (:func:`jacobian_via_representation`). Exact whenever every path
  from ``wrt`` to the losses goes through the representation (true for hard sharing, where
  ``wrt`` are the trunk's parameters); it needs ``representation=``.

On a CPU the per-task backward passes are compute-bound, so vmapping them saves nothing and
its overhead costs 0-30 %: ``"loop"`` measured fastest (``benchmarks/step_time.py`` prints
the figures, ``docs/aggregation.md`` records them) and is the default. The batched engines
stay available for hardware where kernel launches, not arithmetic, dominate. All engines give
the same matrix (up to float rounding); a loss with no path to ``wrt`` gives a zero row and
an unused tensor of ``wrt`` gives zero columns.

Pass the per-task losses as a *list* of scalars, not as one stacked tensor: a row of a
stacked tensor back-propagates zeros through every other task's head, which makes the loop
engine traverse K² heads instead of K.

:func:`representation_jacobian` gives the K×(B·D) Jacobian w.r.t. the shared representation,
:func:`task_gradients` the per-task gradients w.r.t. one tensor, optionally differentiable.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

ENGINES = ("loop", "batched", "two-stage")


def _as_list(losses: Tensor | Sequence[Tensor]) -> list[Tensor]:
    if isinstance(losses, Tensor):
        return list(losses.reshape(-1).unbind(0)) if losses.dim() <= 1 else list(losses.unbind(0))
    return list(losses)


def _check_chunk(chunk_size: int | None) -> None:
    if chunk_size is not None and (not isinstance(chunk_size, int) or isinstance(chunk_size, bool)
                                   or chunk_size < 1):
        raise ValueError(f"The 'chunk_size' parameter must be a positive int or None. Got {chunk_size!r}.")


def _zeros(k: int, wrt: Sequence[Tensor]) -> Tensor:
    ref = wrt[0]
    return torch.zeros(k, sum(w.numel() for w in wrt), dtype=ref.dtype, device=ref.device)


def _flat_batched(grads: Sequence[Tensor | None], wrt: Sequence[Tensor], k: int) -> Tensor:
    return torch.cat([
        (g.reshape(k, -1) if g is not None else
         torch.zeros(k, w.numel(), dtype=w.dtype, device=w.device)) for g, w in zip(grads, wrt)
    ], dim=1)


def _loop(ls: list[Tensor], wrt: list[Tensor], retain_graph: bool,
          seeds: Sequence[Tensor] | None = None, out: Tensor | None = None) -> Tensor:
    """K ``autograd.grad`` calls, each row written in place into the (K, P) result (no stacking
    copy: the peak memory is one Jacobian plus one row). ``seeds``: each backward pass starts
    from ``seeds[k]`` instead of 1 (row k is then ``seeds[k] · ∇L_k``, at no extra cost)."""
    ref = wrt[0]
    shape = (len(ls), sum(w.numel() for w in wrt))
    if out is None or tuple(out.shape) != shape or out.dtype != ref.dtype or out.device != ref.device:
        out = torch.empty(shape, dtype=ref.dtype, device=ref.device)
    last = max((k for k, loss in enumerate(ls) if loss.requires_grad), default=-1)
    for k, loss in enumerate(ls):
        row = out[k]
        if not loss.requires_grad:
            row.zero_()
            continue
        seed = None if seeds is None else seeds[k]
        if seed is not None and seed.dtype != loss.dtype:
            seed = seed.to(loss.dtype)
        grads = torch.autograd.grad(loss, wrt, grad_outputs=seed, retain_graph=retain_graph or k < last,
                                    allow_unused=True)
        if len(wrt) == 1:  # e.g. the representation: one copy, no concatenation
            g = grads[0]
            if g is None:
                row.zero_()
            else:
                row.view_as(g).copy_(g)
            del grads, g
            continue
        torch.cat([g.reshape(-1) if g is not None else w.new_zeros(w.numel()) for g, w in zip(grads, wrt)],
                  out=row)
        del grads  # else this row's gradients stay alive through the next row's backward pass
    return out


def jacobian_rows(losses: Sequence[Tensor], wrt: Sequence[Tensor], *, grad_outputs: Sequence[Tensor] | None = None,
                  retain_graph: bool = True) -> Iterator[list[tuple[int, Tensor]]]:
    """The rows of the ``loop`` engine's Jacobian one at a time, each as the list of
    ``(offset, flat gradient)`` pieces of the tensors of ``wrt`` it reaches (the row is zero
    elsewhere), straight from autograd: no K×P matrix and no copy into a row. A method that
    consumes rows as they come (``Aggregator.row_stream``) reads each piece while it is
    still in cache.

    >>> import torch
    >>> w, v = torch.tensor([1.0, 2.0], requires_grad=True), torch.zeros(1, requires_grad=True)
    >>> [[(o, g.tolist()) for o, g in r] for r in jacobian_rows([(w ** 2).sum(), w.sum() + v.sum()], [w, v])]
    [[(0, [2.0, 4.0])], [(0, [1.0, 1.0]), (2, [1.0])]]
    """
    wrt = list(wrt)
    offsets = [0]
    for w in wrt:
        offsets.append(offsets[-1] + w.numel())
    last = max((k for k, loss in enumerate(losses) if loss.requires_grad), default=-1)
    for k, loss in enumerate(losses):
        if not loss.requires_grad:
            yield []
            continue
        seed = None if grad_outputs is None else grad_outputs[k].to(loss.dtype)
        grads = torch.autograd.grad(loss, wrt, grad_outputs=seed, retain_graph=retain_graph or k < last,
                                    allow_unused=True)
        pieces = [(o, g.reshape(-1)) for o, g in zip(offsets, grads) if g is not None]
        del grads
        yield pieces
        del pieces  # (and the consumer its own reference) before the next row's backward pass


def _batched_vjp(outputs: Tensor, wrt: list[Tensor], cotangents: Tensor, retain_graph: bool,
                 chunk_size: int | None) -> Tensor:
    """Rows ``cᵀ ∂outputs/∂wrt`` for every row ``c`` of ``cotangents`` (K, *outputs.shape)."""
    k = cotangents.shape[0]
    chunks = [cotangents] if chunk_size is None or chunk_size >= k else list(cotangents.split(chunk_size))
    out = []
    for i, ch in enumerate(chunks):
        g = torch.autograd.grad(outputs, wrt, grad_outputs=ch, is_grads_batched=True,
                                retain_graph=retain_graph or i < len(chunks) - 1, allow_unused=True)
        out.append(_flat_batched(g, wrt, ch.shape[0]))
    return out[0] if len(out) == 1 else torch.cat(out)


def _batched(ls: list[Tensor], wrt: list[Tensor], retain_graph: bool, chunk_size: int | None,
             seeds: Sequence[Tensor] | None = None) -> Tensor:
    if not any(loss.requires_grad for loss in ls):
        return _zeros(len(ls), wrt)
    stacked = torch.stack([loss.reshape(()) for loss in ls])
    eye = torch.eye(len(ls), dtype=stacked.dtype, device=stacked.device)
    if seeds is not None:
        eye = eye * torch.stack([s.reshape(()) for s in seeds]).to(eye).unsqueeze(1)
    return _batched_vjp(stacked, wrt, eye, retain_graph, chunk_size)


def jacobian(losses: Tensor | Sequence[Tensor], wrt: Sequence[Tensor], *, engine: str = "loop",
             retain_graph: bool = True, chunk_size: int | None = None,
             representation: Tensor | None = None, grad_outputs: Sequence[Tensor] | None = None,
             out: Tensor | None = None) -> Tensor:
    """(K, P) Jacobian of the K losses w.r.t. the flattened, concatenated ``wrt`` tensors.

    Args:
        losses: K scalar losses (a (K,) tensor or a sequence of scalars).
        wrt: the tensors to differentiate with respect to (e.g. the shared parameters).
        engine: ``"loop"`` (default, fastest on CPU) | ``"batched"`` | ``"two-stage"``.
        retain_graph: keep the graph for later backward passes (the trainer needs it).
        chunk_size: batched engines: at most this many rows per vmapped call (bounds memory).
        representation: the shared representation that every path from ``wrt`` to the
            losses goes through; needed by ``"two-stage"``, ignored otherwise.
        grad_outputs: K scalars s_k: row k is then s_k ∇L_k, the backward pass starting from
            s_k (a task weight, a loss scale) instead of 1 — free, where scaling the rows
            afterwards would be a pass over the K×P matrix.
        out: a (K, P) tensor of the right dtype and device that the ``loop`` engine writes the
            Jacobian into (a workspace reused from step to step saves a fresh K×P allocation
            and its page faults; measured 5-20 % of a step at K = 40 on a CPU).

    A loss with no path to ``wrt`` gives a zero row.

    >>> import torch
    >>> w = torch.tensor([1.0, 2.0], requires_grad=True)
    >>> jacobian([(w ** 2).sum(), w.sum()], [w], engine="batched")
    tensor([[2., 4.],
            [1., 1.]])
    """
    if engine not in ENGINES:
        raise ValueError(f"The 'engine' parameter must be one of {', '.join(ENGINES)}. Got {engine!r}.")
    _check_chunk(chunk_size)
    wrt = list(wrt)
    ls = _as_list(losses)
    if not wrt:
        return torch.zeros(len(ls), 0)
    if not ls:
        return _zeros(0, wrt)
    if engine == "two-stage":
        if representation is None:
            raise ValueError("engine='two-stage' needs the shared representation: pass "
                             "representation=<tensor>, or use engine='batched' or 'loop'.")
        return jacobian_via_representation(ls, representation, wrt, chunk_size=chunk_size,
                                           retain_graph=retain_graph, grad_outputs=grad_outputs)
    if engine == "loop" or len(ls) == 1:
        return _loop(ls, wrt, retain_graph, grad_outputs, out)
    return _batched(ls, wrt, retain_graph, chunk_size, grad_outputs)


def representation_jacobian(losses: Tensor | Sequence[Tensor], rep: Tensor, *,
                            retain_graph: bool = True, grad_outputs: Sequence[Tensor] | None = None) -> Tensor:
    """(K, B·D) Jacobian of the K losses w.r.t. the shared representation ``rep``.

    Only the task heads are traversed, so this is cheap; K separate calls are used because
    on small heads they beat one vmapped call (see ``benchmarks/step_time.py``).

    >>> import torch
    >>> rep = torch.tensor([[1.0, -1.0]], requires_grad=True)
    >>> representation_jacobian([rep.sum(), (rep ** 2).sum()], rep)
    tensor([[ 1.,  1.],
            [ 2., -2.]])
    """
    ls = _as_list(losses)
    if not ls:
        return torch.zeros(0, rep.numel(), dtype=rep.dtype, device=rep.device)
    return _loop(ls, [rep], retain_graph, grad_outputs)


def jacobian_via_representation(losses: Tensor | Sequence[Tensor], rep: Tensor,
                                shared_params: Sequence[Tensor], chunk_size: int | None = None, *,
                                retain_graph: bool = True, grad_outputs: Sequence[Tensor] | None = None
                                ) -> Tensor:
    """(K, P) Jacobian of the losses w.r.t. ``shared_params``, in two stages.

    1. the K gradients w.r.t. the representation (``representation_jacobian``: heads only);
    2. one batched vector-Jacobian product pulls the K×|rep| matrix back through the trunk
       (``torch.autograd.grad(rep, shared_params, is_grads_batched=True)``), in chunks of
       ``chunk_size`` rows when given.

    Exact when every path from ``shared_params`` to the losses goes through ``rep``.

    >>> import torch
    >>> w = torch.tensor([1.0, 2.0], requires_grad=True)
    >>> rep = 3 * w
    >>> jacobian_via_representation([rep.sum(), (rep ** 2).sum()], rep, [w])
    tensor([[ 3.,  3.],
            [18., 36.]])
    """
    _check_chunk(chunk_size)
    ls = _as_list(losses)
    params = list(shared_params)
    if not params:
        return torch.zeros(len(ls), 0)
    if not ls:
        return _zeros(0, params)
    if not rep.requires_grad:
        return _zeros(len(ls), params)
    j_rep = representation_jacobian(ls, rep, retain_graph=True, grad_outputs=grad_outputs)
    cot = j_rep.view(len(ls), *rep.shape)
    return _batched_vjp(rep, params, cot, retain_graph, chunk_size)


def task_gradients(losses: Tensor | Sequence[Tensor], wrt: Tensor, *, create_graph: bool = False,
                   retain_graph: bool = True) -> Tensor:
    """(K, *wrt.shape) gradients of each loss w.r.t. one tensor (zeros where unused).

    With ``create_graph=True`` the result is itself differentiable (second-order terms such
    as GREAT's adversarial loss flow back into the network).

    >>> import torch
    >>> x = torch.tensor([1.0, 3.0], requires_grad=True)
    >>> task_gradients([(x ** 2).sum(), x.sum()], x)
    tensor([[2., 6.],
            [1., 1.]])
    """
    ls = _as_list(losses)
    rows = []
    for loss in ls:
        if not loss.requires_grad:
            rows.append(torch.zeros_like(wrt))
            continue
        (g,) = torch.autograd.grad(loss, [wrt], retain_graph=retain_graph or create_graph,
                                   create_graph=create_graph, allow_unused=True)
        rows.append(torch.zeros_like(wrt) if g is None else g)
    return torch.stack(rows) if rows else wrt.new_zeros((0, *wrt.shape))


def parameter_blocks(params: Sequence[Tensor], size: int) -> list[list[Tensor]]:
    """``params`` in consecutive groups of at most ``size`` entries (a tensor larger than
    ``size`` is a group of its own): the blocks of a block-wise Jacobian.

    >>> import torch
    >>> [[p.numel() for p in b] for b in parameter_blocks([torch.zeros(3), torch.zeros(2), torch.zeros(9)], 5)]
    [[3, 2], [9]]
    """
    blocks: list[list[Tensor]] = []
    count = size + 1
    for p in params:
        n = p.numel()
        if count + n > size:
            blocks.append([])
            count = 0
        blocks[-1].append(p)
        count += n
    return blocks


def assign_grads(params: Sequence[Tensor], vector: Tensor, *, accumulate: bool = True,
                 copy: bool = True) -> None:
    """Write a flat vector into ``.grad`` of ``params`` (adding to existing grads).

    With ``copy=False`` a parameter without a gradient gets a *view* of ``vector`` as its
    gradient instead of a copy: the caller hands a freshly computed vector over (e.g. the
    aggregated direction ``w @ J``) and saves a P-sized copy; it must not modify the vector
    afterwards. A dtype conversion always copies.

    >>> import torch
    >>> w = torch.zeros(2, requires_grad=True)
    >>> assign_grads([w], torch.tensor([1.0, 2.0]))
    >>> w.grad
    tensor([1., 2.])
    """
    offset = 0
    for p in params:
        n = p.numel()
        g = vector[offset:offset + n].view_as(p)
        if p.grad is None or not accumulate:
            if g.dtype != p.dtype:
                p.grad = g.to(p.dtype)
            else:
                p.grad = g.clone() if copy else g
        else:
            p.grad.add_(g.to(p.dtype))
        offset += n
    if offset != vector.numel():
        raise ValueError(f"Vector of {vector.numel()} entries does not match {offset} parameter entries.")
