"""TAG look-ahead affinity and the gradient-cosine alternative."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from mtlkit import HardSharing, Task, Trainer, from_arrays
from mtlkit.analysis import (
    AffinityResult,
    AffinityTrainer,
    affinity_from_run,
    compute_affinity,
    cosine_from_records,
    lookahead_affinity,
)
from mtlkit.architectures.backbones import mlp

from ._models import SharedOutput, planted_tasks, regression_batch


def _batch(x, ys):
    return x, ys, {k: torch.ones(v.shape, dtype=torch.bool) for k, v in ys.items()}


def test_identical_task_has_the_same_affinity_as_itself_and_negated_task_is_negative():
    torch.manual_seed(0)
    tasks = planted_tasks()
    model = SharedOutput(4, tasks)
    x, y = regression_batch()
    z = lookahead_affinity(model, tasks, _batch(x, {"a": y, "same": y.clone(), "neg": -y}), lr=0.05)
    a, same, neg = 0, 1, 2
    assert z[a, a] > 0.01
    assert z[a, same] == z[a, a] and z[same, a] == z[a, a]  # identical losses: identical ratios
    assert z[a, neg] < -0.01 and z[neg, a] < -0.01 and z[neg, same] < -0.01


def test_lookahead_matches_hand_computed_formula():
    # one shared weight w, every task predicts w * x: L_j(w) = mean((w x - y_j)^2)
    class Scalar(SharedOutput):
        def __init__(self, tasks):
            nn.Module.__init__(self)
            self.tasks, self.config = list(tasks), {}
            self.w = nn.Parameter(torch.tensor(0.5, dtype=torch.float64))

        def encode(self, x):
            return self.w * x[:, :1]

        def shared_parameters(self):
            return iter([self.w])

    tasks = [Task("p", "regression"), Task("q", "regression")]
    x = torch.tensor([[1.0], [2.0], [-1.0]], dtype=torch.float64)
    yp = torch.tensor([[2.0], [4.0], [-2.0]], dtype=torch.float64)   # best w = 2
    yq = torch.tensor([[-1.0], [-2.0], [1.0]], dtype=torch.float64)  # best w = -1
    lr = 0.1
    z = lookahead_affinity(Scalar(tasks), tasks, _batch(x, {"p": yp, "q": yq}), lr=lr)
    xs, w = x[:, 0].numpy(), 0.5

    def loss(w_, y):
        return float(np.mean((w_ * xs - y[:, 0].numpy()) ** 2))

    def grad(w_, y):
        return float(np.mean(2 * (w_ * xs - y[:, 0].numpy()) * xs))

    for i, yi in enumerate((yp, yq)):
        w_after = w - lr * grad(w, yi)
        for j, yj in enumerate((yp, yq)):
            assert float(z[i, j]) == pytest.approx(1 - loss(w_after, yj) / loss(w, yj), rel=1e-10)
    assert z[0, 1] < 0 < z[0, 0]


def test_lookahead_restores_parameters_bitwise():
    torch.manual_seed(1)
    tasks = [Task("a", "binary"), Task("b", "multiclass", num_classes=3), Task("c", "regression", dim=2)]
    model = HardSharing(mlp(5, (16, 8), dropout=0.3, batch_norm=True), tasks)
    model.train()
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    x = torch.randn(32, 5)
    ys = {"a": (x[:, 0] > 0).float(), "b": torch.randint(0, 3, (32,)), "c": x[:, :2] * 3.0}
    rng = torch.get_rng_state()
    z = lookahead_affinity(model, tasks, _batch(x, ys), lr=0.7)
    assert torch.isfinite(z).all()
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k  # bit for bit, buffers included
    assert model.training
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(torch.get_rng_state(), rng)


def test_affinity_trainer_trains_exactly_like_the_plain_trainer():
    r = np.random.default_rng(0)
    x = r.normal(size=(150, 5)).astype("float32")
    tasks = [Task("a", "binary"), Task("b", "regression")]
    data = from_arrays(x, {"a": (x[:, 0] > 0).astype(float), "b": x[:, 1] * 2}, tasks)

    def make(cls, **kw):
        torch.manual_seed(3)
        return cls(HardSharing(mlp(5, (8,), dropout=0.2), tasks), tasks, epochs=2, batch_size=32,
                   progress=False, **kw)

    plain, tag = make(Trainer), make(AffinityTrainer, every=2)
    plain.fit(data)
    tag.fit(data)
    for (k, v), (_, w) in zip(plain.model.state_dict().items(), tag.model.state_dict().items()):
        assert torch.equal(v, w), k
    res = tag.affinity()
    assert tag.affinity_steps == 5  # steps 0, 2, 4, 6, 8 of 10
    assert res.counts[0, 1] == 5 and np.isfinite(res.matrix).all()
    st = tag.state_dict()["affinity"]
    assert torch.equal(st["z_n"], torch.full((2, 2), 5.0, dtype=torch.float64))


def test_compute_affinity_on_planted_tasks_with_hard_sharing():
    r = np.random.default_rng(0)
    x = r.normal(size=(400, 6)).astype("float32")
    y = x[:, 0] + x[:, 1]
    tasks = [Task("a", "regression"), Task("a2", "regression"), Task("other", "regression")]
    data = from_arrays(x, {"a": y, "a2": y.copy(), "other": x[:, 4] * x[:, 5]}, tasks)
    torch.manual_seed(0)
    tr = Trainer(HardSharing(mlp(6, (16,)), tasks), tasks, epochs=3, batch_size=50, lr=0.01, progress=False)
    res = compute_affinity(tr, data, method="tag", every=1)
    z = res.matrix
    assert res.meta["steps_measured"] == 24
    assert min(z[0, 1], z[1, 0]) > 5 * max(abs(z[0, 2]), abs(z[2, 0]), abs(z[1, 2]), abs(z[2, 1]))


def test_cosine_from_a_trainer_and_from_records():
    r = np.random.default_rng(0)
    x = r.normal(size=(120, 4)).astype("float32")
    tasks = [Task("a", "binary"), Task("b", "binary")]
    data = from_arrays(x, {"a": (x[:, 0] > 0).astype(float), "b": (x[:, 0] > 0).astype(float)}, tasks)
    torch.manual_seed(0)
    tr = Trainer(HardSharing(mlp(4, (8,)), tasks), tasks, epochs=2, progress=False, monitor_conflicts=True)
    res = compute_affinity(tr, data, method="cosine")
    assert res.method == "cosine" and res.counts[0, 1] == 2
    assert res.matrix[0, 0] == pytest.approx(1.0) and res.matrix[0, 1] == pytest.approx(res.matrix[1, 0])
    recs = [{"conflicts": {"cosine_matrix": [[1, 0.4], [0.4, 1]]}}, {"epoch": 2},
            {"conflicts": {"cosine_matrix": [[1, None], [None, 1]]}}]
    out = cosine_from_records(recs, ["a", "b"])
    assert out.matrix[0, 1] == pytest.approx(0.4) and out.counts[0, 1] == 1
    with pytest.raises(ValueError, match="monitor_conflicts"):
        cosine_from_records([{"epoch": 1}], ["a", "b"])
    plain = Trainer(HardSharing(mlp(4, (8,)), tasks), tasks, epochs=1, progress=False)
    with pytest.raises(ValueError, match="monitor_conflicts=True"):
        compute_affinity(plain, data, method="cosine")


def test_result_save_load_roundtrip_and_plot(tmp_path):
    m = np.array([[0.5, -0.25, 0.1], [0.2, 0.4, np.nan], [0.0, 0.3, 0.6]])
    res = AffinityResult(m, ["x", "y", "z"], "tag", np.ones((3, 3)), {"every": 2, "config": {"name": "n"}})
    paths = res.save(tmp_path)
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "config.yaml").exists()
    back = AffinityResult.load(tmp_path)
    np.testing.assert_array_equal(back.matrix, m)
    assert back.method == "tag" and back.meta["every"] == 2
    csv = AffinityResult.load(tmp_path / "affinity.csv")
    np.testing.assert_allclose(csv.matrix, m)
    assert csv.task_names == ["x", "y", "z"]
    data = json.loads((tmp_path / "affinity.json").read_text())
    assert data["matrix"][1][2] is None and "source task i onto target task j" in data["convention"]
    assert "x" in str(res) and "n/a" in str(res)


def test_affinity_from_run_reads_metrics(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps({"tasks": [{"name": "u"}, {"name": "v"}]}))
    lines = [{"epoch": 1, "conflicts": {"cosine_matrix": [[1, -0.5], [-0.5, 1]]}},
             {"epoch": 2, "conflicts": {"cosine_matrix": [[1, 0.1], [0.1, 1]]}}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    res = affinity_from_run(tmp_path)
    assert res.task_names == ["u", "v"] and res.matrix[0, 1] == pytest.approx(-0.2)
    with pytest.raises(FileNotFoundError, match="neither an affinity matrix"):
        affinity_from_run(tmp_path / "nothing")


def test_bad_parameters_are_rejected_with_names():
    tasks = [Task("a", "binary"), Task("b", "binary")]
    model = HardSharing(mlp(3, (4,)), tasks)
    with pytest.raises(ValueError, match=r"'every' parameter of AffinityTrainer must be a positive int\. Got 0"):
        AffinityTrainer(model, tasks, every=0)
    with pytest.raises(ValueError, match="'lookahead_lr' parameter of AffinityTrainer"):
        AffinityTrainer(model, tasks, lookahead_lr=-1.0)
    with pytest.raises(ValueError, match="'lr' parameter of lookahead_affinity"):
        lookahead_affinity(model, tasks, _batch(torch.zeros(2, 3), {}), lr=math.nan)
    with pytest.raises(ValueError, match="'method' parameter"):
        compute_affinity(Trainer(model, tasks, progress=False), None, method="gradnorm")

    class NoShare(nn.Module):
        def forward(self, x):
            return {}

    with pytest.raises(ValueError, match="no shared_parameters"):
        lookahead_affinity(NoShare(), tasks, _batch(torch.zeros(2, 3), {}), lr=0.1)
    with pytest.raises(ValueError, match="must be 2x2"):
        AffinityResult(np.zeros((3, 3)), ["a", "b"], "tag")
