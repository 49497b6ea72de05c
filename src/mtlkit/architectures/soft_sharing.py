"""Soft parameter sharing: one column per task, tied by a penalty on their distance."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from mtlkit._checks import check_choice, check_float
from mtlkit._registry import ARCHITECTURES
from mtlkit.architectures._base import MultiTaskModel, make_head
from mtlkit.architectures._layers import (
    TaskModuleDict,
    TrunkArg,
    TrunkFactory,
    params_of,
    require_spec,
    trunk_width,
)
from mtlkit.tasks import Task, check_tasks

PENALTIES = ("l2", "trace_norm")


def l2_to_mean(stacked: Tensor) -> Tensor:
    """Σ_t ||W_t − W̄||² for a (K, ...) stack of corresponding parameters (W̄ their mean)."""
    flat = stacked.reshape(stacked.shape[0], -1)
    return ((flat - flat.mean(0, keepdim=True)) ** 2).sum()


def trace_norm(stacked: Tensor) -> Tensor:
    """Nuclear norm (sum of singular values) of the K×P matrix of flattened parameters."""
    flat = stacked.reshape(stacked.shape[0], -1)
    return torch.linalg.matrix_norm(flat, ord="nuc")


@ARCHITECTURES.register()
class SoftSharing(MultiTaskModel):
    """One column (trunk + head) per task and no shared weight; a penalty ties the columns.

    For every trunk parameter, the K corresponding tensors (one per column) are stacked and
    penalised, and ``strength`` times the sum over parameters is returned by
    :meth:`extra_losses` (key ``"soft_sharing"``), which the trainer adds to the objective:

    * ``penalty="l2"`` — Duong, Cohn, Bird & Cook (2015), "Low Resource Dependency Parsing:
      Cross-lingual Parameter Sharing in a Neural Network Parser", ACL: squared L2 distance
      between corresponding parameters. For K tasks we use the distance to their mean,
      Σ_t ||W_t − W̄||²; for K = 2 it is ½||W_1 − W_2||², the paper's term up to the factor.
    * ``penalty="trace_norm"`` — Yang & Hospedales (2017), "Trace Norm Regularised Deep
      Multi-Task Learning", ICLR workshop: the trace (nuclear) norm of the stacked parameters.
      We use the paper's "last axis flattening" variant: the K × P matrix whose row t is
      column t's flattened parameter tensor (low rank = the columns share a subspace).

    Every trunk parameter (weights, biases, BatchNorm affine) is penalised; heads are not
    (their shapes differ between tasks). The unweighted penalty is logged as
    ``sharing_summary()["penalty"]``.

    Generation tasks (:mod:`mtlkit.architectures.text_decoder`): a column with task-specific
    parts is restricted to its task (``restrict_to``), so a generation task's column is its own
    text encoder plus its own decoder copy and computes only its own sequence, and the other
    columns are encoder-only. A parameter is tied across the columns that hold it: the encoders
    across all K columns, the decoder copies across the generation tasks' columns only (a
    parameter held by one column is not penalised). So the decoder is soft-shared between the
    generation tasks by the same penalty (our choice; decaNLP shares one decoder outright).

    There is no shared parameter and no shared representation (``has_representation`` is
    False): a task's loss reaches only its own column, so gradient-space aggregators see an
    empty shared Jacobian; use loss weightings, which act on the columns through the losses.

    Args:
        trunk: a stock trunk spec (``{"name": "mlp", ...}``) or an ``nn.Module``; each column
            is a fresh copy (independently initialised).
        tasks: the task specs.
        input_shape: per-sample input shape (required for a spec; used to infer widths).
        penalty: ``"l2"`` or ``"trace_norm"``.
        strength: the penalty's weight λ (>= 0).
        head_hidden: hidden widths of each head.

    >>> import torch
    >>> from mtlkit import Task
    >>> m = SoftSharing({"name": "mlp", "hidden": [8]}, [Task("a", "binary"), Task("b", "regression")],
    ...                 input_shape=(4,), strength=0.1)
    >>> {k: tuple(v.shape) for k, v in m(torch.zeros(3, 4)).items()}
    {'a': (3,), 'b': (3, 1)}
    >>> sorted(m.extra_losses())
    ['soft_sharing']
    """

    paper = ("Duong et al. 2015, Low Resource Dependency Parsing: Cross-lingual Parameter Sharing "
             "in a Neural Network Parser; Yang & Hospedales 2017, Trace Norm Regularised Deep MTL")
    has_representation = False

    def __init__(self, trunk: TrunkArg, tasks: Sequence[Task], *, input_shape: Sequence[int] | None = None,
                 penalty: str = "l2", strength: float = 1e-3, head_hidden: Sequence[int] = ()) -> None:
        super().__init__()
        self.tasks = check_tasks(tasks)
        self.penalty = check_choice("SoftSharing", "penalty", penalty, options=PENALTIES)
        self.strength = check_float("SoftSharing", "strength", strength, low=0.0)
        self.head_hidden = list(head_hidden)
        make = TrunkFactory(trunk, input_shape, "SoftSharing")
        self.columns = TaskModuleDict({t.name: make() for t in self.tasks})
        first = self.columns[self.tasks[0].name]
        self.width = trunk_width(first, input_shape)
        names = [n for n, _ in first.named_parameters()]
        per_col = [dict(self.columns[t.name].named_parameters()) for t in self.tasks]
        for n in names:
            shapes = {tuple(c[n].shape) for c in per_col if n in c}
            if len(shapes) != 1 or any(n not in c for c in per_col):
                raise ValueError(f"SoftSharing columns differ at parameter {n!r}; every column must "
                                 f"have the same architecture.")
        self.heads = TaskModuleDict({t.name: self._column_head(t, head_hidden) for t in self.tasks})
        per_col = [dict(self.columns[t.name].named_parameters()) for t in self.tasks]
        #: each tied parameter name and the columns (task names) that hold it (two at least)
        self._tied = [(n, holders) for n in names
                      if len(holders := [t.name for t, c in zip(self.tasks, per_col, strict=True) if n in c]) > 1]
        self._last_penalty: float | None = None
        self.config: dict[str, Any] = {"name": "soft_sharing", "trunk": make.spec, "penalty": penalty,
                                       "strength": self.strength, "head_hidden": list(head_hidden)}

    @classmethod
    def from_config(cls, tasks: Sequence[Task], input_shape: Sequence[int], *, trunk: dict[str, Any] | None,
                    **params: Any) -> SoftSharing:
        return cls(require_spec(trunk, "SoftSharing"), tasks, input_shape=input_shape, **params)

    def _column_head(self, task: Task, head_hidden: Sequence[int]) -> nn.Sequential:
        """The head of ``task`` over its column. A column with task-specific parts (the text
        trunk with the decoder of generation tasks: ``restrict_to``) is first restricted to
        ``task``, and the head reads its column's ``head_layout``."""
        column = self.columns[task.name]
        restrict = getattr(column, "restrict_to", None)
        if callable(restrict):
            restrict([task.name])
        layout = getattr(column, "head_layout", None)
        width = int(getattr(column, "out_features")) if layout is not None else self.width  # noqa: B009
        return make_head(width, task, head_hidden, layout=layout)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        out = {}
        for t in self.tasks:
            h = self.columns[t.name](x)
            out[t.name] = t.shape_output(self.heads[t.name](h.reshape(h.shape[0], -1)))
        return out

    def distance(self) -> Tensor:
        """The unweighted penalty: Σ over trunk parameters of l2_to_mean or trace_norm."""
        fn = l2_to_mean if self.penalty == "l2" else trace_norm
        cols = {t.name: dict(self.columns[t.name].named_parameters()) for t in self.tasks}
        total = None
        for n, holders in self._tied:
            term = fn(torch.stack([cols[h][n] for h in holders]))
            total = term if total is None else total + term
        if total is None:
            p = next(self.parameters())
            return torch.zeros((), dtype=p.dtype, device=p.device)
        return total

    def extra_losses(self) -> dict[str, Tensor]:
        d = self.distance()
        self._last_penalty = float(d.detach())
        return {"soft_sharing": self.strength * d}

    def sharing_summary(self) -> dict[str, Any]:
        with torch.no_grad():
            return {"penalty": float(self.distance())}

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        return iter(())

    def last_shared_parameters(self) -> list[nn.Parameter]:
        return []

    def task_parameters(self, name: str) -> Iterator[nn.Parameter]:
        self._check_task(name)
        return params_of(self.columns[name], self.heads[name])
