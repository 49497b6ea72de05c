"""The communication object a training step uses: what is shared between processes.

A :class:`~mtlkit.training.Trainer` holds one :class:`Comm`. In a single process every
operation is the identity; :class:`mtlkit.training.distributed.ProcessGroupComm` implements
the same operations with collectives over a ``torch.distributed`` process group (global
losses, averaged Jacobians and gradients, the all-reduced Gramian, sharded batches, batch-norm
statistics, rank-0 writes). The step and the loop call these operations at fixed points and
never ask how many processes there are, so every trainer feature (distillation, affinity,
checkpoints ...) runs under torchrun as it runs in one process.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from mtlkit.training.trainer import Batch, Trainer

__all__ = ["Comm"]


class Comm:
    """Single process: one rank, writes files, every collective is the identity."""

    size: int = 1
    rank: int = 0

    @property
    def is_writer(self) -> bool:
        """True on the process that writes files and prints (rank 0)."""
        return self.rank == 0

    def attach(self, trainer: Trainer) -> None:
        """Called once when the trainer is built (validate the combination, wrap checkpoints)."""

    def setup(self, trainer: Trainer) -> None:
        """Called after the optimiser is built (copy rank 0's initial state, wrap the model)."""

    def fit_context(self, trainer: Trainer) -> contextlib.AbstractContextManager[Any]:
        """Entered for the duration of ``fit`` (e.g. global batch norm)."""
        return contextlib.nullcontext()

    def forward(self, trainer: Trainer, x: Tensor, need_rep: bool) -> tuple[dict[str, Tensor], Tensor | None]:
        """The model's outputs and, when asked and available, its shared representation."""
        model = trainer.model
        if need_rep and getattr(model, "has_representation", False):
            rep = model.encode(x)  # type: ignore[operator]
            return model.decode(rep), rep  # type: ignore[operator]
        return model(x), None

    def sync_losses(self, local: Tensor, counts: Tensor) -> tuple[Tensor, Tensor] | None:
        """Global task losses and present mask from the local ones and the labelled counts
        per task; None when the local values are already global (one process)."""
        return None

    def sync_grads(self, params: Sequence[nn.Parameter]) -> None:
        """Average the local gradients of ``params`` over processes."""

    def sync_jacobian(self, j: Tensor, what: str = "jacobian") -> Tensor:
        """The mean over processes of a parameter-level Jacobian."""
        return j

    def gramian(self, j: Tensor, level: str) -> Tensor:
        """The K×K Gramian of the global Jacobian."""
        from mtlkit.aggregation._base import gramian

        return gramian(j)

    def batches(self, trainer: Trainer, batches: Iterator[Batch]) -> Iterator[Batch]:
        """This process's part of each batch (all of it here)."""
        return batches

    def agree(self, score: float) -> float:
        """Rank 0's value of a float on every process."""
        return score

    def wrap_conflicts(self, monitor: Any) -> Any:
        return monitor

    def wrap_checkpoints(self, manager: Any) -> Any:
        return manager

    def stats(self) -> dict[str, dict[str, int]]:
        """Collectives issued so far: calls and payload bytes per purpose."""
        return {"calls": {}, "bytes": {}}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size}, rank={self.rank})"


def device_of(value: str | torch.device) -> torch.device:
    return torch.device(value)
