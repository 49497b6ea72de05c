"""Dense losses and metrics on hand-made tiny arrays; the dense Task kinds once patched in."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _aux_helpers import needs_dense
from sklearn.metrics import f1_score

from mtlkit import tasks_dense as td

# a 2×3 label map with 3 classes, and a prediction that gets 4 of 6 pixels right
#   target   0 0 1      prediction  0 1 1
#            2 2 1                  2 0 1
Y = np.array([[[0, 0, 1], [2, 2, 1]]])
P = np.array([[[0, 1, 1], [2, 0, 1]]])
ALL = np.ones_like(Y, dtype=bool)


def scores(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """One-hot 'logits' (N, C, *S) whose argmax is ``labels``."""
    t = torch.as_tensor(labels)
    return F.one_hot(t, num_classes).movedim(-1, 1).float() * 5.0


def test_mean_iou_by_hand():
    # class 0: TP 1 (pixel (0,0)); predicted 0 at (0,0),(1,1); true 0 at (0,0),(0,1)
    #          union = 2 + 2 - 1 = 3 -> IoU 1/3
    # class 1: TP 2 ((0,2),(1,2)); predicted at (0,1),(0,2),(1,2) = 3; true 2 -> union 3 -> 2/3
    # class 2: TP 1 ((1,0)); predicted 1, true 2 -> union 2 -> 1/2
    # mIoU = (1/3 + 2/3 + 1/2) / 3 = 1/2
    assert td.mean_iou(P, Y, ALL) == pytest.approx(0.5)
    assert td.mean_iou(scores(P, 3), torch.as_tensor(Y), torch.as_tensor(ALL)) == pytest.approx(0.5)
    assert td.pixel_accuracy(P, Y, ALL) == pytest.approx(4 / 6)


def test_metrics_ignore_masked_pixels_and_absent_classes():
    mask = ALL.copy()
    mask[0, 0, 1] = mask[0, 1, 1] = False  # hide both errors
    assert td.pixel_accuracy(P, Y, mask) == 1.0
    assert td.mean_iou(P, Y, mask) == 1.0
    # class 3 of a 4-class output never appears in target or prediction: it is left out
    assert td.mean_iou(scores(P, 4), Y, ALL) == pytest.approx(0.5)
    assert math.isnan(td.mean_iou(P, Y, np.zeros_like(ALL)))


def test_macro_f1_matches_sklearn_and_accuracy_by_hand():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, size=(5, 12))
    p = np.where(rng.random((5, 12)) < 0.6, y, rng.integers(0, 4, size=(5, 12)))
    m = rng.random((5, 12)) < 0.8
    assert td.macro_f1(scores(p, 4), y, m) == pytest.approx(f1_score(y[m], p[m], average="macro"))
    assert td.pixel_accuracy(p, y, m) == pytest.approx((p[m] == y[m]).mean())


def test_segmentation_loss_is_the_mean_cross_entropy_of_labelled_pixels():
    logits = torch.tensor([[[[2.0, 0.0]], [[0.0, 1.0]]]], requires_grad=True)  # (1, C=2, 1, 2)
    target = torch.tensor([[[0, 0]]])
    # pixel 0: -log softmax(2, 0)[0] = log(1 + e^-2); pixel 1: -log softmax(0, 1)[0] = log(1 + e)
    both = (math.log(1 + math.exp(-2)) + math.log(1 + math.e)) / 2
    assert td.segmentation_loss(logits, target, torch.ones(1, 1, 2)).item() == pytest.approx(both)
    first = td.segmentation_loss(logits, target, torch.tensor([[[True, False]]]))
    assert first.item() == pytest.approx(math.log(1 + math.exp(-2)))
    none = td.segmentation_loss(logits, target, torch.zeros(1, 1, 2, dtype=torch.bool))
    assert none.item() == 0.0
    none.backward()  # differentiable even with nothing labelled
    assert logits.grad is not None and logits.grad.abs().sum() == 0


def test_masked_labels_may_hold_any_placeholder():
    logits = torch.zeros(1, 2, 3)
    target = torch.tensor([[1, -100, 7]])  # out-of-range placeholders under the mask
    mask = torch.tensor([[True, False, False]])
    assert td.sequence_labelling_loss(logits, target, mask).item() == pytest.approx(math.log(2))


def test_dense_regression_loss_and_errors_by_hand():
    pred = torch.tensor([[[1.0, 2.0], [3.0, 9.0]]])
    target = torch.tensor([[[2.0, 2.0], [1.0, 0.0]]])
    mask = torch.tensor([[[True, True], [True, False]]])
    # |1-2| + |2-2| + |3-1| = 3 over 3 labelled entries
    assert td.dense_regression_loss(pred, target, mask).item() == pytest.approx(1.0)
    assert td.dense_regression_loss(pred, target, mask, loss="mse").item() == pytest.approx(5 / 3)
    assert td.absolute_error(pred, target, mask) == pytest.approx(1.0)
    # relative: 1/2, 0/2, 2/1 -> mean 5/6 (the masked zero target is not counted)
    assert td.relative_error(pred, target, mask) == pytest.approx(5 / 6)
    with pytest.raises(ValueError, match="'loss' parameter of dense_regression_loss"):
        td.dense_regression_loss(pred, target, mask, loss="l3")


def test_evaluate_uses_the_mask_and_reports_every_metric():
    out = scores(P, 3)
    mask = ALL.copy()
    mask[0, 0, 1] = False
    res = td.evaluate("segmentation", out, Y, mask)
    assert set(res) == {"miou", "pixel_accuracy"} and res["pixel_accuracy"] == pytest.approx(4 / 5)
    reg = td.evaluate("dense_regression", np.array([[1.0, 5.0]]), np.array([[2.0, 0.0]]),
                      np.array([[True, False]]))
    assert reg == {"abs_err": 1.0, "rel_err": 0.5}
    assert {n: hib for n, _, hib in td.METRICS["dense_regression"]} == {"abs_err": False, "rel_err": False}
    assert all(hib for n, _, hib in td.METRICS["segmentation"] + td.METRICS["sequence_labelling"])


def test_shape_mismatch_is_reported():
    with pytest.raises(ValueError, match="do not fit targets"):
        td.segmentation_loss(torch.zeros(1, 2, 3, 3), torch.zeros(1, 3, 4, dtype=torch.long),
                             torch.ones(1, 3, 4))


# ---------------------------------------------------------------- the Task patch
@needs_dense
def test_task_dense_kinds():
    from mtlkit import Task

    seg = Task("mask", "segmentation", num_classes=3, out_shape=(2, 3), role="auxiliary")
    assert (seg.output_shape, seg.target_shape, seg.out_dim) == ((3, 2, 3), (2, 3), 18)
    assert seg.main_metric == "miou" and seg.metric("miou").higher_is_better
    flat = torch.as_tensor(scores(P, 3)).reshape(1, -1)  # a linear head's (N, out_dim) output
    out = seg.shape_output(flat)
    assert out.shape == (1, 3, 2, 3)
    loss = seg.compute_loss(out, torch.as_tensor(Y), torch.as_tensor(ALL))
    assert loss.item() == pytest.approx(td.segmentation_loss(out, torch.as_tensor(Y), torch.as_tensor(ALL)).item())
    assert seg.evaluate(out, Y, ALL)["miou"] == pytest.approx(0.5)

    seq = Task("beat", "sequence_labelling", num_classes=4, out_shape=(10,))
    assert seq.output_shape == (4, 10) and seq.main_metric == "macro_f1"
    dr = Task("depth", "dense_regression", out_shape=(1, 4, 4))
    assert dr.loss_name == "l1" and dr.main_metric == "abs_err" and not dr.metric("rel_err").higher_is_better
    assert Task(**{**dr.to_dict(), "out_shape": tuple(dr.to_dict()["out_shape"])}) == dr
    assert dr.to_dict()["out_shape"] == [1, 4, 4]


@needs_dense
@pytest.mark.parametrize(("kw", "message"), [
    ({"kind": "segmentation", "num_classes": 2}, "needs out_shape"),
    ({"kind": "segmentation", "num_classes": 2, "out_shape": (4,)}, r"needs out_shape \(H, W\)"),
    ({"kind": "sequence_labelling", "out_shape": (4,)}, "num_classes >= 2"),
    ({"kind": "dense_regression", "out_shape": (0, 3)}, "positive sizes"),
    ({"kind": "regression", "out_shape": (3,)}, "takes no out_shape"),
    ({"kind": "dense_regression", "out_shape": (3,), "loss": "bce"}, "not available"),
])
def test_task_dense_validation(kw, message):
    from mtlkit import Task

    with pytest.raises(ValueError, match=message):
        Task("t", **kw)
