"""Advantage actor-critic (A2C, the synchronous form of Mnih et al. 2016's A3C) with
generalised advantage estimation (Schulman et al. 2016): the pure functional core.

For each task ``i`` and rollout of ``S`` steps from ``N`` environments:

    r̃_t   = r_t + bonus_t                       (bonus: a method's reward term, e.g. Distral's)
    δ_t   = r̃_t + γ·(1 − cut_t)·V(s_{t+1}) − V(s_t)
    Â_t   = valid_t·(δ_t + γλ·(1 − cut_t)·Â_{t+1}),    R̂_t = Â_t + V(s_t)
    L_i   = −mean_t[log π_i(a_t|s_t)·Â_t] + c_v·mean_t[(V(s_t) − R̂_t)²]
            − c_H·mean_t[H(π_i(·|s_t))]  (when the method takes the entropy bonus)  + aux_i

``cut_t`` ends the bootstrap at a terminal, truncated or broken step; a truncated step has
γ·V(final observation) already added to its reward; a broken step (NaN observation or
reward) has ``valid_t = 0`` and is out of every mean. The loss minimised is Σ_i L_i.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mtlkit.rl._base import AgentOutput, RLAgent, masked_mean


@dataclass(frozen=True)
class A2CSettings:
    gamma: float = 0.99
    gae_lambda: float = 0.95
    ent_coef: float = 0.01
    vf_coef: float = 0.5


@dataclass
class Rollout:
    """``S`` steps of ``N`` environments of each of ``T`` tasks, time-major."""

    obs: torch.Tensor       # [S, T, N, D]
    actions: torch.Tensor   # [S, T, N] long
    rewards: torch.Tensor   # [S, T, N] (with γ·V(final obs) added at truncations)
    cuts: torch.Tensor      # [S, T, N] bool
    valid: torch.Tensor     # [S, T, N] bool
    last_obs: torch.Tensor  # [T, N, D]


def gae(rewards: torch.Tensor, values: torch.Tensor, last_value: torch.Tensor, cuts: torch.Tensor,
        valid: torch.Tensor, *, gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and value targets, time-major ``[S, ...]``; see the module docstring."""
    adv = torch.zeros_like(rewards)
    next_adv = torch.zeros_like(last_value)
    next_value = last_value
    for s in range(rewards.shape[0] - 1, -1, -1):
        keep = 1.0 - cuts[s].to(rewards.dtype)
        delta = rewards[s] + gamma * keep * next_value - values[s]
        a = (delta + gamma * lam * keep * next_adv) * valid[s].to(rewards.dtype)
        adv[s] = a
        next_adv, next_value = a, values[s]
    return adv, adv + values


def _task_major(x: torch.Tensor) -> torch.Tensor:
    """``[S, T, N, ...] -> [T, S·N, ...]``."""
    s, t, n = x.shape[:3]
    return x.transpose(0, 1).reshape(t, s * n, *x.shape[3:])


def _time_major(x: torch.Tensor, s: int, n: int) -> torch.Tensor:
    """``[T, S·N] -> [S, T, N]``."""
    return x.reshape(x.shape[0], s, n).transpose(0, 1)


@dataclass
class LossParts:
    total: torch.Tensor                 # scalar: Σ_i L_i
    per_task: torch.Tensor              # [T]
    policy: torch.Tensor                # [T]
    value: torch.Tensor                 # [T]
    entropy: torch.Tensor               # [T]
    auxiliary: torch.Tensor | None      # [T]
    stats: dict[str, torch.Tensor]      # method diagnostics, [T] or [T, k]
    output: AgentOutput


def actor_critic_loss(agent: RLAgent, batch: Rollout, settings: A2CSettings) -> LossParts:
    """The A2C loss of ``agent`` on a rollout, with the agent's hooks (reward bonus,
    auxiliary loss, entropy bonus or not)."""
    s, t, n = batch.actions.shape
    out = agent(_task_major(batch.obs))
    with torch.no_grad():
        last_value = agent(batch.last_obs).value
    actions = _task_major(batch.actions)
    valid = _task_major(batch.valid)
    log_pi = torch.log_softmax(out.logits, dim=-1)
    log_taken = log_pi.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    rewards = batch.rewards
    bonus = agent.reward_bonus(out, log_taken.detach(), actions)
    if bonus is not None:
        rewards = rewards + _time_major(bonus.detach(), s, n)
    values = _time_major(out.value, s, n)
    adv, ret = gae(rewards, values.detach(), last_value, batch.cuts, batch.valid,
                   gamma=settings.gamma, lam=settings.gae_lambda)
    adv_tm, ret_tm = _task_major(adv), _task_major(ret)
    policy = -masked_mean(log_taken * adv_tm, valid)
    value = masked_mean((out.value - ret_tm) ** 2, valid)
    entropy = masked_mean(-(log_pi.exp() * log_pi).sum(-1), valid)
    per_task = policy + settings.vf_coef * value
    if agent.entropy_bonus:
        per_task = per_task - settings.ent_coef * entropy
    aux = agent.auxiliary_loss(out, valid)
    if aux is not None:
        per_task = per_task + aux
    return LossParts(per_task.sum(), per_task, policy, value, entropy, aux, agent.task_stats(out, valid), out)
