"""``training.compile: true`` with an exact (gradient-space) method: the compiled forward's
graph is traversed once per task (``retain_graph=True``), which AOTAutograd's donated
buffers refuse; the step compiles without them and trains as the eager model does."""

from __future__ import annotations

import pytest
import torch

from mtlkit import HardSharing, Trainer
from mtlkit._registry import AGGREGATORS
from mtlkit.architectures.backbones import mlp


def _aot_eager(monkeypatch):
    """``Module.compile`` with the AOTAutograd backend that runs without code generation
    (seconds, no C++ compiler); it has the donated buffers of the default backend."""
    original = torch.nn.Module.compile

    def compile_aot(self, *args, **kwargs):
        return original(self, backend="aot_eager")

    monkeypatch.setattr(torch.nn.Module, "compile", compile_aot)


def _steps(tasks, batch, compiled, aggregator):
    torch.manual_seed(0)
    torch._dynamo.reset()
    model = HardSharing(mlp(10, (16,)), tasks)
    tr = Trainer(model, tasks, aggregator=AGGREGATORS.build(aggregator), compile=compiled, optimizer="sgd",
                 lr=0.1, batch_size=64, progress=False)
    tr.setup()
    for _ in range(3):
        tr.train_step(batch)
    return tr.model.state_dict()


@pytest.mark.slow
def test_compiled_exact_method_trains_like_eager(monkeypatch, two_task_data):
    aggregator = "upgrad"
    _aot_eager(monkeypatch)
    data, tasks = two_task_data
    batch = data.batch(torch.arange(64))
    eager = _steps(tasks, batch, False, aggregator)
    compiled = _steps(tasks, batch, True, aggregator)
    for key, value in eager.items():
        torch.testing.assert_close(compiled[key], value, rtol=1e-5, atol=1e-6)


def test_the_compiled_forward_runs_without_donated_buffers(monkeypatch, two_task_data):
    """The setting is active while the model's forward runs (and so while it is compiled),
    only with ``training.compile``; the real failure needs the inductor backend (a C++
    compiler, minutes): ``benchmarks/peers.py --compile --methods upgrad`` runs it."""
    seen = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, *a, **k: None)
    data, tasks = two_task_data
    batch = data.batch(torch.arange(64))
    for compiled in (True, False):
        model = HardSharing(mlp(10, (16,)), tasks)
        model.register_forward_pre_hook(lambda *_: seen.append(torch._functorch.config.donated_buffer))
        tr = Trainer(model, tasks, aggregator=AGGREGATORS.build("upgrad"), compile=compiled, progress=False)
        tr.setup()
        tr.train_step(batch)
    assert seen == [False, torch._functorch.config.donated_buffer]
