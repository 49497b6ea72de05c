import math

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from mtlkit import Task


def test_binary_loss_masked_matches_hand_value():
    t = Task("b", "binary")
    logits = torch.tensor([0.0, 2.0, -1.0])
    y = torch.tensor([1.0, 0.0, 1.0])
    mask = torch.tensor([True, False, True])
    # BCE(0, 1) = log 2 ; BCE(-1, 1) = log(1 + e)
    expected = (math.log(2) + math.log(1 + math.e)) / 2
    assert t.compute_loss(logits, y, mask).item() == pytest.approx(expected, rel=1e-6)


def test_multiclass_loss_ignores_masked_out_of_range_placeholder():
    t = Task("m", "multiclass", num_classes=3)
    logits = torch.tensor([[0.0, 0.0, 0.0], [5.0, 0.0, 0.0]])
    y = torch.tensor([2, 0])
    mask = torch.tensor([True, False])
    assert t.compute_loss(logits, y, mask).item() == pytest.approx(math.log(3), rel=1e-6)


def test_regression_losses_and_all_missing_is_zero():
    pred = torch.tensor([[1.0], [3.0]])
    y = torch.tensor([[0.0], [0.0]])
    m = torch.tensor([[True], [True]])
    assert Task("r", "regression").compute_loss(pred, y, m).item() == pytest.approx(5.0)
    assert Task("r", "regression", loss="l1").compute_loss(pred, y, m).item() == pytest.approx(2.0)
    # huber (delta 1): 0.5 for |1|, 3 - 0.5 = 2.5 for |3|
    assert Task("r", "regression", loss="huber").compute_loss(pred, y, m).item() == pytest.approx(1.5)
    none = torch.zeros_like(m)
    assert Task("r", "regression").compute_loss(pred, y, none).item() == 0.0


def test_multilabel_elementwise_mask():
    t = Task("ml", "multilabel", num_labels=2)
    logits = torch.zeros(1, 2)
    y = torch.tensor([[1.0, 0.0]])
    m = torch.tensor([[True, False]])
    assert t.compute_loss(logits, y, m).item() == pytest.approx(math.log(2))


def test_metrics_match_sklearn(rng):
    y = rng.integers(0, 2, 50).astype(float)
    p = rng.normal(size=50)
    t = Task("b", "binary")
    res = t.evaluate(torch.tensor(p), torch.tensor(y), torch.ones(50, dtype=torch.bool))
    prob = 1 / (1 + np.exp(-p))
    assert res["roc_auc"] == pytest.approx(skm.roc_auc_score(y, prob))
    assert res["accuracy"] == pytest.approx(skm.accuracy_score(y, prob >= 0.5))
    assert res["f1"] == pytest.approx(skm.f1_score(y, prob >= 0.5))
    yc = rng.integers(0, 4, 60)
    logits = rng.normal(size=(60, 4))
    tc = Task("c", "multiclass", num_classes=4)
    r = tc.evaluate(torch.tensor(logits), torch.tensor(yc), torch.ones(60, dtype=torch.bool))
    assert r["macro_f1"] == pytest.approx(skm.f1_score(yc, logits.argmax(1), average="macro"))
    yr = rng.normal(size=(30, 1))
    pr = yr + rng.normal(size=(30, 1)) * 0.1
    rr = Task("r", "regression").evaluate(torch.tensor(pr), torch.tensor(yr), torch.ones(30, 1, dtype=torch.bool))
    assert rr["rmse"] == pytest.approx(math.sqrt(skm.mean_squared_error(yr, pr)))
    assert rr["r2"] == pytest.approx(skm.r2_score(yr, pr))


def test_metrics_skip_masked_samples():
    t = Task("b", "binary")
    out = torch.tensor([5.0, -5.0, 5.0])
    y = torch.tensor([1.0, 0.0, 0.0])
    m = torch.tensor([True, True, False])  # the wrong prediction is unlabelled
    assert t.evaluate(out, y, m)["accuracy"] == 1.0


def test_every_metric_declares_direction():
    for kind, extra in [("binary", {}), ("multiclass", {"num_classes": 3}), ("multilabel", {"num_labels": 2}),
                        ("regression", {})]:
        t = Task("t", kind, **extra)
        assert {m.name: m.higher_is_better for m in t.metrics}
        assert t.main_metric in {m.name for m in t.metrics}


@pytest.mark.parametrize("kwargs,needle", [
    ({"kind": "nope"}, "unknown kind"),
    ({"kind": "multiclass"}, "num_classes"),
    ({"kind": "binary", "weight": -1.0}, "'weight'"),
    ({"kind": "binary", "weight": float("nan")}, "'weight'"),
    ({"kind": "binary", "role": "main"}, "role"),
    ({"kind": "binary", "loss": "l1"}, "loss"),
])
def test_bad_task_specs(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        Task("t", **kwargs)
