"""Histogram-of-oriented-gradients descriptor of an image as an auxiliary regression target."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mtlkit._checks import check_int
from mtlkit._registry import AUXILIARY
from mtlkit.auxiliary._base import (
    AuxiliaryGenerator,
    AuxTarget,
    as_images,
    standardize_columns,
)
from mtlkit.auxiliary._images import import_skimage

_BLOCK_NORMS = ("L1", "L1-sqrt", "L2", "L2-Hys")


def _pair(owner: str, name: str, value: Any) -> tuple[int, int]:
    v = (value, value) if isinstance(value, int) and not isinstance(value, bool) else tuple(value)
    if len(v) != 2:
        raise ValueError(f"The '{name}' parameter of {owner} must be an int or a pair of ints. Got {value!r}.")
    return check_int(owner, name, v[0], low=1), check_int(owner, name, v[1], low=1)


@AUXILIARY.register()
class HOG(AuxiliaryGenerator):
    """HOG descriptor of each image, computed by ``skimage.feature.hog``.

    Dalal & Triggs (2005), "Histograms of oriented gradients for human detection", CVPR.

    Per image: gradients by centred differences; per cell of ``pixels_per_cell`` pixels a
    histogram of ``orientations`` unsigned gradient orientations (0–180°) weighted by the
    gradient magnitude; histograms normalised over overlapping blocks of ``cells_per_block``
    cells (``block_norm``, L2-Hys by default as in the paper); the concatenation of all
    normalised blocks is the target (N, D). For multichannel images scikit-image takes, at
    each pixel, the gradient of the channel with the largest magnitude
    (``channel_axis=0``). scikit-image works one image at a time, so this generator loops
    over the images (once; the result is cached).

    Needs scikit-image (``pip install 'mtlkit[images]'``).

    Args:
        orientations: number of orientation bins.
        pixels_per_cell: cell size (int or (rows, cols)).
        cells_per_block: block size in cells (int or (rows, cols)).
        block_norm: ``"L1"``, ``"L1-sqrt"``, ``"L2"`` or ``"L2-Hys"``.
        standardize: z-score the targets over the samples given (default: raw values).
        weight: the loss weight λ of the auxiliary task.
        name: the task name (default ``"aux_hog"``).

    >>> import numpy as np
    >>> img = np.zeros((1, 1, 16, 16)); img[0, 0, :, 8:] = 1.0      # a vertical edge
    >>> aux = HOG(pixels_per_cell=8, cells_per_block=1).generate(img)
    >>> aux.task.dim, aux.targets.argmax().item() % 9                 # 4 cells × 9 bins; 0° bin
    (36, 0)
    """

    paper = "Dalal & Triggs 2005, Histograms of oriented gradients for human detection"
    input_kind = "image"

    def __init__(self, *, orientations: int = 9, pixels_per_cell: int | Sequence[int] = (8, 8),
                 cells_per_block: int | Sequence[int] = (2, 2), block_norm: str = "L2-Hys",
                 standardize: bool = False, weight: float = 0.1, name: str | None = None) -> None:
        super().__init__(weight=weight, name=name)
        self.orientations = check_int("HOG", "orientations", orientations, low=1)
        self.pixels_per_cell = _pair("HOG", "pixels_per_cell", pixels_per_cell)
        self.cells_per_block = _pair("HOG", "cells_per_block", cells_per_block)
        if block_norm not in _BLOCK_NORMS:
            raise ValueError(f"The 'block_norm' parameter of HOG must be one of {_BLOCK_NORMS}. Got {block_norm!r}.")
        self.block_norm = block_norm
        if not isinstance(standardize, bool):
            raise ValueError(f"The 'standardize' parameter of HOG must be a bool. Got {standardize!r}.")
        self.standardize = standardize

    def compute(self, images: np.ndarray) -> np.ndarray:
        """(N, C, H, W) float64 -> (N, D) descriptors."""
        skimage = import_skimage("HOG")
        h, w = images.shape[2:]
        need = (self.pixels_per_cell[0] * self.cells_per_block[0], self.pixels_per_cell[1] * self.cells_per_block[1])
        if h < need[0] or w < need[1]:
            raise ValueError(f"HOG: images of {h}×{w} pixels are smaller than one block "
                             f"({need[0]}×{need[1]} pixels).")
        multi = images.shape[1] > 1
        kw = {"orientations": self.orientations, "pixels_per_cell": self.pixels_per_cell,
              "cells_per_block": self.cells_per_block, "block_norm": self.block_norm,
              "feature_vector": True, "channel_axis": 0 if multi else None}
        return np.stack([skimage.feature.hog(img if multi else img[0], **kw) for img in images])

    def _generate(self, x: Any, *, columns: list[str] | None) -> AuxTarget:
        values = self.compute(as_images(x, "HOG"))
        if self.standardize:
            values, self.target_mean_, self.target_scale_ = standardize_columns(values)
        return self._regression(values, [f"hog_{i}" for i in range(values.shape[1])])
