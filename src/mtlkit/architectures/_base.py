"""The model contract shared by every architecture.

Any ``nn.Module`` whose ``forward(x)`` returns ``{task: Tensor}`` can be trained. Models that
subclass :class:`MultiTaskModel` also expose what gradient-space methods need:

* ``shared_parameters()`` / ``task_parameters(name)``;
* ``has_representation``: when True, ``encode(x)`` returns the shared representation and
  ``decode(rep)`` the task outputs, with ``forward(x) == decode(encode(x))``;
* ``last_shared_parameters()``: the last shared layer (GradNorm);
* ``config``: a JSON-able dict that rebuilds the model (no pickle) through
  :func:`mtlkit.architectures.build_model`;
* ``extra_losses()``: regularisers the architecture adds to the objective (soft-sharing
  penalties, adversarial terms) as ``{name: scalar}``; logged and added by the trainer;
* ``sharing_summary()``: JSON-able learned sharing (gates, units, policies) for the report.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

from torch import Tensor, nn

from mtlkit.run.precheck import contrastive_needs_pairs
from mtlkit.tasks import Task

#: the stock architectures without one representation that every head reads (for error messages)
NO_REPRESENTATION = ("soft_sharing, cross_stitch, mmoe, ple, adashare, adversarial, and deep_supervision "
                     "with heads on different blocks")


def make_head(in_features: int, task: Task, hidden: Sequence[int] = (), *,
              layout: Mapping[str, Any] | None = None) -> nn.Sequential:
    """A task head: optional hidden ReLU layers then a linear layer of ``task.out_dim``.

    A dense task whose prediction is a map ((C, H, W) or (C, T)) ends in the small
    conv decoder of :func:`mtlkit.architectures.decoders.dense_head` instead. A
    ``contrastive`` task has no head: its output is the distance between the two embeddings
    of a pair, which only the ``siamese`` architecture computes."""
    if task.task_kind.pairwise:
        raise contrastive_needs_pairs(task.name)
    if layout is not None or getattr(task.task_kind, "targets_from_inputs", False):
        return _layout_head(in_features, task, hidden, layout)
    if getattr(task.task_kind, "per_token", False):  # reads the per-token states of a text trunk
        from mtlkit.architectures.text import TokenHead

        return nn.Sequential(TokenHead(in_features, task, hidden))
    layers: list[nn.Module] = []
    prev = in_features
    for h in hidden:
        layers += [nn.Linear(prev, h), nn.ReLU()]
        prev = h
    if len(task.output_shape) > 1:
        from mtlkit.architectures.decoders import dense_head

        layers.append(dense_head(prev, task))
    else:
        layers.append(nn.Linear(prev, task.out_dim))
    return nn.Sequential(*layers)


def _layout_head(in_features: int, task: Task, hidden: Sequence[int], layout: Mapping[str, Any] | None
                 ) -> nn.Sequential:
    """A head over a trunk whose output has parts (``layout``, the ``head_layout`` of
    :class:`~mtlkit.architectures.text_decoder.Seq2SeqTrunk`): a generation task reads its own
    block (the shared decoder's output), the other tasks the text part only."""
    from mtlkit.architectures.text_decoder import GenerationSlice

    blocks = (layout or {}).get("tasks") or {}
    if getattr(task.task_kind, "targets_from_inputs", False):
        if task.name not in blocks:
            raise ValueError(f"Task {task.name!r} is kind {task.kind!r}: its output comes from the decoder shared by "
                             f"the generation tasks, which sits on a text trunk of a table run (a text feature "
                             f"column, the task's target text column, architecture hard_sharing without split_at, or "
                             f"soft_sharing or cross_stitch: one decoder copy per generation task).")
        return nn.Sequential(GenerationSlice(*blocks[task.name]))
    width = int((layout or {})["shared"])
    return nn.Sequential(GenerationSlice(0, width), *make_head(width, task, hidden))


class MultiTaskModel(nn.Module):
    """Base class of mtlkit architectures (user models need not subclass it)."""

    paper: ClassVar[str] = ""
    has_representation: ClassVar[bool] = True
    #: whether the model reads stacked pairs (N, 2, ...) and computes ``contrastive`` tasks
    reads_pairs: ClassVar[bool] = False
    #: config parameters that map task names to settings (restricted by :meth:`config_for_tasks`)
    task_keyed_params: ClassVar[tuple[str, ...]] = ()

    tasks: list[Task]
    config: dict[str, Any]

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]

    def encode(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} has no shared representation.")

    def decode(self, rep: Tensor) -> dict[str, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} has no shared representation.")

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return self.decode(self.encode(x))

    def shared_parameters(self) -> Iterator[nn.Parameter]:  # pragma: no cover - abstract
        raise NotImplementedError

    def task_parameters(self, name: str) -> Iterator[nn.Parameter]:  # pragma: no cover
        raise NotImplementedError

    def last_shared_parameters(self) -> list[nn.Parameter]:
        params = list(self.shared_parameters())
        return params[-2:] if len(params) >= 2 else params

    def extra_losses(self) -> dict[str, Tensor]:
        return {}

    @classmethod
    def config_for_tasks(cls, config: dict[str, Any], names: Sequence[str]) -> dict[str, Any]:
        """``config`` for a model of the tasks ``names`` only (e.g. the primary tasks of a
        primary-only export): the entries of task-keyed parameters for other tasks dropped."""
        out = dict(config)
        for key in cls.task_keyed_params:
            value = out.get(key)
            if isinstance(value, Mapping):
                out[key] = {k: v for k, v in value.items() if k in names}
        return out

    @classmethod
    def single_task_config(cls, params: dict[str, Any], task: Task) -> dict[str, Any] | None:
        """The architecture config of the single-task reference model of ``task`` (the run's
        baseline), given this architecture's config ``params`` (without name and trunk).
        ``None`` (the default) means hard sharing with the same trunk: one task has nothing to
        share, as in the MTL literature. An architecture whose inputs a plain trunk cannot
        read (siamese pairs) returns its own config restricted to one task."""
        return None

    def sharing_summary(self) -> dict[str, Any]:
        return {}

    def _check_task(self, name: str) -> None:
        if name not in self.task_names:
            raise KeyError(f"Unknown task {name!r}; the model's tasks are {self.task_names}.")
