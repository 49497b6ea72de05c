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

#: the architectures whose heads read a text trunk's flat output as it is laid out (or a mix of
#: such outputs): the ones per-token tasks (``next_token``, ``token_tagging``) work with
PER_TOKEN_ARCHITECTURES = ("hard_sharing", "shared_bottom", "soft_sharing", "cross_stitch", "mmoe", "dselect_k")


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
    per_token = [t for t in tasks if isinstance(t, Task) and getattr(t.task_kind, "per_token", False)]
    if per_token and name not in PER_TOKEN_ARCHITECTURES:
        raise ValueError(f"Task {per_token[0].name!r} ({per_token[0].kind}) reads the per-token states of a text "
                         f"trunk, which the {name!r} architecture does not hand to its heads as the trunk lays "
                         f"them out; use one of {', '.join(PER_TOKEN_ARCHITECTURES)}.")
    if isinstance(cfg.get("trunk"), dict):  # a text trunk gets the per-token states its tasks read
        from mtlkit.architectures.text import token_states_for

        cfg["trunk"] = token_states_for(cfg["trunk"], tasks)
    return cls.from_config(tasks, input_shape, **cfg)


__all__ = ["AITM", "CAML", "ESMM", "MTAN", "PLE", "AdaShare", "AdversarialSharedPrivate", "CrossStitch", "DSelectK",
           "DeepSupervision", "Fusion", "GradientReversal", "HardSharing", "LearningToBranch", "MMoE", "MultiTaskModel", "Multimodal",
           "SharedBottom", "Siamese", "SoftSharing", "build_model", "build_trunk", "cnn1d", "contrastive_loss", "lenet",
           "make_head", "make_pairs", "mlp"]
