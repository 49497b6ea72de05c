"""Multi-depth feature fusion (HyperFace): features from several trunk depths, fused into one
shared representation that every task head reads."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from mtlkit._checks import check_int
from mtlkit._registry import ARCHITECTURES
from mtlkit.architectures._base import MultiTaskModel, make_head
from mtlkit.architectures._layers import (
    TaskModuleDict,
    TrunkArg,
    block_index,
    block_shapes,
    named_blocks,
    params_of,
    pool_flat,
    pooled_width,
    require_spec,
    single_trunk,
)
from mtlkit.tasks import Task, check_tasks


@ARCHITECTURES.register()
class Fusion(MultiTaskModel):
    """Pool the outputs of several trunk blocks, concatenate them and fuse them into one shared
    representation read by every task head.

    Ranjan, Patel & Chellappa (2017), "HyperFace: A Deep Multi-task Learning Framework for Face
    Detection, Landmark Localization, Pose Estimation, and Gender Recognition", IEEE TPAMI.
    HyperFace takes conv1, conv3 and pool5 of AlexNet, brings them to one spatial size,
    concatenates them, reduces them with a 1×1 convolution and a fully connected layer
    ("fc_full"); the task heads branch from there, so tasks that need low-level detail
    (landmarks) and tasks that need global context (gender) share one trunk.

    Here, for any of our trunks: the output of each block in ``fuse_blocks`` is adaptively
    average-pooled to ``pool_size`` per spatial dimension (flat features are used as they are),
    flattened and concatenated; a linear layer + ReLU of width ``fusion_dim`` gives the shared
    representation (the pooling replaces HyperFace's strided convolutions, the linear layer its
    1×1 convolution + fc_full). Blocks after the deepest fused block are not run.

    ``has_representation`` is True: ``encode(x)`` is the fused representation and
    ``decode(rep)`` the heads; the trunk and the fusion layer are ``shared_parameters()``, the
    fusion layer is ``last_shared_parameters()``.

    Args:
        trunk: stock trunk spec or ``nn.Sequential`` (used as is).
        tasks: the task specs.
        input_shape: per-sample input shape.
        fuse_blocks: blocks (indices or names) whose outputs are fused; default every block.
        pool_size: output size per spatial dimension of the pooling (>= 1).
        fusion_dim: width of the fused representation (default: the trunk's output width).
        head_hidden: hidden widths of each head.

    >>> import torch
    >>> from mtlkit import Task
    >>> m = Fusion({"name": "cnn1d", "channels": [4, 8], "hidden": 8}, [Task("a", "binary")],
    ...            input_shape=(3, 16), fuse_blocks=["conv1", "fc"], fusion_dim=6)
    >>> tuple(m.encode(torch.zeros(2, 3, 16)).shape)
    (2, 6)
    """

    paper = "Ranjan, Patel & Chellappa 2017, HyperFace"

    def __init__(self, trunk: TrunkArg, tasks: Sequence[Task], *, input_shape: Sequence[int],
                 fuse_blocks: Sequence[int | str] | None = None, pool_size: int = 1,
                 fusion_dim: int | None = None, head_hidden: Sequence[int] = ()) -> None:
        super().__init__()
        self.tasks = check_tasks(tasks)
        self.pool_size = check_int("Fusion", "pool_size", pool_size, low=1)
        if input_shape is None:
            raise ValueError("Fusion needs 'input_shape' (to size the fusion layer).")
        built, spec = single_trunk(trunk, input_shape, "Fusion")
        blocks = named_blocks(built, "Fusion")
        self.block_names = [n for n, _ in blocks]
        if fuse_blocks is None:
            idx = list(range(len(blocks)))
        else:
            if isinstance(fuse_blocks, (str, int)):
                fuse_blocks = [fuse_blocks]
            idx = sorted({block_index(k, self.block_names, "fuse_blocks", "Fusion") for k in fuse_blocks})
            if not idx:
                raise ValueError("The 'fuse_blocks' parameter of Fusion must name at least one block. Got [].")
        self.fuse_idx = idx
        self.blocks = nn.ModuleList([b for _, b in blocks])
        shapes = block_shapes(list(self.blocks), input_shape)
        in_width = sum(pooled_width(shapes[i], self.pool_size) for i in idx)
        self.fusion_dim = check_int("Fusion", "fusion_dim", fusion_dim, low=1) if fusion_dim is not None else \
            pooled_width(shapes[-1], 1)
        self.fuse = nn.Sequential(nn.Linear(in_width, self.fusion_dim), nn.ReLU())
        self.heads = TaskModuleDict({t.name: make_head(self.fusion_dim, t, head_hidden) for t in self.tasks})
        self.config: dict[str, Any] = {
            "name": "fusion", "trunk": spec, "fuse_blocks": None if fuse_blocks is None else list(fuse_blocks),
            "pool_size": self.pool_size, "fusion_dim": fusion_dim, "head_hidden": list(head_hidden)}

    @classmethod
    def from_config(cls, tasks: Sequence[Task], input_shape: Sequence[int], *, trunk: dict[str, Any] | None,
                    **params: Any) -> Fusion:
        return cls(require_spec(trunk, "Fusion"), tasks, input_shape=input_shape, **params)

    @property
    def has_representation(self) -> bool:  # type: ignore[override]
        return True

    def encode(self, x: Tensor) -> Tensor:
        taps = []
        h = x
        for b in range(self.fuse_idx[-1] + 1):
            h = self.blocks[b](h)
            if b in self.fuse_idx:
                taps.append(pool_flat(h, self.pool_size))
        return self.fuse(torch.cat(taps, dim=1))

    def decode(self, rep: Tensor) -> dict[str, Tensor]:
        return {t.name: t.shape_output(self.heads[t.name](rep)) for t in self.tasks}

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        return params_of(*self.blocks[: self.fuse_idx[-1] + 1], self.fuse)

    def last_shared_parameters(self) -> list[nn.Parameter]:
        return list(self.fuse.parameters())

    def task_parameters(self, name: str) -> Iterator[nn.Parameter]:
        self._check_task(name)
        return self.heads[name].parameters()
