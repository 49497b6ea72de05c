"""Sobel edge-magnitude map of an image, downsampled, as a dense regression target."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy import ndimage

from mtlkit._checks import check_int
from mtlkit._registry import AUXILIARY
from mtlkit.auxiliary._base import AuxiliaryGenerator, AuxTarget, as_images, block_mean


def sobel_magnitude(images: np.ndarray) -> np.ndarray:
    """|∇I| = sqrt(G_x² + G_y²) over the last two axes of (…, H, W), with the unnormalised
    Sobel kernels G_x = [1 2 1]ᵀ ⊗ [−1 0 1], G_y = its transpose (scipy.ndimage.sobel's
    kernels) and reflected borders; vectorised over the leading axes.

    >>> img = np.zeros((4, 4)); img[:, 2:] = 1.0
    >>> sobel_magnitude(img)[1].tolist()
    [0.0, 4.0, 4.0, 0.0]
    """
    gx = ndimage.correlate1d(images, [-1.0, 0.0, 1.0], axis=-1, mode="reflect")
    gx = ndimage.correlate1d(gx, [1.0, 2.0, 1.0], axis=-2, mode="reflect")
    gy = ndimage.correlate1d(images, [-1.0, 0.0, 1.0], axis=-2, mode="reflect")
    gy = ndimage.correlate1d(gy, [1.0, 2.0, 1.0], axis=-1, mode="reflect")
    return np.hypot(gx, gy)


@AUXILIARY.register()
class Edges(AuxiliaryGenerator):
    """Edge map of each image: the Sobel gradient magnitude, block-averaged, as a dense
    regression target.

    Sobel & Feldman (1968), "A 3×3 isotropic gradient operator for image processing"
    (the Sobel operator); edge maps as auxiliary dense targets follow the multi-task
    dense-prediction literature (e.g. Xu, Ouyang, Wang & Sebe 2018, "PAD-Net", CVPR, which
    uses contours as an auxiliary task).

    E = sqrt(G_x² + G_y²) with the unnormalised 3×3 Sobel kernels (see
    :func:`sobel_magnitude`), computed on the channel mean (the grey image) unless
    ``per_channel=True``; then averaged over non-overlapping ``factor``×``factor`` blocks
    (rows/columns that do not fill a block are dropped). Task kind ``dense_regression``
    (L1) with ``out_shape`` (C', H // factor, W // factor), C' = 1 or C.

    Args:
        factor: downsampling factor (1 = full resolution).
        per_channel: one edge map per input channel instead of one for the grey image.
        weight: the loss weight λ of the auxiliary task.
        name: the task name (default ``"aux_edges"``).

    >>> import numpy as np
    >>> img = np.zeros((1, 1, 4, 4)); img[..., 2:] = 1.0
    >>> aux = Edges(factor=2).generate(img)
    >>> aux.task.kind, aux.task.out_shape, aux.targets[0, 0].tolist()
    ('dense_regression', (1, 2, 2), [[2.0, 2.0], [2.0, 2.0]])
    """

    paper = "Sobel & Feldman 1968, A 3x3 isotropic gradient operator for image processing"
    input_kind = "image"

    def __init__(self, *, factor: int = 4, per_channel: bool = False, weight: float = 0.1,
                 name: str | None = None) -> None:
        super().__init__(weight=weight, name=name)
        self.factor = check_int("Edges", "factor", factor, low=1)
        if not isinstance(per_channel, bool):
            raise ValueError(f"The 'per_channel' parameter of Edges must be a bool. Got {per_channel!r}.")
        self.per_channel = per_channel

    def compute(self, images: np.ndarray) -> np.ndarray:
        """(N, C, H, W) float64 -> (N, C', H // factor, W // factor) edge maps."""
        if images.shape[2] < self.factor or images.shape[3] < self.factor:
            raise ValueError(f"Edges: factor={self.factor} is larger than the {images.shape[2]}×"
                             f"{images.shape[3]} images.")
        src = images if self.per_channel else images.mean(axis=1, keepdims=True)
        return block_mean(sobel_magnitude(src), self.factor)

    def _generate(self, x: Any, *, columns: list[str] | None) -> AuxTarget:
        e = self.compute(as_images(x, "Edges"))
        task = self._task("dense_regression", out_shape=tuple(int(s) for s in e.shape[1:]))
        return AuxTarget(task, torch.as_tensor(e, dtype=torch.float32), torch.ones(e.shape, dtype=torch.bool))
