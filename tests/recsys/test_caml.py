"""The co-attentive CAML-style model: attention by hand, masking, config round trip, errors, export."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mtlkit import Task
from mtlkit.architectures import build_model
from mtlkit.architectures.caml import CAML

FIELDS = [{"name": "user", "vocab": 6, "dim": 4}, {"name": "item", "vocab": 9, "dim": 4},
          {"name": "year", "vocab": 5, "dim": 4}, {"name": "age", "vocab": 4, "dim": 2},
          {"name": "history", "share": "item", "dim": 4, "length": 3}]
SPEC = {"name": "mlp", "hidden": [8], "input": {"dense": 1, "fields": FIELDS}}
SHAPE = (1 + 4 + 3,)
TASKS = [Task("rating", "regression"), Task("like", "binary"), Task("genre", "multilabel", num_labels=4)]


def batch(n: int = 5, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, SHAPE[0])
    x[:, 0] = torch.randn(n, generator=g)
    x[:, 1] = torch.randint(1, 6, (n,), generator=g).float()
    x[:, 2] = torch.randint(1, 9, (n,), generator=g).float()
    x[:, 3] = torch.randint(1, 5, (n,), generator=g).float()
    x[:, 4] = torch.randint(1, 4, (n,), generator=g).float()
    x[:, 5:8] = torch.randint(-1, 9, (n, 3), generator=g).float()
    return x


def test_coattention_weights_by_hand():
    torch.manual_seed(0)
    m = CAML(SPEC, TASKS, input_shape=SHAPE, item_fields=["year"]).eval()
    x = batch(1)
    x[0, 5:8] = torch.tensor([2.0, 7.0, -1.0])
    sf, W = m.inputs, m.coattention.W
    h = sf.tables["item"].weight[[2, 7]]  # the two history items (the third slot is padding)
    v = torch.stack([sf.tables["item"].weight[int(x[0, 2])], sf.tables["year"].weight[int(x[0, 3])]])
    a = torch.tanh(h @ W @ v.T)  # (2, 2)
    want = torch.softmax(a.max(dim=1).values, dim=0)
    got = m.explain(x)[0]
    torch.testing.assert_close(got[:2], want)
    assert got[2] == 0.0
    # the rating depends on the history through the attention: change one history item
    y = x.clone()
    y[0, 6] = 3.0
    assert not torch.allclose(m(x)["rating"], m(y)["rating"])


def test_empty_history_is_finite_and_gradients_reach_the_shared_part():
    m = CAML(SPEC, TASKS, input_shape=SHAPE)
    x = batch(4)
    x[0, 5:8] = -1.0
    out = m(x)
    assert all(torch.isfinite(v).all() for v in out.values())
    assert float(m.explain(x)[0].sum()) == 0.0
    out["genre"].sum().backward()
    assert m.coattention.W.grad is not None and m.coattention.W.grad.abs().sum() > 0
    assert m.towers["rating"][-1].weight.grad is None  # another task's tower gets nothing
    shared = {id(p) for p in m.shared_parameters()}
    assert shared.isdisjoint({id(p) for t in TASKS for p in m.task_parameters(t.name)})
    assert len(shared) + sum(len(list(m.task_parameters(t.name))) for t in TASKS) == len(list(m.parameters()))


def test_config_round_trip_and_single_task_reference():
    torch.manual_seed(1)
    m = CAML(SPEC, TASKS, input_shape=SHAPE, tower_hidden=[4])
    cfg = json.loads(json.dumps(m.config))
    m2 = build_model(cfg, TASKS, SHAPE)
    m2.load_state_dict(m.state_dict())
    x = batch()
    m.eval(), m2.eval()
    for k, v in m(x).items():
        torch.testing.assert_close(v, m2(x)[k])
    ref = CAML.single_task_config({k: v for k, v in cfg.items() if k not in ("name", "trunk")}, TASKS[1])
    assert ref is not None and ref["name"] == "caml"


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"history_field": "hist"}, r"'history_field'.*'hist'.*fields are"),
    ({"item_fields": ["age"]}, r"'item_fields'.*width 4.*'age'"),
    ({"user_field": "history"}, "single-valued"),
])
def test_bad_fields_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CAML(SPEC, TASKS, input_shape=SHAPE, **kwargs)


def test_needs_a_feature_spec_and_the_right_width():
    with pytest.raises(ValueError, match=r"input: \{fields"):
        CAML({"name": "mlp", "hidden": [8]}, TASKS, input_shape=(5,))
    with pytest.raises(ValueError, match="reads 8 columns"):
        CAML(SPEC, TASKS, input_shape=(7,))


def test_onnx_export_matches_pytorch(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from mtlkit.export import export_model

    torch.manual_seed(0)
    m = CAML(SPEC, TASKS, input_shape=SHAPE).eval()
    path = export_model(m, TASKS, list(SHAPE), tmp_path / "caml.onnx", fmt="onnx")
    x = batch(6, seed=3).numpy().astype("float32")
    got = ort.InferenceSession(str(path)).run(None, {"x": x})
    with torch.no_grad():
        want = m(torch.from_numpy(x))
    for t, g in zip(TASKS, got):
        np.testing.assert_allclose(g, want[t.name].numpy(), rtol=1e-4, atol=1e-5)
