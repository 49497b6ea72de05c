"""How parameters are shared between tasks. One file per architecture, registered by stem."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from mtlkit._registry import ARCHITECTURES
from mtlkit.architectures._base import MultiTaskModel, contrastive_needs_pairs, make_head
from mtlkit.architectures._layers import GradientReversal
from mtlkit.architectures.adashare import AdaShare
from mtlkit.architectures.adversarial import AdversarialSharedPrivate
from mtlkit.architectures.aitm import AITM
from mtlkit.architectures.backbones import build_trunk, cnn1d, lenet, mlp
from mtlkit.architectures.caml import CAML
from mtlkit.architectures.cross_stitch import CrossStitch
from mtlkit.architectures.deep_supervision import DeepSupervision
from mtlkit.architectures.dselect_k import DSelectK
from mtlkit.architectures.esmm import ESMM
from mtlkit.architectures.fusion import Fusion
from mtlkit.architectures.hard_sharing import HardSharing
from mtlkit.architectures.learning_to_branch import LearningToBranch
from mtlkit.architectures.mmoe import MMoE
from mtlkit.architectures.mtan import MTAN
from mtlkit.architectures.multimodal import Multimodal
from mtlkit.architectures.ple import PLE
from mtlkit.architectures.shared_bottom import SharedBottom
from mtlkit.architectures.siamese import Siamese, contrastive_loss, make_pairs
from mtlkit.architectures.soft_sharing import SoftSharing
from mtlkit.tasks import Task


def build_model(config: dict[str, Any], tasks: Sequence[Task],
                input_shape: Sequence[int] | Mapping[str, Sequence[int]]) -> nn.Module:
    """Rebuild a registered architecture from its JSON ``config`` (``{"name": ..., ...}``);
    ``input_shape`` is ``{input name: shape}`` for a model of several named inputs (multimodal)."""
    cfg = dict(config)
    name = cfg.pop("name", "hard_sharing")
    cls = ARCHITECTURES.get(name)
    pairs = [t.name for t in tasks if isinstance(t, Task) and t.task_kind.pairwise]
    if pairs and not getattr(cls, "reads_pairs", False):
        raise contrastive_needs_pairs(pairs[0])
    return cls.from_config(tasks, input_shape, **cfg)


__all__ = ["AITM", "CAML", "ESMM", "MTAN", "PLE", "AdaShare", "AdversarialSharedPrivate", "CrossStitch", "DSelectK",
           "DeepSupervision", "Fusion", "GradientReversal", "HardSharing", "LearningToBranch", "MMoE", "MultiTaskModel", "Multimodal",
           "SharedBottom", "Siamese", "SoftSharing", "build_model", "build_trunk", "cnn1d", "contrastive_loss", "lenet",
           "make_head", "make_pairs", "mlp"]
