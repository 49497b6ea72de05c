"""Tiny RL configs for fast tests, and a CartPole that breaks (NaN) on purpose."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
from gymnasium.envs.classic_control.cartpole import CartPoleEnv

CARTPOLES = [("a", 0.5, 0.1), ("b", 0.25, 0.05), ("c", 1.0, 0.3)]


def tiny(**over: Any) -> dict[str, Any]:
    """Three CartPole variants, all methods, a few hundred env steps: seconds per run."""
    cfg: dict[str, Any] = {
        "kind": "rl", "name": "tiny",
        "tasks": [{"name": n, "env": "mtlkit/CartPole-v1", "kwargs": {"length": ln, "masspole": m},
                   "metadata": f"pole half length {ln} mass {m}"} for n, ln, m in CARTPOLES],
        "methods": ["single", "shared", "distral", "care"], "seeds": [0], "budget": 96,
        "agent": {"n_envs": 2, "n_steps": 8, "hidden": [8]},
        "care": {"encoders": 2, "encoder_dim": 4, "context_dim": 4, "hash_buckets": 16},
        "evaluation": {"episodes": 2}, "log_every": 32,
    }
    out = copy.deepcopy(cfg)
    out.update(over)
    return out


class BrokenCartPole(CartPoleEnv):
    """CartPole whose episodes break at step 3 (a NaN observation or reward): those reset with
    an even seed, and every other one of those reset without a seed."""

    def __init__(self, what: str = "obs", render_mode: str | None = None) -> None:
        super().__init__(render_mode=render_mode)
        self.what = what
        self.breaks = False
        self.t = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self.breaks = seed % 2 == 0 if seed is not None else not self.breaks
        self.t = 0
        return super().reset(seed=seed, options=options)

    def step(self, action):
        obs, reward, term, trunc, info = super().step(action)
        self.t += 1
        if self.breaks and self.t == 3:
            if self.what == "obs":
                obs = np.full_like(obs, np.nan)
            else:
                reward = float("nan")
        return obs, reward, term, trunc, info


def register_broken() -> str:
    import gymnasium

    env_id = "mtlkit_test/BrokenCartPole-v0"
    if env_id not in gymnasium.registry:
        gymnasium.register(id=env_id, entry_point=BrokenCartPole, max_episode_steps=200)
    return env_id
