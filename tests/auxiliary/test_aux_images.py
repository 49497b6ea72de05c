"""Image generators against scikit-image / scipy computed image by image."""

from __future__ import annotations

import numpy as np
import pytest
from _aux_helpers import needs_dense
from scipy import ndimage

from mtlkit.auxiliary import HOG, Edges, Otsu, sobel_magnitude

skimage = pytest.importorskip("skimage")
from skimage.feature import hog  # noqa: E402
from skimage.filters import threshold_otsu  # noqa: E402

IMAGES = np.random.default_rng(0).random((3, 1, 16, 16))
RGB = np.random.default_rng(1).random((2, 3, 16, 16))


def test_hog_matches_skimage_per_image():
    aux = HOG(orientations=8, pixels_per_cell=4, cells_per_block=2).generate(IMAGES)
    want = np.stack([hog(img[0], orientations=8, pixels_per_cell=(4, 4), cells_per_block=(2, 2),
                         block_norm="L2-Hys") for img in IMAGES])
    np.testing.assert_allclose(aux.targets.numpy(), want, rtol=1e-5, atol=1e-7)
    assert aux.task.kind == "regression" and aux.task.dim == want.shape[1] == 3 * 3 * 2 * 2 * 8


def test_hog_multichannel_uses_skimage_channel_axis():
    aux = HOG().generate(RGB)
    want = np.stack([hog(img, pixels_per_cell=(8, 8), cells_per_block=(2, 2), channel_axis=0) for img in RGB])
    np.testing.assert_allclose(aux.targets.numpy(), want, rtol=1e-5, atol=1e-7)


def test_hog_of_a_flat_image_is_zero_and_a_vertical_edge_votes_for_zero_degrees():
    flat = HOG(pixels_per_cell=8, cells_per_block=1).generate(np.full((1, 1, 16, 16), 0.3))
    assert flat.targets.abs().max() == 0
    img = np.zeros((1, 1, 16, 16))
    img[..., 8:] = 1.0  # horizontal gradient -> orientation 0°, in the cells next to the edge
    y = HOG(pixels_per_cell=8, cells_per_block=1).generate(img).targets.numpy().reshape(2, 2, 9)
    assert (y.argmax(-1) == 0).all() and (y[..., 1:] == 0).all()


def test_hog_rejects_images_smaller_than_a_block():
    with pytest.raises(ValueError, match="smaller than one block"):
        HOG(pixels_per_cell=8, cells_per_block=3).generate(IMAGES)


def test_sobel_magnitude_matches_scipy_sobel_per_image():
    got = sobel_magnitude(RGB)
    for n in range(2):
        for c in range(3):
            img = RGB[n, c]
            want = np.hypot(ndimage.sobel(img, axis=0), ndimage.sobel(img, axis=1))
            np.testing.assert_allclose(got[n, c], want, rtol=1e-10)


def test_edges_are_block_means_of_the_grey_sobel_map():
    e = Edges(factor=4).compute(RGB)
    grey = RGB.mean(axis=1)
    for n in range(2):
        full = np.hypot(ndimage.sobel(grey[n], axis=0), ndimage.sobel(grey[n], axis=1))
        want = full.reshape(4, 4, 4, 4).mean(axis=(1, 3))  # 16×16 -> 4×4 blocks
        np.testing.assert_allclose(e[n, 0], want, rtol=1e-10)
    assert Edges(factor=3, per_channel=True).compute(RGB).shape == (2, 3, 5, 5)  # 16 // 3; the last row dropped


def test_otsu_matches_skimage_threshold_then_block_majority():
    img = np.zeros((1, 1, 4, 4))
    img[0, 0] = [[0.1, 0.9, 0.9, 0.1],
                 [0.1, 0.1, 0.9, 0.1],
                 [0.9, 0.9, 0.1, 0.1],
                 [0.9, 0.1, 0.1, 0.1]]
    labels, mask = Otsu(factor=2).compute(img)
    # foreground (> Otsu threshold) = the 0.9 pixels; 2×2 blocks: top-left 1/4 -> 0,
    # top-right 2/4 -> 1 (half counts as foreground), bottom-left 3/4 -> 1, bottom-right 0/4 -> 0
    assert labels.tolist() == [[[0, 1], [1, 0]]] and mask.all()
    labels, _ = Otsu(factor=1).compute(IMAGES)
    for n in range(3):
        np.testing.assert_array_equal(labels[n], IMAGES[n, 0] > threshold_otsu(IMAGES[n, 0]))


def test_otsu_masks_images_with_one_grey_level():
    imgs = np.concatenate([IMAGES[:1], np.full((1, 1, 16, 16), 0.5)])
    labels, mask = Otsu(factor=4).compute(imgs)
    assert mask[0].all() and not mask[1].any() and (labels[1] == 0).all()


@needs_dense
def test_dense_image_targets_make_dense_tasks():
    e = Edges(factor=4).generate(RGB)
    assert e.task.kind == "dense_regression" and e.task.out_shape == (1, 4, 4)
    assert e.targets.shape == (2, 1, 4, 4) and e.mask.all()
    o = Otsu(factor=4, weight=0.3).generate(IMAGES)
    assert (o.task.kind, o.task.num_classes, o.task.out_shape, o.task.weight) == ("segmentation", 2, (4, 4), 0.3)
    assert o.targets.dtype.is_floating_point is False and o.targets.shape == o.mask.shape == (3, 4, 4)


@needs_dense
def test_reconstruction_targets_are_the_input_downsampled_by_block_means():
    from mtlkit.auxiliary import Reconstruction

    full = Reconstruction().generate(RGB)
    np.testing.assert_allclose(full.targets.numpy(), RGB, rtol=1e-6)
    assert full.task.kind == "dense_regression" and full.task.out_shape == (3, 16, 16)
    half = Reconstruction(factor=2).generate(RGB).targets.numpy()
    np.testing.assert_allclose(half[1, 2, 3, 4], RGB[1, 2, 6:8, 8:10].mean(), rtol=1e-6)
    series = np.arange(14.0).reshape(1, 2, 7)
    s = Reconstruction(factor=3).generate(series)  # 7 steps -> 2 blocks of 3, the last step dropped
    assert s.task.out_shape == (2, 2) and s.targets.tolist() == [[[1.0, 4.0], [8.0, 11.0]]]
    flat = Reconstruction().generate(np.ones((4, 5)))
    assert flat.task.out_shape == (5,) and flat.task.output_shape == (5,)
