"""How parameters are shared between tasks. One file per architecture, registered by stem."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from mtlkit._registry import ARCHITECTURES
from mtlkit.architectures._base import MultiTaskModel, make_head
from mtlkit.architectures.backbones import build_trunk, cnn1d, lenet, mlp
from mtlkit.architectures.hard_sharing import HardSharing
from mtlkit.tasks import Task


def build_model(config: dict[str, Any], tasks: Sequence[Task], input_shape: Sequence[int]) -> nn.Module:
    """Rebuild a registered architecture from its JSON ``config`` (``{"name": ..., ...}``)."""
    cfg = dict(config)
    name = cfg.pop("name", "hard_sharing")
    cls = ARCHITECTURES.get(name)
    return cls.from_config(tasks, input_shape, **cfg)


__all__ = ["HardSharing", "MultiTaskModel", "build_model", "build_trunk", "cnn1d", "lenet",
           "make_head", "mlp"]
