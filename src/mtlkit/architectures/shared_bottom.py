"""Shared-bottom: one shared bottom network (embeddings + MLP), one tower per task."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from torch import Tensor, nn

from mtlkit._registry import ARCHITECTURES
from mtlkit.architectures._base import MultiTaskModel, make_head
from mtlkit.architectures._layers import (
    TaskModuleDict,
    TrunkArg,
    params_of,
    require_spec,
    single_trunk,
    trunk_width,
)
from mtlkit.tasks import Task, check_tasks


@ARCHITECTURES.register()
class SharedBottom(MultiTaskModel):
    """The recommender baseline of multi-task learning: a shared bottom and a tower per task.

    Caruana (1997), "Multitask Learning"; the "shared-bottom" model of Ma et al. (2018),
    "Modeling Task Relationships in Multi-task Learning with Multi-gate Mixture-of-Experts",
    KDD. Task t's output is ``tower_t(bottom(x))``; the bottom is the trunk, which reads ID
    features through its ``input`` entry (:mod:`mtlkit.architectures._embeddings`: the
    embeddings are shared by all tasks). Towers have ``tower_hidden`` ReLU layers.

    Args:
        trunk: stock trunk spec (with an ``input: {fields: ...}`` entry for ID features) or
            an ``nn.Module``.
        tasks: the task specs.
        input_shape: per-sample input shape.
        tower_hidden: hidden widths of each task tower.

    >>> import torch
    >>> from mtlkit import Task
    >>> spec = {"name": "mlp", "hidden": [8],
    ...         "input": {"fields": [{"name": "user", "vocab": 5, "dim": 4},
    ...                              {"name": "item", "vocab": 7, "dim": 4}]}}
    >>> m = SharedBottom(spec, [Task("click", "binary"), Task("rating", "regression")], input_shape=(2,))
    >>> {k: tuple(v.shape) for k, v in m(torch.tensor([[1.0, 3.0], [4.0, 6.0]])).items()}
    {'click': (2,), 'rating': (2, 1)}
    """

    paper = "Caruana 1997, Multitask Learning (the shared-bottom model of Ma et al. 2018)"
    name = "shared_bottom"

    def __init__(self, trunk: TrunkArg, tasks: Sequence[Task], *, input_shape: Sequence[int] | None = None,
                 tower_hidden: Sequence[int] = ()) -> None:
        super().__init__()
        self.tasks = check_tasks(tasks)
        self.bottom, spec = single_trunk(trunk, input_shape, type(self).__name__)
        self.width = trunk_width(self.bottom, input_shape)
        self.tower_hidden = [int(h) for h in tower_hidden]
        self.towers = TaskModuleDict({t.name: self._tower(t) for t in self.tasks})
        self.config: dict[str, Any] = {"name": self.name, "trunk": spec, "tower_hidden": self.tower_hidden}

    def _tower(self, task: Task) -> nn.Module:
        return make_head(self.width, task, self.tower_hidden)

    @classmethod
    def from_config(cls, tasks: Sequence[Task], input_shape: Sequence[int], *, trunk: dict[str, Any] | None,
                    **params: Any) -> SharedBottom:
        return cls(require_spec(trunk, cls.__name__), tasks, input_shape=input_shape, **params)

    def encode(self, x: Tensor) -> Tensor:
        h = self.bottom(x)
        return h.reshape(h.shape[0], -1)

    def decode(self, rep: Tensor) -> dict[str, Tensor]:
        return {t.name: t.shape_output(self.towers[t.name](rep)) for t in self.tasks}

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        return self.bottom.parameters()

    def task_parameters(self, name: str) -> Iterator[nn.Parameter]:
        self._check_task(name)
        return params_of(self.towers[name])
