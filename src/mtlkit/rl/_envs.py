"""Tasks as Gymnasium environments: id checks with suggestions, keyword-argument checks,
spaces, and the per-task vector environment used for training and evaluation.

A task's vector environment is a :class:`gymnasium.vector.SyncVectorEnv` with autoreset
disabled: the trainer resets finished sub-environments itself (``reset_mask``), so a
terminated, truncated or *broken* episode (a NaN observation or reward) is handled in one
place. A broken episode is dropped: its transitions from the non-finite step on are masked
out of the loss, its return is not recorded, and it is counted.
"""

from __future__ import annotations

import difflib
import inspect
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mtlkit.rl._gym import gymnasium


@dataclass(frozen=True)
class Space:
    """What a method needs to know of a task's spaces: a flat observation, discrete actions."""

    obs_dim: int
    n_actions: int
    text: str  # e.g. "Box(4,) observations, Discrete(2) actions"


def check_env_id(env_id: str) -> None:
    """Raise a ``ValueError`` naming close ids when Gymnasium does not know ``env_id``."""
    gym = gymnasium()
    if env_id in gym.registry:
        return
    ids = list(gym.registry)
    close = difflib.get_close_matches(env_id, ids, n=3, cutoff=0.6)
    if not close:  # try without namespace/version, case-insensitively ("cartpole" -> CartPole-v1)
        stem = env_id.split("/")[-1].split("-v")[0].lower()
        close = [i for i in ids if i.split("/")[-1].split("-v")[0].lower() == stem][:3]
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else \
        " (run `python -c \"import gymnasium; gymnasium.pprint_registry()\"` for the list)"
    raise ValueError(f"Gymnasium does not know the environment id {env_id!r}{hint}")


def _accepted(env_id: str) -> tuple[list[str], bool]:
    """The keyword arguments the environment's constructor takes, and whether it takes **kwargs."""
    gym = gymnasium()
    spec = gym.spec(env_id)
    entry = spec.entry_point
    try:
        target = gym.envs.registration.load_env_creator(entry) if isinstance(entry, str) else entry
        sig = inspect.signature(target)
    except (ValueError, TypeError, ImportError, AttributeError):
        return [], True
    names = [p.name for p in sig.parameters.values()
             if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"]
    var = any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())
    return names, var


_PROBED: dict[str, Space] = {}


def probe(env_id: str, kwargs: Mapping[str, Any] | None = None) -> Space:
    """Build the environment once and return its :class:`Space`.

    A keyword argument the constructor does not take, or one it rejects, is a ``ValueError``
    that names it; an unsupported space is a ``ValueError`` that says which."""
    kwargs = dict(kwargs or {})
    key = json.dumps([env_id, kwargs], sort_keys=True, default=repr)
    if key in _PROBED:
        return _PROBED[key]
    check_env_id(env_id)
    gym = gymnasium()
    names, var = _accepted(env_id)
    reserved = sorted(set(kwargs) & {"render_mode", "max_episode_steps", "disable_env_checker", "autoreset"})
    if reserved:
        raise ValueError(f"{env_id}: keyword argument(s) {', '.join(map(repr, reserved))} are set by mtlkit "
                         f"and cannot be given")
    unknown = sorted(k for k in kwargs if k not in names)
    if unknown and not var:
        takes = ", ".join(n for n in names if n != "render_mode") or "none"
        raise ValueError(f"{env_id} does not take the keyword argument(s) {', '.join(map(repr, unknown))} "
                         f"(it takes: {takes})")
    try:
        env = gym.make(env_id, **kwargs)
    except Exception as exc:  # the environment's own check of its arguments
        raise ValueError(f"{env_id} rejected the keyword arguments {kwargs}: {type(exc).__name__}: {exc}") from None
    try:
        space = space_of(env_id, env)
    finally:
        env.close()
    _PROBED[key] = space
    return space


def space_of(env_id: str, env: Any) -> Space:
    gym = gymnasium()
    obs, act = env.observation_space, env.action_space
    if not isinstance(obs, gym.spaces.Box) or len(obs.shape) != 1:
        raise ValueError(f"{env_id}: only flat Box observations are supported, it has {obs}")
    if not isinstance(act, gym.spaces.Discrete) or int(act.start) != 0:
        raise ValueError(f"{env_id}: only Discrete(n) actions are supported (A2C with a categorical "
                         f"policy), it has {act}")
    return Space(int(obs.shape[0]), int(act.n), f"Box({int(obs.shape[0])},) observations, "
                                                 f"Discrete({int(act.n)}) actions")


@dataclass
class StepResult:
    """One vector step of one task (arrays over its ``n`` sub-environments)."""

    obs: np.ndarray          # next observations, padded, finite (reset ones where an episode ended)
    reward: np.ndarray       # float32, 0 where the step was broken
    terminated: np.ndarray   # bool: a real end of the episode (no bootstrap)
    truncated: np.ndarray    # bool: time limit (bootstrap from ``final_obs``)
    broken: np.ndarray       # bool: NaN/inf observation or reward: dropped
    final_obs: np.ndarray    # padded last observations of the truncated episodes (else zeros)


@dataclass
class TaskEnvs:
    """``n`` copies of one task's environment, stepped together, with episode bookkeeping."""

    env_id: str
    kwargs: dict[str, Any]
    n: int
    obs_dim: int  # padded width
    envs: Any = field(init=False, repr=False)
    returns: np.ndarray = field(init=False, repr=False)
    lengths: np.ndarray = field(init=False, repr=False)
    finished: list[tuple[float, int]] = field(init=False, default_factory=list)
    dropped: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        gym = gymnasium()
        from gymnasium.vector import AutoresetMode, SyncVectorEnv

        env_id, kwargs = self.env_id, self.kwargs

        def make() -> Any:
            return gym.make(env_id, disable_env_checker=True, **kwargs)

        self.envs = SyncVectorEnv([make for _ in range(self.n)], copy=False, autoreset_mode=AutoresetMode.DISABLED)
        self.returns = np.zeros(self.n)
        self.lengths = np.zeros(self.n, dtype=np.int64)

    def _pad(self, obs: np.ndarray) -> np.ndarray:
        obs = np.array(obs, dtype=np.float32, copy=True).reshape(self.n, -1)  # (the vector env reuses its buffer)
        if obs.shape[1] < self.obs_dim:
            obs = np.pad(obs, ((0, 0), (0, self.obs_dim - obs.shape[1])))
        return obs

    def reset(self, seed: int) -> np.ndarray:
        """Reset every sub-environment (sub-environment ``i`` gets ``seed + i``); in-progress
        episodes are discarded without being counted."""
        obs, _ = self.envs.reset(seed=int(seed))
        self.returns[:] = 0
        self.lengths[:] = 0
        obs = self._pad(obs)
        bad = ~np.isfinite(obs).all(axis=1)
        tries = 0
        while bad.any():  # a broken first observation: that episode is dropped before it starts
            tries = self._retry(tries)
            self.dropped += int(bad.sum())
            fresh, _ = self.envs.reset(options={"reset_mask": bad})
            obs = np.where(bad[:, None], self._pad(fresh), obs)
            bad = ~np.isfinite(obs).all(axis=1)
        return obs

    def step(self, actions: np.ndarray) -> StepResult:
        obs, reward, term, trunc, _ = self.envs.step(np.asarray(actions, dtype=np.int64))
        obs = self._pad(obs)
        reward = np.asarray(reward, dtype=np.float64)
        broken = ~np.isfinite(obs).all(axis=1) | ~np.isfinite(reward)
        reward = np.where(broken, 0.0, reward)
        term = np.asarray(term, dtype=bool) & ~broken
        trunc = np.asarray(trunc, dtype=bool) & ~broken & ~term
        self.returns += reward
        self.lengths += 1
        final_obs = np.where(trunc[:, None], obs, np.float32(0.0)) if trunc.any() else np.zeros_like(obs)
        done = term | trunc | broken
        for i in np.flatnonzero(done):
            if broken[i]:
                self.dropped += 1
            else:
                self.finished.append((float(self.returns[i]), int(self.lengths[i])))
            self.returns[i] = 0.0
            self.lengths[i] = 0
        tries = 0
        while done.any():
            tries = self._retry(tries)
            fresh, _ = self.envs.reset(options={"reset_mask": done.copy()})
            obs = np.where(done[:, None], self._pad(fresh), obs)
            done = done & ~np.isfinite(obs).all(axis=1)  # a broken reset observation: drop, reset again
            self.dropped += int(done.sum())
        return StepResult(obs, reward.astype(np.float32), term, trunc, broken, final_obs)

    def _retry(self, tries: int) -> int:
        if tries >= 100:
            raise RuntimeError(f"{self.env_id} returned a non-finite observation on 100 resets in a row; "
                               f"check the environment and its kwargs {self.kwargs}")
        return tries + 1

    def take_finished(self) -> list[tuple[float, int]]:
        out, self.finished = self.finished, []
        return out

    def close(self) -> None:
        self.envs.close()
