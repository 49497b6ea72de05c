"""What every multi-task RL method is to the trainer: an ``nn.Module`` that maps the
observations of all tasks to each task's action logits and state value, plus capability
hooks the trainer calls without knowing the method's name.

Layout: task-major. ``obs`` is ``[T, M, D]`` (``M`` samples of each of the ``T`` tasks,
observations zero-padded to the widest task ``D``); ``logits`` is ``[T, M, A]`` (invalid
actions of a task with fewer than ``A`` actions sit at ``-1e9``), ``value`` is ``[T, M]``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any, ClassVar, NamedTuple

import torch
from torch import nn

from mtlkit.rl._envs import Space

INVALID = -1e9  # the logit of an action a task does not have (probability exactly 0 in float32)

ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU}


class AgentOutput(NamedTuple):
    logits: torch.Tensor  # [T, M, A], unnormalised
    value: torch.Tensor   # [T, M]
    extras: dict[str, torch.Tensor]


def mlp(sizes: Sequence[int], activation: str, *, out_gain: float, out_activation: bool = False) -> nn.Sequential:
    """Linear layers with orthogonal initialisation (gain √2 inside, ``out_gain`` on the last
    layer: 0.01 for policy logits, 1 for values), the usual choice for on-policy agents."""
    act = ACTIVATIONS[activation]
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        lin = nn.Linear(a, b)
        last = i == len(sizes) - 2
        nn.init.orthogonal_(lin.weight, gain=out_gain if last else math.sqrt(2))
        nn.init.zeros_(lin.bias)
        layers.append(lin)
        if not last or out_activation:
            layers.append(act())
    return nn.Sequential(*layers)


class ActorCritic(nn.Module):
    """Separate policy and value MLPs on the same input."""

    def __init__(self, in_dim: int, n_actions: int, hidden: Sequence[int], activation: str) -> None:
        super().__init__()
        self.actor = mlp([in_dim, *hidden, n_actions], activation, out_gain=0.01)
        self.critic = mlp([in_dim, *hidden, 1], activation, out_gain=1.0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.actor(x), self.critic(x).squeeze(-1)


def masked_mean(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean over the samples of each task (``[T, M] -> [T]``) counting only valid samples."""
    w = valid.to(x.dtype)
    return (x * w).sum(1) / w.sum(1).clamp(min=1.0)


class RLAgent(nn.Module):
    """Base class of the methods. Subclasses implement :meth:`forward`; the capability
    attributes and hooks below tell the trainer what else they need."""

    #: registry key (``methods: [...]`` in a config)
    method: ClassVar[str] = ""
    #: one set of parameters serves several tasks, so their spaces must match (or be padded)
    shares_across_tasks: ClassVar[bool] = True
    #: add the usual A2C entropy bonus (Distral has the entropy inside its objective)
    entropy_bonus: ClassVar[bool] = True

    def __init__(self, spaces: Sequence[Space], *, hidden: Sequence[int] = (64, 64),
                 activation: str = "tanh") -> None:
        super().__init__()
        if not spaces:
            raise ValueError(f"{type(self).__name__} needs at least one task.")
        if activation not in ACTIVATIONS:
            raise ValueError(f"The 'activation' parameter of {type(self).__name__} must be one of "
                             f"{sorted(ACTIVATIONS)}. Got {activation!r}.")
        self.spaces = list(spaces)
        self.hidden = [int(h) for h in hidden]
        self.activation = activation
        self.n_tasks = len(spaces)
        self.obs_dim = max(s.obs_dim for s in spaces)
        self.n_actions = max(s.n_actions for s in spaces)
        mask = torch.zeros(self.n_tasks, self.n_actions, dtype=torch.bool)
        for t, s in enumerate(spaces):
            mask[t, :s.n_actions] = True
        self.action_mask: torch.Tensor
        self.register_buffer("action_mask", mask, persistent=False)
        self._masked = not bool(mask.all())

    # ------------------------------------------------------------------ to implement
    def forward(self, obs: torch.Tensor) -> AgentOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def policy_logits(self, obs: torch.Tensor) -> torch.Tensor:
        """The logits alone (acting needs no value); methods override it to skip the critic."""
        return self.forward(obs).logits

    # ------------------------------------------------------------------ hooks (defaults)
    def reward_bonus(self, out: AgentOutput, log_prob_taken: torch.Tensor,
                     actions: torch.Tensor) -> torch.Tensor | None:
        """A per-step term added to the environment reward (``[T, M]``, no gradient)."""
        return None

    def auxiliary_loss(self, out: AgentOutput, valid: torch.Tensor) -> torch.Tensor | None:
        """A per-task loss term added to the actor-critic loss (``[T]``)."""
        return None

    def task_stats(self, out: AgentOutput, valid: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-task diagnostics to log (``[T]`` or ``[T, k]``)."""
        return {}

    def clip_groups(self) -> list[list[nn.Parameter]]:
        """Parameter groups whose gradient norm is clipped separately."""
        return [list(self.parameters())]

    def config(self) -> dict[str, Any]:
        """The keyword arguments that rebuild this agent (JSON), besides the spaces."""
        return {"hidden": self.hidden, "activation": self.activation}

    # ------------------------------------------------------------------ helpers
    def mask(self, logits: torch.Tensor) -> torch.Tensor:
        if not self._masked:
            return logits
        return logits.masked_fill(~self.action_mask[:, None, :], INVALID)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}(tasks={self.n_tasks}, {args})"
