"""Several per-task datasets combined into one :class:`MultiTaskData`.

Real multi-task data is often not one table with every label: each task has its own data set,
of very different sizes. :class:`MultiTaskDataset` stacks the rows of several
:class:`~mtlkit.data.MultiTaskData` (same input shape, each labelled for one or more tasks);
a task a dataset does not label gets mask ``False`` on that dataset's rows, so the loss of that
task never sees them. It is a :class:`MultiTaskData` itself, so everything that trains on one
(the :class:`~mtlkit.training.Trainer`, splits, samplers, size-based weightings) trains on it.

Batches are either *mixed* (:meth:`MultiTaskData.iter_batches`: rows of every dataset, all
tasks, masked) or *per task* (:meth:`MultiTaskDataset.task_batches` /
:meth:`MultiTaskDataset.per_task_batches`: one task's labelled rows per batch). The samplers of
:mod:`mtlkit.data.samplers` draw per-task batches with chosen task probabilities.

The helpers :func:`labelled_rows` and :func:`restrict_to_task` work on any
:class:`MultiTaskData`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mtlkit import _batch
from mtlkit._batch import Inputs
from mtlkit.data._dataset import MultiTaskData, check_targets
from mtlkit.tasks import Task, check_tasks

Batch = tuple[Inputs, dict[str, Tensor], dict[str, Tensor]]


def labelled_rows(data: MultiTaskData) -> dict[str, Tensor]:
    """Per task, the (sorted) row indices that carry at least one label of the task.

    >>> import torch
    >>> d = MultiTaskData(torch.zeros(3, 2), {"a": torch.tensor([0., 1., 0.])},
    ...                   {"a": torch.tensor([True, False, True])})
    >>> labelled_rows(d)["a"].tolist()
    [0, 2]
    """
    out: dict[str, Tensor] = {}
    for k, m in data.masks.items():
        out[k] = m.reshape(m.shape[0], -1).any(1).nonzero()[:, 0]
    return out


def restrict_to_task(batch: Batch, task: str) -> Batch:
    """The same batch with every task but ``task`` unlabelled (masks ``False``): a step on it
    optimises ``task`` only."""
    x, ys, ms = batch
    if task not in ms:
        raise KeyError(f"Unknown task {task!r}; the batch has tasks {sorted(ms)}.")
    return x, ys, {k: (m if k == task else torch.zeros_like(m)) for k, m in ms.items()}


class MultiTaskDataset(MultiTaskData):
    """Several per-task datasets stacked into one masked :class:`MultiTaskData`.

    Args:
        datasets: ``{name: MultiTaskData}`` (or a sequence; then named ``"0"``, ``"1"`` ...).
            Every dataset must have the same input shape (the same named inputs and shapes
            when the inputs are a dict); each is labelled for one or more
            tasks (its ``targets``); its masks are kept.
        tasks: the task specs (optional). When given, every dataset's tasks must be among
            them, every task must be labelled by at least one dataset, and the labels are
            checked against the specs. When omitted, the tasks are the union of the datasets'
            tasks in order of first appearance.

    Attributes:
        source: long tensor (N,): the index of the dataset each row comes from.
        source_names: the dataset names, indexed by ``source``.
        sizes: ``{task: labelled rows}`` (the per-task dataset sizes samplers and
            size-based weightings use).

    >>> import torch
    >>> a = MultiTaskData(torch.randn(100, 4), {"rain": torch.randint(0, 2, (100,)).float()})
    >>> b = MultiTaskData(torch.randn(10, 4), {"wind": torch.randn(10, 1)})
    >>> ds = MultiTaskDataset({"weather": a, "sensors": b})
    >>> len(ds), ds.sizes, ds.source_names
    (110, {'rain': 100, 'wind': 10}, ['weather', 'sensors'])
    >>> x, ys, ms = ds.batch(torch.tensor([0, 105]))
    >>> ms["rain"].tolist(), ms["wind"].tolist()
    ([True, False], [[False], [True]])
    """

    source: Tensor
    source_names: list[str]

    def __init__(self, datasets: Mapping[str, MultiTaskData] | Sequence[MultiTaskData],
                 tasks: Sequence[Task] | None = None) -> None:
        if isinstance(datasets, Mapping):
            items = [(str(k), v) for k, v in datasets.items()]
        else:
            items = [(str(i), v) for i, v in enumerate(datasets)]
        if not items:
            raise ValueError("MultiTaskDataset needs at least one dataset; none was given.")
        for name, d in items:
            if not isinstance(d, MultiTaskData):
                raise TypeError(f"Dataset {name!r} must be a MultiTaskData (e.g. from from_arrays). "
                                f"Got {type(d).__name__}.")
        ref_name, ref = items[0]
        for name, d in items[1:]:
            if d.input_shape != ref.input_shape:
                raise ValueError(
                    f"Inconsistent input shapes: dataset {ref_name!r} has inputs of shape "
                    f"{ref.input_shape} per sample but dataset {name!r} has {d.input_shape}. "
                    f"All datasets combined in a MultiTaskDataset must share one input shape."
                )
            if _dtypes(d.x, True) != _dtypes(ref.x, True):
                raise ValueError(
                    f"Inconsistent input types: dataset {ref_name!r} has {_dtypes(ref.x)} inputs but "
                    f"dataset {name!r} has {_dtypes(d.x)}."
                )
        spec = check_tasks(tasks) if tasks is not None else None
        names = [t.name for t in spec] if spec is not None else []
        if spec is None:
            for _, d in items:
                names += [k for k in d.targets if k not in names]
        else:
            for dname, d in items:
                extra = [k for k in d.targets if k not in names]
                if extra:
                    raise ValueError(f"Dataset {dname!r} has labels for task(s) {extra} that are not "
                                     f"among the tasks {names}.")
        # the label layout of each task: trailing shape and dtype, identical in every dataset
        layout: dict[str, tuple[str, tuple[int, ...], torch.dtype]] = {}
        for dname, d in items:
            for k, v in d.targets.items():
                if k not in layout:
                    layout[k] = (dname, tuple(v.shape[1:]), v.dtype)
                    continue
                first, shape, dtype = layout[k]
                if tuple(v.shape[1:]) != shape:
                    raise ValueError(
                        f"Task {k!r} has labels of shape {shape} per sample in dataset {first!r} "
                        f"but {tuple(v.shape[1:])} in dataset {dname!r}."
                    )
                if v.is_floating_point() != dtype.is_floating_point:
                    raise ValueError(
                        f"Task {k!r} has {dtype} labels in dataset {first!r} but {v.dtype} in "
                        f"dataset {dname!r}."
                    )
        unlabelled = [k for k in names if k not in layout]
        if unlabelled:
            raise ValueError(f"Task(s) {unlabelled} are not labelled by any of the datasets "
                             f"{[n for n, _ in items]}.")
        x = _stack_inputs([d.x for _, d in items])
        targets: dict[str, Tensor] = {}
        masks: dict[str, Tensor] = {}
        for k in names:
            _, shape, dtype = layout[k]
            ys, ms = [], []
            for _, d in items:
                n = len(d)
                if k in d.targets:
                    ys.append(d.targets[k].to(dtype))
                    ms.append(d.masks[k])
                else:
                    ys.append(torch.zeros((n, *shape), dtype=dtype))
                    ms.append(torch.zeros((n, *shape), dtype=torch.bool))
            targets[k] = torch.cat(ys)
            masks[k] = torch.cat(ms)
        super().__init__(x, targets, masks, None, source="the combined datasets")
        self.tasks = spec
        if spec is not None:
            check_targets(spec, self.targets, self.masks)
        self.source = torch.cat([torch.full((len(d),), i, dtype=torch.long)
                                 for i, (_, d) in enumerate(items)])
        self.source_names = [n for n, _ in items]

    # ------------------------------------------------------------------ structure
    @property
    def sizes(self) -> dict[str, int]:
        """Labelled rows per task."""
        return self.labelled_counts()

    def task_indices(self, task: str) -> Tensor:
        """Row indices labelled for ``task`` (sorted)."""
        if task not in self.masks:
            raise KeyError(f"Unknown task {task!r}; tasks are {self.task_names}.")
        m = self.masks[task]
        return m.reshape(m.shape[0], -1).any(1).nonzero()[:, 0]

    def dataset(self, name: str) -> MultiTaskData:
        """The rows of one source dataset (all tasks, masked)."""
        if name not in self.source_names:
            raise KeyError(f"Unknown dataset {name!r}; datasets are {self.source_names}.")
        return self.subset((self.source == self.source_names.index(name)).nonzero()[:, 0])

    def subset(self, idx: Sequence[int] | np.ndarray | Tensor) -> MultiTaskDataset:
        idx_t = torch.as_tensor(np.asarray(idx), dtype=torch.long)
        out = super().subset(idx_t)
        out.__class__ = MultiTaskDataset  # the rows of MultiTaskData.subset, plus the sources
        assert isinstance(out, MultiTaskDataset)
        out.source = self.source[idx_t]
        out.source_names = list(self.source_names)
        return out

    # ------------------------------------------------------------------ per-task batches
    def task_batches(self, task: str, batch_size: int, *, shuffle: bool = True,
                     generator: torch.Generator | None = None, exclusive: bool = True
                     ) -> Iterator[Batch]:
        """One pass over the rows labelled for ``task``, ``batch_size`` rows per batch (the
        last one may be smaller). ``exclusive`` masks every other task in these batches."""
        _check_batch_size(batch_size)
        rows = self.task_indices(task)
        if shuffle:
            rows = rows[torch.randperm(len(rows), generator=generator)]
        for s in range(0, len(rows), batch_size):
            b = self.batch(rows[s:s + batch_size])
            yield restrict_to_task(b, task) if exclusive else b

    def per_task_batches(self, batch_size: int, *, generator: torch.Generator | None = None,
                         exclusive: bool = True) -> Iterator[Batch]:
        """One pass over every task's labelled rows in task-homogeneous batches, the batches
        of all tasks in one shuffled order (each task's share of batches ∝ its size)."""
        _check_batch_size(batch_size)
        plan: list[tuple[str, Tensor]] = []
        for t in self.task_names:
            rows = self.task_indices(t)
            rows = rows[torch.randperm(len(rows), generator=generator)]
            plan += [(t, rows[s:s + batch_size]) for s in range(0, len(rows), batch_size)]
        for i in torch.randperm(len(plan), generator=generator).tolist():
            t, rows = plan[i]
            b = self.batch(rows)
            yield restrict_to_task(b, t) if exclusive else b

    def __repr__(self) -> str:
        parts = ", ".join(f"{n}: {int((self.source == i).sum())}" for i, n in enumerate(self.source_names))
        return f"MultiTaskDataset({{{parts}}}, sizes={self.sizes})"


def _check_batch_size(batch_size: int) -> None:
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"The 'batch_size' must be a positive integer. Got {batch_size!r}.")


def _dtypes(x: Inputs, floating: bool = False) -> Any:
    """The dtype (or ``{name: dtype}``) of inputs; ``floating``: whether each is floating-point."""
    if _batch.is_multi(x):
        return {k: (v.is_floating_point() if floating else v.dtype) for k, v in x.items()}  # type: ignore[union-attr]
    return x.is_floating_point() if floating else x.dtype  # type: ignore[union-attr]


def _stack_inputs(parts: Sequence[Inputs]) -> Inputs:
    """The datasets' inputs stacked, each input in the promoted dtype of its parts."""
    def promoted(ts: Sequence[Tensor]) -> list[Tensor]:
        dt = ts[0].dtype
        for t in ts[1:]:
            dt = torch.promote_types(dt, t.dtype)
        return [t.to(dt) for t in ts]

    if _batch.is_multi(parts[0]):
        names = list(parts[0])  # the same names in every part: checked with the shapes
        cols = {k: promoted([p[k] for p in parts]) for k in names}  # type: ignore[index]
        return _batch.concat([{k: cols[k][i] for k in names} for i in range(len(parts))])
    return torch.cat(promoted(parts))  # type: ignore[arg-type]
