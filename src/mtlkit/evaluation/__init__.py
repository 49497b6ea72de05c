"""Per-task metrics, single-task baselines and the Δm summary of a multi-task model."""

from mtlkit.evaluation.delta_m import (
    DELTA_M_METRICS,
    delta_m,
    delta_m_metrics,
    delta_m_per_task,
    small_reference_warnings,
)

__all__ = ["DELTA_M_METRICS", "delta_m", "delta_m_metrics", "delta_m_per_task", "small_reference_warnings"]
