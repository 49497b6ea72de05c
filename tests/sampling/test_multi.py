"""MultiTaskDataset: combining per-task datasets, masks, sizes, mixed vs per-task batches."""

from __future__ import annotations

import pytest
import torch

from mtlkit import HardSharing, Task, split
from mtlkit.architectures import mlp
from mtlkit.data import MultiTaskData
from mtlkit.data.multi import MultiTaskDataset, labelled_rows, restrict_to_task

from ._data import combined, per_task_datasets


def test_rows_sources_masks_and_sizes():
    ds, tasks = combined((30, 20, 10))
    assert len(ds) == 60
    assert ds.sizes == {"t0": 30, "t1": 20, "t2": 10}
    assert ds.labelled_counts() == ds.sizes
    assert ds.source_names == ["d0", "d1", "d2"]
    assert ds.source.tolist() == [0] * 30 + [1] * 20 + [2] * 10
    # a row carries labels exactly for the tasks of its source dataset
    for i, t in enumerate(["t0", "t1", "t2"]):
        rows = ds.task_indices(t)
        assert torch.equal(rows, (ds.source == i).nonzero()[:, 0])
    assert ds.masks["t1"].shape == (60, 1) and ds.targets["t2"].dtype == torch.long


def test_rows_keep_their_values_and_original_masks():
    parts, tasks = per_task_datasets((12, 8, 5))
    m = parts["d1"].masks["t1"].clone()
    m[3] = False  # a missing label inside a per-task dataset stays missing
    parts["d1"] = MultiTaskData(parts["d1"].x, parts["d1"].targets, {"t1": m})
    ds = MultiTaskDataset(parts, tasks)
    assert torch.equal(ds.x[12:20], parts["d1"].x)
    assert torch.equal(ds.targets["t1"][12:20], parts["d1"].targets["t1"])
    assert ds.sizes["t1"] == 7 and not bool(ds.masks["t1"][15].any())
    assert torch.equal(ds.dataset("d1").x, parts["d1"].x)


def test_a_dataset_may_label_several_tasks():
    x = torch.randn(10, 3)
    both = MultiTaskData(x, {"a": torch.ones(10), "b": torch.zeros(10, 1)})
    only_b = MultiTaskData(torch.randn(4, 3), {"b": torch.ones(4, 1)})
    ds = MultiTaskDataset({"both": both, "only_b": only_b})
    assert ds.sizes == {"a": 10, "b": 14}
    assert ds.task_names == ["a", "b"]


def test_inconsistent_input_shapes_name_the_datasets():
    a = MultiTaskData(torch.randn(5, 4), {"a": torch.ones(5)})
    b = MultiTaskData(torch.randn(5, 6), {"b": torch.ones(5)})
    with pytest.raises(ValueError, match=r"dataset 'weather' has inputs of shape \(4,\).*dataset 'traffic' has \(6,\)"):
        MultiTaskDataset({"weather": a, "traffic": b})


def test_inconsistent_label_shapes_and_unknown_tasks_are_rejected():
    a = MultiTaskData(torch.randn(5, 4), {"y": torch.ones(5, 1)})
    b = MultiTaskData(torch.randn(5, 4), {"y": torch.ones(5, 2)})
    with pytest.raises(ValueError, match=r"Task 'y' has labels of shape \(1,\).*dataset '0'.*\(2,\) in dataset '1'"):
        MultiTaskDataset([a, b])
    with pytest.raises(ValueError, match="not among the tasks"):
        MultiTaskDataset([a], [Task("z", "regression")])
    with pytest.raises(ValueError, match=r"Task\(s\) \['z'\] are not labelled"):
        MultiTaskDataset([a], [Task("y", "regression"), Task("z", "binary")])
    with pytest.raises(TypeError, match="must be a MultiTaskData"):
        MultiTaskDataset({"raw": torch.randn(3, 4)})
    with pytest.raises(ValueError, match="at least one dataset"):
        MultiTaskDataset({})


def test_subset_and_split_keep_the_sources():
    ds, _ = combined((40, 30, 30))
    tr, va, te = split(ds, (0.6, 0.2, 0.2), seed=0)
    assert isinstance(tr, MultiTaskDataset)
    assert len(tr) + len(va) + len(te) == 100
    for part in (tr, va, te):
        for t, i in (("t0", 0), ("t1", 1), ("t2", 2)):
            assert torch.equal(part.task_indices(t), (part.source == i).nonzero()[:, 0])


def test_per_task_batches_are_homogeneous_and_cover_each_row_once():
    ds, _ = combined((23, 11, 7))
    g = torch.Generator().manual_seed(0)
    seen: dict[str, list[int]] = {"t0": [], "t1": [], "t2": []}
    for x, _, ms in ds.per_task_batches(5, generator=g):
        present = [t for t, m in ms.items() if bool(m.any())]
        assert len(present) == 1
        t = present[0]
        # recover the rows of the batch from their (unique) inputs
        rows = [int((ds.x == xi).all(1).nonzero()[0, 0]) for xi in x]
        seen[t] += rows
    for t in seen:
        assert sorted(seen[t]) == ds.task_indices(t).tolist()


def test_mixed_and_per_task_batches_give_the_same_loss_on_the_same_samples():
    """The masked mean over a mixed batch equals, task by task, the loss of the per-task batch
    made of the same labelled rows; summed over an epoch, both give the same total loss."""
    ds, tasks = combined((40, 25, 15))
    torch.manual_seed(0)
    model = HardSharing(mlp(4, (8,)), tasks).eval().requires_grad_(False)
    rows = torch.randperm(len(ds), generator=torch.Generator().manual_seed(1))[:32]
    x, ys, ms = ds.batch(rows)
    out = model(x)
    labelled = labelled_rows(ds)
    for t in tasks:
        mixed = t.compute_loss(out[t.name], ys[t.name], ms[t.name])
        mine = rows[torch.isin(rows, labelled[t.name])]
        xb, yb, mb = restrict_to_task(ds.batch(mine), t.name)
        per_task = t.compute_loss(model(xb)[t.name], yb[t.name], mb[t.name])
        torch.testing.assert_close(mixed, per_task, rtol=1e-6, atol=1e-7)
    # whole epoch: Σ_batches n_t(batch) · loss_t(batch) is the same for both batchings
    g = torch.Generator().manual_seed(2)
    tot_mixed = dict.fromkeys(ds.task_names, 0.0)
    for xb, yb, mb in ds.iter_batches(16, shuffle=True, generator=g):
        o = model(xb)
        for t in tasks:
            n = float(mb[t.name].reshape(len(xb), -1).any(1).sum())
            tot_mixed[t.name] += n * float(t.compute_loss(o[t.name], yb[t.name], mb[t.name]))
    tot_task = dict.fromkeys(ds.task_names, 0.0)
    for xb, yb, mb in ds.per_task_batches(16, generator=g):
        o = model(xb)
        for t in tasks:
            n = float(mb[t.name].reshape(len(xb), -1).any(1).sum())
            if n:
                tot_task[t.name] += n * float(t.compute_loss(o[t.name], yb[t.name], mb[t.name]))
    for k in tot_mixed:
        assert tot_mixed[k] == pytest.approx(tot_task[k], rel=1e-5)


def test_task_batches_exclusive_flag():
    x = torch.randn(6, 2)
    both = MultiTaskData(x, {"a": torch.ones(6), "b": torch.zeros(6, 1)})
    ds = MultiTaskDataset({"both": both})
    _, _, ms = next(ds.task_batches("a", 6, shuffle=False))
    assert bool(ms["a"].all()) and not bool(ms["b"].any())
    _, _, ms = next(ds.task_batches("a", 6, shuffle=False, exclusive=False))
    assert bool(ms["b"].all())
    with pytest.raises(ValueError, match="'batch_size' must be a positive integer"):
        next(ds.task_batches("a", 0))
    with pytest.raises(KeyError, match="Unknown task 'c'"):
        ds.task_indices("c")
