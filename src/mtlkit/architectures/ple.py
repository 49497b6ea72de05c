"""Progressive Layered Extraction (PLE) and its one-level case, Customized Gate Control (CGC)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import Any, cast

import numpy as np
from torch import Tensor, nn

from mtlkit._checks import check_int
from mtlkit._registry import ARCHITECTURES
from mtlkit.architectures._base import MultiTaskModel, make_head
from mtlkit.architectures._embeddings import input_in_spec, shared_input
from mtlkit.architectures._layers import (
    RunningMean,
    SoftmaxGate,
    TaskModuleDict,
    TrunkArg,
    TrunkFactory,
    block_shapes,
    flat_size,
    mix,
    named_blocks,
    params_of,
    require_spec,
)
from mtlkit.tasks import Task, check_tasks


@ARCHITECTURES.register()
class PLE(MultiTaskModel):
    """Shared and task-specific experts, mixed by gates over ``levels`` extraction levels.

    Tang, Liu, Zhao & Gong (2020), "Progressive Layered Extraction (PLE): A Novel Multi-Task
    Learning (MTL) Model for Personalized Recommendations", RecSys. Each level has
    ``num_shared_experts`` shared experts and ``num_task_experts`` experts per task. At every
    level, task t's gate (softmax of a linear map of task t's level input) mixes task t's
    experts and the shared experts; below the last level a shared gate mixes *all* experts to
    form the shared experts' next input. A tower per task reads its last-level mixture.
    ``levels=1`` is CGC (Customized Gate Control); CGC with ``num_task_experts=0`` is MMoE.

    Experts are built from the trunk: the trunk's blocks are split into ``levels`` consecutive
    groups (as evenly as possible, earlier groups larger) and an expert at level l is a fresh
    copy of group l. So an MLP (64, 32) with ``levels=2`` has 64-unit experts at level 1 and
    32-unit experts at level 2; a LeNet with ``levels=3`` has conv1, conv2 and fc experts.
    Gates read their level input flattened.

    Which parameters are shared (reached by more than one task's loss): the shared experts and
    shared gates of every level, and the task experts below the last level (they feed the
    shared gate). ``task_parameters(t)``: task t's gates at every level, its last-level experts
    and its tower. ``has_representation`` is False (each tower reads its own gated mixture).

    Logged: ``sharing_summary()["gates"]`` — per task, the mean last-level gate weights since
    the previous call, ordered as task t's own experts first, then the shared experts.

    Args:
        trunk: stock trunk spec or ``nn.Sequential`` split into levels.
        tasks: the task specs.
        input_shape: per-sample input shape.
        levels: the number of extraction levels L (1 = CGC); at most the number of trunk blocks.
        num_shared_experts: shared experts per level (>= 0).
        num_task_experts: experts per task and level (>= 0; at least one expert in total).
        tower_hidden: hidden widths of each task tower.

    >>> import torch
    >>> from mtlkit import Task
    >>> m = PLE({"name": "mlp", "hidden": [8, 8]}, [Task("a", "binary"), Task("b", "binary")],
    ...         input_shape=(5,), levels=2, num_shared_experts=2, num_task_experts=1)
    >>> tuple(m(torch.randn(4, 5))["b"].shape), len(m.sharing_summary()["gates"]["a"])
    ((4,), 3)
    """

    paper = "Tang et al. 2020, Progressive Layered Extraction (PLE)"
    has_representation = False

    def __init__(self, trunk: TrunkArg, tasks: Sequence[Task], *, input_shape: Sequence[int],
                 levels: int = 1, num_shared_experts: int = 1, num_task_experts: int = 1,
                 tower_hidden: Sequence[int] = ()) -> None:
        super().__init__()
        self.tasks = check_tasks(tasks)
        self.levels = check_int("PLE", "levels", levels, low=1)
        self.num_shared_experts = check_int("PLE", "num_shared_experts", num_shared_experts, low=0)
        self.num_task_experts = check_int("PLE", "num_task_experts", num_task_experts, low=0)
        if self.num_shared_experts + self.num_task_experts < 1:
            raise ValueError("PLE needs at least one expert: 'num_shared_experts' and 'num_task_experts' are both 0.")
        if input_shape is None:
            raise ValueError("PLE needs 'input_shape' (the gates read the flattened level inputs).")
        # ID fields: one embedding input shared by every expert; experts and gates read its output
        self.inputs, trunk, input_shape = shared_input(trunk, input_shape, "PLE")
        make = TrunkFactory(trunk, input_shape, "PLE")
        k, s, e = len(self.tasks), self.num_shared_experts, self.num_task_experts
        trunks = [make() for _ in range(s + k * e)]
        blocks0 = named_blocks(trunks[0], "PLE")
        nb = len(blocks0)
        if self.levels > nb:
            raise ValueError(f"The 'levels' parameter of PLE must be at most the number of trunk blocks "
                             f"({nb}: {[n for n, _ in blocks0]}). Got {levels}.")
        groups = [list(g) for g in np.array_split(np.arange(nb), self.levels)]
        shapes = block_shapes([b for _, b in blocks0], input_shape)
        in_shapes = [tuple(input_shape)] + [shapes[g[-1]] for g in groups[:-1]]
        self.width = flat_size(shapes[-1])

        def level_expert(tr: nn.Module, lvl: int) -> nn.Sequential:
            bl = named_blocks(tr, "PLE")
            return nn.Sequential(OrderedDict(bl[i] for i in groups[lvl]))

        per_level = []
        for lvl in range(self.levels):
            per_level.append([level_expert(tr, lvl) for tr in trunks])
        self.shared_experts = nn.ModuleList([nn.ModuleList(pl[:s]) for pl in per_level])
        self.task_experts = TaskModuleDict({
            t.name: nn.ModuleList([nn.ModuleList(pl[s + i * e: s + (i + 1) * e]) for pl in per_level])
            for i, t in enumerate(self.tasks)})
        self.task_gates = TaskModuleDict({
            t.name: nn.ModuleList([SoftmaxGate(flat_size(in_shapes[lvl]), e + s) for lvl in range(self.levels)])
            for t in self.tasks})
        self.shared_gates = nn.ModuleList([SoftmaxGate(flat_size(in_shapes[lvl]), k * e + s)
                                           for lvl in range(self.levels - 1)])
        self.towers = TaskModuleDict({t.name: make_head(self.width, t, tower_hidden) for t in self.tasks})
        self._gate_means = {t.name: RunningMean() for t in self.tasks}
        self.config: dict[str, Any] = {
            "name": "ple", "trunk": input_in_spec(make.spec, self.inputs), "levels": self.levels, "num_shared_experts": s,
            "num_task_experts": e, "tower_hidden": list(tower_hidden)}

    @classmethod
    def from_config(cls, tasks: Sequence[Task], input_shape: Sequence[int], *, trunk: dict[str, Any] | None,
                    **params: Any) -> PLE:
        return cls(require_spec(trunk, "PLE"), tasks, input_shape=input_shape, **params)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        x = self.inputs(x) if self.inputs is not None else x
        task_in = {t.name: x for t in self.tasks}
        shared_in = x
        for lvl in range(self.levels):
            shared_out = [m(shared_in) for m in self._shared_level(lvl)]
            task_out = {t.name: [m(task_in[t.name]) for m in self._task_level(t.name, lvl)] for t in self.tasks}
            new_in = {}
            for t in self.tasks:
                g = cast(nn.ModuleList, self.task_gates[t.name])[lvl](task_in[t.name])
                if lvl == self.levels - 1:
                    self._gate_means[t.name].update(g)
                new_in[t.name] = mix(g, task_out[t.name] + shared_out)
            if lvl < self.levels - 1:
                every = [o for t in self.tasks for o in task_out[t.name]] + shared_out
                shared_in = mix(self.shared_gates[lvl](shared_in), every)
            task_in = new_in
        return {t.name: t.shape_output(self.towers[t.name](task_in[t.name].reshape(x.shape[0], -1)))
                for t in self.tasks}

    def _shared_level(self, lvl: int) -> nn.ModuleList:
        return cast(nn.ModuleList, self.shared_experts[lvl])

    def _task_level(self, name: str, lvl: int) -> nn.ModuleList:
        return cast(nn.ModuleList, cast(nn.ModuleList, self.task_experts[name])[lvl])

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        low_task = [self._task_level(t.name, lvl) for t in self.tasks for lvl in range(self.levels - 1)]
        return params_of(self.inputs, self.shared_experts, self.shared_gates, *low_task)

    def last_shared_parameters(self) -> list[nn.Parameter]:
        last = self._shared_level(self.levels - 1)
        if len(last):
            return list(params_of(last))
        return super().last_shared_parameters()

    def task_parameters(self, name: str) -> Iterator[nn.Parameter]:
        self._check_task(name)
        return params_of(self.task_gates[name], self._task_level(name, self.levels - 1), self.towers[name])

    def sharing_summary(self) -> dict[str, Any]:
        gates = {n: m.pop() for n, m in self._gate_means.items()}
        if all(v is None for v in gates.values()):
            return {}
        return {"gates": {n: v for n, v in gates.items() if v is not None}}
