"""``shared``: one actor-critic for all tasks, told the task by a one-hot input.

The plain multi-task baseline: every parameter is shared, the observation is concatenated
with ``one_hot(task)`` (observations zero-padded to the widest task when ``pad: true``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mtlkit.rl._base import ActorCritic, AgentOutput, RLAgent
from mtlkit.rl._envs import Space


class Shared(RLAgent):
    """One actor-critic on ``[obs, one_hot(task)]``.

    >>> from mtlkit.rl import Space
    >>> agent = Shared([Space(4, 2, "")] * 3, hidden=[8])
    >>> tuple(agent(torch.zeros(3, 5, 4)).logits.shape)
    (3, 5, 2)
    """

    method = "shared"

    def __init__(self, spaces: Sequence[Space], *, hidden: Sequence[int] = (64, 64),
                 activation: str = "tanh") -> None:
        super().__init__(spaces, hidden=hidden, activation=activation)
        self.net = ActorCritic(self.obs_dim + self.n_tasks, self.n_actions, self.hidden, activation)
        self.task_codes: torch.Tensor
        self.register_buffer("task_codes", torch.eye(self.n_tasks), persistent=False)

    def _inputs(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.cat([obs, self.task_codes[:, None, :].expand(-1, obs.shape[1], -1)], dim=-1)

    def forward(self, obs: torch.Tensor) -> AgentOutput:
        logits, value = self.net(self._inputs(obs))
        return AgentOutput(self.mask(logits), value, {})

    def policy_logits(self, obs: torch.Tensor) -> torch.Tensor:
        return self.mask(self.net.actor(self._inputs(obs)))
