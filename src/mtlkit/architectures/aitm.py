"""AITM: adaptive information transfer between the steps of a conversion funnel."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from mtlkit._checks import check_float, check_int
from mtlkit._registry import ARCHITECTURES
from mtlkit.architectures._base import MultiTaskModel, make_head
from mtlkit.architectures._layers import (
    TaskModuleDict,
    TrunkArg,
    params_of,
    require_spec,
    single_trunk,
    trunk_width,
)
from mtlkit.architectures.esmm import funnel_order
from mtlkit.tasks import Task, check_funnels, check_tasks


class AIT(nn.Module):
    """The Adaptive Information Transfer module: attention over ``[p, q]`` (the transferred
    information of the previous step and this step's own representation):
    ``w_u = softmax_u(<h1(u), h2(u)> / sqrt(d))``, ``z = Σ_u w_u h3(u)``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.h1, self.h2, self.h3 = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.scale = 1.0 / math.sqrt(dim)

    def forward(self, p: Tensor, q: Tensor) -> tuple[Tensor, Tensor]:
        u = torch.stack([p, q], dim=1)  # (N, 2, d)
        w = torch.softmax((self.h1(u) * self.h2(u)).sum(-1) * self.scale, dim=1)  # (N, 2)
        return (w.unsqueeze(-1) * self.h3(u)).sum(1), w


@ARCHITECTURES.register()
class AITM(MultiTaskModel):
    """Adaptive Information Transfer Multi-task model for sequential conversion funnels.

    Xi, Chen, Liu, Wu, Huang, Chen & Zhou (2021), "Modeling the Sequential Dependence among
    Audience Multi-step Conversions with Multi-task Learning in Targeted Display Advertising",
    KDD. Shared ID embeddings and bottom (the trunk); per task a tower giving ``q_t`` (width
    ``dim``). For a funnel step t (``Task(..., given=parent)``) the parent's AIT output
    ``z_parent`` is transferred through an MLP, ``p_t = g_t(z_parent)``, and the AIT module
    mixes ``p_t`` and ``q_t`` by attention into ``z_t``; the first step has ``z = q``. Each
    task's head reads its ``z_t``. Labels are entire-space (1 = this step happened, over all
    impressions), so the task losses are the paper's cross-entropies.

    The behavioural expectation calibrator, ``calibrator_weight`` ×
    ``mean_n Σ_t max(ŷ_t − ŷ_parent, 0)`` (a step cannot be likelier than the step before
    it), is the model's extra loss ``aitm_calibrator`` (:meth:`extra_losses`, added by the
    trainer), computed on the last training forward pass. ``sharing_summary()`` gives the mean
    attention weight on the transferred information per funnel step.

    Tasks outside any funnel (and non-binary tasks) have a plain tower and head.

    >>> import torch
    >>> from mtlkit import Task
    >>> tasks = [Task("click", "binary"), Task("buy", "binary", given="click")]
    >>> m = AITM({"name": "mlp", "hidden": [8]}, tasks, input_shape=(3,), dim=4)
    >>> out = m(torch.randn(5, 3))
    >>> sorted(out), sorted(m.extra_losses())
    (['buy', 'click'], ['aitm_calibrator'])
    """

    paper = ("Xi et al. 2021, Modeling the Sequential Dependence among Audience Multi-step Conversions "
             "with Multi-task Learning in Targeted Display Advertising")
    has_representation = False

    def __init__(self, trunk: TrunkArg, tasks: Sequence[Task], *, input_shape: Sequence[int] | None = None,
                 dim: int = 32, tower_hidden: Sequence[int] = (), calibrator_weight: float = 0.6) -> None:
        super().__init__()
        self.tasks = check_tasks(tasks)
        self.parents = check_funnels(self.tasks)
        self.order = funnel_order(self.tasks)
        self.dim = check_int("AITM", "dim", dim, low=1)
        self.calibrator_weight = check_float("AITM", "calibrator_weight", calibrator_weight, low=0.0)
        self.bottom, spec = single_trunk(trunk, input_shape, "AITM")
        width = trunk_width(self.bottom, input_shape)
        self.tower_hidden = [int(h) for h in tower_hidden]
        self.towers = TaskModuleDict({t.name: nn.Sequential(nn.Linear(width, self.dim), nn.ReLU())
                                      for t in self.tasks})
        self.transfer = TaskModuleDict({c: nn.Sequential(nn.Linear(self.dim, self.dim), nn.ReLU())
                                        for c in self.parents})
        self.ait = TaskModuleDict({c: AIT(self.dim) for c in self.parents})
        self.heads = TaskModuleDict({t.name: make_head(self.dim, t, self.tower_hidden) for t in self.tasks})
        self._probs: dict[str, Tensor] = {}
        self._attn: dict[str, list[float]] = {}
        self.config: dict[str, Any] = {"name": "aitm", "trunk": spec, "dim": self.dim,
                                       "tower_hidden": self.tower_hidden,
                                       "calibrator_weight": self.calibrator_weight}

    @classmethod
    def from_config(cls, tasks: Sequence[Task], input_shape: Sequence[int], *, trunk: dict[str, Any] | None,
                    **params: Any) -> AITM:
        return cls(require_spec(trunk, "AITM"), tasks, input_shape=input_shape, **params)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        h = self.bottom(x)
        h = h.reshape(h.shape[0], -1)
        z: dict[str, Tensor] = {}
        out: dict[str, Tensor] = {}
        for t in self.order:
            q = self.towers[t.name](h)
            parent = self.parents.get(t.name)
            if parent is None:
                z[t.name] = q
            else:
                z[t.name], w = self.ait[t.name](self.transfer[t.name](z[parent]), q)
                self._attn[t.name] = w.detach().mean(0).tolist()
            out[t.name] = t.shape_output(self.heads[t.name](z[t.name]))
        self._probs = ({n: torch.sigmoid(out[n]) for n in {*self.parents, *self.parents.values()}}
                       if self.training else {})
        return {t.name: out[t.name] for t in self.tasks}

    def calibrator_loss(self, probs: dict[str, Tensor]) -> Tensor:
        """``calibrator_weight · mean_n Σ_{t given p} max(ŷ_t − ŷ_p, 0)`` for the probabilities
        ``probs`` of the funnel tasks."""
        terms = [torch.relu(probs[c] - probs[p]) for c, p in self.parents.items()]
        return self.calibrator_weight * torch.stack(terms).sum(0).mean()

    def extra_losses(self) -> dict[str, Tensor]:
        if not self.parents or not self._probs:
            return {}
        return {"aitm_calibrator": self.calibrator_loss(self._probs)}

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        return self.bottom.parameters()

    def task_parameters(self, name: str) -> Iterator[nn.Parameter]:
        self._check_task(name)
        mods = [self.towers[name], self.heads[name]]
        if name in self.parents:
            mods += [self.transfer[name], self.ait[name]]
        return params_of(*mods)

    def sharing_summary(self) -> dict[str, Any]:
        if not self._attn:
            return {}
        return {"transfer_attention": {c: w[0] for c, w in self._attn.items()}}
