"""Auxiliary targets derived from the training inputs: one generator per file, registered
under its file stem in :data:`mtlkit._registry.AUXILIARY`.

A YAML run config lists them as
``auxiliary: [{generator: fourier, k: 8, weight: 0.1}, {generator: privileged, columns: [lab]}]``;
:func:`build_generators` turns that list into generator objects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from mtlkit._registry import AUXILIARY
from mtlkit.auxiliary._base import AuxiliaryGenerator, AuxTarget
from mtlkit.auxiliary.abs_changes import AbsChanges
from mtlkit.auxiliary.autoregressive import Autoregressive, ar_coefficients
from mtlkit.auxiliary.edges import Edges, sobel_magnitude
from mtlkit.auxiliary.fourier import Fourier
from mtlkit.auxiliary.hint import Hint
from mtlkit.auxiliary.hog import HOG
from mtlkit.auxiliary.kurtosis import Kurtosis
from mtlkit.auxiliary.next_window import NextWindow, split_window
from mtlkit.auxiliary.otsu import Otsu
from mtlkit.auxiliary.privileged import Privileged, split_privileged
from mtlkit.auxiliary.quantisation import Quantisation
from mtlkit.auxiliary.reconstruction import Reconstruction
from mtlkit.auxiliary.sample_entropy import SampleEntropy, sample_entropy
from mtlkit.auxiliary.skewness import Skewness
from mtlkit.auxiliary.std import Std


def build_generators(specs: Sequence[Mapping[str, Any]]) -> list[AuxiliaryGenerator]:
    """``[{generator: name, **hyperparameters}, ...]`` -> generator objects.

    >>> [str(g) for g in build_generators([{"generator": "fourier", "k": 8, "weight": 0.1}])]
    ['Fourier']
    """
    out = []
    for i, spec in enumerate(specs):
        params = dict(spec)
        name = params.pop("generator", None)
        if name is None:
            raise ValueError(f"Auxiliary entry {i} has no 'generator' key: {dict(spec)!r}.")
        cls = AUXILIARY.get(name)  # not AUXILIARY.build: its own 'name' argument would clash
        try:
            out.append(cls(**params))
        except TypeError as exc:
            raise TypeError(f"Cannot build auxiliary generator {name!r} with {params}: {exc}") from exc
    return out


def with_auxiliary(data: Any, aux: Sequence[AuxTarget]) -> Any:
    """A copy of a :class:`~mtlkit.data.MultiTaskData` with auxiliary targets added.

    An :class:`AuxTarget` that changes the model's inputs (``next_window``) replaces them
    with its array ``inputs``; two targets may not both do so. Targets whose inputs are a
    table (``privileged``, ``quantisation``) must be joined *before* the table becomes
    tensors: build the data from ``aux.inputs`` (the table without the privileged columns)
    and then call this function.

    >>> import numpy as np
    >>> from mtlkit import Task, from_arrays
    >>> x = np.random.default_rng(0).normal(size=(6, 2, 8)).astype("float32")
    >>> data = from_arrays(x, {"y": np.arange(6) % 2}, [Task("y", "binary")])
    >>> d2 = with_auxiliary(data, [Std().generate(x)])
    >>> [t.name for t in d2.tasks], tuple(d2.targets["aux_std"].shape)
    (['y', 'aux_std'], (6, 2))
    """
    from mtlkit.data import MultiTaskData

    x = data.x
    replaced = None
    targets, masks = dict(data.targets), dict(data.masks)
    tasks = list(data.tasks) if data.tasks is not None else None
    for a in aux:
        if a.task.name in targets:
            raise ValueError(f"Auxiliary task {a.task.name!r} clashes with an existing task name.")
        if a.inputs is not None:
            if not isinstance(a.inputs, (np.ndarray, torch.Tensor)):
                raise ValueError(f"Auxiliary task {a.task.name!r} changes the inputs to a table; build the data "
                                 f"from its 'inputs' before adding auxiliary targets.")
            if replaced is not None:
                raise ValueError(f"Auxiliary tasks {replaced!r} and {a.task.name!r} both change the inputs.")
            replaced = a.task.name
            x = torch.as_tensor(np.asarray(a.inputs) if isinstance(a.inputs, np.ndarray) else a.inputs)
            x = x.float() if x.is_floating_point() else x
        if a.targets.shape[0] != len(data):
            raise ValueError(f"Auxiliary task {a.task.name!r} has {a.targets.shape[0]} targets for "
                             f"{len(data)} samples.")
        targets[a.task.name] = a.targets
        masks[a.task.name] = a.mask
        if tasks is not None:
            tasks.append(a.task)
    return MultiTaskData(x, targets, masks, tasks)


__all__ = ["HOG", "AbsChanges", "Autoregressive", "AuxTarget", "AuxiliaryGenerator", "Edges", "Fourier",
           "Hint", "Kurtosis", "NextWindow", "Otsu", "Privileged", "Quantisation", "Reconstruction",
           "SampleEntropy", "Skewness", "Std", "ar_coefficients", "build_generators", "sample_entropy",
           "sobel_magnitude", "split_privileged", "split_window", "with_auxiliary"]
