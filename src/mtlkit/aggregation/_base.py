"""The gradient-space contract: a K×P Jacobian of task gradients -> one P-vector.

Most methods are a weighting of the K×K Gramian G = J Jᵀ: they subclass
:class:`GramianWeightedAggregator` and implement only ``weights(gramian)``; the
"weights · Jacobian" half lives here, once. The others subclass :class:`Aggregator` and
implement ``direction(jacobian)``.

One public entry point serves every method: ``aggregate(jacobian, gramian=None, ...)``
returns an :class:`Aggregation` (the direction, and the weights of a Gramian-weighted
method). A caller that already holds the Gramian (the trainer, e.g. one all-reduced over
processes) passes it and it is not formed again; ``aggregator(jacobian)`` is
``aggregate(jacobian).direction``.

Two optional, keyword-only inputs extend the contract without changing it for methods that
do not need them:

* ``losses``: the (K,) task losses of the rows (MGDA's loss-based normalisations read them;
  such a method sets ``needs_losses``);
* ``tasks``: the task indices of the rows (stateful methods key their per-task state on
  them, so a step where some task is absent does not scramble the state). Default
  ``0..K-1``.

A subclass receives them only if its ``direction`` / ``weights`` accepts a parameter of that
name, so ``weights(self, gramian)`` stays the whole contract of a simple method.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import torch
from torch import Tensor

from mtlkit._params import HasParams


@dataclass(frozen=True)
class Aggregation:
    """What :meth:`Aggregator.aggregate` returns.

    ``direction``: the (P,) vector to descend along, in the Jacobian's dtype and on its device.
    ``weights``: the (K,) weights of the rows (``direction == weights @ J``) for a
    Gramian-weighted method, in the Gramian's dtype and on its device (the Jacobian's when the
    Gramian was not given); ``None`` for a method that is not a weighting (GradDrop).
    """

    direction: Tensor
    weights: Tensor | None = None


class RowStream(Protocol):
    """What :meth:`Aggregator.row_stream` returns: ``add(i, row)`` for the rows in order, then
    ``finish()``. ``row`` is a list of ``(offset, flat piece)``: the row's entries from
    ``offset`` to ``offset + piece.numel()``, zero outside the pieces
    (:func:`mtlkit.jacobian.jacobian_rows`)."""

    def add(self, i: int, row: Sequence[tuple[int, Tensor]]) -> None: ...

    def finish(self) -> Tensor: ...


class Aggregator(HasParams):
    """Base class: ``aggregator(jacobian) -> direction``; :meth:`aggregate` also returns the
    weights. Subclasses implement :meth:`direction` (or, for a weighting of the Gramian,
    subclass :class:`GramianWeightedAggregator` and implement ``weights``).

    Pure and immutable unless ``stateful`` is set (then ``reset()``, ``state_dict()`` and
    ``load_state_dict()`` carry the state for resume). Shape is checked here, once.
    """

    #: citation shown by ``mtlkit list``
    paper: ClassVar[str] = ""
    #: keeps state between calls (EMA, warm start, RNG)
    stateful: ClassVar[bool] = False
    #: the result is ``weights(J Jᵀ) @ J`` (works at either level; weights can be logged)
    gramian_based: ClassVar[bool] = False
    # Properties the method guarantees (the papers' claims, Quinton & Rey 2024 sec. 2.2 for
    # the names), for an instance built with its default hyperparameters. The property suite
    # (tests/aggregation/test_properties.py) checks every claim on every registered method,
    # and that every property not claimed fails somewhere; docs/aggregation.md shows the
    # table. A subclass whose guarantee depends on its hyperparameters overrides the flag
    # with a property (see MGDA.needs_losses).
    #: ⟨g_i, d⟩ ≥ 0 for every task i: d is in the dual cone of the rows
    non_conflicting: ClassVar[bool] = False
    #: a permutation of the rows leaves the result unchanged (same seed for a randomized one)
    permutation_invariant: ClassVar[bool] = True
    #: ``A(diag(c) J)`` is linear in ``c`` for c > 0 (each task's contribution is
    #: proportional to its gradient's scale, as in gradient descent)
    linear_under_scaling: ClassVar[bool] = False
    #: ``A(J) = 0`` only if J is strongly stationary: ``Jᵀw = 0`` for some w with every
    #: ``w_i > 0`` (not merely weakly / Pareto-stationary: 0 in the convex hull of the rows)
    strongly_stationary: ClassVar[bool] = False
    #: with a single task the result is its gradient, as for Mean
    equals_mean_for_one_task: ClassVar[bool] = False
    #: draws random numbers (seeded)
    randomized: ClassVar[bool] = False
    #: reads the task losses (pass ``losses=`` when calling)
    needs_losses: ClassVar[bool] = False
    #: may hold on to the Jacobian (or a view of it) after the call; when False the trainer
    #: writes every step's Jacobian into one reused K×P workspace (no fresh allocation)
    keeps_jacobian: ClassVar[bool] = True
    #: :meth:`direction` returns a new tensor that shares memory with nothing the method or
    #: the caller keeps (not the Jacobian, not a buffer reused by the next call): the trainer
    #: then makes it the shared parameters' gradient without a P-sized copy (a weighting of
    #: the Gramian, whose direction is the fresh product w @ J, is handed over the same way)
    fresh_direction: ClassVar[bool] = False
    #: the trainer feeds the Jacobian's rows to :meth:`row_stream` even without
    #: ``jacobian_block_size`` (the method is faster without the K×P matrix)
    prefers_row_stream: ClassVar[bool] = False

    def __call__(self, jacobian: Tensor, *, losses: Tensor | Sequence[float] | None = None,
                 tasks: Sequence[int] | None = None) -> Tensor:
        return self.aggregate(jacobian, losses=losses, tasks=tasks).direction

    def aggregate(self, jacobian: Tensor, *, gramian: Tensor | None = None,
                  losses: Tensor | Sequence[float] | None = None,
                  tasks: Sequence[int] | None = None) -> Aggregation:
        """The direction for ``jacobian`` (K×P), and the row weights where the method is a
        weighting of the Gramian.

        ``gramian``: the K×K ``J Jᵀ`` when the caller already has it — possibly of a Jacobian
        held elsewhere, e.g. the sum over processes of their local Gramians — so a
        Gramian-weighted method does not form it again; its weights then come from this
        matrix and are applied to ``jacobian``. A method that is not a weighting of the
        Gramian (``gramian_based`` false) does not read it: a given Gramian is checked
        (a square K×K matrix, K the rows of ``jacobian``) and otherwise ignored, so a caller
        may pass one whatever the method. ``losses`` / ``tasks``: see the module docstring.
        """
        _check_jacobian(self, jacobian)
        if gramian is not None:
            _check_gramian(self, gramian, rows=jacobian.shape[0])
        extras = _extras(self, jacobian, losses, tasks)
        return self._aggregate(jacobian, gramian, extras)

    def _aggregate(self, jacobian: Tensor, gramian: Tensor | None, extras: dict[str, Any]) -> Aggregation:
        """:meth:`aggregate` on checked inputs (the Gramian, if any, is unused here)."""
        return Aggregation(_call_with(self.direction, jacobian, extras), None)

    def direction(self, jacobian: Tensor) -> Tensor:  # pragma: no cover - abstract
        """The method itself, for a checked Jacobian (may accept ``losses`` / ``tasks``).
        Call the aggregator or :meth:`aggregate` rather than this."""
        raise NotImplementedError

    def row_stream(self, k: int, like: Tensor, tasks: Sequence[int] | None = None) -> RowStream | None:
        """A consumer of the K rows of the Jacobian one at a time (rows like ``like``: a
        P-vector whose shape, dtype and device count, not its values or memory: the trainer
        passes one element expanded), whose ``finish()`` is the direction :meth:`direction`
        gives for the whole matrix — so the trainer never holds the K×P Jacobian. None (the
        default): the method needs the matrix. A stream draws the same random numbers and
        updates the same state as one call of :meth:`direction`."""
        return None

    def warm_up(self) -> None:
        """Pay a one-off cost of the first call (loading a compiled kernel) now; a run calls
        it before the fit's timer starts. Nothing by default."""

    def reset(self) -> None:
        """Forget any state (stateful methods only)."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class GramianWeightedAggregator(Aggregator):
    """An aggregator whose result is ``w(J Jᵀ) @ J``. Subclasses implement :meth:`weights`."""

    gramian_based = True
    keeps_jacobian = False  # the direction is the fresh product w @ J
    #: :meth:`weights` reads the entries of the Gramian. False when it reads only its size
    #: (Mean): then the Gramian is not formed when none is given, and :meth:`weights`
    #: receives a K×K zero placeholder (a stride-0 view) in the Jacobian's dtype and device.
    reads_gramian: ClassVar[bool] = True

    def weights(self, gramian: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def weights_of(self, jacobian: Tensor, *, losses: Tensor | Sequence[float] | None = None,
                   tasks: Sequence[int] | None = None) -> Tensor:
        """The (K,) weights this method gives the rows of ``jacobian`` (same dtype/device)."""
        _check_jacobian(self, jacobian)
        extras = _extras(self, jacobian, losses, tasks)
        return self._weights(self._gramian_of(jacobian), extras)

    def weights_from(self, gramian: Tensor, *, losses: Tensor | Sequence[float] | None = None,
                     tasks: Sequence[int] | None = None) -> Tensor:
        """:meth:`weights` of a precomputed K×K Gramian, with the optional ``losses`` /
        ``tasks`` checked and passed on when the method accepts them (same dtype/device as
        the Gramian). :meth:`aggregate` with ``gramian=`` also gives the direction."""
        _check_gramian(self, gramian)
        extras = _extras(self, gramian, losses, tasks)
        return self._weights(gramian, extras)

    def direction(self, jacobian: Tensor, *, losses: Tensor | Sequence[float] | None = None,
                  tasks: Sequence[int] | None = None) -> Tensor:
        """``weights(J Jᵀ) @ J``; the same as calling the aggregator."""
        return self.aggregate(jacobian, losses=losses, tasks=tasks).direction

    def _aggregate(self, jacobian: Tensor, gramian: Tensor | None, extras: dict[str, Any]) -> Aggregation:
        w = self._weights(self._gramian_of(jacobian) if gramian is None else gramian, extras)
        # the fresh product w @ J (no copy of J; the weights are cast only when they differ)
        d = w.to(dtype=jacobian.dtype, device=jacobian.device) @ jacobian
        return Aggregation(d, w)

    def _gramian_of(self, jacobian: Tensor) -> Tensor:
        if self.reads_gramian:
            return gramian(jacobian)
        k = jacobian.shape[0]
        return jacobian.new_zeros(()).expand(k, k)

    def _weights(self, gramian: Tensor, extras: dict[str, Any]) -> Tensor:
        w = _call_with(self.weights, gramian, extras)
        return w.to(dtype=gramian.dtype, device=gramian.device)


#: columns per block of the blocked Gramian product (see :func:`gramian`)
_COLUMN_BLOCK = 4096
#: the blocked product is used on a CPU for this many rows ...
_BLOCKED_ROWS = range(5, 16)
#: ... and at least this many columns
_BLOCKED_MIN_COLUMNS = 65536


def gramian(jacobian: Tensor) -> Tensor:
    """``J Jᵀ`` (K×K), in the Jacobian's dtype and on its device.

    For few rows and many columns the product is a poor fit for CPU GEMM kernels: with MKL
    on this project's benchmark machine a 10×P product runs at a third of the speed of a 4×P
    or a 16×P one. On a CPU, for 5 ≤ K ≤ 15 and P ≥ 65,536, the Gramian is therefore the sum
    of the Gramians of blocks of 4,096 columns, in one batched product (K = 10, P = 0.56 M:
    2.2 ms instead of 5.2 ms; ``benchmarks/peers.py``); the sum over blocks is also closer to
    the exact value. Elsewhere one matrix product.
    """
    k, p = jacobian.shape
    if jacobian.device.type != "cpu" or k not in _BLOCKED_ROWS or p < _BLOCKED_MIN_COLUMNS:
        return jacobian @ jacobian.T
    c = _COLUMN_BLOCK
    nb = p // c
    blocks = jacobian[:, : nb * c].reshape(k, nb, c).transpose(0, 1)  # (nb, K, c), no copy
    out = torch.bmm(blocks, blocks.transpose(1, 2)).sum(0)
    if nb * c < p:
        rest = jacobian[:, nb * c:]
        out += rest @ rest.T
    return out


# --------------------------------------------------------------------------- helpers
def _check_jacobian(owner: Aggregator, jacobian: Any) -> None:
    if not isinstance(jacobian, Tensor) or jacobian.dim() != 2:
        shape = tuple(jacobian.shape) if isinstance(jacobian, Tensor) else type(jacobian).__name__
        raise ValueError(f"{type(owner).__name__} expects a 2-D Jacobian of shape (K, P). Got {shape}.")
    if jacobian.shape[0] == 0:
        raise ValueError(f"{type(owner).__name__} got a Jacobian with no task rows.")
    if not jacobian.is_floating_point():
        raise ValueError(f"{type(owner).__name__} expects a floating-point Jacobian. Got {jacobian.dtype}.")


def _check_gramian(owner: Aggregator, gramian: Any, rows: int | None = None) -> None:
    if not isinstance(gramian, Tensor) or gramian.dim() != 2 or gramian.shape[0] != gramian.shape[1]:
        shape = tuple(gramian.shape) if isinstance(gramian, Tensor) else type(gramian).__name__
        raise ValueError(f"{type(owner).__name__} expects a square K×K Gramian. Got {shape}.")
    if rows is not None and gramian.shape[0] != rows:
        raise ValueError(f"{type(owner).__name__} got a {gramian.shape[0]}×{gramian.shape[1]} Gramian "
                         f"for a Jacobian of {rows} rows: it must be K×K, K = {rows}.")
    if not gramian.is_floating_point():
        raise ValueError(f"{type(owner).__name__} expects a floating-point Gramian. Got {gramian.dtype}.")


def _extras(owner: Aggregator, jacobian: Tensor, losses: Any, tasks: Any) -> dict[str, Any]:
    k = jacobian.shape[0]
    out: dict[str, Any] = {}
    if losses is not None:
        lt = torch.as_tensor(losses).detach().reshape(-1).to("cpu", torch.float64)
        if lt.numel() != k:
            raise ValueError(f"{type(owner).__name__} got {lt.numel()} losses for a Jacobian of {k} rows.")
        out["losses"] = lt
    elif owner.needs_losses:
        raise ValueError(f"{owner!r} needs the task losses: call it with losses=<(K,) tensor>.")
    if tasks is not None:
        ti = [int(t) for t in tasks]
        if len(ti) != k or len(set(ti)) != k or any(t < 0 for t in ti):
            raise ValueError(f"{type(owner).__name__}: 'tasks' must be {k} distinct non-negative task "
                             f"indices, one per row. Got {list(tasks)}.")
        out["tasks"] = ti
    return out


@functools.cache
def _accepted(fn: Callable[..., Any]) -> frozenset[str]:
    params = inspect.signature(fn).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return frozenset({"losses", "tasks"})
    return frozenset(p.name for p in params)


def _call_with(method: Callable[..., Any], arg: Tensor, extras: dict[str, Any]) -> Any:
    fn = getattr(method, "__func__", method)
    accepted = _accepted(fn)
    return method(arg, **{k: v for k, v in extras.items() if k in accepted})

