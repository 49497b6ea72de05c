"""Multi-gate Mixture-of-Experts: shared experts, one softmax gate and one tower per task."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

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
    flat_size,
    mix,
    named_blocks,
    params_of,
    require_spec,
    trunk_width,
)
from mtlkit.tasks import Task, check_tasks


@ARCHITECTURES.register()
class MMoE(MultiTaskModel):
    """E experts shared by all tasks, a softmax gate per task over the experts, a tower per task.

    Ma, Zhao, Yi, Chen, Hong & Chi (2018), "Modeling Task Relationships in Multi-task Learning
    with Multi-gate Mixture-of-Experts", KDD. Task t's output is
    ``tower_t(Σ_e g_t(x)_e · f_e(x))`` with ``g_t(x) = softmax(W_t x)``, a linear gate on the
    (flattened) input. Each expert ``f_e`` is a fresh copy of the trunk (MLP, 1-D CNN or LeNet),
    so the experts work on any input our trunks take.

    Gate weights are logged: every forward pass adds the batch's gate weights to a running
    mean, and :meth:`sharing_summary` returns ``{"gates": {task: [mean weight per expert]}}``
    over the forward passes since its last call (then starts afresh; with no pass since, it
    repeats the last figures). The trainer calls it once per epoch, so the figures are the
    epoch's mean gate weights (on the training batches and on the previous epoch's validation
    pass).

    ``has_representation`` is False: every task reads its own gate-weighted mixture of the
    experts, so no single tensor feeds every head (the stacked expert outputs are not enough —
    decoding needs the gates, which depend on the input). Gradient methods work at
    ``level="parameters"``: ``shared_parameters()`` are the experts; a task's gate and tower
    are ``task_parameters(t)``.

    Args:
        trunk: stock trunk spec or ``nn.Module``: the architecture of each expert.
        tasks: the task specs.
        input_shape: per-sample input shape (needed for the gates' input width).
        num_experts: the number of experts E (>= 1; the paper uses up to 8).
        tower_hidden: hidden widths of each task tower.

    >>> import torch
    >>> from mtlkit import Task
    >>> m = MMoE({"name": "mlp", "hidden": [8]}, [Task("a", "binary"), Task("b", "binary")],
    ...          input_shape=(5,), num_experts=3)
    >>> out = m(torch.randn(4, 5))
    >>> [round(sum(w), 6) for w in m.sharing_summary()["gates"].values()]
    [1.0, 1.0]
    """

    paper = "Ma et al. 2018, Modeling Task Relationships in Multi-task Learning with Multi-gate Mixture-of-Experts"
    has_representation = False

    def __init__(self, trunk: TrunkArg, tasks: Sequence[Task], *, input_shape: Sequence[int],
                 num_experts: int = 4, tower_hidden: Sequence[int] = ()) -> None:
        super().__init__()
        self.tasks = check_tasks(tasks)
        self.num_experts = check_int("MMoE", "num_experts", num_experts, low=1)
        if input_shape is None:
            raise ValueError("MMoE needs 'input_shape' (the gates read the flattened input).")
        # ID fields: one embedding input shared by the experts; experts and gates read its output
        self.inputs, trunk, input_shape = shared_input(trunk, input_shape, "MMoE")
        make = TrunkFactory(trunk, input_shape, "MMoE")
        self.experts = nn.ModuleList([make() for _ in range(self.num_experts)])
        self.width = trunk_width(self.experts[0], input_shape)
        d_in = flat_size(input_shape)
        self.gates = TaskModuleDict({t.name: SoftmaxGate(d_in, self.num_experts) for t in self.tasks})
        self.towers = TaskModuleDict({t.name: make_head(self.width, t, tower_hidden) for t in self.tasks})
        self._gate_means = {t.name: RunningMean() for t in self.tasks}
        self.config: dict[str, Any] = {"name": "mmoe", "trunk": input_in_spec(make.spec, self.inputs),
                                       "num_experts": self.num_experts,
                                       "tower_hidden": list(tower_hidden)}

    @classmethod
    def from_config(cls, tasks: Sequence[Task], input_shape: Sequence[int], *, trunk: dict[str, Any] | None,
                    **params: Any) -> MMoE:
        return cls(require_spec(trunk, "MMoE"), tasks, input_shape=input_shape, **params)

    def gate_weights(self, x: Tensor) -> dict[str, Tensor]:
        """The (N, E) gate weights of every task for inputs ``x`` (rows sum to 1)."""
        x = self.inputs(x) if self.inputs is not None else x
        return {t.name: self.gates[t.name](x) for t in self.tasks}

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        x = self.inputs(x) if self.inputs is not None else x
        outs = [e(x).reshape(x.shape[0], -1) for e in self.experts]
        res = {}
        for t in self.tasks:
            g = self.gates[t.name](x)
            self._gate_means[t.name].update(g)
            res[t.name] = t.shape_output(self.towers[t.name](mix(g, outs)))
        return res

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        return params_of(self.inputs, self.experts)

    def last_shared_parameters(self) -> list[nn.Parameter]:
        return list(params_of(*[named_blocks(e, "MMoE")[-1][1] for e in self.experts]))

    def task_parameters(self, name: str) -> Iterator[nn.Parameter]:
        self._check_task(name)
        return params_of(self.gates[name], self.towers[name])

    def sharing_summary(self) -> dict[str, Any]:
        gates = {n: m.pop() for n, m in self._gate_means.items()}
        if all(v is None for v in gates.values()):
            return {}
        return {"gates": {n: v for n, v in gates.items() if v is not None}}
