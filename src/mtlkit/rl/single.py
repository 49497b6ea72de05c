"""``single``: one independent actor-critic per task (the baseline).

Each task has its own policy and value networks and sees only its own environment; the
agents are trained in lockstep with the multi-task methods, each with the same number of
environment steps per task (so the total is the same), and their gradient norms are clipped
separately. Nothing is shared, so the tasks' spaces may differ.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from mtlkit.rl._base import INVALID, ActorCritic, AgentOutput, RLAgent
from mtlkit.rl._envs import Space


class Single(RLAgent):
    """``T`` separate actor-critics.

    >>> from mtlkit.rl import Space
    >>> agent = Single([Space(4, 2, ""), Space(3, 3, "")], hidden=[8])
    >>> out = agent(torch.zeros(2, 5, 4))
    >>> tuple(out.logits.shape), tuple(out.value.shape)
    ((2, 5, 3), (2, 5))
    """

    method = "single"
    shares_across_tasks = False

    def __init__(self, spaces: Sequence[Space], *, hidden: Sequence[int] = (64, 64),
                 activation: str = "tanh") -> None:
        super().__init__(spaces, hidden=hidden, activation=activation)
        self.agents = nn.ModuleList(ActorCritic(s.obs_dim, s.n_actions, self.hidden, activation)
                                    for s in self.spaces)

    def forward(self, obs: torch.Tensor) -> AgentOutput:
        logits, values = [], []
        for t, (net, space) in enumerate(zip(self.agents, self.spaces)):
            lg, v = net(obs[t, :, :space.obs_dim])
            if space.n_actions < self.n_actions:
                lg = F.pad(lg, (0, self.n_actions - space.n_actions), value=INVALID)
            logits.append(lg)
            values.append(v)
        return AgentOutput(torch.stack(logits), torch.stack(values), {})

    def policy_logits(self, obs: torch.Tensor) -> torch.Tensor:
        logits = []
        for t, (net, space) in enumerate(zip(self.agents, self.spaces)):
            lg = cast(ActorCritic, net).actor(obs[t, :, :space.obs_dim])
            logits.append(F.pad(lg, (0, self.n_actions - space.n_actions), value=INVALID)
                          if space.n_actions < self.n_actions else lg)
        return torch.stack(logits)

    def clip_groups(self) -> list[list[nn.Parameter]]:
        return [list(a.parameters()) for a in self.agents]
