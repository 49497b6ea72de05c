"""The small optimiser some weightings keep for their own state (GradNorm's weights,
FAMO's logits), outside the trainer's optimiser: its learning rate is the method's own, and
its moments are buffers, so they move with ``.to(device)`` and live in ``state_dict()``."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from mtlkit.weighting._base import resize_empty


class AdamState(nn.Module):
    """Moments of an Adam optimiser over one (K,) tensor, with per-entry step counts.

    :meth:`step` follows ``torch.optim.Adam`` exactly (L2 ``weight_decay`` added to the
    gradient, bias-corrected moments); entries outside ``mask`` are left untouched
    (value, moments and step count), so a task absent from a batch keeps its state.
    """

    def __init__(self, *, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        super().__init__()
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay
        self.register_buffer("exp_avg", torch.zeros(0))
        self.register_buffer("exp_avg_sq", torch.zeros(0))
        self.register_buffer("steps", torch.zeros(0))

    def _load_from_state_dict(self, state_dict: Mapping[str, Any], prefix: str, *args: Any) -> None:
        resize_empty(self, state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args)

    def reset(self, k: int, like: Tensor) -> None:
        self.exp_avg = torch.zeros(k, dtype=like.dtype, device=like.device)
        self.exp_avg_sq = torch.zeros(k, dtype=like.dtype, device=like.device)
        self.steps = torch.zeros(k, dtype=like.dtype, device=like.device)

    @torch.no_grad()
    def step(self, param: Tensor, grad: Tensor, mask: Tensor | None = None) -> Tensor:
        """Update ``param`` in place by one Adam step along ``grad`` and return it.

        Without ``mask`` every entry steps (the step counts stay equal, and the update is a
        handful of in-place ops, as in ``torch.optim.Adam``); with ``mask`` only its entries do.
        """
        if self.exp_avg.shape != param.shape:
            self.reset(param.shape[0], param)
        b1, b2 = self.betas
        g = grad if self.weight_decay == 0 else grad + self.weight_decay * param
        if mask is None:
            self.steps.add_(1)
            t = float(self.steps.max())
            self.exp_avg.mul_(b1).add_(g, alpha=1 - b1)
            self.exp_avg_sq.mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = self.exp_avg_sq.sqrt().div_(math.sqrt(1 - b2**t)).add_(self.eps)
            return param.addcdiv_(self.exp_avg, denom, value=-self.lr / (1 - b1**t))
        on = mask.to(param.device)
        steps = self.steps + on.to(param.dtype)
        m = torch.where(on, b1 * self.exp_avg + (1 - b1) * g, self.exp_avg)
        v = torch.where(on, b2 * self.exp_avg_sq + (1 - b2) * g * g, self.exp_avg_sq)
        self.exp_avg.copy_(m)
        self.exp_avg_sq.copy_(v)
        self.steps.copy_(steps)
        safe = steps.clamp_min(1)
        bc1 = 1 - torch.pow(b1, safe)
        bc2_sqrt = (1 - torch.pow(b2, safe)).sqrt_()
        update = m / bc1 / (v.sqrt() / bc2_sqrt + self.eps) * self.lr
        return param.sub_(torch.where(on, update, torch.zeros_like(update)))
