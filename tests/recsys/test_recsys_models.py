"""Embedding input, shared-bottom, ESMM and AITM on ID features; the funnel declaration."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from mtlkit import Task
from mtlkit.architectures import build_model
from mtlkit.architectures._embeddings import SparseFeatures, find_features
from mtlkit.tasks import funnel_masks, task_from_dict

FIELDS = [{"name": "user", "vocab": 6, "dim": 3}, {"name": "item", "vocab": 8, "dim": 3},
          {"name": "genres", "vocab": 5, "dim": 3, "length": 3, "pooling": "mean"},
          {"name": "zip", "hash_buckets": 7, "dim": 2}]
TRUNK = {"name": "mlp", "hidden": [8], "input": {"dense": 1, "fields": FIELDS}}
SHAPE = (1 + 1 + 1 + 3 + 1,)
FUNNEL = [Task("click", "binary"), Task("buy", "binary", given="click")]


def batch(n: int = 6, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, SHAPE[0])
    x[:, 0] = torch.randn(n, generator=g)
    x[:, 1] = torch.randint(1, 6, (n,), generator=g).float()
    x[:, 2] = torch.randint(1, 8, (n,), generator=g).float()
    x[:, 3:6] = torch.randint(-1, 5, (n, 3), generator=g).float()
    x[:, 6] = torch.randint(0, 10**6, (n,), generator=g).float()
    return x


def test_embedding_bag_pooling_by_hand():
    m = SparseFeatures([{"name": "g", "vocab": 4, "dim": 2, "length": 3, "pooling": "mean"},
                        {"name": "h", "vocab": 4, "dim": 2, "length": 3, "pooling": "sum", "share": "g"}])
    w = m.tables["g"].weight
    x = torch.tensor([[1.0, 3.0, -1.0, 1.0, 3.0, -1.0], [-1.0, -1.0, -1.0, 2.0, 2.0, 2.0]])
    out = m(x)
    torch.testing.assert_close(out[0, :2], (w[1] + w[3]) / 2)
    torch.testing.assert_close(out[0, 2:], w[1] + w[3])
    torch.testing.assert_close(out[1, :2], torch.zeros(2))  # an empty bag
    torch.testing.assert_close(out[1, 2:], 3 * w[2])


def test_unknown_ids_read_as_bucket_zero_and_are_counted():
    m = SparseFeatures([{"name": "u", "vocab": 3, "dim": 2}]).eval()
    with pytest.warns(UserWarning, match="2 ID.*'u'"):
        out = m(torch.tensor([[7.0], [1.0], [-4.0]]))
    torch.testing.assert_close(out[0], m.tables["u"].weight[0])
    assert m.unknown_counts == {"u": 2}


def test_memory_budget_and_standardised_ids_are_refused():
    with pytest.raises(ValueError, match=r"MiB.*'item'.*hash_buckets"):
        SparseFeatures([{"name": "item", "vocab": 10**6, "dim": 64}], max_memory_mb=16)
    m = SparseFeatures([{"name": "u", "vocab": 3, "dim": 2}]).train()
    with pytest.raises(ValueError, match="standardize: false"):
        m(torch.tensor([[0.37]]))


@pytest.mark.parametrize("arch", ["shared_bottom", "esmm", "aitm", "mmoe", "ple", "hard_sharing"])
def test_architectures_read_id_inputs_and_rebuild(arch):
    extra = {"mmoe": {"num_experts": 2}, "ple": {"levels": 1, "num_shared_experts": 1, "num_task_experts": 1}}
    torch.manual_seed(0)
    tasks = [*FUNNEL, Task("rating", "regression")]
    m = build_model({"name": arch, "trunk": TRUNK, **extra.get(arch, {})}, tasks, SHAPE)
    assert find_features(m) is not None
    x = batch()
    out = m(x)
    assert {k: tuple(v.shape) for k, v in out.items()} == {"click": (6,), "buy": (6,), "rating": (6, 1)}
    m.eval()
    m2 = build_model(json.loads(json.dumps(m.config)), tasks, SHAPE).eval()
    m2.load_state_dict(m.state_dict())
    with torch.no_grad():
        for k, v in m(x).items():
            torch.testing.assert_close(v, m2(x)[k], rtol=0, atol=0)


def test_esmm_ctcvr_is_the_product_and_cvr_learns_from_unclicked_impressions():
    torch.manual_seed(0)
    m = build_model({"name": "esmm", "trunk": TRUNK, "tower_hidden": [4]}, FUNNEL, SHAPE)
    x = batch(8)
    out = m(x)
    p_ctr, p_cvr = torch.sigmoid(out["click"]), m.conditional(x)["buy"]
    torch.testing.assert_close(torch.sigmoid(out["buy"]), p_ctr * p_cvr, atol=1e-6, rtol=1e-5)
    # the binary loss of 'buy' is the paper's CTCVR loss
    y = torch.tensor([1.0, 0, 0, 1, 0, 0, 0, 0])
    ref = F.binary_cross_entropy(p_ctr * p_cvr, y)
    torch.testing.assert_close(FUNNEL[1].compute_loss(out["buy"], y, torch.ones(8, dtype=torch.bool)), ref,
                               atol=1e-5, rtol=1e-5)
    # impressions without a click (both labels 0) still train the CVR tower
    none = torch.zeros(8)
    loss = FUNNEL[1].compute_loss(m(x)["buy"], none, torch.ones(8, dtype=torch.bool))
    m.zero_grad()
    loss.backward()
    grads = [p.grad for p in m.task_parameters("buy")]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)


def test_aitm_calibrator_loss_by_hand():
    m = build_model({"name": "aitm", "trunk": TRUNK, "dim": 4, "calibrator_weight": 0.5}, FUNNEL, SHAPE)
    probs = {"click": torch.tensor([0.2, 0.9, 0.5]), "buy": torch.tensor([0.6, 0.1, 0.5])}
    # 0.5 * mean(max(0.4, 0), max(-0.8, 0), 0) = 0.5 * 0.4 / 3
    torch.testing.assert_close(m.calibrator_loss(probs), torch.tensor(0.5 * 0.4 / 3))
    m.train()
    out = m(batch())
    want = 0.5 * torch.relu(torch.sigmoid(out["buy"]) - torch.sigmoid(out["click"])).mean()
    torch.testing.assert_close(m.extra_losses()["aitm_calibrator"], want)
    m.eval()
    m(batch())
    assert m.extra_losses() == {}


def test_funnel_declaration():
    t = FUNNEL[1]
    assert task_from_dict(t.to_dict()) == t and "given" not in FUNNEL[0].to_dict()
    with pytest.raises(ValueError, match="no task 'click'"):
        build_model({"name": "esmm", "trunk": TRUNK}, [t], SHAPE)
    with pytest.raises(ValueError, match="binary"):
        Task("r", "regression", given="click")
    y = {"click": torch.tensor([1.0, 0.0, 0.0]), "buy": torch.tensor([1.0, 1.0, 0.0])}
    m = {k: torch.ones(3, dtype=torch.bool) for k in y}
    with pytest.raises(ValueError, match="1 positive label"):
        funnel_masks(FUNNEL, y, m)
    assert funnel_masks(FUNNEL, y, m, violations="mask")["buy"].tolist() == [True, False, True]


@pytest.mark.parametrize("arch", ["mmoe", "ple"])
def test_experts_share_one_embedding_input_and_gates_read_it(arch):
    from mtlkit.architectures._embeddings import SparseFeatures as SF

    extra = {"mmoe": {"num_experts": 3}, "ple": {"levels": 1, "num_shared_experts": 2, "num_task_experts": 1}}
    m = build_model({"name": arch, "trunk": TRUNK, **extra[arch]}, FUNNEL, SHAPE)
    assert sum(isinstance(mod, SF) for mod in m.modules()) == 1  # not one copy per expert
    emb = m.inputs.tables["user"].weight
    assert any(p is emb for p in m.shared_parameters())
    x = batch()
    out = m(x)
    out["click"].sum().backward()
    assert emb.grad is not None and emb.grad.abs().sum() > 0
    gate = m.gates["click"] if arch == "mmoe" else m.task_gates["click"][0]
    assert gate.linear.in_features == m.inputs.out_features  # the gates read the embedded features


def test_id_embeddings_start_small():
    """The tables start at N(0, INIT_STD²), not at nn.Embedding's N(0, 1) (recommender practice;
    docs/recommenders.md shows what the N(0, 1) start cost on MovieLens)."""
    from mtlkit.data.embedding import INIT_STD

    torch.manual_seed(0)
    sf = SparseFeatures(fields=[{"name": "user", "vocab": 2000, "dim": 16},
                                {"name": "hist", "share": "user", "dim": 16, "length": 3},
                                {"name": "zip", "hash_buckets": 500, "dim": 4}])
    assert INIT_STD == 0.01
    for name, table in sf.tables.items():
        w = table.weight.detach()
        assert abs(float(w.mean())) < 3 * INIT_STD / w.numel() ** 0.5, name
        assert 0.95 * INIT_STD < float(w.std()) < 1.05 * INIT_STD, name
