"""Mixed precision for the training step: ``training.precision: fp32 | bf16 | fp16``.

* ``fp32``: nothing changes.
* ``bf16``: the forward pass and the task losses run under :func:`torch.autocast` with
  bfloat16 (the parameters, their gradients and the optimiser stay float32). No loss scaling:
  bfloat16 has float32's range.
* ``fp16``: the same with float16, and a :class:`torch.amp.GradScaler` (on CUDA; on the CPU
  too, where torch supports it, so that the same code is tested without a GPU): every gradient
  is computed from losses multiplied by the loss scale, and unscaled before anything reads
  it. The per-task gradients of a gradient-space aggregator are unscaled *before* the
  aggregation (its weights see the true Gramian), and the aggregated direction is scaled back
  so that the one ``unscale_`` of the optimiser treats every gradient alike.

Only the forward pass and the losses are autocast: the weighting, the Jacobian's Gramian and
the aggregator's solver run in float32 (a representation-level Jacobian of bfloat16
activations is cast to float32 before aggregation). Evaluation and prediction run in float32.

The scaler and the non-finite guard agree: a step whose unscaled gradients are not finite is
skipped by both (the guard counts it, the scaler lowers its scale); a finite one is taken by
both. Reading the loss scale never synchronises with the device (it stays a tensor there).
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import Tensor

__all__ = ["PRECISIONS", "Precision"]

PRECISIONS = ("fp32", "bf16", "fp16")
_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class Precision:
    """The autocast context and, for fp16, the gradient scaler of one trainer."""

    def __init__(self, name: str = "fp32", device: torch.device | str = "cpu") -> None:
        if name not in PRECISIONS:
            raise ValueError(f"The 'precision' setting must be one of {', '.join(PRECISIONS)}. Got {name!r}.")
        self.name = name
        self.device_type = torch.device(device).type
        self.dtype = _DTYPES[name]
        self.scaler = torch.amp.GradScaler(self.device_type) if name == "fp16" else None

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The context of the forward pass and the losses."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    @property
    def scaled(self) -> bool:
        return self.scaler is not None

    def scale(self, ref: Tensor) -> Tensor | None:
        """The current loss scale as a 0-d tensor on ``ref``'s device (None without scaling)."""
        if self.scaler is None:
            return None
        return self.scaler.scale(torch.ones((), dtype=torch.float32, device=ref.device))

    def scaled_loss(self, loss: Tensor) -> Tensor:
        return loss if self.scaler is None else self.scaler.scale(loss)

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        """Divide every gradient of ``optimizer`` by the loss scale (once per step)."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is None:
            optimizer.step()
        else:
            self.scaler.step(optimizer)

    def update(self) -> None:
        """After a step, taken or skipped: the scaler lowers its scale after non-finite
        gradients and raises it after a run of finite ones."""
        if self.scaler is not None:
            self.scaler.update()

    def skip(self, optimizer: torch.optim.Optimizer, *, unscaled: bool) -> None:
        """A step the guard skipped: the gradients are dropped and, when they were unscaled
        this step, the scaler (which found the same non-finite values) lowers its scale."""
        optimizer.zero_grad(set_to_none=True)
        if unscaled:
            self.update()

    def state_dict(self) -> dict[str, Any]:
        return self.scaler.state_dict() if self.scaler is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)

    def __repr__(self) -> str:
        return f"Precision({self.name!r})"
