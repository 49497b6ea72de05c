"""Tiny trunks, tasks and one builder per architecture, shared by the architecture tests."""

from __future__ import annotations

from typing import Any

import torch

from mtlkit import Task
from mtlkit.architectures.adashare import AdaShare
from mtlkit.architectures.adversarial import AdversarialSharedPrivate
from mtlkit.architectures.cross_stitch import CrossStitch
from mtlkit.architectures.deep_supervision import DeepSupervision
from mtlkit.architectures.dselect_k import DSelectK
from mtlkit.architectures.fusion import Fusion
from mtlkit.architectures.learning_to_branch import LearningToBranch
from mtlkit.architectures.mmoe import MMoE
from mtlkit.architectures.mtan import MTAN
from mtlkit.architectures.ple import PLE
from mtlkit.architectures.siamese import Siamese
from mtlkit.architectures.soft_sharing import SoftSharing

# family -> (trunk spec, per-sample input shape)
TRUNKS: dict[str, tuple[dict[str, Any], tuple[int, ...]]] = {
    "mlp": ({"name": "mlp", "hidden": [8, 6]}, (5,)),
    "cnn1d": ({"name": "cnn1d", "channels": [3, 4], "kernel_size": 3, "hidden": 6}, (2, 12)),
    "lenet": ({"name": "lenet", "channels": [2, 3], "hidden": 6}, (1, 16, 16)),
}

TASKS = [Task("a", "binary"), Task("b", "multiclass", num_classes=3), Task("c", "regression", dim=2)]


def build(arch: str, family: str, tasks: list[Task] | None = None, **extra: Any) -> torch.nn.Module:
    spec, shape = TRUNKS[family]
    tasks = list(TASKS if tasks is None else tasks)
    if arch == "soft_sharing":
        return SoftSharing(spec, tasks, input_shape=shape, **extra)
    if arch == "cross_stitch":
        return CrossStitch(spec, tasks, input_shape=shape, **extra)
    if arch == "mmoe":
        return MMoE(spec, tasks, input_shape=shape, **{"num_experts": 3, **extra})
    if arch == "ple":
        return PLE(spec, tasks, input_shape=shape,
                   **{"levels": 2, "num_shared_experts": 2, "num_task_experts": 1, **extra})
    if arch == "adashare":
        return AdaShare(spec, tasks, input_shape=shape, **extra)
    if arch == "adversarial":
        return AdversarialSharedPrivate(spec, tasks, input_shape=shape, **extra)
    if arch == "fusion":
        return Fusion(spec, tasks, input_shape=shape, **extra)
    if arch == "deep_supervision":
        return DeepSupervision(spec, tasks, input_shape=shape, **{"attach": {tasks[0].name: 0}, **extra})
    if arch == "siamese":
        s_tasks = [Task("contrastive", "contrastive"), Task("left", "multiclass", num_classes=3),
                   Task("right", "multiclass", num_classes=3)]
        return Siamese(spec, s_tasks, input_shape=(2, *shape), **extra)
    if arch == "mtan":
        return MTAN(spec, tasks, input_shape=shape, **extra)
    if arch == "dselect_k":
        return DSelectK(spec, tasks, input_shape=shape, **{"num_experts": 3, "k": 2, **extra})
    if arch == "learning_to_branch":
        return LearningToBranch(spec, tasks, input_shape=shape, **extra)
    raise KeyError(arch)


ARCHS = ["soft_sharing", "cross_stitch", "mmoe", "ple", "adashare", "adversarial", "fusion",
         "deep_supervision", "siamese"]


def inputs(arch: str, family: str, n: int = 4, seed: int = 0) -> torch.Tensor:
    shape = TRUNKS[family][1]
    g = torch.Generator().manual_seed(seed)
    if arch == "siamese":
        return torch.randn(n, 2, *shape, generator=g)
    return torch.randn(n, *shape, generator=g)


def expected_shape(task: Task, n: int) -> tuple[int, ...]:
    return (n, *task.output_shape)
