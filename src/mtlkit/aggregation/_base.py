"""The gradient-space contract: a K×P Jacobian of task gradients -> one P-vector.

Most methods are a weighting of the K×K Gramian G = J Jᵀ: they subclass
:class:`GramianWeightedAggregator` and implement only ``weights(gramian)``; the
"weights · Jacobian" half lives here, once.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

from torch import Tensor


class Aggregator:
    """Base class: ``aggregator(jacobian) -> direction``.

    Pure and immutable unless ``stateful`` is set (then ``reset()``, ``state_dict()`` and
    ``load_state_dict()`` carry the state for resume). Shape is checked here, once.
    """

    #: citation shown by ``mtlkit list``
    paper: ClassVar[str] = ""
    #: keeps state between calls (EMA, warm start, RNG)
    stateful: ClassVar[bool] = False
    #: the result is ``weights(J Jᵀ) @ J`` (works at either level; weights can be logged)
    gramian_based: ClassVar[bool] = False
    #: guarantees ⟨g_i, d⟩ ≥ 0 for every task i (checked by the property suite)
    non_conflicting: ClassVar[bool] = False
    #: a permutation of the rows leaves the result unchanged
    permutation_invariant: ClassVar[bool] = True
    #: draws random numbers (seeded)
    randomized: ClassVar[bool] = False

    def __call__(self, jacobian: Tensor) -> Tensor:
        if not isinstance(jacobian, Tensor) or jacobian.dim() != 2:
            shape = tuple(jacobian.shape) if isinstance(jacobian, Tensor) else type(jacobian).__name__
            raise ValueError(
                f"{type(self).__name__} expects a 2-D Jacobian of shape (K, P). Got {shape}."
            )
        if jacobian.shape[0] == 0:
            raise ValueError(f"{type(self).__name__} got a Jacobian with no task rows.")
        return self.aggregate(jacobian)

    def aggregate(self, jacobian: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def reset(self) -> None:
        """Forget any state (stateful methods only)."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def hparams(self) -> dict[str, Any]:
        out = {}
        for name in inspect.signature(type(self).__init__).parameters:
            if name not in ("self", "args", "kwargs") and hasattr(self, name):
                out[name] = getattr(self, name)
        return out

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.hparams().items())
        return f"{type(self).__name__}({params})"

    def __str__(self) -> str:
        return type(self).__name__


class GramianWeightedAggregator(Aggregator):
    """An aggregator whose result is ``w(J Jᵀ) @ J``. Subclasses implement :meth:`weights`."""

    gramian_based = True

    def weights(self, gramian: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def weights_of(self, jacobian: Tensor) -> Tensor:
        """The (K,) weights this method gives the rows of ``jacobian``."""
        return self.weights(jacobian @ jacobian.T)

    def aggregate(self, jacobian: Tensor) -> Tensor:
        w = self.weights_of(jacobian)
        return w.to(jacobian.dtype) @ jacobian
