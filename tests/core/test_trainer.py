import json

import numpy as np
import pytest
import torch

from mtlkit import HardSharing, Task, Trainer, split
from mtlkit.architectures import lenet, mlp
from mtlkit.data import MultiTaskData


def _train(data, tasks, seed=0, epochs=8, **kw):
    torch.manual_seed(seed)
    tr, va, te = split(data, seed=seed)
    model = HardSharing(mlp(10, (32,)), tasks)
    t = Trainer(model, tasks, epochs=epochs, batch_size=32, lr=5e-3, seed=seed, progress=False, **kw)
    hist = t.fit(tr, va)
    return t, hist, te


def test_two_task_model_learns(two_task_data):
    data, tasks = two_task_data
    t, hist, te = _train(data, tasks)
    first, last = hist.records[0]["train_loss"], hist.records[-1]["train_loss"]
    assert last["a"] < first["a"] and last["b"] < 0.5 * first["b"]
    res = t.evaluate(te)
    assert res["a"]["accuracy"] > 0.85  # chance is 0.5
    assert res["b"]["r2"] > 0.8


def test_same_seed_same_numbers(two_task_data, tmp_path):
    data, tasks = two_task_data
    a, _, te = _train(data, tasks, seed=1, epochs=3, run_dir=tmp_path / "a")
    b, _, te2 = _train(data, tasks, seed=1, epochs=3, run_dir=tmp_path / "b")
    assert a.evaluate(te) == b.evaluate(te2)
    la = (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()
    lb = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    strip = lambda s: {k: v for k, v in json.loads(s).items() if k != "time_s"}  # noqa: E731
    assert [strip(x) for x in la] == [strip(x) for x in lb]
    assert len(la) == 3


def test_missing_labels_do_not_train_that_task():
    r = np.random.default_rng(0)
    x = torch.tensor(r.normal(size=(64, 10)), dtype=torch.float32)
    tasks = [Task("a", "binary"), Task("b", "regression")]
    targets = {"a": torch.zeros(64), "b": torch.full((64, 1), 1e6)}
    masks = {"a": torch.ones(64, dtype=torch.bool), "b": torch.zeros(64, 1, dtype=torch.bool)}
    masks["b"][0] = True
    targets["b"][0] = 0.0
    data = MultiTaskData(x, targets, masks, tasks)
    model = HardSharing(mlp(10, (8,)), tasks)
    t = Trainer(model, tasks, epochs=2, batch_size=16, progress=False)
    hist = t.fit(data)
    # the huge unlabelled targets never enter the loss
    assert all(np.isfinite(r["train_loss"]["b"]) and r["train_loss"]["b"] < 100 for r in hist.records)


def test_split_after_block_replicates_rest():
    tasks = [Task("a", "binary"), Task("b", "binary")]
    m = HardSharing(mlp(10, (16, 8)), tasks, split_at="block2")
    shared = {id(p) for p in m.shared_parameters()}
    a = {id(p) for p in m.task_parameters("a")}
    b = {id(p) for p in m.task_parameters("b")}
    assert not (shared & a) and not (a & b)
    assert sum(p.numel() for p in m.parameters()) == (10 * 16 + 16) + 2 * (16 * 8 + 8 + 8 + 1)
    out = m(torch.zeros(4, 10))
    assert out["a"].shape == (4,)


def test_user_trunk_width_inferred_or_checked():
    tasks = [Task("a", "multiclass", num_classes=3)]
    trunk = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 7))
    m = HardSharing(trunk, tasks, input_shape=(3, 4))
    assert m.trunk_out == 7
    with pytest.raises(ValueError, match="output width is 7"):
        HardSharing(trunk, tasks, input_shape=(3, 4), trunk_out=9)


def test_lenet_model_shapes():
    tasks = [Task("left", "multiclass", num_classes=10), Task("right", "multiclass", num_classes=10)]
    m = HardSharing(lenet(1, (36, 36)), tasks)
    out = m(torch.zeros(2, 1, 36, 36))
    assert out["left"].shape == (2, 10)


def test_early_stopping_restores_best(two_task_data):
    data, tasks = two_task_data
    t, hist, _ = _train(data, tasks, epochs=30, patience=2)
    assert hist.best_epoch is not None
    if hist.stopped_early:
        assert len(hist.records) < 30
