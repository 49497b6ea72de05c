"""Multi-task reinforcement learning: a family of tasks as Gymnasium environments, one
on-policy actor-critic (A2C), and four ways to learn the tasks together.

* ``single`` — one independent agent per task (:class:`Single`), the baseline;
* ``shared`` — one agent with a one-hot task input (:class:`Shared`);
* ``distral`` — Distral 2col (Teh et al. 2017): task policies regularised towards a jointly
  distilled policy (:class:`Distral`);
* ``care`` — CARE (Sodhani et al. 2021): a mixture of encoders with attention driven by the
  task's metadata (:class:`CARE`).

``mtlkit rl CONFIG.yaml`` runs every method with every seed and writes a run folder with
learning curves, evaluations, Δm, checkpoints, the policies and ``report.html``; see
``docs/rl.md``. Needs the ``rl`` extra (``pip install 'mtlkit[rl]'``).
"""

from __future__ import annotations

from mtlkit.rl._a2c import A2CSettings, Rollout, actor_critic_loss, gae
from mtlkit.rl._base import AgentOutput, RLAgent
from mtlkit.rl._envs import Space, TaskEnvs, check_env_id, probe
from mtlkit.rl._run import RLRun, delta_m_returns, run_rl
from mtlkit.rl._trainer import METHOD_CLASSES, RLTrainer, agent_from_spec, build_agent, evaluate
from mtlkit.rl.care import CARE
from mtlkit.rl.config import RLConfig, RLConfigError, load_rl_config, parse_rl_config
from mtlkit.rl.distral import (
    Distral,
    distillation_loss,
    kl_to_distilled,
    regularisation_reward,
    two_column_logits,
)
from mtlkit.rl.export import export_policy, load_policy
from mtlkit.rl.shared import Shared
from mtlkit.rl.single import Single

__all__ = [
    "CARE",
    "METHOD_CLASSES",
    "A2CSettings",
    "AgentOutput",
    "Distral",
    "RLAgent",
    "RLConfig",
    "RLConfigError",
    "RLRun",
    "RLTrainer",
    "Rollout",
    "Shared",
    "Single",
    "Space",
    "TaskEnvs",
    "actor_critic_loss",
    "agent_from_spec",
    "build_agent",
    "check_env_id",
    "delta_m_returns",
    "distillation_loss",
    "evaluate",
    "export_policy",
    "gae",
    "kl_to_distilled",
    "load_policy",
    "load_rl_config",
    "parse_rl_config",
    "probe",
    "regularisation_reward",
    "run_rl",
    "two_column_logits",
]
