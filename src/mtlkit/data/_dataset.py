"""Tensor-backed multi-task datasets with per-task label masks."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from mtlkit import _batch
from mtlkit._batch import Inputs, Shape
from mtlkit.tasks import Task


class MultiTaskData(Dataset):
    """Inputs ``x`` (N, ...) and, per task, targets and a mask of labelled entries.

    Indexing returns ``(x_i, {task: y_i}, {task: mask_i})``. Batches are taken by
    :meth:`batch` (one tensor gather, no per-sample collation), which the trainer uses.

    Args:
        x: input tensor, first dimension = samples; or several named inputs
            ``{name: tensor}`` sharing the first dimension (a multi-input model, e.g.
            :class:`~mtlkit.architectures.Multimodal`): batches then carry dicts too.
        targets: ``{task: tensor}`` shaped as :mod:`mtlkit.tasks` documents.
        masks: ``{task: bool tensor}``; default: all labelled.
        tasks: the task specs (targets are checked against them).
    """

    x: Inputs

    def __init__(self, x: Inputs | Mapping[str, Tensor], targets: Mapping[str, Tensor],
                 masks: Mapping[str, Tensor] | None = None, tasks: Sequence[Task] | None = None, *,
                 source: str | None = None) -> None:
        x = _batch.as_inputs(x, source=source)
        if (not _batch.is_multi(x) and x.dim() == 0) or _batch.rows(x) == 0:  # type: ignore[union-attr]
            raise ValueError(f"The dataset{_of(source)} is empty: it has no samples.")
        _batch.finite_check(x, source)
        self.x = x
        self.targets = {k: torch.as_tensor(v) for k, v in targets.items()}
        masks = dict(masks or {})
        self.masks = {k: torch.as_tensor(masks[k]).bool() if k in masks else
                      torch.ones(v.shape, dtype=torch.bool) for k, v in self.targets.items()}
        n = _batch.rows(x)
        for k, v in self.targets.items():
            if v.shape[0] != n:
                raise ValueError(f"Task {k!r} has {v.shape[0]} targets but there are {n} inputs.")
            if self.masks[k].shape != v.shape:
                raise ValueError(f"Task {k!r}: mask shape {tuple(self.masks[k].shape)} does not match "
                                 f"targets {tuple(v.shape)}.")
        self.tasks = list(tasks) if tasks is not None else None
        if self.tasks is not None:
            check_targets(self.tasks, self.targets, self.masks)

    def __len__(self) -> int:
        return _batch.rows(self.x)

    def __getitem__(self, i: int) -> tuple[Inputs, dict[str, Tensor], dict[str, Tensor]]:
        return (_batch.take(self.x, i), {k: v[i] for k, v in self.targets.items()},
                {k: m[i] for k, m in self.masks.items()})

    @property
    def task_names(self) -> list[str]:
        return list(self.targets)

    @property
    def input_shape(self) -> Shape:
        """The per-sample shape; ``{name: shape}`` for several named inputs."""
        return _batch.shape_of(self.x)

    @property
    def input_names(self) -> list[str] | None:
        """The names of the inputs when there are several, else None."""
        return list(self.x) if _batch.is_multi(self.x) else None  # type: ignore[arg-type]

    def batch(self, idx: Tensor) -> tuple[Inputs, dict[str, Tensor], dict[str, Tensor]]:
        return (_batch.take(self.x, idx), {k: v[idx] for k, v in self.targets.items()},
                {k: m[idx] for k, m in self.masks.items()})

    def subset(self, idx: Sequence[int] | np.ndarray | Tensor) -> MultiTaskData:
        idx_t = torch.as_tensor(np.asarray(idx), dtype=torch.long)
        out = MultiTaskData.__new__(MultiTaskData)
        out.x = _batch.take(self.x, idx_t)
        out.targets = {k: v[idx_t] for k, v in self.targets.items()}
        out.masks = {k: m[idx_t] for k, m in self.masks.items()}
        out.tasks = self.tasks
        return out

    def labelled_counts(self) -> dict[str, int]:
        """Samples with at least one label, per task."""
        return {k: int(m.reshape(m.shape[0], -1).any(1).sum()) for k, m in self.masks.items()}

    def iter_batches(self, batch_size: int, *, shuffle: bool = False,
                     generator: torch.Generator | None = None, drop_last: bool = False, min_last: int = 1
                     ) -> Iterator[tuple[Inputs, dict[str, Tensor], dict[str, Tensor]]]:
        """Batches of ``batch_size`` rows (in a seeded random order with ``shuffle``). The last
        one may be smaller: ``drop_last`` drops it; one of fewer than ``min_last`` rows joins
        the batch before it (a batch-norm layer cannot train on one row), so no row is left out."""
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        stop = n - (n % batch_size) if drop_last and n >= batch_size else n
        starts = batch_starts(stop, batch_size, min_last)
        for i, s in enumerate(starts):
            yield self.batch(order[s:starts[i + 1] if i + 1 < len(starts) else stop])


def batch_starts(n: int, batch_size: int, min_last: int = 1) -> list[int]:
    """The first row of each batch of :meth:`MultiTaskData.iter_batches` over ``n`` rows (a
    last batch of fewer than ``min_last`` rows joins the one before)."""
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] < min_last:
        starts.pop()
    return starts


def _of(source: str | None) -> str:
    return f" of {source}" if source else ""


def check_targets(tasks: Sequence[Task], targets: Mapping[str, Tensor], masks: Mapping[str, Tensor]) -> None:
    """Check every task has targets of the right shape and range (labelled entries only)."""
    for t in tasks:
        if t.name not in targets:
            raise ValueError(f"No labels for task {t.name!r}. Labelled tasks: {sorted(targets)}.")
        y, m = targets[t.name], masks[t.name]
        n = y.shape[0]
        want: tuple[int, ...] = (n, *t.target_shape)
        if tuple(y.shape) != want:
            raise ValueError(f"Task {t.name!r} ({t.kind}): labels have shape {tuple(y.shape)}, expected {want}.")
        vals = y[m]
        if vals.numel() == 0:
            continue
        t.task_kind.check_labels(t, vals)  # class range, 0/1 or finite values, by kind


def collate(batch: Sequence[Any]) -> tuple[Inputs, dict[str, Tensor], dict[str, Tensor]]:
    """Collate ``(x, {task: y})`` or ``(x, {task: y}, {task: mask})`` samples from any Dataset;
    ``x`` may be a tensor or a dict of named tensors (the same names in every sample).

    A label that is ``None`` or NaN becomes a masked entry (placeholder 0)."""
    xs = _stack_inputs([b[0] for b in batch])
    names = list(batch[0][1])
    ys: dict[str, Tensor] = {}
    ms: dict[str, Tensor] = {}
    for k in names:
        vals: list[Tensor | None] = []
        mks: list[Tensor | None] = []
        for b in batch:
            v = b[1].get(k)
            if v is None:
                vals.append(None)
                mks.append(None)
                continue
            v = torch.as_tensor(v)
            m = torch.as_tensor(b[2][k]).bool() if len(b) > 2 else ~torch.isnan(v.float())
            vals.append(torch.where(m, v, torch.zeros_like(v)))
            mks.append(m)
        ref = next((v for v in vals if v is not None), None)
        if ref is None:
            raise ValueError(f"Task {k!r}: no sample in the batch has this key.")
        full_vals = [v if v is not None else torch.zeros_like(ref) for v in vals]
        full_mks = [m if m is not None else torch.zeros(ref.shape, dtype=torch.bool) for m in mks]
        ys[k] = torch.stack(full_vals)
        ms[k] = torch.stack(full_mks)
    return xs, ys, ms


def from_torch_dataset(ds: Dataset, tasks: Sequence[Task], *, source: str = "the Dataset") -> MultiTaskData:
    """Materialise a torch ``Dataset`` returning ``(x, {task: y})`` into :class:`MultiTaskData`.

    Labels are cast per task kind (long for multiclass, float otherwise)."""
    n = len(ds)  # type: ignore[arg-type]
    if n == 0:
        raise ValueError(f"{source} is empty: it has no samples.")
    items = [ds[i] for i in range(n)]
    for i, it in enumerate(items[:1]):
        if not (isinstance(it, (tuple, list)) and len(it) >= 2 and isinstance(it[1], Mapping)):
            raise TypeError(f"{source} must return (x, {{task: y}}) pairs; item {i} is {type(it).__name__}.")
    x, ys, ms = collate(items)
    for t in tasks:
        if t.name not in ys:
            raise ValueError(f"{source} returns no label for task {t.name!r}; it has {sorted(ys)}.")
        ys[t.name], ms[t.name] = t.task_kind.cast_targets(t, ys[t.name], ms[t.name])
    keep = {t.name for t in tasks}
    return MultiTaskData(_batch.float_inputs(x),
                         {k: v for k, v in ys.items() if k in keep},
                         {k: v for k, v in ms.items() if k in keep}, tasks, source=source)


def _stack_inputs(samples: Sequence[Any]) -> Inputs:
    """One sample's inputs per entry -> a batch: tensors stacked, or dicts stacked per name
    (a sample without one of the first sample's inputs is an error naming it)."""
    first = samples[0]
    if not isinstance(first, Mapping):
        bad = next((i for i, s in enumerate(samples) if isinstance(s, Mapping)), None)
        if bad is not None:
            raise TypeError(f"Sample {bad} has named inputs (a dict) but sample 0 has one tensor.")
        return torch.stack([torch.as_tensor(s) for s in samples])
    names = list(first)
    out: dict[str, Tensor] = {}
    for k in names:
        vals = []
        for i, s in enumerate(samples):
            if not isinstance(s, Mapping) or k not in s:
                have = sorted(s) if isinstance(s, Mapping) else type(s).__name__
                raise KeyError(f"Sample {i} has no input {k!r} (sample 0 has {names}); it has {have}.")
            vals.append(torch.as_tensor(s[k]))
        out[k] = torch.stack(vals)
    return out
