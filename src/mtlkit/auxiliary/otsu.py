"""Otsu-threshold foreground/background segmentation, downsampled, as a dense target."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mtlkit._checks import check_int
from mtlkit._registry import AUXILIARY
from mtlkit.auxiliary._base import AuxiliaryGenerator, AuxTarget, as_images, block_mean
from mtlkit.auxiliary._images import import_skimage


@AUXILIARY.register()
class Otsu(AuxiliaryGenerator):
    """Foreground/background segmentation of each image by Otsu's threshold, as a dense
    2-class segmentation target.

    Otsu (1979), "A threshold selection method from gray-level histograms", IEEE Trans.
    Systems, Man, and Cybernetics 9(1): the threshold t maximises the between-class variance
    of the grey-level histogram.

    Per image: the grey image g (channel mean), t = ``skimage.filters.threshold_otsu(g)``
    (256-bin histogram), the label map s = [g > t] (1 = foreground, skimage's convention);
    then a majority vote over non-overlapping ``factor``×``factor`` blocks (a block is
    foreground when at least half of its pixels are; rows/columns that do not fill a block
    are dropped). An image with a single grey level has no threshold: all its pixels are
    masked. Task kind ``segmentation`` (per-pixel cross-entropy; mIoU and pixel accuracy)
    with ``num_classes=2`` and ``out_shape`` (H // factor, W // factor). scikit-image
    thresholds one image at a time, so this generator loops over the images (once; cached).

    Needs scikit-image (``pip install 'mtlkit[images]'``).

    Args:
        factor: downsampling factor (1 = full resolution).
        weight: the loss weight λ of the auxiliary task.
        name: the task name (default ``"aux_otsu"``).

    >>> import numpy as np
    >>> img = np.zeros((1, 1, 4, 4)); img[..., :, 2:] = 1.0
    >>> aux = Otsu(factor=2).generate(img)
    >>> aux.task.kind, aux.task.num_classes, aux.targets[0].tolist()
    ('segmentation', 2, [[0, 1], [0, 1]])
    """

    paper = "Otsu 1979, A threshold selection method from gray-level histograms"
    input_kind = "image"

    def __init__(self, *, factor: int = 4, weight: float = 0.1, name: str | None = None) -> None:
        super().__init__(weight=weight, name=name)
        self.factor = check_int("Otsu", "factor", factor, low=1)

    def compute(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, C, H, W) -> labels int64 (N, h, w) and mask bool (N, h, w)."""
        skimage = import_skimage("Otsu")
        if images.shape[2] < self.factor or images.shape[3] < self.factor:
            raise ValueError(f"Otsu: factor={self.factor} is larger than the {images.shape[2]}×"
                             f"{images.shape[3]} images.")
        grey = images.mean(axis=1)
        flat = grey.reshape(grey.shape[0], -1)
        valid = flat.max(axis=1) > flat.min(axis=1)
        thresholds = np.array([skimage.filters.threshold_otsu(g) if ok else np.inf
                               for g, ok in zip(grey, valid, strict=True)])
        fg = (grey > thresholds[:, None, None]).astype(np.float64)
        labels = (block_mean(fg, self.factor) >= 0.5).astype(np.int64)
        mask = np.broadcast_to(valid[:, None, None], labels.shape).copy()
        return np.where(mask, labels, 0), mask

    def _generate(self, x: Any, *, columns: list[str] | None) -> AuxTarget:
        labels, mask = self.compute(as_images(x, "Otsu"))
        task = self._task("segmentation", num_classes=2, out_shape=tuple(int(s) for s in labels.shape[1:]))
        return AuxTarget(task, torch.as_tensor(labels), torch.as_tensor(mask))
