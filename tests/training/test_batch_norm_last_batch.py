"""An epoch whose last batch would hold one row: a model with batch-norm layers (which refuse
to train on one row) gets it in the batch before; other models are unchanged."""

from __future__ import annotations

import torch

from mtlkit import HardSharing, Task, Trainer
from mtlkit.architectures.backbones import mlp
from mtlkit.data import from_arrays

TASKS = [Task("y", "regression")]


def _data(n: int):
    g = torch.Generator().manual_seed(0)
    return from_arrays(torch.randn(n, 3, generator=g), {"y": torch.randn(n, 1, generator=g)}, TASKS)


def _trainer(batch_norm: bool) -> Trainer:
    torch.manual_seed(0)
    return Trainer(HardSharing(mlp(3, (8,), batch_norm=batch_norm), TASKS), TASKS, batch_size=64,
                   progress=False, epochs=2)


def test_a_one_row_last_batch_joins_the_one_before_with_batch_norm():
    data = _data(65)
    tr = _trainer(batch_norm=True)
    tr.fit(data)  # torch refused the one-row batch before ("Expected more than 1 value per channel")
    assert tr._num_batches(data) == 1
    assert tr._num_batches(_data(66)) == 2 and tr._num_batches(_data(1)) == 1


def test_without_batch_norm_the_batches_are_unchanged():
    tr = _trainer(batch_norm=False)
    assert tr._num_batches(_data(65)) == 2


def test_iter_batches_min_last_keeps_every_row_once():
    data = _data(130)
    for min_last, want in ((1, [64, 64, 2]), (2, [64, 64, 2]), (3, [64, 66])):
        batches = list(data.iter_batches(64, shuffle=True, generator=torch.Generator().manual_seed(1),
                                         min_last=min_last))
        assert [len(b[0]) for b in batches] == want
        rows = torch.cat([b[0] for b in batches])
        assert torch.equal(rows[rows[:, 0].argsort()], data.x[data.x[:, 0].argsort()])
    assert [len(b[0]) for b in _data(1).iter_batches(64, min_last=2)] == [1]  # nothing to join
