"""Distillation: the loss against hand-computed values (T² present), the trainer, distill()."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mtlkit import HardSharing, Task, Trainer, from_arrays
from mtlkit.architectures.backbones import mlp
from mtlkit.distill import (
    DistillationTrainer,
    distillation_loss,
    soft_target_loss,
    teacher_predictions,
    with_teacher_outputs,
)


def _softmax(v):
    e = np.exp(v - v.max())
    return e / e.sum()


def _sigmoid(v):
    return 1 / (1 + math.exp(-v))


def test_multiclass_loss_equals_hand_computed_value():
    s = np.array([1.0, 0.0, -1.0])
    t = np.array([2.0, 0.0, 0.0])
    temp, alpha, label = 2.0, 0.3, 0
    ce = -math.log(_softmax(s)[label])
    p, q = _softmax(t / temp), _softmax(s / temp)
    kl = float(np.sum(p * np.log(p / q)))
    expected = alpha * ce + (1 - alpha) * temp**2 * kl
    task = Task("c", "multiclass", num_classes=3)
    st, tt = torch.tensor(s[None]), torch.tensor(t[None])  # float64
    got = distillation_loss(task, st, tt, torch.tensor([label]), torch.tensor([True]), alpha=alpha,
                            temperature=temp)
    assert float(got) == pytest.approx(expected, rel=1e-6)
    # the T² factor: the soft term over the plain KL at temperature T is T²
    soft = soft_target_loss(task, st, tt, temperature=temp)
    assert float(soft) == pytest.approx(temp**2 * kl, rel=1e-6)
    assert float(soft) / kl == pytest.approx(4.0, rel=1e-6)


def test_binary_loss_uses_the_two_class_sigmoid_form():
    s, t, temp, alpha, y = 0.5, -1.0, 3.0, 0.25, 1.0
    bce = -math.log(_sigmoid(s))
    p, q = _sigmoid(t / temp), _sigmoid(s / temp)
    kl = p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))
    task = Task("b", "binary")
    f64 = torch.float64
    got = distillation_loss(task, torch.tensor([s], dtype=f64), torch.tensor([t], dtype=f64),
                            torch.tensor([y], dtype=f64), torch.tensor([True]), alpha=alpha, temperature=temp)
    assert float(got) == pytest.approx(alpha * bce + (1 - alpha) * 9.0 * kl, rel=1e-6)
    # equal to the 2-class softmax form with logits (0, z)
    two = Task("m", "multiclass", num_classes=2)
    soft2 = soft_target_loss(two, torch.tensor([[0.0, s]], dtype=f64), torch.tensor([[0.0, t]], dtype=f64),
                             temperature=temp)
    soft1 = soft_target_loss(task, torch.tensor([s], dtype=f64), torch.tensor([t], dtype=f64), temperature=temp)
    assert float(soft1) == pytest.approx(float(soft2), rel=1e-6)


def test_multilabel_and_regression_and_masks():
    task = Task("ml", "multilabel", num_labels=2)
    s = torch.tensor([[0.2, -0.4], [1.0, 0.0]], dtype=torch.float64)
    t = torch.tensor([[1.0, 1.0], [-3.0, 0.0]], dtype=torch.float64)
    temp = 2.0

    def kl(a, b):
        p, q = _sigmoid(a / temp), _sigmoid(b / temp)
        return p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))

    per = [[kl(t[i, j].item(), s[i, j].item()) for j in range(2)] for i in range(2)]
    got = soft_target_loss(task, s, t, temperature=temp, mask=torch.tensor([True, False]))
    assert float(got) == pytest.approx(4.0 * (per[0][0] + per[0][1]) / 2, rel=1e-6)  # sample 2 masked out
    reg = Task("r", "regression")
    sr, tr, y = torch.tensor([[1.0], [2.0]]), torch.tensor([[0.0], [2.5]]), torch.tensor([[3.0], [0.0]])
    m = torch.tensor([[True], [False]])
    got = distillation_loss(reg, sr, tr, y, m, alpha=0.6, temperature=5.0)
    assert float(got) == pytest.approx(0.6 * (1.0 - 3.0) ** 2 + 0.4 * (1.0 + 0.25) / 2)  # no T for regression
    assert float(distillation_loss(reg, sr, tr, y, m, alpha=1.0)) == pytest.approx(4.0)


def test_bad_parameters_are_rejected():
    t = Task("b", "binary")
    x = torch.zeros(2)
    with pytest.raises(ValueError, match="'alpha' parameter of distillation_loss must be a float in"):
        distillation_loss(t, x, x, x, x.bool(), alpha=1.5)
    with pytest.raises(ValueError, match="'temperature' parameter of distillation_loss must be a positive"):
        distillation_loss(t, x, x, x, x.bool(), temperature=0.0)
    tasks = [t]
    with pytest.raises(KeyError, match="unknown task"):
        DistillationTrainer(HardSharing(mlp(2, (4,)), tasks), tasks, teacher_outputs={"zz": x})
    with pytest.raises(ValueError, match="expected \\(2,\\)"):
        DistillationTrainer(HardSharing(mlp(2, (4,)), tasks), tasks, teacher_outputs={"b": torch.zeros(2, 3)})


def _data(n=160, seed=0):
    r = np.random.default_rng(seed)
    x = r.normal(size=(n, 4)).astype("float32")
    tasks = [Task("a", "binary"), Task("v", "regression")]
    v = (x[:, 1] * 2).astype(float)
    v[::10] = np.nan
    return from_arrays(x, {"a": (x[:, 0] > 0).astype(float), "v": v}, tasks), tasks


def test_alpha_one_trains_exactly_like_the_plain_trainer():
    data, tasks = _data()

    def model():
        torch.manual_seed(5)
        return HardSharing(mlp(4, (8,)), tasks)

    plain = Trainer(model(), tasks, epochs=2, batch_size=32, progress=False)
    plain.fit(data)
    teach = {"a": torch.randn(len(data)), "v": torch.randn(len(data), 1)}
    dist = DistillationTrainer(model(), tasks, teacher_outputs=teach, alpha=1.0, epochs=2, batch_size=32,
                               progress=False)
    dist.fit(data)
    for (k, a), (_, b) in zip(plain.model.state_dict().items(), dist.model.state_dict().items()):
        assert torch.equal(a, b), k


def test_alpha_zero_learns_the_teacher_even_where_labels_are_missing():
    r = np.random.default_rng(1)
    x = r.normal(size=(300, 3)).astype("float32")
    y = np.full(300, np.nan)
    y[:15] = 0.0  # a few useless labels; the teacher knows better
    tasks = [Task("v", "regression")]
    data = from_arrays(x, {"v": y}, tasks)
    teacher = torch.nn.Linear(3, 1)
    with torch.no_grad():
        teacher.weight[:] = torch.tensor([[1.0, -2.0, 0.5]])
        teacher.bias.zero_()
    t_out = teacher_predictions({"v": teacher}, tasks, data.x)
    torch.manual_seed(0)
    tr = DistillationTrainer(HardSharing(mlp(3, (16,)), tasks), tasks, teacher_outputs=t_out, alpha=0.0,
                             epochs=30, batch_size=32, lr=0.01, progress=False)
    tr.fit(data)
    pred = tr.predict_raw(data.x)["v"]
    assert float(((pred - t_out["v"]) ** 2).mean()) < 0.1 * float(t_out["v"].var())


def test_teacher_annealing_raises_alpha_from_zero_to_one():
    data, tasks = _data(n=64)
    teach = {"a": torch.zeros(64)}
    tr = DistillationTrainer(HardSharing(mlp(4, (4,)), tasks), tasks, teacher_outputs=teach, anneal=True,
                             epochs=2, batch_size=16, progress=False)
    seen = []
    orig = tr._losses

    def spy(*a):
        seen.append(tr.current_alpha())
        return orig(*a)

    tr._losses = spy
    tr.fit(data)
    assert seen == [i / 8 for i in range(8)]  # 2 epochs x 4 batches: 0, 1/8, ..., 7/8
    assert tr.current_alpha() == 1.0


def test_teacher_outputs_travel_with_batches():
    data, tasks = _data(n=10)
    t = torch.arange(10.0)
    d2 = with_teacher_outputs(data, {"a": t})
    x, ys, ms = d2.batch(torch.tensor([3, 7]))
    assert torch.equal(ys["__teacher__:a"], torch.tensor([3.0, 7.0])) and bool(ms["__teacher__:a"].all())
    assert "__teacher__:a" not in data.targets  # the original is untouched


def test_distill_with_module_teachers_reports_three_models():
    import pandas as pd

    from mtlkit.api import fit
    from mtlkit.config import parse_config
    from mtlkit.distill import distill
    from mtlkit.run import prepare_from_config

    r = np.random.default_rng(0)
    df = pd.DataFrame(r.normal(size=(200, 3)), columns=["p", "q", "s"])
    df["a"] = (df["p"] > 0).astype(int)
    df["v"] = df["q"] * 2
    import tempfile
    from pathlib import Path

    tmp = Path(tempfile.mkdtemp())
    df.to_csv(tmp / "d.csv", index=False)
    cfg = parse_config({"name": "d", "data": {"path": str(tmp / "d.csv"), "features": ["p", "q", "s"]},
                        "tasks": [{"name": "a", "kind": "binary"}, {"name": "v", "kind": "regression"}],
                        "model": {"trunk": {"name": "mlp", "hidden": [8]}},
                        "training": {"epochs": 2, "batch_size": 32}})
    prepared = prepare_from_config(cfg)
    tasks = prepared.tasks
    del fit
    from mtlkit.run import run

    base = run(cfg, prepared, out_dir=None, progress=False)  # its baselines are the teachers
    res = distill(cfg, base.baselines, prepared=prepared, alpha=0.5, temperature=2.0)
    s = res.summary
    assert set(s["teachers"]) == {"a", "v"} and s["plain"] is not None
    for k in ("student_vs_teachers", "plain_vs_teachers", "student_vs_plain"):
        assert np.isfinite(s["delta_m"][k])
    # the teachers' reported test metrics are the baselines' own
    for t in tasks:
        assert s["teachers"][t.name]["test"] == pytest.approx(base.summary["baselines"][t.name]["test"])
    assert "teacher" in res.table() and "Δm student" in res.table()
