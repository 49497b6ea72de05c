"""Decoder heads: shapes, gradients, validation; a dense auxiliary task end to end."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from _aux_helpers import needs_dense
from torch import nn

from mtlkit.architectures.decoders import ConvDecoder1d, ConvDecoder2d, dense_head


@pytest.mark.parametrize("size", [(7, 7), (28, 28), (5, 9), (1, 1)])
def test_conv_decoder_2d_shapes(size):
    torch.manual_seed(0)
    dec = ConvDecoder2d(50, 3, size)
    rep = torch.randn(4, 50, requires_grad=True)
    out = dec(rep)
    assert out.shape == (4, 3, *size)
    out.square().mean().backward()
    assert rep.grad is not None and rep.grad.abs().sum() > 0


@pytest.mark.parametrize("length", [100, 33, 4])
def test_conv_decoder_1d_shapes(length):
    out = ConvDecoder1d(64, 2, length, channels=(8,))(torch.zeros(3, 64))
    assert out.shape == (3, 2, length)


def test_decoders_are_deterministic_given_the_seed():
    torch.manual_seed(5)
    a = ConvDecoder2d(10, 1, 8)(torch.ones(1, 10))
    torch.manual_seed(5)
    b = ConvDecoder2d(10, 1, 8)(torch.ones(1, 10))
    assert torch.equal(a, b)


@pytest.mark.parametrize(("call", "message"), [
    (lambda: ConvDecoder2d(0, 1, 4), "The 'in_features' parameter of ConvDecoder2d must be a positive int. Got 0."),
    (lambda: ConvDecoder2d(4, 1, (4, 4, 4)), "The 'out_size' parameter of ConvDecoder2d"),
    (lambda: ConvDecoder1d(4, 1, 8, channels=()), "The 'channels' parameter of ConvDecoder1d"),
    (lambda: ConvDecoder1d(4, 1, 8, activation_out="relu"), "'activation_out' parameter of ConvDecoder1d"),
])
def test_decoder_validation(call, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call()


def test_dense_head_dispatch():
    seg = SimpleNamespace(kind="segmentation", num_classes=2, out_shape=(7, 7))
    seq = SimpleNamespace(kind="sequence_labelling", num_classes=3, out_shape=(50,))
    rec = SimpleNamespace(kind="dense_regression", num_classes=None, out_shape=(12,))
    assert dense_head(16, seg)(torch.zeros(2, 16)).shape == (2, 2, 7, 7)
    assert dense_head(16, seq)(torch.zeros(2, 16)).shape == (2, 3, 50)
    assert isinstance(dense_head(16, rec), nn.Linear)
    with pytest.raises(ValueError, match="needs a dense task"):
        dense_head(16, SimpleNamespace(kind="binary"))


@needs_dense
def test_an_otsu_auxiliary_task_trains_with_a_decoder_head():
    from mtlkit import HardSharing, Task, Trainer, from_arrays
    from mtlkit.architectures.backbones import lenet
    from mtlkit.auxiliary import Otsu, with_auxiliary

    rng = np.random.default_rng(0)
    x = rng.random((16, 1, 16, 16)).astype("float32")
    x[:8, :, 4:12, 4:12] += 1.0  # a bright square in half of the images
    y = (np.arange(16) < 8).astype(float)
    data = from_arrays(x, {"square": y}, [Task("square", "binary")])
    aux = Otsu(factor=4).generate(x)
    data = with_auxiliary(data, [aux])
    tasks = data.tasks
    torch.manual_seed(0)
    model = HardSharing(lenet(1, (16, 16)), tasks)
    model.heads["aux_otsu"] = dense_head(model.trunk_out, aux.task)  # decoder for the dense task
    trainer = Trainer(model, tasks, epochs=2, batch_size=8, lr=3e-3, progress=False)
    trainer.fit(data)
    out = trainer.predict_raw(data)
    assert out["aux_otsu"].shape == (16, 2, 4, 4)
    res = trainer.evaluate(data)
    assert set(res["aux_otsu"]) == {"miou", "pixel_accuracy"}
    assert trainer.weighting(torch.ones(2), _ctx()).weights.tolist() == pytest.approx([1.0, 0.1])


def _ctx():
    from mtlkit.weighting._base import StepContext

    return StepContext()
