"""Seeded train/validation/test splits."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mtlkit.data._dataset import MultiTaskData


def split_indices(n: int, fractions: Sequence[float] = (0.6, 0.25, 0.15), *, seed: int = 0,
                  stratify: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of a seeded three-way split (train, val, test); fractions must sum to 1."""
    from sklearn.model_selection import train_test_split

    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"split fractions must be three non-negative numbers summing to 1. Got {list(fractions)}.")
    if n < 3:
        raise ValueError(f"Cannot split {n} samples into train/validation/test.")
    idx = np.arange(n)
    ftr, fva, fte = fractions
    strat = stratify
    if fte > 0:
        rest, test = train_test_split(idx, test_size=fte, random_state=seed,
                                      stratify=strat if strat is not None else None)
    else:
        rest, test = idx, idx[:0]
    if fva > 0:
        s2 = strat[rest] if strat is not None else None
        train, val = train_test_split(rest, test_size=fva / (ftr + fva), random_state=seed + 1, stratify=s2)
    else:
        train, val = rest, rest[:0]
    return np.sort(train), np.sort(val), np.sort(test)


def split(data: MultiTaskData, fractions: Sequence[float] = (0.6, 0.25, 0.15), *, seed: int = 0,
          stratify: str | None = None) -> tuple[MultiTaskData, MultiTaskData, MultiTaskData]:
    """Split a dataset; ``stratify`` names a binary/multiclass task to stratify on (its
    unlabelled samples form their own stratum)."""
    strat = None
    if stratify is not None:
        if stratify not in data.targets:
            raise KeyError(f"Cannot stratify on unknown task {stratify!r}; tasks: {data.task_names}.")
        y = data.targets[stratify].numpy()
        if y.ndim != 1:
            raise ValueError(f"Stratification needs a binary or multiclass task; {stratify!r} is not.")
        m = data.masks[stratify].numpy()
        strat = np.where(m, y.astype(np.int64), -1)
    tr, va, te = split_indices(len(data), fractions, seed=seed, stratify=strat)
    parts = data.subset(tr), data.subset(va), data.subset(te)
    for name, part in zip(("validation", "test"), parts[1:]):
        if len(part) == 0 and fractions[1 if name == "validation" else 2] > 0:
            raise ValueError(f"The {name} split is empty; use more data or larger fractions.")
    if fractions[1] > 0:
        counts = parts[1].labelled_counts()
        empty = [k for k, c in counts.items() if c == 0]
        if empty:
            raise ValueError(
                f"The validation split has no labelled sample for task(s) {empty}: too few labels "
                f"for this split; use more data, a larger validation fraction, or stratify on it."
            )
    return parts
