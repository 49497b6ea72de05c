"""Siamese metric learning with auxiliary classifiers on each embedding."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mtlkit._checks import check_float, check_int
from mtlkit._registry import ARCHITECTURES
from mtlkit.architectures._base import MultiTaskModel, make_head
from mtlkit.architectures._layers import (
    TaskModuleDict,
    TrunkArg,
    require_spec,
    single_trunk,
    trunk_width,
)
from mtlkit.tasks import Task, check_tasks, contrastive_loss

__all__ = ["Siamese", "contrastive_loss", "make_pairs"]


@ARCHITECTURES.register()
class Siamese(MultiTaskModel):
    """A shared encoder applied to both inputs of a pair; the embedding distance is one task and
    classifiers on the embeddings are auxiliary tasks.

    Bromley, Guyon, LeCun, Säckinger & Shah (1993), "Signature Verification using a Siamese
    Time Delay Neural Network", NeurIPS; Hadsell, Chopra & LeCun (2006) for the contrastive
    loss. Inputs are stacked pairs ``x`` of shape (N, 2, *sample_shape); the encoder (trunk,
    optionally followed by a linear projection to ``embedding_dim``) maps each half to an
    embedding e_0, e_1.

    * the ``contrastive`` task (kind ``contrastive``; targets 1 = similar pair, 0 = dissimilar)
      outputs ``‖e_0 − e_1‖₂`` as (N,) and is trained with the margin contrastive loss of
      Hadsell et al. (2006) (:func:`mtlkit.tasks.contrastive_loss`, margin = the task's
      ``margin``);
    * every other task is a head on one embedding: ``pair_index[task]`` (0 or 1; default: the
      first such task reads e_0, the second e_1, later ones e_0), e.g. the digit of each image.
      These are usually ``role="auxiliary"``: the classifiers shape the embedding.

    ``has_representation`` is True: the representation is the stacked embeddings (N, 2, D);
    ``decode`` computes the distance and the heads from it. The encoder is
    ``shared_parameters()``; a classification task's head is its ``task_parameters``; the
    distance task has none.

    Args:
        trunk: stock trunk spec (built for ``input_shape[1:]``) or ``nn.Module``.
        tasks: the task specs.
        input_shape: per-sample shape ``(2, *sample_shape)``.
        contrastive_task: name of the distance task; ``None`` (default) = the one task of kind
            ``contrastive`` if there is one (a model may also hold only classifier tasks).
        pair_index: ``{task: 0 | 1}`` — which embedding each classifier reads.
        embedding_dim: width of a linear projection after the trunk (None = trunk output).
        head_hidden: hidden widths of each classifier head.

    >>> from mtlkit import Task
    >>> tasks = [Task("same", "contrastive", margin=2.0), Task("digit_a", "multiclass", num_classes=10)]
    >>> m = Siamese({"name": "mlp", "hidden": [8]}, tasks, input_shape=(2, 6))
    >>> {k: tuple(v.shape) for k, v in m(torch.zeros(3, 2, 6)).items()}
    {'same': (3,), 'digit_a': (3, 10)}
    """

    paper = "Bromley et al. 1993, Siamese networks; Hadsell, Chopra & LeCun 2006, contrastive loss"

    def __init__(self, trunk: TrunkArg, tasks: Sequence[Task], *, input_shape: Sequence[int],
                 contrastive_task: str | None = None, pair_index: Mapping[str, int] | None = None,
                 embedding_dim: int | None = None, head_hidden: Sequence[int] = ()) -> None:
        super().__init__()
        self.tasks = check_tasks(tasks)
        if input_shape is None or len(input_shape) < 2 or int(input_shape[0]) != 2:
            raise ValueError(f"Siamese needs input_shape (2, *sample_shape) for stacked pairs. Got {input_shape!r}.")
        sample_shape = tuple(int(s) for s in input_shape[1:])
        names = self.task_names
        pair_tasks = [t.name for t in self.tasks if t.task_kind.pairwise]
        if contrastive_task is None:
            if len(pair_tasks) > 1:
                raise ValueError(f"Siamese computes one embedding distance; tasks {pair_tasks} are all kind "
                                 f"'contrastive'. Keep one, or name it with 'contrastive_task'.")
            contrastive_task = pair_tasks[0] if pair_tasks else None
        elif contrastive_task not in names:
            raise ValueError(f"The 'contrastive_task' parameter of Siamese names {contrastive_task!r}, which is "
                             f"not a task; the tasks are {names}.")
        if contrastive_task is not None:
            ct = next(t for t in self.tasks if t.name == contrastive_task)
            if not ct.task_kind.pairwise:
                raise ValueError(f"The contrastive task {contrastive_task!r} must be of kind 'contrastive' "
                                 f"(the margin loss on the embedding distance). Got kind {ct.kind!r}.")
        others = [n for n in pair_tasks if n != contrastive_task]
        if others:
            raise ValueError(f"Siamese computes one embedding distance, for task {contrastive_task!r}; task(s) "
                             f"{others} are kind 'contrastive' too.")
        self.contrastive_task = contrastive_task
        classifiers = [n for n in names if n != contrastive_task]
        given = dict(pair_index or {})
        unknown = sorted(set(given) - set(classifiers))
        if unknown:
            raise ValueError(f"The 'pair_index' parameter of Siamese names unknown classifier task(s) {unknown}.")
        self.pair_index = {n: int(given.get(n, 1 if i == 1 else 0)) for i, n in enumerate(classifiers)}
        bad = {n: v for n, v in self.pair_index.items() if v not in (0, 1)}
        if bad:
            raise ValueError(f"The 'pair_index' parameter of Siamese must map tasks to 0 or 1. Got {bad}.")
        self.encoder, spec = single_trunk(trunk, sample_shape, "Siamese")
        width = trunk_width(self.encoder, sample_shape)
        if embedding_dim is not None:
            check_int("Siamese", "embedding_dim", embedding_dim, low=1)
            self.projection: nn.Module = nn.Linear(width, embedding_dim)
            width = embedding_dim
        else:
            self.projection = nn.Identity()
        self.embedding_dim = width
        self.heads = TaskModuleDict({n: make_head(width, t, head_hidden)
                                    for t in self.tasks if (n := t.name) != contrastive_task})
        self.config: dict[str, Any] = {"name": "siamese", "trunk": spec, "contrastive_task": contrastive_task,
                                       "pair_index": dict(self.pair_index), "embedding_dim": embedding_dim,
                                       "head_hidden": list(head_hidden)}

    @classmethod
    def from_config(cls, tasks: Sequence[Task], input_shape: Sequence[int], *, trunk: dict[str, Any] | None,
                    **params: Any) -> Siamese:
        return cls(require_spec(trunk, "Siamese"), tasks, input_shape=input_shape, **params)

    task_keyed_params = ("pair_index",)
    reads_pairs = True

    @classmethod
    def config_for_tasks(cls, config: dict[str, Any], names: Sequence[str]) -> dict[str, Any]:
        out = super().config_for_tasks(config, names)
        if out.get("contrastive_task") not in names:
            out["contrastive_task"] = None
        return out

    @classmethod
    def single_task_config(cls, params: dict[str, Any], task: Task) -> dict[str, Any] | None:
        """A siamese model of ``task`` alone (the same encoder over both inputs of a pair): the
        distance alone for the contrastive task, one classifier reading the same embedding as
        in the multi-task model for a classifier task."""
        out = {k: v for k, v in params.items() if k not in ("contrastive_task", "pair_index")}
        if task.task_kind.pairwise:
            return {"name": "siamese", **out, "contrastive_task": task.name}
        side = dict(params.get("pair_index") or {}).get(task.name)
        return {"name": "siamese", **out, "contrastive_task": None,
                "pair_index": {task.name: int(side)} if side is not None else None}

    @property
    def has_representation(self) -> bool:  # type: ignore[override]
        return True

    def embed(self, x: Tensor) -> Tensor:
        """Embeddings (N, D) of single samples (N, *sample_shape)."""
        h = self.encoder(x)
        return self.projection(h.reshape(h.shape[0], -1))

    def encode(self, x: Tensor) -> Tensor:
        if not torch.jit.is_tracing() and (x.dim() < 2 or x.shape[1] != 2):
            raise ValueError(f"Siamese expects stacked pairs (N, 2, ...). Got shape {tuple(x.shape)}.")
        n = x.shape[0]
        e = self.embed(x.reshape(n * 2, *x.shape[2:]))
        return e.reshape(n, 2, -1)

    def decode(self, rep: Tensor) -> dict[str, Tensor]:
        out = {}
        for t in self.tasks:
            if t.name == self.contrastive_task:
                diff = rep[:, 0] - rep[:, 1]
                out[t.name] = torch.sqrt(diff.pow(2).sum(1) + 1e-12)
            else:
                out[t.name] = t.shape_output(self.heads[t.name](rep[:, self.pair_index[t.name]]))
        return out

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.encoder.parameters()
        yield from self.projection.parameters()

    def task_parameters(self, name: str) -> Iterator[nn.Parameter]:
        self._check_task(name)
        if name in self.heads:
            yield from self.heads[name].parameters()


def make_pairs(images: np.ndarray | Tensor, labels: np.ndarray | Tensor, num_pairs: int, *,
               same_fraction: float = 0.5, seed: int = 0) -> dict[str, Tensor]:
    """Seeded pairs of samples for siamese training: ``same_fraction`` of them share a label.

    Returns ``{"x": (P, 2, ...) float, "same": (P,) float 1/0, "label_a": (P,), "label_b": (P,)}``
    (the two samples of a pair are different rows). With ``read_mnist_digits`` of
    :mod:`mtlkit.datasets.multimnist` this gives same/different-digit pairs.

    >>> p = make_pairs(np.zeros((6, 3)), np.array([0, 0, 1, 1, 2, 2]), 4, seed=1)
    >>> tuple(p["x"].shape), bool((p["same"] == (p["label_a"] == p["label_b"]).float()).all())
    ((4, 2, 3), True)
    """
    check_int("make_pairs", "num_pairs", num_pairs, low=1)
    check_float("make_pairs", "same_fraction", same_fraction, low=0.0, high=1.0)
    x = torch.as_tensor(np.asarray(images)).float()
    y = np.asarray(labels).reshape(-1)
    if len(y) != x.shape[0] or len(y) < 2:
        raise ValueError(f"make_pairs needs as many labels as images (at least 2). Got {x.shape[0]} images, "
                         f"{len(y)} labels.")
    rng = np.random.default_rng(seed)
    by_class = {c: np.flatnonzero(y == c) for c in np.unique(y)}
    multi = [c for c, r in by_class.items() if len(r) >= 2]
    n_same = round(num_pairs * same_fraction) if multi else 0
    a = np.empty(num_pairs, dtype=np.int64)
    b = np.empty(num_pairs, dtype=np.int64)
    for i in range(n_same):
        c = multi[rng.integers(len(multi))]
        a[i], b[i] = rng.choice(by_class[c], size=2, replace=False)
    for i in range(n_same, num_pairs):
        a[i] = rng.integers(len(y))
        others = np.flatnonzero(y != y[a[i]])
        b[i] = rng.choice(others) if len(others) else rng.choice(np.delete(np.arange(len(y)), a[i]))
    order = rng.permutation(num_pairs)
    a, b = a[order], b[order]
    return {"x": torch.stack([x[a], x[b]], dim=1), "same": torch.as_tensor((y[a] == y[b]).astype(np.float32)),
            "label_a": torch.as_tensor(y[a]), "label_b": torch.as_tensor(y[b])}
