"""The adversarial shared-private model (Liu, Qiu & Huang 2017) with text encoders, as in the
paper: a shared and per-task private sequence encoders over token IDs (here the BiLSTM and
Transformer trunks of mtlkit.architectures.text, configured separately)."""

from __future__ import annotations

import pytest
import torch

from mtlkit import Task
from mtlkit.architectures import AdversarialSharedPrivate, build_model
from mtlkit.data import MultiTaskData
from mtlkit.training import Trainer

pytest.importorskip("mtlkit.architectures.text")

L = 6  # token slots
SPEC = {"dense": 1, "cardinalities": [], "dims": [], "columns": [],
        "text": [{"column": "t", "vocab": 30, "max_length": L, "pad_id": 0}]}
TASKS = [Task("a", "binary"), Task("b", "multiclass", num_classes=3)]
ARCH = {"name": "adversarial", "trunk": {"name": "bilstm", "hidden": 8, "input": SPEC},
        "shared": {"name": "bilstm", "hidden": 8},
        "private": {"name": "transformer", "hidden": 8, "layers": 1, "heads": 2, "dropout": 0.0},
        "adversarial_weight": 0.5}


def _data(n: int = 40) -> MultiTaskData:
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(2, L + 1, (n,), generator=g)
    ids = torch.randint(1, 30, (n, L), generator=g) * (torch.arange(L)[None, :] < lengths[:, None])
    x = torch.cat([torch.randn(n, 1, generator=g), ids.float()], dim=1)  # [dense | token-ID slots]
    first = torch.arange(n) < n // 2  # one dataset per task: each sample labelled for one task
    return MultiTaskData(x, {"a": (ids[:, 0] % 2).float(), "b": ids[:, 1] % 3},
                         {"a": first, "b": ~first}, TASKS)


def test_shared_bilstm_and_private_transformers_from_one_config():
    torch.manual_seed(0)
    m = build_model(ARCH, TASKS, (1 + L,))
    assert isinstance(m, AdversarialSharedPrivate)
    kinds = {type(mod).__name__ for mod in m.shared.modules()}
    assert any("LSTM" in k for k in kinds) and not any("Transformer" in k for k in kinds)
    for t in TASKS:
        assert any("Transformer" in type(mod).__name__ for mod in m.private[t.name].modules())
    assert m.private["a"] is not m.private["b"]
    # the config rebuilds the same model (the table's input spec travelled into both encoders)
    again = build_model(m.config, TASKS, (1 + L,))
    again.load_state_dict(m.state_dict())
    m.eval(), again.eval()
    x = _data(5).x
    for k, v in m(x).items():
        assert torch.equal(v, again(x)[k])


def test_adversarial_loss_trains_the_shared_text_encoder():
    torch.manual_seed(0)
    m = build_model(ARCH, TASKS, (1 + L,))
    d = _data()
    _, _, ms = d.batch(torch.arange(len(d)))
    m.observe_batch(ms)
    m(d.x)
    extra = m.extra_losses()
    assert float(extra["adversarial"]) > 0 and float(extra["orthogonality"]) >= 0
    extra["adversarial"].backward()
    assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in m.shared.parameters())
    assert all(p.grad is None for t in TASKS for p in m.private[t.name].parameters())
    tr = Trainer(m, TASKS, epochs=2, batch_size=10, progress=False, seed=0)
    tr.fit(d)
    rec = tr.history.records[-1]
    assert rec["penalties"]["adversarial"] > 0 and "discriminator_accuracy" in rec["sharing"]


def test_shared_and_private_need_a_trunk_or_both():
    with pytest.raises(ValueError, match="needs a 'trunk', or both"):
        AdversarialSharedPrivate(None, TASKS, input_shape=(4,), shared={"name": "mlp", "hidden": [4]})
    m = AdversarialSharedPrivate(None, TASKS, input_shape=(4,), shared={"name": "mlp", "hidden": [4]},
                                 private={"name": "mlp", "hidden": [3]})
    assert m.shared_width == 4 and m.private_width == 3
