"""GREAT (gradient adversarial training): the reversal layer, the discriminator, the trainer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mtlkit import HardSharing, Task, Trainer, from_arrays
from mtlkit._registry import WEIGHTINGS
from mtlkit.aggregation import PCGrad
from mtlkit.architectures.backbones import mlp
from mtlkit.weighting._base import StepContext
from mtlkit.weighting.great import GREAT, gradient_reversal


@pytest.mark.parametrize("coefficient", [0.0, 0.3, 1.0, 2.5])
def test_gradient_reversal_multiplies_gradients_by_minus_lambda(coefficient):
    x = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    y = gradient_reversal(x, coefficient)
    assert torch.equal(y, x)  # identity forward
    upstream = torch.tensor([0.5, 1.0, -4.0])
    y.backward(upstream)
    torch.testing.assert_close(x.grad, -coefficient * upstream)


def test_registered_with_flags():
    assert WEIGHTINGS.get("great") is GREAT
    assert GREAT.needs_gradients and not GREAT.aggregator_compatible


@pytest.mark.parametrize("kwargs", [{"reversal_coefficient": -1.0}, {"reversal_coefficient": "x"},
                                    {"hidden": 0}, {"in_features": 0}, {"normalize": "yes"}])
def test_bad_hyperparameters(kwargs):
    (name,) = kwargs
    with pytest.raises(ValueError, match=f"'{name}' parameter of GREAT"):
        GREAT(**kwargs)


def _two_direction_losses(rep):
    # task 0's gradient w.r.t. each sample's representation is ∝ u, task 1's ∝ v
    u = torch.tensor([1.0, 0.0, 0.0, 0.0])
    v = torch.tensor([0.0, 0.6, 0.8, 0.0])
    return torch.stack([((rep @ u) ** 2).mean(), ((rep @ v - 1.0) ** 2).mean()])


def test_discriminator_learns_to_tell_tasks_apart_when_trained_alone():
    torch.manual_seed(0)
    great = GREAT(in_features=4, hidden=16)
    great.setup(["a", "b"])
    opt = torch.optim.Adam(great.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    accuracies = []
    for _ in range(150):
        rep = torch.randn(32, 4, generator=gen).requires_grad_(True)
        res = great(_two_direction_losses(rep), StepContext(representation=rep))
        opt.zero_grad()
        res.objective.backward()
        opt.step()
        accuracies.append(great.last_accuracy_)
    assert np.mean(accuracies[:5]) < 0.8
    assert np.mean(accuracies[-10:]) > 0.95


def test_adversarial_signal_reaches_the_model_reversed():
    torch.manual_seed(0)
    w = torch.randn(4, 4, requires_grad=True)
    x = torch.randn(16, 4)

    def grads(coefficient):
        torch.manual_seed(1)
        great = GREAT(in_features=4, hidden=8, reversal_coefficient=coefficient)
        great.setup(["a", "b"])
        rep = x @ w
        losses = _two_direction_losses(rep)
        res = great(losses, StepContext(representation=rep))
        gw, *gd = torch.autograd.grad(res.objective, [w, *great.parameters()])
        (plain,) = torch.autograd.grad(_two_direction_losses(x @ w).sum(), [w])
        return gw, gd, plain

    g0, d0, plain = grads(0.0)
    g1, d1, _ = grads(1.0)
    g2, d2, _ = grads(2.0)
    torch.testing.assert_close(g0, plain)  # λ = 0: the model only sees its task losses
    assert not torch.allclose(g1, plain)
    # the model's adversarial part is linear in −λ; the discriminator's gradient does not depend on λ
    torch.testing.assert_close(g2 - plain, 2 * (g1 - plain))
    for a, b in zip(d1, d2):
        torch.testing.assert_close(a, b)


def test_weights_are_ones_masked_by_presence():
    great = GREAT(in_features=4)
    great.setup(["a", "b"])
    rep = torch.randn(8, 4, requires_grad=True)
    res = great(_two_direction_losses(rep), StepContext(representation=rep, present=torch.tensor([True, False])))
    assert torch.equal(res.weights, torch.tensor([1.0, 0.0]))


def test_needs_the_representation():
    great = GREAT(in_features=4)
    great.setup(["a", "b"])
    with pytest.raises(ValueError, match="representation"):
        great(torch.tensor([1.0, 2.0], requires_grad=True), StepContext())


def test_trains_with_the_trainer_and_rejects_aggregators():
    r = np.random.default_rng(0)
    x = r.normal(size=(128, 6)).astype("float32")
    tasks = [Task("a", "binary"), Task("b", "regression")]
    data = from_arrays(x, {"a": (x[:, 0] > 0).astype(float), "b": x[:, 1] - x[:, 2]}, tasks)
    torch.manual_seed(0)
    model = HardSharing(mlp(6, (16,)), tasks)
    with pytest.raises(ValueError, match="cannot be combined"):
        Trainer(model, tasks, weighting=GREAT(), aggregator=PCGrad(), progress=False)
    great = GREAT(reversal_coefficient=0.1)  # in_features inferred lazily
    trainer = Trainer(model, tasks, weighting=great, epochs=6, batch_size=32, lr=1e-2, progress=False)
    history = trainer.fit(data)
    losses = [sum(r["train_loss"].values()) for r in history.records]
    assert losses[-1] < losses[0]
    assert 0.0 <= great.last_accuracy_ <= 1.0
    state = great.state_dict()
    assert any(k.startswith("discriminator.") for k in state)
    again = GREAT(reversal_coefficient=0.1)
    again.setup(["a", "b"])
    again.load_state_dict(state)
    for k, v in again.state_dict().items():
        if isinstance(v, torch.Tensor):
            torch.testing.assert_close(v, state[k])
