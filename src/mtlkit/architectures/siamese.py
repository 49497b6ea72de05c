"""Siamese metric learning with auxiliary classifiers on each embedding."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mtlkit._registry import ARCHITECTURES
from mtlkit.architectures._base import MultiTaskModel, make_head
from mtlkit.architectures._layers import (
    TrunkArg,
    check_float,
    check_int,
    require_spec,
    single_trunk,
    trunk_width,
)
from mtlkit.tasks import Metric, Task, check_tasks


def contrastive_loss(d: Tensor, same: Tensor, margin: float = 1.0, *, mask: Tensor | None = None) -> Tensor:
    """Margin contrastive loss of Hadsell, Chopra & LeCun (2006), "Dimensionality Reduction by
    Learning an Invariant Mapping", CVPR, averaged over the (unmasked) pairs:

        L = same · ½ d² + (1 − same) · ½ max(0, margin − d)²

    ``d``: embedding distances; ``same``: 1 for a similar pair, 0 for a dissimilar one.

    >>> contrastive_loss(torch.tensor([0.5, 0.5]), torch.tensor([1.0, 0.0]), margin=1.0)
    tensor(0.1250)
    """
    d = d.reshape(-1)
    same = same.reshape(-1).to(d.dtype)
    per = same * 0.5 * d.pow(2) + (1 - same) * 0.5 * torch.clamp(margin - d, min=0).pow(2)
    if mask is None:
        return per.mean()
    m = mask.reshape(-1).bool()
    per = torch.where(m, per, torch.zeros_like(per))
    return per.sum() / m.sum().clamp_min(1).to(per.dtype)


def _auc_of_distance(y: np.ndarray, d: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    y, d = np.asarray(y).reshape(-1), np.asarray(d).reshape(-1)
    if len(np.unique(y)) < 2:
        return float("nan")
    return float(roc_auc_score(y, -d))


@dataclass(frozen=True)
class ContrastiveTask(Task):
    """A ``regression``-kind task (dim 1) whose loss is :func:`contrastive_loss`.

    The target is 1.0 for a similar pair and 0.0 for a dissimilar one, shaped (N, 1) like any
    regression target; the model's output is the embedding distance. Metrics: ``roc_auc`` of
    −distance for "same" (main metric) and ``accuracy`` of "same" ⇔ ``d < margin / 2``.
    The mtlkit task kinds have no ``contrastive`` kind: this subclass carries the loss, so the
    unmodified :class:`~mtlkit.Trainer` (which calls ``task.compute_loss``) optimises it.
    ``to_dict()`` drops ``margin`` (a plain regression task is rebuilt from it).

    >>> t = ContrastiveTask("contrastive", margin=2.0)
    >>> t.kind, t.main_metric, float(t.compute_loss(torch.tensor([[1.0]]), torch.tensor([[0.0]]),
    ...                                              torch.tensor([[True]])))
    ('regression', 'roc_auc', 0.5)
    """

    kind: str = "regression"
    margin: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.kind != "regression" or self.dim != 1:
            raise ValueError(f"ContrastiveTask {self.name!r} must be kind 'regression' with dim 1.")
        check_float(self.margin, "margin", "ContrastiveTask", low_open=True)

    def compute_loss(self, pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        return contrastive_loss(pred, target, self.margin, mask=mask)

    @property
    def metrics(self) -> tuple[Metric, ...]:
        half = self.margin / 2

        def acc(y: np.ndarray, d: np.ndarray) -> float:
            return float(((np.asarray(d).reshape(-1) < half) == (np.asarray(y).reshape(-1) > 0.5)).mean())

        return (Metric("roc_auc", _auc_of_distance, True), Metric("accuracy", acc, True))

    @property
    def main_metric(self) -> str:
        return "roc_auc"

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d.pop("margin", None)
        return d


@ARCHITECTURES.register()
class Siamese(MultiTaskModel):
    """A shared encoder applied to both inputs of a pair; the embedding distance is one task and
    classifiers on the embeddings are auxiliary tasks.

    Bromley, Guyon, LeCun, Säckinger & Shah (1993), "Signature Verification using a Siamese
    Time Delay Neural Network", NeurIPS; Hadsell, Chopra & LeCun (2006) for the contrastive
    loss. Inputs are stacked pairs ``x`` of shape (N, 2, *sample_shape); the encoder (trunk,
    optionally followed by a linear projection to ``embedding_dim``) maps each half to an
    embedding e_0, e_1.

    * the task named ``contrastive_task`` (regression, dim 1) outputs ``‖e_0 − e_1‖₂`` as
      (N, 1). Make it a :class:`ContrastiveTask` to train it with the margin contrastive loss
      (targets 1 = same, 0 = different). A plain regression task would get the MSE.
    * every other task is a head on one embedding: ``pair_index[task]`` (0 or 1; default: the
      first such task reads e_0, the second e_1, later ones e_0), e.g. the digit of each image.

    ``has_representation`` is True: the representation is the stacked embeddings (N, 2, D);
    ``decode`` computes the distance and the heads from it. The encoder is
    ``shared_parameters()``; a classification task's head is its ``task_parameters``; the
    distance task has none.

    Args:
        trunk: stock trunk spec (built for ``input_shape[1:]``) or ``nn.Module``.
        tasks: the task specs.
        input_shape: per-sample shape ``(2, *sample_shape)``.
        contrastive_task: name of the distance task (absent = only classifier tasks).
        pair_index: ``{task: 0 | 1}`` — which embedding each classifier reads.
        embedding_dim: width of a linear projection after the trunk (None = trunk output).
        head_hidden: hidden widths of each classifier head.

    >>> from mtlkit import Task
    >>> tasks = [ContrastiveTask("contrastive"), Task("digit_a", "multiclass", num_classes=10)]
    >>> m = Siamese({"name": "mlp", "hidden": [8]}, tasks, input_shape=(2, 6))
    >>> {k: tuple(v.shape) for k, v in m(torch.zeros(3, 2, 6)).items()}
    {'contrastive': (3, 1), 'digit_a': (3, 10)}
    """

    paper = "Bromley et al. 1993, Siamese networks; Hadsell, Chopra & LeCun 2006, contrastive loss"

    def __init__(self, trunk: TrunkArg, tasks: Sequence[Task], *, input_shape: Sequence[int],
                 contrastive_task: str | None = "contrastive", pair_index: Mapping[str, int] | None = None,
                 embedding_dim: int | None = None, head_hidden: Sequence[int] = ()) -> None:
        super().__init__()
        self.tasks = check_tasks(tasks)
        if input_shape is None or len(input_shape) < 2 or int(input_shape[0]) != 2:
            raise ValueError(f"Siamese needs input_shape (2, *sample_shape) for stacked pairs. Got {input_shape!r}.")
        sample_shape = tuple(int(s) for s in input_shape[1:])
        names = self.task_names
        if contrastive_task is not None and contrastive_task not in names:
            raise ValueError(f"The 'contrastive_task' parameter of Siamese names {contrastive_task!r}, which is "
                             f"not a task; the tasks are {names}.")
        self.contrastive_task = contrastive_task
        if contrastive_task is not None:
            ct = next(t for t in self.tasks if t.name == contrastive_task)
            if ct.kind != "regression" or ct.out_dim != 1:
                raise ValueError(f"The contrastive task {contrastive_task!r} must be a regression task of dim 1 "
                                 f"(use ContrastiveTask). Got kind {ct.kind!r}, out_dim {ct.out_dim}.")
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
            check_int(embedding_dim, "embedding_dim", "Siamese")
            self.projection: nn.Module = nn.Linear(width, embedding_dim)
            width = embedding_dim
        else:
            self.projection = nn.Identity()
        self.embedding_dim = width
        self.heads = nn.ModuleDict({n: make_head(width, t, head_hidden)
                                    for t in self.tasks if (n := t.name) != contrastive_task})
        self.config: dict[str, Any] = {"name": "siamese", "trunk": spec, "contrastive_task": contrastive_task,
                                       "pair_index": dict(self.pair_index), "embedding_dim": embedding_dim,
                                       "head_hidden": list(head_hidden)}

    @classmethod
    def from_config(cls, tasks: Sequence[Task], input_shape: Sequence[int], *, trunk: dict[str, Any] | None,
                    **params: Any) -> Siamese:
        return cls(require_spec(trunk, "Siamese"), tasks, input_shape=input_shape, **params)

    @property
    def has_representation(self) -> bool:  # type: ignore[override]
        return True

    def embed(self, x: Tensor) -> Tensor:
        """Embeddings (N, D) of single samples (N, *sample_shape)."""
        h = self.encoder(x)
        return self.projection(h.reshape(h.shape[0], -1))

    def encode(self, x: Tensor) -> Tensor:
        if x.dim() < 2 or x.shape[1] != 2:
            raise ValueError(f"Siamese expects stacked pairs (N, 2, ...). Got shape {tuple(x.shape)}.")
        n = x.shape[0]
        e = self.embed(x.reshape(n * 2, *x.shape[2:]))
        return e.reshape(n, 2, -1)

    def decode(self, rep: Tensor) -> dict[str, Tensor]:
        out = {}
        for t in self.tasks:
            if t.name == self.contrastive_task:
                diff = rep[:, 0] - rep[:, 1]
                out[t.name] = torch.sqrt(diff.pow(2).sum(1, keepdim=True) + 1e-12)
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
    check_int(num_pairs, "num_pairs", "make_pairs")
    check_float(same_fraction, "same_fraction", "make_pairs", high=1.0)
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
