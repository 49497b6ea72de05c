"""Shared helpers of the weighting tests: a tiny model whose losses have real gradients, and
the StepContext the trainer would build for it."""

from __future__ import annotations

import copy

import torch
from torch import nn

from mtlkit._registry import WEIGHTINGS
from mtlkit.jacobian import jacobian
from mtlkit.weighting import StepContext, Weighting

TASKS = ["a", "b", "c"]
SIZES = {"a": 120, "b": 40, "c": 300}


class TinyModel(nn.Module):
    """x -> shared Linear(4, 3) -> tanh -> one Linear(3, 1) head per task."""

    def __init__(self, k: int = 3, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.shared = nn.Linear(4, 3)
        self.heads = nn.ModuleList(nn.Linear(3, 1) for _ in range(k))
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        self.x = torch.randn(8, 4, generator=g)
        self.y = torch.randn(8, k, generator=g) * torch.tensor([1.0, 3.0, 0.3, 2.0, 1.0][:k])
        self.xv = torch.randn(8, 4, generator=g)
        self.yv = torch.randn(8, k, generator=g) * torch.tensor([1.0, 3.0, 0.3, 2.0, 1.0][:k])

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        rep = torch.tanh(self.shared(x))
        return {TASKS[i]: h(rep)[:, 0] for i, h in enumerate(self.heads)}

    def _losses_at(self, x, y, params=None) -> torch.Tensor:
        out = self(x) if params is None else torch.func.functional_call(self, params, (x,), strict=False)
        return torch.stack([((out[TASKS[i]] - y[:, i]) ** 2).mean() for i in range(len(self.heads))])

    def losses(self) -> torch.Tensor:
        rep = torch.tanh(self.shared(self.x))
        self.rep = rep
        return torch.stack([((h(rep)[:, 0] - self.y[:, i]) ** 2).mean() for i, h in enumerate(self.heads)])

    def context(self, step: int = 0, present: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> StepContext:
        shared = list(self.shared.parameters())
        return StepContext(step=step, task_names=TASKS[: len(self.heads)], present=present,
                           shared_parameters=shared, last_shared_parameters=shared,
                           representation=getattr(self, "rep", None), grad_fn=jacobian,
                           generator=generator, model=self,
                           validation_losses=lambda params=None: self._losses_at(self.xv, self.yv, params),
                           extra={"training_losses": lambda params=None: self._losses_at(self.x, self.y, params)})


def build(name: str) -> Weighting:
    """A registered weighting with default hyperparameters, set up for TASKS."""
    w = WEIGHTINGS.get(name)()
    w.setup(TASKS, SIZES)
    return w


def drive(w: Weighting, model: TinyModel, steps: int, *, generator: torch.Generator | None = None,
          present: torch.Tensor | None = None, lr: float = 0.05) -> list[torch.Tensor]:
    """Run ``steps`` steps of SGD on model + weighting parameters the way the trainer does
    (forward, backward, step, after_step when asked, on_epoch_end every 2 steps); return the
    weights of each step."""
    params = list(model.parameters()) + [p for p in w.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=lr)
    out = []
    for s in range(steps):
        losses = model.losses()
        ctx = model.context(step=s, present=present, generator=generator)
        res = w(losses, ctx)
        opt.zero_grad()
        res.objective.backward()
        opt.step()
        if w.needs_post_step_losses:
            with torch.no_grad():
                w.after_step(model.losses(), ctx)
        if s % 2 == 1:
            w.on_epoch_end(s // 2, losses.detach())
        out.append(res.weights)
    return out


def copy_state(w: Weighting) -> dict:
    return copy.deepcopy(w.state_dict())
