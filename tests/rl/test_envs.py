"""Environments: the parametrised variants, spaces, and broken (NaN) episodes."""

from __future__ import annotations

import numpy as np
import pytest

from mtlkit.rl import TaskEnvs, probe
from mtlkit.rl._gym import gymnasium

from ._helpers import register_broken


def test_variants_change_the_physics_and_keep_the_spaces():
    gym = gymnasium()
    env = gym.make("mtlkit/CartPole-v1", length=1.0, masspole=0.5)
    u = env.unwrapped
    assert (u.length, u.masspole, u.total_mass, u.polemass_length) == (1.0, 0.5, 1.5, 0.5)
    assert env.spec.max_episode_steps == 500
    acro = gym.make("mtlkit/Acrobot-v1", link_length_1=0.5, link_mass_2=2.0).unwrapped
    assert (acro.LINK_LENGTH_1, acro.LINK_COM_POS_1, acro.LINK_MASS_2) == (0.5, 0.25, 2.0)
    assert probe("mtlkit/MountainCar-v0", {"force": 0.002}).text == "Box(2,) observations, Discrete(3) actions"
    # same actions from the same start: a different pole falls differently
    trajs = []
    for length in (0.25, 1.0):
        e = gym.make("mtlkit/CartPole-v1", length=length)
        obs, _ = e.reset(seed=0)
        for _ in range(5):
            obs, *_ = e.step(1)
        trajs.append(obs)
    assert not np.allclose(trajs[0], trajs[1])


@pytest.mark.parametrize("what", ["obs", "reward"])
def test_a_nan_episode_is_dropped_and_counted(what):
    env_id = register_broken()
    envs = TaskEnvs(env_id, {"what": what}, 2, 4)
    obs = envs.reset(0)
    broken = 0
    for _ in range(40):
        res = envs.step(np.zeros(2, dtype=np.int64))
        assert np.isfinite(res.obs).all() and np.isfinite(res.reward).all()
        broken += int(res.broken.sum())
        assert not (res.broken & (res.terminated | res.truncated)).any()
        obs = res.obs
    finished = envs.take_finished()
    assert broken > 0 and envs.dropped == broken
    assert finished and all(np.isfinite(r) for r, _ in finished)
    envs.close()
    assert obs.shape == (2, 4)
