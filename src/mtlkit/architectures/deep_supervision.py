"""Deep supervision / hierarchical auxiliary heads: a task's head attached to any trunk block."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

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
class DeepSupervision(MultiTaskModel):
    """One trunk; each task's head reads the output of the block it is attached to.

    Lee, Xie, Gallagher, Zhang & Tu (2015), "Deeply-Supervised Nets", AISTATS (companion
    objectives on hidden layers); Søgaard & Goldberg (2016), "Deep multi-task learning with low
    level tasks supervised at lower layers", ACL (a low-level task's head on an early layer,
    the main task at the top). E.g. a facial-expression model with landmark and action-unit
    heads on earlier blocks. Each auxiliary head is an ordinary task: its loss and weight λ
    come from the task (``Task.weight`` or the weighting), not from :meth:`extra_losses`.

    ``attach`` maps a task name to a block of the trunk (a top-level child of an
    ``nn.Sequential``), by index (negative from the end) or by name — ``"conv1"`` of the stock
    LeNet, or any name of a user's ``nn.Sequential(OrderedDict(...))``. Tasks not listed read
    the last block. A head reads the block's output globally average-pooled to ``pool_size`` per
    spatial dimension and flattened (flat features as they are). Blocks after the deepest
    attachment are not run.

    Parameters: a trunk block is shared when the losses of two or more tasks reach it (it lies
    at or before the second-deepest attachment); a block reached only by the deepest task
    belongs to that task, with its head (``task_parameters``). ``has_representation`` is True
    only when every task reads the same block (then it equals hard sharing); otherwise the heads
    read different depths and there is no single shared tensor.

    Args:
        trunk: stock trunk spec or ``nn.Sequential`` (used as is).
        tasks: the task specs.
        attach: ``{task: block index or name}``.
        input_shape: per-sample input shape (to size the heads).
        pool_size: pooling output size per spatial dimension for feature maps (>= 1).
        head_hidden: hidden widths of each head.

    >>> import torch
    >>> from mtlkit import Task
    >>> m = DeepSupervision({"name": "lenet", "channels": [4, 8], "hidden": 16},
    ...                     [Task("aux", "regression", dim=2), Task("main", "multiclass", num_classes=3)],
    ...                     attach={"aux": "conv1"}, input_shape=(1, 28, 28))
    >>> {k: tuple(v.shape) for k, v in m(torch.zeros(2, 1, 28, 28)).items()}
    {'aux': (2, 2), 'main': (2, 3)}
    """

    paper = "Lee et al. 2015, Deeply-Supervised Nets; Søgaard & Goldberg 2016"
    task_keyed_params = ("attach",)

    def __init__(self, trunk: TrunkArg, tasks: Sequence[Task], *, attach: Mapping[str, int | str] | None = None,
                 input_shape: Sequence[int], pool_size: int = 1, head_hidden: Sequence[int] = ()) -> None:
        super().__init__()
        self.tasks = check_tasks(tasks)
        self.pool_size = check_int("DeepSupervision", "pool_size", pool_size, low=1)
        if input_shape is None:
            raise ValueError("DeepSupervision needs 'input_shape' (to size the heads).")
        attach = dict(attach or {})
        unknown = sorted(set(attach) - set(self.task_names))
        if unknown:
            raise ValueError(f"The 'attach' parameter of DeepSupervision names unknown task(s) {unknown}; "
                             f"the tasks are {self.task_names}.")
        built, spec = single_trunk(trunk, input_shape, "DeepSupervision")
        blocks = named_blocks(built, "DeepSupervision")
        self.block_names = [n for n, _ in blocks]
        self.blocks = nn.ModuleList([b for _, b in blocks])
        nb = len(self.blocks)
        self.depth = {t.name: block_index(attach[t.name], self.block_names, "attach", "DeepSupervision")
                      if t.name in attach else nb - 1 for t in self.tasks}
        shapes = block_shapes(list(self.blocks), input_shape)
        self.heads = TaskModuleDict({
            t.name: make_head(pooled_width(shapes[self.depth[t.name]], self.pool_size), t, head_hidden)
            for t in self.tasks})
        depths = sorted(self.depth.values(), reverse=True)
        self._shared_upto = depths[1] if len(depths) > 1 else depths[0]
        self._deepest = max(self.depth, key=lambda n: self.depth[n])
        self.config: dict[str, Any] = {"name": "deep_supervision", "trunk": spec, "attach": attach,
                                       "pool_size": self.pool_size, "head_hidden": list(head_hidden)}

    @classmethod
    def from_config(cls, tasks: Sequence[Task], input_shape: Sequence[int], *, trunk: dict[str, Any] | None,
                    **params: Any) -> DeepSupervision:
        return cls(require_spec(trunk, "DeepSupervision"), tasks, input_shape=input_shape, **params)

    @property
    def has_representation(self) -> bool:  # type: ignore[override]
        return len(set(self.depth.values())) == 1

    def features(self, x: Tensor) -> dict[int, Tensor]:
        """Pooled, flattened outputs of the blocks that heads read, keyed by block index."""
        wanted = set(self.depth.values())
        out = {}
        h = x
        for b in range(max(wanted) + 1):
            h = self.blocks[b](h)
            if b in wanted:
                out[b] = pool_flat(h, self.pool_size)
        return out

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        feats = self.features(x)
        return {t.name: t.shape_output(self.heads[t.name](feats[self.depth[t.name]])) for t in self.tasks}

    def encode(self, x: Tensor) -> Tensor:
        if not self.has_representation:
            raise NotImplementedError("DeepSupervision has no single shared representation: its heads read "
                                      f"different blocks {self.depth}. Use level='parameters'.")
        return next(iter(self.features(x).values()))

    def decode(self, rep: Tensor) -> dict[str, Tensor]:
        if not self.has_representation:
            raise NotImplementedError("DeepSupervision has no single shared representation.")
        return {t.name: t.shape_output(self.heads[t.name](rep)) for t in self.tasks}

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        return params_of(*self.blocks[: self._shared_upto + 1])

    def last_shared_parameters(self) -> list[nn.Parameter]:
        return list(self.blocks[self._shared_upto].parameters()) or super().last_shared_parameters()

    def task_parameters(self, name: str) -> Iterator[nn.Parameter]:
        self._check_task(name)
        own = []
        if name == self._deepest and len(self.tasks) > 1:
            own = list(self.blocks[self._shared_upto + 1: self.depth[name] + 1])
        return params_of(*own, self.heads[name])
