"""The one guarded import of Gymnasium (the ``rl`` extra), and the registration of the
parametrised classic-control variants under the ``mtlkit/`` namespace."""

from __future__ import annotations

import re
from typing import Any

#: id -> (entry point, max_episode_steps, reward_threshold)
VARIANTS: dict[str, tuple[str, int, float | None]] = {
    "mtlkit/CartPole-v1": ("mtlkit.rl._variants:CartPoleVariant", 500, 475.0),
    "mtlkit/Acrobot-v1": ("mtlkit.rl._variants:AcrobotVariant", 500, -100.0),
    "mtlkit/MountainCar-v0": ("mtlkit.rl._variants:MountainCarVariant", 200, -110.0),
}


def gymnasium() -> Any:
    """The ``gymnasium`` module, with mtlkit's variants registered; a clear error without it."""
    try:
        import gymnasium as gym
    except ImportError as exc:  # pragma: no cover - the dev extra installs it
        raise ImportError("Reinforcement learning needs Gymnasium: pip install 'mtlkit[rl]' "
                          "(gymnasium>=1.1).") from exc
    found = re.match(r"(\d+)\.(\d+)", gym.__version__)
    if found and (int(found[1]), int(found[2])) < (1, 1):  # vector environments with autoreset disabled (reset_mask) came in 1.1
        raise ImportError(f"Reinforcement learning needs gymnasium>=1.1 (installed: {gym.__version__}): "
                          f"pip install -U 'mtlkit[rl]'.")
    for env_id, (entry, steps, threshold) in VARIANTS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry, max_episode_steps=steps, reward_threshold=threshold)
    return gym
