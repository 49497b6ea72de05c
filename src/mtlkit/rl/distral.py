"""``distral``: Distral, two-column variant (Teh et al., NeurIPS 2017, "Distral: Robust
Multitask Reinforcement Learning", https://arxiv.org/abs/1707.04175).

Each task ``i`` maximises its return regularised towards a shared *distilled* policy π̂₀:

    J = Σ_i E_{π_i}[ Σ_t γ^t R_i(a_t, s_t) − c_KL γ^t log(π_i(a_t|s_t)/π̂₀(a_t|s_t))
                                            − c_Ent γ^t log π_i(a_t|s_t) ]
      = Σ_i E_{π_i}[ Σ_t γ^t R_i(a_t, s_t) + (γ^t α/β) log π̂₀(a_t|s_t) − (γ^t/β) log π_i(a_t|s_t) ]

with α = c_KL/(c_KL + c_Ent) and β = 1/(c_KL + c_Ent) (so c_KL = α/β, c_Ent = (1 − α)/β).
Two-column parameterisation: the distilled column gives logits ``h(a|s)``,
π̂₀ = softmax(h), and task ``i``'s column gives ``f_i(a|s)`` and a value ``V_i(s)``:

    π̂_i(a|s) = exp(α·log π̂₀(a|s) + β·f_i(a|s)) / Z_i(s),   Z_i(s) = Σ_a' exp(α·log π̂₀(a'|s) + β·f_i(a'|s))

(the same as the paper's exp(α·h + β·f_i)/Σ exp(...), since log π̂₀ and h differ by a
constant per state). Gradients, as in the paper: the task policies follow the policy
gradient of the *regularised reward* ``R_i + (α/β)·log π̂₀(a|s) − (1/β)·log π̂_i(a|s)``,
which also reaches the distilled column through α·log π̂₀; the distilled column is trained
jointly by the distillation term (α/β)·Σ_a (π̂_i(a|s) − π̂₀(a|s))·∇h(a|s), the gradient of
−(α/β)·Σ_a sg(π̂_i(a|s))·log π̂₀(a|s) (the expected, all-action form of the paper's
∇ log π̂₀(a_t|s_t) term). As usual for actor-critic code the γ^t weighting of states is
dropped (a mean over the visited states), and there is no extra entropy bonus: the entropy
is inside the objective (c_Ent).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import torch
from torch import nn

from mtlkit.rl._base import ActorCritic, AgentOutput, RLAgent, masked_mean, mlp
from mtlkit.rl._envs import Space


def two_column_logits(log_pi0: torch.Tensor, f: torch.Tensor, *, alpha: float, beta: float) -> torch.Tensor:
    """``α·log π̂₀(a|s) + β·f_i(a|s)``: the task policy's unnormalised log-probabilities
    (``log π̂_i = this − log Z_i``)."""
    return alpha * log_pi0 + beta * f


def regularisation_reward(log_pi0_taken: torch.Tensor, log_pi_taken: torch.Tensor, *, alpha: float,
                          beta: float) -> torch.Tensor:
    """The per-step term added to the reward: ``(α/β)·log π̂₀(a_t|s_t) − (1/β)·log π̂_i(a_t|s_t)``
    (= −c_KL·log(π̂_i/π̂₀) − c_Ent·log π̂_i)."""
    return (alpha / beta) * log_pi0_taken - (1.0 / beta) * log_pi_taken


def distillation_loss(log_pi: torch.Tensor, log_pi0: torch.Tensor, valid: torch.Tensor, *, alpha: float,
                      beta: float) -> torch.Tensor:
    """Per task: ``−(α/β)·mean_s Σ_a sg(π̂_i(a|s))·log π̂₀(a|s)`` (``[T]``); its gradient in the
    distilled logits ``h`` is ``−(α/β)·(π̂_i − π̂₀)`` per state."""
    pi = log_pi.detach().exp()
    cross = (pi * log_pi0).sum(-1)
    return -(alpha / beta) * masked_mean(cross, valid)


def kl_to_distilled(log_pi: torch.Tensor, log_pi0: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Per task: the mean over visited states of KL(π̂_i(·|s) ‖ π̂₀(·|s)) (``[T]``)."""
    pi = log_pi.exp()
    kl = (pi * (log_pi - log_pi0)).sum(-1)
    return masked_mean(kl, valid)


class Distral(RLAgent):
    """Distral 2col: a distilled column ``h`` shared by the tasks, one column ``f_i, V_i`` per task.

    >>> from mtlkit.rl import Space
    >>> agent = Distral([Space(4, 2, "")] * 3, hidden=[8], alpha=0.5, beta=5.0)
    >>> out = agent(torch.zeros(3, 5, 4))
    >>> tuple(out.logits.shape), sorted(out.extras)
    ((3, 5, 2), ['log_pi0'])
    >>> agent.c_kl, agent.c_ent
    (0.1, 0.1)
    """

    method = "distral"
    entropy_bonus = False

    def __init__(self, spaces: Sequence[Space], *, hidden: Sequence[int] = (64, 64), activation: str = "tanh",
                 alpha: float = 0.5, beta: float = 5.0) -> None:
        super().__init__(spaces, hidden=hidden, activation=activation)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"The 'alpha' parameter of Distral must be in [0, 1]. Got {alpha!r}.")
        if not beta > 0:
            raise ValueError(f"The 'beta' parameter of Distral must be a positive float. Got {beta!r}.")
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.distilled = mlp([self.obs_dim, *self.hidden, self.n_actions], activation, out_gain=0.01)
        self.columns = nn.ModuleList(ActorCritic(self.obs_dim, self.n_actions, self.hidden, activation)
                                     for _ in self.spaces)

    @property
    def c_kl(self) -> float:
        return self.alpha / self.beta

    @property
    def c_ent(self) -> float:
        return (1.0 - self.alpha) / self.beta

    def distilled_log_probs(self, obs: torch.Tensor) -> torch.Tensor:
        """log π̂₀(·|s) for observations of any leading shape."""
        return torch.log_softmax(self.distilled(obs), dim=-1)

    def forward(self, obs: torch.Tensor) -> AgentOutput:
        log_pi0 = self.distilled_log_probs(obs)
        fs, values = [], []
        for t, col in enumerate(self.columns):
            f, v = col(obs[t])
            fs.append(f)
            values.append(v)
        logits = two_column_logits(log_pi0, torch.stack(fs), alpha=self.alpha, beta=self.beta)
        return AgentOutput(self.mask(logits), torch.stack(values), {"log_pi0": log_pi0})

    def policy_logits(self, obs: torch.Tensor) -> torch.Tensor:
        f = torch.stack([cast(ActorCritic, col).actor(obs[t]) for t, col in enumerate(self.columns)])
        return self.mask(two_column_logits(self.distilled_log_probs(obs), f, alpha=self.alpha, beta=self.beta))

    def reward_bonus(self, out: AgentOutput, log_prob_taken: torch.Tensor,
                     actions: torch.Tensor) -> torch.Tensor:
        log_pi0_taken = out.extras["log_pi0"].gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        return regularisation_reward(log_pi0_taken, log_prob_taken, alpha=self.alpha, beta=self.beta).detach()

    def auxiliary_loss(self, out: AgentOutput, valid: torch.Tensor) -> torch.Tensor:
        log_pi = torch.log_softmax(out.logits, dim=-1)
        return distillation_loss(log_pi, out.extras["log_pi0"], valid, alpha=self.alpha, beta=self.beta)

    def task_stats(self, out: AgentOutput, valid: torch.Tensor) -> dict[str, torch.Tensor]:
        log_pi = torch.log_softmax(out.logits, dim=-1)
        return {"kl": kl_to_distilled(log_pi, out.extras["log_pi0"], valid).detach()}

    def config(self) -> dict[str, Any]:
        return {**super().config(), "alpha": self.alpha, "beta": self.beta}
