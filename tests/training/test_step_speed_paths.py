"""The fast paths of the training step (issue 22): no host read per task, one read per plain
step, the Jacobian rows weighted at no cost, the block-wise Gramian, the reused Jacobian
workspace, ``training.compile``; and the CUDA check of hidden synchronisation (run where a GPU
is present)."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch

from mtlkit import HardSharing, Task, Trainer, from_arrays
from mtlkit._registry import AGGREGATORS
from mtlkit.architectures.backbones import mlp
from mtlkit.jacobian import jacobian, parameter_blocks
from mtlkit.training.step import label_counts


def _problem(k: int, n: int = 64, missing: float = 0.2, seed: int = 0):
    r = np.random.default_rng(seed)
    x = r.normal(size=(n, 6)).astype("float32")
    tasks = [Task(f"t{i}", "regression") for i in range(k)]
    ys = {}
    for i, t in enumerate(tasks):
        y = x[:, i % 6] * (i + 1) + 0.1 * r.normal(size=n)
        y[r.random(n) < missing] = np.nan
        ys[t.name] = y
    return from_arrays(x, ys, tasks), tasks


def _trainer(tasks, **kw):
    torch.manual_seed(0)
    return Trainer(HardSharing(mlp(6, (12,)), tasks), tasks, optimizer="sgd", lr=0.05, momentum=0.0,
                   progress=False, **kw)


class _HostReads:
    """Counts the reads of tensor values by the host (``item``, ``tolist``, ``bool``, ``float``,
    ``int``): on a GPU each is a synchronisation."""

    NAMES = ("item", "tolist", "__bool__", "__float__", "__int__")

    def __init__(self, monkeypatch) -> None:
        self.count = 0
        for name in self.NAMES:
            original = getattr(torch.Tensor, name)

            def counted(t, *a, _original=original, **k):
                self.count += 1
                return _original(t, *a, **k)

            monkeypatch.setattr(torch.Tensor, name, counted)


@pytest.mark.parametrize("k", [2, 9])
def test_a_plain_step_reads_the_device_once_whatever_k(k, monkeypatch):
    data, tasks = _problem(k)
    tr = _trainer(tasks)
    batch = data.batch(torch.arange(32))
    tr.train_step(batch)  # set-up and the first check of the outputs
    reads = _HostReads(monkeypatch)
    tr.train_step(batch)
    assert reads.count == 1  # the update decision: one flag vector


@pytest.mark.parametrize("name", ["mean", "upgrad"])
@pytest.mark.parametrize("k", [2, 9])
def test_an_exact_step_reads_the_device_a_fixed_number_of_times(k, name, monkeypatch):
    data, tasks = _problem(k)
    tr = _trainer(tasks, aggregator=AGGREGATORS.build(name))
    batch = data.batch(torch.arange(32))
    tr.train_step(batch)
    reads = _HostReads(monkeypatch)
    tr.train_step(batch)
    assert reads.count == 2  # which rows (present mask, finite losses); the update decision


def test_the_deferred_checks_train_as_the_checked_ones(monkeypatch):
    """A plain step checks once, after the backward pass; with a hook that observes the task
    gradients it checks before (the checked path). Both give the same model, including for
    a batch where a task has no label and for a non-finite loss."""
    from mtlkit.training.callbacks import Callback

    class Observer(Callback):
        def observe_gradients(self, trainer, losses, present, representation):
            pass

    data, tasks = _problem(3, missing=0.5)
    data.targets["t1"][:8] = float("nan")  # non-finite labels in the first batch: a skipped step
    data.masks["t1"][:8] = True
    data.masks["t2"][8:16] = False  # no label for t2 in the second batch
    batches = [data.batch(torch.arange(i, i + 8)) for i in range(0, 64, 8)]
    models = []
    for callbacks in ((), (Observer(),)):
        tr = _trainer(tasks, callbacks=callbacks)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            results = [tr.train_step(b) for b in batches]
        assert results[0].skipped and tr.nonfinite_skipped == 1
        assert not bool(results[1].present[2]) and float(results[1].weights[2]) == 0.0
        models.append(tr.model.state_dict())
    for name, value in models[0].items():
        torch.testing.assert_close(value, models[1][name], rtol=0, atol=0)


def test_label_counts_need_no_host_read():
    masks = [torch.tensor([True, False, True]), torch.tensor([False, False, False]), torch.tensor([True] * 3)]
    assert label_counts(masks).tolist() == [2, 0, 3]
    mixed = [torch.ones(3, 2, dtype=torch.bool), torch.tensor([1.0, 0.0, 1.0])]
    assert label_counts(mixed).tolist() == [6, 2]


def test_jacobian_rows_start_from_the_given_seeds():
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    losses = [(w ** 2).sum(), w.sum()]
    seeds = torch.tensor([3.0, -1.0]).unbind()
    plain = jacobian(losses, [w])
    for engine in ("loop", "batched"):
        j = jacobian(losses, [w], engine=engine, grad_outputs=seeds)
        torch.testing.assert_close(j, plain * torch.tensor([[3.0], [-1.0]]))
    out = torch.empty(2, 2)
    assert jacobian(losses, [w], out=out).data_ptr() == out.data_ptr()


def test_parameter_blocks_cover_every_parameter_in_order():
    params = [torch.zeros(n) for n in (5, 3, 9, 1, 1)]
    blocks = parameter_blocks(params, 8)
    assert [[p.numel() for p in b] for b in blocks] == [[5, 3], [9], [1, 1]]
    assert [p for b in blocks for p in b] == params


@pytest.mark.parametrize("name", ["upgrad", "mgda", "imtl_g", "mean", "cagrad", "aligned_mtl"])
def test_the_blockwise_gramian_gives_the_same_step(name):
    """``jacobian_block_size``: the Gramian summed over parameter blocks and the direction from
    one more backward pass give the step of the whole Jacobian, to 1e-6."""
    data, tasks = _problem(4, missing=0.1)
    batch = data.batch(torch.arange(48))
    runs = []
    for block in (None, 50):
        tr = _trainer(tasks, aggregator=AGGREGATORS.build(name), jacobian_block_size=block)
        res = tr.train_step(batch)
        grads = torch.cat([p.grad.reshape(-1) for p in tr.model.parameters()])
        runs.append((res.aggregator_weights, grads, copy.deepcopy(tr.model.state_dict())))
    (w1, g1, m1), (w2, g2, m2) = runs
    torch.testing.assert_close(w2, w1, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(g2, g1, rtol=1e-6, atol=1e-6)
    for key in m1:
        torch.testing.assert_close(m2[key], m1[key], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("block", [None, 50])
def test_mean_takes_one_backward_pass_and_no_jacobian(block, monkeypatch):
    """Mean's weights read K only (``reads_gramian`` false): its step is the gradient of
    Σ a_k w_k L_k, one backward pass, the Jacobian never formed; the same step, weights and
    model as the Jacobian's a @ J (a Mean that declares it reads the Gramian), to 1e-6."""
    from mtlkit.aggregation import Mean

    class _ThroughTheJacobian(Mean):
        reads_gramian = True

    data, tasks = _problem(4, missing=0.3)
    batches = [data.batch(torch.arange(i, i + 16)) for i in range(0, 64, 16)]
    runs = []
    for agg in (_ThroughTheJacobian(), Mean()):
        tr = _trainer(tasks, aggregator=agg, jacobian_block_size=block)
        if isinstance(agg, _ThroughTheJacobian):
            monkeypatch.undo()
        else:
            import mtlkit.training.step as step

            def no_jacobian(*a, **k):
                raise AssertionError("the Jacobian was formed")

            monkeypatch.setattr(step, "jacobian", no_jacobian)
            monkeypatch.setattr(step, "jacobian_rows", no_jacobian)
        for b in batches:
            res = tr.train_step(b)
        grads = torch.cat([p.grad.reshape(-1) for p in tr.model.parameters()])
        runs.append((res.aggregator_weights, res.aggregator_tasks, grads, copy.deepcopy(tr.model.state_dict())))
        assert tr.plan.workspace is None or isinstance(agg, _ThroughTheJacobian)
    (w1, i1, g1, m1), (w2, i2, g2, m2) = runs
    assert i1 == i2
    torch.testing.assert_close(w2, w1, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(g2, g1, rtol=1e-6, atol=1e-6)
    for key in m1:
        torch.testing.assert_close(m2[key], m1[key], rtol=1e-6, atol=1e-6)


def test_the_blockwise_gramian_needs_a_gramian_based_or_streaming_aggregator():
    _, tasks = _problem(2)
    with pytest.raises(ValueError, match="jacobian_block_size=100 computes the Gramian block by block"):
        _trainer(tasks, aggregator=AGGREGATORS.build("trimmed_mean"), jacobian_block_size=100)


def test_the_jacobian_workspace_is_reused_and_steps_stay_exact():
    data, tasks = _problem(3, missing=0.0)
    batches = [data.batch(torch.arange(i, i + 16)) for i in range(0, 64, 16)]
    reused = _trainer(tasks, aggregator=AGGREGATORS.build("upgrad"))
    fresh = _trainer(tasks, aggregator=AGGREGATORS.build("upgrad"))
    reused.train_step(batches[0])
    ws = reused.plan.workspace
    assert ws is not None and tuple(ws.shape) == (3, sum(p.numel() for p in reused.shared))
    fresh.train_step(batches[0])
    for b in batches[1:]:
        reused.train_step(b)
        fresh.plan.workspace = None  # a new Jacobian every step
        fresh.train_step(b)
    assert reused.plan.workspace is ws
    for key, value in reused.model.state_dict().items():
        torch.testing.assert_close(value, fresh.model.state_dict()[key], rtol=0, atol=0)


@pytest.mark.slow
def test_training_compile_trains(monkeypatch, two_task_data):
    """``training.compile: true`` compiles the model's forward in place (the eager backend
    here, to keep the test short; the default backend is what runs)."""
    calls = []
    original = torch.nn.Module.compile

    def compile_eager(self, *args, **kwargs):
        calls.append(type(self).__name__)
        return original(self, backend="eager")

    monkeypatch.setattr(torch.nn.Module, "compile", compile_eager)
    data, tasks = two_task_data
    torch.manual_seed(0)
    model = HardSharing(mlp(10, (16,)), tasks)
    keys = set(model.state_dict())
    tr = Trainer(model, tasks, compile=True, epochs=2, batch_size=64, progress=False)
    hist = tr.fit(data)
    assert calls == ["HardSharing"]
    assert set(tr.model.state_dict()) == keys  # the same module: checkpoints are unchanged
    assert hist.records[-1]["train_loss"]["a"] < hist.records[0]["train_loss"]["a"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_no_hidden_synchronisation_on_cuda():
    """``torch.cuda.set_sync_debug_mode``: a plain step synchronises once (the update
    decision), an exact step twice, whatever K."""
    data, tasks = _problem(6, n=256)
    for aggregator, allowed in ((None, 1), (AGGREGATORS.build("mean"), 2), (AGGREGATORS.build("pcgrad"), 2)):
        tr = _trainer(tasks, aggregator=aggregator, device="cuda")
        batch = data.batch(torch.arange(128))
        tr.train_step(batch)
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                tr.train_step(batch)
        finally:
            torch.cuda.set_sync_debug_mode(0)
        syncs = [w for w in caught if "synchroniz" in str(w.message)]
        assert len(syncs) <= allowed, [str(w.message) for w in syncs]
