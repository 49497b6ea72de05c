"""Which tasks belong together: task affinity (TAG look-ahead, gradient cosine) and the
choice of task groups under a budget of networks (Fifty et al. 2021)."""

from mtlkit.analysis.affinity import (
    AffinityResult,
    AffinityTrainer,
    affinity_from_run,
    compute_affinity,
    cosine_from_records,
    lookahead_affinity,
)
from mtlkit.analysis.grouping import (
    Grouping,
    GroupTrainingResult,
    evaluate_groups,
    select_groups,
    task_score,
    train_groups,
)

__all__ = ["AffinityResult", "AffinityTrainer", "GroupTrainingResult", "Grouping", "affinity_from_run",
           "compute_affinity", "cosine_from_records", "evaluate_groups", "lookahead_affinity",
           "select_groups", "task_score", "train_groups"]
