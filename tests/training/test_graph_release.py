"""The shared part's last backward pass frees the step's graph (as plain training's one pass
does), so the saved activations are not held beside the Jacobian: the task-specific
parameters' gradients are taken first, and only the model's penalties (their own pass after
the shared part) keep the graph alive."""

from __future__ import annotations

import pytest
import torch

from mtlkit import HardSharing, Trainer
from mtlkit._registry import AGGREGATORS
from mtlkit.architectures.backbones import mlp


def _calls(monkeypatch, tr, batch):
    shared = {id(p) for p in tr.shared}
    calls: list[tuple[bool, bool]] = []  # (reaches the shared parameters, retain_graph)
    real = torch.autograd.grad

    def grad(outputs, inputs, *args, **kwargs):
        ins = [inputs] if isinstance(inputs, torch.Tensor) else list(inputs)
        calls.append((any(id(t) in shared for t in ins), bool(kwargs.get("retain_graph"))))
        return real(outputs, inputs, *args, **kwargs)

    monkeypatch.setattr(torch.autograd, "grad", grad)
    tr.train_step(batch)
    monkeypatch.undo()
    return calls


@pytest.mark.parametrize(("name", "settings"), [
    ("upgrad", {"gramian_engine": "jacobian"}),  # the K×P Jacobian
    ("trimmed_mean", {}),  # the Jacobian in the reused workspace
    ("moco", {}),  # rows streamed
    ("mean", {}),  # one backward pass, no Jacobian
    ("upgrad", {"jacobian_block_size": 64}),  # block-wise Gramian, then one pass
])
def test_the_last_shared_pass_frees_the_graph(two_task_data, monkeypatch, name, settings):
    data, tasks = two_task_data
    torch.manual_seed(0)
    tr = Trainer(HardSharing(mlp(10, (16,)), tasks), tasks, aggregator=AGGREGATORS.build(name),
                 optimizer="sgd", lr=0.1, batch_size=64, progress=False, **settings)
    tr.setup()
    calls = _calls(monkeypatch, tr, data.batch(torch.arange(64)))
    shared_calls = [retain for reaches, retain in calls if reaches]
    assert shared_calls and shared_calls[-1] is False
    assert calls[-1] == (True, False)  # nothing backward through the graph after it
    assert all(retain for reaches, retain in calls if not reaches)  # the heads, first


class _Penalised(HardSharing):
    """Hard sharing with a penalty on the trunk's output: its own backward pass, after the
    shared part's, goes through the step's graph."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._rep = None
        self.shared.register_forward_hook(lambda _m, _i, out: setattr(self, "_rep", out))

    def extra_losses(self):
        return {"activity": 1e-3 * self._rep.pow(2).mean()}


@pytest.mark.parametrize("name", ["upgrad", "trimmed_mean", "moco", "mean"])
def test_a_penalty_keeps_the_graph_for_its_own_pass(two_task_data, monkeypatch, name):
    data, tasks = two_task_data
    torch.manual_seed(0)
    model = _Penalised(mlp(10, (16,)), tasks)
    tr = Trainer(model, tasks, aggregator=AGGREGATORS.build(name), optimizer="sgd", lr=0.1, batch_size=64,
                 progress=False, gramian_engine="jacobian")
    tr.setup()
    before = [p.detach().clone() for p in tr.shared]
    calls = _calls(monkeypatch, tr, data.batch(torch.arange(64)))  # would raise if the graph were freed early
    shared_calls = [retain for reaches, retain in calls if reaches]
    assert shared_calls[-1] is False and all(shared_calls[:-1])  # the penalty's pass last, the rest kept it
    assert any(not torch.equal(b, p) for b, p in zip(before, tr.shared))
