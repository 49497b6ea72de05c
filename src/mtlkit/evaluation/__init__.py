"""Per-task metrics, single-task baselines and the Δm summary of a multi-task model."""

from mtlkit.evaluation.delta_m import delta_m, delta_m_per_task

__all__ = ["delta_m", "delta_m_per_task"]
