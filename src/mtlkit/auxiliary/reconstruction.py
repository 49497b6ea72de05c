"""Reconstruction of the input (an autoencoder head on the shared representation)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mtlkit._checks import check_int
from mtlkit._registry import AUXILIARY
from mtlkit.auxiliary._base import AuxiliaryGenerator, AuxTarget, block_mean, to_numpy


@AUXILIARY.register()
class Reconstruction(AuxiliaryGenerator):
    """The input itself as a dense regression target: ŷ = x (optionally downsampled).

    Le, Patterson & White (2018), "Supervised autoencoders: Improving generalization
    performance with unsupervised regularizers", NeurIPS — a reconstruction loss on a
    decoder from the shared representation regularises the supervised task.

    Task kind ``dense_regression`` (L1 loss; metrics absolute and relative error) with
    ``out_shape`` = the per-sample input shape: (C, H, W) for images, (C, T) for series,
    (D,) for flat tables. Pair it with :func:`mtlkit.architectures.decoders.dense_head`
    (a :class:`~mtlkit.architectures.decoders.ConvDecoder2d` / ``ConvDecoder1d`` / linear
    layer). With ``factor > 1`` the last two axes of images (the last axis of series) are
    averaged over non-overlapping blocks of ``factor`` (trailing steps that do not fill a
    block are dropped).

    Args:
        factor: downsampling factor of the target (1 = full resolution).
        weight: the loss weight λ of the auxiliary task.
        name: the task name (default ``"aux_reconstruction"``).

    >>> import numpy as np
    >>> aux = Reconstruction(factor=2).generate(np.arange(16.0).reshape(1, 1, 4, 4))
    >>> aux.task.kind, aux.task.out_shape, aux.targets[0, 0].tolist()
    ('dense_regression', (1, 2, 2), [[2.5, 4.5], [10.5, 12.5]])
    """

    paper = ("Le, Patterson & White 2018, Supervised autoencoders: Improving generalization "
             "performance with unsupervised regularizers")

    def __init__(self, *, factor: int = 1, weight: float = 0.1, name: str | None = None) -> None:
        super().__init__(weight=weight, name=name)
        self.factor = check_int("Reconstruction", "factor", factor, low=1)

    def _generate(self, x: Any, *, columns: list[str] | None) -> AuxTarget:
        a = to_numpy(x).astype(np.float64)
        if a.ndim < 2 or a.shape[0] == 0:
            raise ValueError(f"Reconstruction needs a batch of inputs (N, ...). Got shape {a.shape}.")
        if self.factor > 1:
            if a.ndim == 4:
                a = block_mean(a, self.factor)
            elif a.ndim == 3:
                t = (a.shape[2] // self.factor) * self.factor
                a = a[:, :, :t].reshape(a.shape[0], a.shape[1], -1, self.factor).mean(axis=3)
            else:
                raise ValueError(f"Reconstruction: factor={self.factor} needs images (N, C, H, W) or series "
                                 f"(N, C, T). Got shape {a.shape}.")
            if 0 in a.shape:
                raise ValueError(f"Reconstruction: factor={self.factor} is larger than the input "
                                 f"{to_numpy(x).shape[2:]}.")
        mask = np.isfinite(a)
        y = np.where(mask, a, 0.0)
        task = self._task("dense_regression", out_shape=tuple(int(s) for s in y.shape[1:]))
        names = tuple(columns) if columns is not None and a.ndim == 2 else ()
        return AuxTarget(task, torch.as_tensor(y, dtype=torch.float32), torch.as_tensor(mask), names)
