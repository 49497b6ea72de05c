"""The object every built-in dataset loader returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mtlkit.data._dataset import MultiTaskData
from mtlkit.tasks import Task


@dataclass
class DatasetBundle:
    """A built-in dataset: the data, its tasks and what a model builder needs to know.

    Attributes:
        name: the registry name (``"multimnist"``, ``"adult"`` ...).
        data: the samples to train (and validate) on.
        tasks: the task specs, in a fixed order.
        test: the dataset's own test set when it has one, else ``None`` (the caller then
            splits ``data`` at random).
        input_kind: ``"table"`` (N, F), ``"image"`` (N, C, H, W), ``"series"`` (N, C, T) or
            ``"image_pair"`` (N, 2, C, H, W).
        default_trunk: a stock trunk spec that suits the inputs, e.g. ``{"name": "lenet"}``.
        feature_names: the column names of tabular inputs (``None`` for images and series).
        description: where the data comes from and how it was built.
        licence: the licence of the data and of the package that ships it.
        info: loader-specific facts, e.g. class names or the source rows behind each sample.
    """

    name: str
    data: MultiTaskData
    tasks: list[Task]
    test: MultiTaskData | None
    input_kind: str
    default_trunk: dict[str, Any]
    feature_names: list[str] | None
    description: str
    licence: str
    info: dict[str, Any] = field(default_factory=dict)

    def class_balance(self, part: str = "data") -> dict[str, list[int]]:
        """Labelled samples per class for each classification task of ``data`` or ``test``.

        Binary tasks give ``[n_negative, n_positive]``; multilabel tasks give the number of
        positives per label; regression tasks are left out."""
        if part not in ("data", "test"):
            raise ValueError(f"The 'part' argument must be 'data' or 'test'. Got {part!r}.")
        ds = self.data if part == "data" else self.test
        if ds is None:
            raise ValueError(f"The {self.name!r} dataset has no predefined test set.")
        out: dict[str, list[int]] = {}
        for t in self.tasks:
            balance = t.task_kind.class_balance(t, ds.targets[t.name], ds.masks[t.name])
            if balance is not None:
                out[t.name] = balance
        return out

    def __repr__(self) -> str:
        test = f", test={len(self.test)}" if self.test is not None else ""
        return (
            f"DatasetBundle(name={self.name!r}, n={len(self.data)}{test}, "
            f"input_shape={self.data.input_shape}, tasks={[t.name for t in self.tasks]})"
        )
