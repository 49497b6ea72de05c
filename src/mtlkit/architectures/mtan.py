"""MTAN: a shared backbone with a task-specific soft-attention module at every block."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, cast

import torch
from torch import Tensor, nn

from mtlkit._checks import check_ints
from mtlkit._registry import ARCHITECTURES
from mtlkit.architectures._base import MultiTaskModel, make_head
from mtlkit.architectures._layers import (
    RunningMean,
    TaskModuleDict,
    TrunkArg,
    TrunkFactory,
    block_shapes,
    flat_size,
    named_blocks,
    params_of,
    require_spec,
)
from mtlkit.tasks import Task, check_tasks

_CONV: dict[int, tuple[type[nn.Module], type[nn.Module]]] = {
    1: (nn.Conv1d, nn.BatchNorm1d), 2: (nn.Conv2d, nn.BatchNorm2d), 3: (nn.Conv3d, nn.BatchNorm3d)}


def attention_module(in_channels: int, shape: Sequence[int]) -> nn.Sequential:
    """The attention module of one task at one block whose per-sample output shape is
    ``shape``: it maps ``in_channels`` input channels (features) to a mask in (0, 1) of that
    shape.

    Feature maps (C, *spatial): the paper's ``[1×1 conv, BN, ReLU, 1×1 conv, BN, sigmoid]``
    with C channels in the middle (the convolutions without bias: batch norm removes it). Flat features (D,): the same with linear layers and no
    batch norm (``[linear, ReLU, linear, sigmoid]``), i.e. a per-feature sigmoid gate.

    >>> attention_module(6, (3, 8, 8))[0]
    Conv2d(6, 3, kernel_size=(1, 1), stride=(1, 1), bias=False)
    >>> attention_module(8, (4,))
    Sequential(
      (0): Linear(in_features=8, out_features=4, bias=True)
      (1): ReLU()
      (2): Linear(in_features=4, out_features=4, bias=True)
      (3): Sigmoid()
    )
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) == 1:
        d = shape[0]
        return nn.Sequential(nn.Linear(in_channels, d), nn.ReLU(), nn.Linear(d, d), nn.Sigmoid())
    if len(shape) - 1 not in _CONV:
        raise ValueError(f"MTAN cannot attend to block outputs of per-sample shape {shape}: it needs flat "
                         f"features (D,) or feature maps (C, L), (C, H, W), (C, D, H, W).")
    conv, norm = _CONV[len(shape) - 1]
    c = shape[0]
    return nn.Sequential(conv(in_channels, c, 1, bias=False), norm(c), nn.ReLU(), conv(c, c, 1, bias=False), norm(c),
                         nn.Sigmoid())


@ARCHITECTURES.register()
class MTAN(MultiTaskModel):
    """A shared backbone; each task attends to its features with a soft mask at every block.

    Liu, Johns & Davison (2019), "End-to-End Multi-Task Learning with Attention", CVPR.
    The backbone (the trunk's blocks ``1..B``) is shared and computes ``h_j`` (the paper's
    global feature pool). Task t has one attention module per block; at block j it computes a
    soft mask ``a_tj = sigmoid(...)`` of the shape of ``h_j`` and its attended features
    ``â_tj = a_tj ⊙ h_j`` (elementwise). The mask of the first block reads ``h_1``; the mask of
    block ``j > 1`` reads the concatenation (along channels) of ``h_j`` and ``f_j(â_t,j-1)``,
    so each task's chain of attention takes its previous attended features. Task t's head
    reads its last attended features ``â_tB`` (flattened).

    Attention modules (:func:`attention_module`): on feature maps, the paper's
    ``[1×1 conv, BN, ReLU, 1×1 conv, BN, sigmoid]``; on flat features (an MLP trunk, and the
    dense block closing the stock ``cnn1d`` and ``lenet`` trunks) the mask is a per-feature
    sigmoid gate ``sigmoid(W₂ ReLU(W₁ [h_j; f_j(â_t,j-1)]))`` (no batch norm). Such a gate on D
    features has about 3D² weights per task, so on a block that flattens a large feature map
    (LeNet's conv2) it is the bulk of MTAN's parameters.

    Choices where our trunks differ from the paper's SegNet: the paper applies the mask inside
    each block (computed from the block's first convolution, applied to its last one) and its
    shared ``f_j`` is a 3×3 convolution and a pooling layer that bring ``â_t,j-1`` to block j's
    channels and resolution. Our blocks are opaque modules, so masks are computed from and
    applied to each block's output, and ``f_j`` is a separate copy of block j (same shapes by
    construction, its own weights, shared by the tasks; for the stock trunks a conv + pooling
    block, or a dense block). With every mask equal to 1 each task's features are the shared
    features and MTAN reduces to hard sharing with the same trunk and heads.

    Parameters: the backbone and the ``f_j`` are ``shared_parameters()``; task t's attention
    modules and head are ``task_parameters(t)``. ``has_representation`` is False: each head
    reads its own attended features. ``sharing_summary()["attention"]`` is, per task, the mean
    mask value at each block over the forward passes since the previous call (as MMoE's gates).

    Args:
        trunk: stock trunk spec or ``nn.Sequential`` (blocks = its top-level children): the
            shared backbone; the ``f_j`` are fresh copies of its blocks 2..B.
        tasks: the task specs.
        input_shape: per-sample input shape.
        head_hidden: hidden widths of each head.

    >>> import torch
    >>> from mtlkit import Task
    >>> m = MTAN({"name": "lenet", "channels": [4, 8], "hidden": 16}, [Task("a", "binary"),
    ...          Task("b", "multiclass", num_classes=3)], input_shape=(1, 28, 28))
    >>> {k: tuple(v.shape) for k, v in m(torch.randn(2, 1, 28, 28)).items()}
    {'a': (2,), 'b': (2, 3)}
    >>> [tuple(a.shape) for a in m.attention_masks(torch.randn(2, 1, 28, 28))["a"]]
    [(2, 4, 12, 12), (2, 128), (2, 16)]
    """

    paper = "Liu, Johns & Davison 2019, End-to-End Multi-Task Learning with Attention"
    has_representation = False

    def __init__(self, trunk: TrunkArg, tasks: Sequence[Task], *, input_shape: Sequence[int],
                 head_hidden: Sequence[int] = ()) -> None:
        super().__init__()
        self.tasks = check_tasks(tasks)
        hidden = check_ints("MTAN", "head_hidden", head_hidden, low=1, min_length=0)
        if input_shape is None:
            raise ValueError("MTAN needs 'input_shape' (to size the attention modules).")
        make = TrunkFactory(trunk, input_shape, "MTAN")
        backbone = named_blocks(make(), "MTAN")
        self.block_names = [n for n, _ in backbone]
        self.blocks = nn.ModuleList([b for _, b in backbone])
        self.shapes = block_shapes(list(self.blocks), input_shape)
        nb = len(self.blocks)
        # f_j for j = 2..B: a separate copy of block j, shared by the tasks
        extra = named_blocks(make(), "MTAN") if nb > 1 else []
        self.extractors = nn.ModuleList([b for _, b in extra[1:]])
        self.attention = TaskModuleDict({t.name: nn.ModuleList([
            attention_module(self.shapes[j][0] * (1 if j == 0 else 2), self.shapes[j]) for j in range(nb)])
            for t in self.tasks})
        self.width = flat_size(self.shapes[-1])
        self.heads = TaskModuleDict({t.name: make_head(self.width, t, hidden) for t in self.tasks})
        self._mask_means = {t.name: RunningMean() for t in self.tasks}
        self.config: dict[str, Any] = {"name": "mtan", "trunk": make.spec, "head_hidden": hidden}

    @classmethod
    def from_config(cls, tasks: Sequence[Task], input_shape: Sequence[int], *, trunk: dict[str, Any] | None,
                    **params: Any) -> MTAN:
        return cls(require_spec(trunk, "MTAN"), tasks, input_shape=input_shape, **params)

    # ------------------------------------------------------------------ forward
    def _attention(self, name: str) -> nn.ModuleList:
        return cast(nn.ModuleList, self.attention[name])

    def shared_features(self, x: Tensor) -> list[Tensor]:
        """The backbone's block outputs ``[h_1, ..., h_B]``."""
        out = []
        h = x
        for block in self.blocks:
            h = block(h)
            out.append(h)
        return out

    def _attend(self, name: str, shared: Sequence[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Task ``name``'s masks and attended features at every block."""
        masks: list[Tensor] = []
        feats: list[Tensor] = []
        att = self._attention(name)
        for j, h in enumerate(shared):
            inp = h if j == 0 else torch.cat([h, self.extractors[j - 1](feats[-1])], dim=1)
            a = att[j](inp)
            masks.append(a)
            feats.append(a * h)
        return masks, feats

    def attention_masks(self, x: Tensor) -> dict[str, list[Tensor]]:
        """Every task's masks ``[a_t1, ..., a_tB]`` for inputs ``x`` (each of its block's shape)."""
        shared = self.shared_features(x)
        return {t.name: self._attend(t.name, shared)[0] for t in self.tasks}

    def task_features(self, x: Tensor) -> tuple[list[Tensor], dict[str, list[Tensor]]]:
        """The shared features ``[h_j]`` and every task's attended features ``[â_tj]``."""
        shared = self.shared_features(x)
        return shared, {t.name: self._attend(t.name, shared)[1] for t in self.tasks}

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        shared = self.shared_features(x)
        out = {}
        for t in self.tasks:
            masks, feats = self._attend(t.name, shared)
            self._mask_means[t.name].update(torch.stack(
                [a.detach().reshape(a.shape[0], -1).mean(1) for a in masks], dim=1))
            h = feats[-1]
            out[t.name] = t.shape_output(self.heads[t.name](h.reshape(h.shape[0], -1)))
        return out

    # ------------------------------------------------------------------ contract
    def shared_parameters(self) -> Iterator[nn.Parameter]:
        return params_of(self.blocks, self.extractors)

    def last_shared_parameters(self) -> list[nn.Parameter]:
        return list(self.blocks[-1].parameters()) or super().last_shared_parameters()

    def task_parameters(self, name: str) -> Iterator[nn.Parameter]:
        self._check_task(name)
        return params_of(self.attention[name], self.heads[name])

    def sharing_summary(self) -> dict[str, Any]:
        means = {n: m.pop() for n, m in self._mask_means.items()}
        if all(v is None for v in means.values()):
            return {}
        return {"attention": {n: v for n, v in means.items() if v is not None},
                "attention_blocks": list(self.block_names)}
