"""Classic-control environments whose physical constants are keyword arguments, so a family
of tasks is a list of ids with kwargs (no download, nothing but Gymnasium's own dynamics).

``mtlkit/CartPole-v1``: ``length`` (half the pole's length, 0.5), ``masspole`` (0.1),
``masscart`` (1.0), ``force_mag`` (10.0), ``gravity`` (9.8).
``mtlkit/Acrobot-v1``: ``link_length_1``/``link_length_2`` (1.0; the centres of mass stay at
the middle of each link), ``link_mass_1``/``link_mass_2`` (1.0), ``link_moi`` (1.0).
``mtlkit/MountainCar-v0``: ``force`` (0.001), ``gravity`` (0.0025).
Everything else (spaces, rewards, termination, time limits) is the original environment's.
"""

from __future__ import annotations

import math

from gymnasium.envs.classic_control.acrobot import AcrobotEnv
from gymnasium.envs.classic_control.cartpole import CartPoleEnv
from gymnasium.envs.classic_control.mountain_car import MountainCarEnv


def _positive(env: str, **values: float) -> dict[str, float]:
    out = {}
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ValueError(f"The {name!r} parameter of {env} must be a positive number. Got {value!r}.")
        out[name] = float(value)
    return out


class CartPoleVariant(CartPoleEnv):
    """CartPole-v1 with its pole length, masses, force and gravity as keyword arguments."""

    def __init__(self, *, length: float = 0.5, masspole: float = 0.1, masscart: float = 1.0,
                 force_mag: float = 10.0, gravity: float = 9.8, sutton_barto_reward: bool = False,
                 render_mode: str | None = None) -> None:
        super().__init__(sutton_barto_reward=sutton_barto_reward, render_mode=render_mode)
        v = _positive("mtlkit/CartPole-v1", length=length, masspole=masspole, masscart=masscart,
                      force_mag=force_mag, gravity=gravity)
        self.length, self.masspole, self.masscart = v["length"], v["masspole"], v["masscart"]
        self.force_mag, self.gravity = v["force_mag"], v["gravity"]
        self.total_mass = self.masspole + self.masscart
        self.polemass_length = self.masspole * self.length


class AcrobotVariant(AcrobotEnv):
    """Acrobot-v1 with its link lengths, masses and moment of inertia as keyword arguments."""

    def __init__(self, *, link_length_1: float = 1.0, link_length_2: float = 1.0, link_mass_1: float = 1.0,
                 link_mass_2: float = 1.0, link_moi: float = 1.0, render_mode: str | None = None) -> None:
        super().__init__(render_mode=render_mode)
        v = _positive("mtlkit/Acrobot-v1", link_length_1=link_length_1, link_length_2=link_length_2,
                      link_mass_1=link_mass_1, link_mass_2=link_mass_2, link_moi=link_moi)
        self.LINK_LENGTH_1, self.LINK_LENGTH_2 = v["link_length_1"], v["link_length_2"]
        self.LINK_COM_POS_1, self.LINK_COM_POS_2 = v["link_length_1"] / 2, v["link_length_2"] / 2
        self.LINK_MASS_1, self.LINK_MASS_2 = v["link_mass_1"], v["link_mass_2"]
        self.LINK_MOI = v["link_moi"]


class MountainCarVariant(MountainCarEnv):
    """MountainCar-v0 with its engine force and gravity as keyword arguments."""

    def __init__(self, *, force: float = 0.001, gravity: float = 0.0025, goal_velocity: float = 0,
                 render_mode: str | None = None) -> None:
        super().__init__(render_mode=render_mode, goal_velocity=goal_velocity)
        v = _positive("mtlkit/MountainCar-v0", force=force, gravity=gravity)
        self.force, self.gravity = v["force"], v["gravity"]
