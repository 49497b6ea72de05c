"""Hard parameter sharing: one shared trunk, one head per task (Caruana 1997)."""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import Any

from torch import Tensor, nn

from mtlkit._registry import ARCHITECTURES
from mtlkit.architectures._base import MultiTaskModel, make_head
from mtlkit.architectures._layers import TaskModuleDict
from mtlkit.architectures.backbones import build_trunk, infer_out_features
from mtlkit.tasks import Task, check_tasks


@ARCHITECTURES.register()
class HardSharing(MultiTaskModel):
    """A shared trunk and one head per task; optionally split the trunk after a block.

    Caruana, "Multitask Learning", Machine Learning 28, 1997.

    Args:
        trunk: any ``nn.Module`` mapping a batch to features (flattened if not 2-D).
        tasks: the task specs; one head each, of width ``task.out_dim``.
        trunk_out: the trunk's output width; inferred by one dummy forward from
            ``input_shape`` when omitted (or read from ``trunk.out_features``).
        input_shape: the shape of one input sample (needed to infer widths).
        split_at: share the trunk only up to this block (index or name of an
            ``nn.Sequential`` child, exclusive); the remaining blocks are copied per task —
            the classic "split after block N" design. ``None`` shares the whole trunk.
        head_hidden: widths of hidden layers in each head.

    >>> import torch
    >>> from mtlkit import Task
    >>> from mtlkit.architectures.backbones import mlp
    >>> m = HardSharing(mlp(8, (16,)), [Task("a", "binary"), Task("b", "regression", dim=2)])
    >>> {k: tuple(v.shape) for k, v in m(torch.zeros(3, 8)).items()}
    {'a': (3,), 'b': (3, 2)}
    """

    paper = "Caruana 1997, Multitask Learning"

    def __init__(self, trunk: nn.Module, tasks: Sequence[Task], *, trunk_out: int | None = None,
                 input_shape: Sequence[int] | None = None, split_at: int | str | None = None,
                 head_hidden: Sequence[int] = ()) -> None:
        super().__init__()
        self.tasks = check_tasks(tasks)
        self.split_at = split_at
        self.head_hidden = list(head_hidden)
        if split_at is None:
            self.shared = trunk
            branch_proto: nn.Module | None = None
        else:
            if not isinstance(trunk, nn.Sequential):
                raise ValueError("split_at needs an nn.Sequential trunk (blocks to split between).")
            names = [n for n, _ in trunk.named_children()]
            k = names.index(split_at) if isinstance(split_at, str) and split_at in names else split_at
            if not isinstance(k, int) or not 0 <= k <= len(names):
                raise ValueError(f"split_at={split_at!r} is not a block index in [0, {len(names)}] "
                                 f"nor a block name {names}.")
            children = list(trunk.named_children())
            self.shared = nn.Sequential(OrderedDict(children[:k])) if k else nn.Identity()
            branch_proto = nn.Sequential(OrderedDict(children[k:]))
        total_out = trunk_out if trunk_out is not None else getattr(trunk, "out_features", None)
        if total_out is None:
            if input_shape is None:
                raise ValueError("Give trunk_out (the trunk's output width) or input_shape to infer it.")
            total_out = infer_out_features(trunk, input_shape)
        if input_shape is not None:
            real = infer_out_features(trunk, input_shape)
            if real != total_out:
                raise ValueError(f"The trunk's output width is {real} but trunk_out says {total_out}.")
        self.trunk_out = int(total_out)
        self.branches = TaskModuleDict()
        if branch_proto is not None:
            for t in self.tasks:
                self.branches[t.name] = copy.deepcopy(branch_proto)
        layout = getattr(trunk, "head_layout", None) if split_at is None else None  # generation: text_decoder
        self.heads = TaskModuleDict({t.name: make_head(self.trunk_out, t, head_hidden, layout=layout)
                                     for t in self.tasks})
        self.config: dict[str, Any] = {"name": "hard_sharing", "split_at": split_at,
                                       "head_hidden": list(head_hidden),
                                       "trunk": getattr(trunk, "spec", None)}

    @classmethod
    def from_config(cls, tasks: Sequence[Task], input_shape: Sequence[int], *, trunk: dict[str, Any],
                    **params: Any) -> HardSharing:
        return cls(build_trunk(trunk, input_shape), tasks, input_shape=input_shape, **params)

    @property
    def has_representation(self) -> bool:  # type: ignore[override]
        return True

    def encode(self, x: Tensor) -> Tensor:
        return self.shared(x)

    def decode(self, rep: Tensor) -> dict[str, Tensor]:
        out = {}
        for t in self.tasks:
            h = self.branches[t.name](rep) if t.name in self.branches else rep
            h = h.reshape(h.shape[0], -1)
            out[t.name] = t.shape_output(self.heads[t.name](h))
        return out

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        return self.shared.parameters()

    def task_parameters(self, name: str) -> Iterator[nn.Parameter]:
        self._check_task(name)
        yield from self.heads[name].parameters()
        if name in self.branches:
            yield from self.branches[name].parameters()
