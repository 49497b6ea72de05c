"""The Gramian of fully connected layers from their inputs and output gradients
(``mtlkit.autogram``, ``training.gramian_engine``): the same Gramian as J Jᵀ and the same
direction as a @ J, layer by layer, with every case where the identity would be wrong left
to the Jacobian."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mtlkit import HardSharing, Task, Trainer
from mtlkit._registry import AGGREGATORS
from mtlkit.architectures.backbones import mlp
from mtlkit.autogram import LayerGramian, eligible_linears, prefers_layer
from mtlkit.jacobian import jacobian


class Trunk(nn.Module):
    """Linear layers in the situations the engine must tell apart."""

    def __init__(self, case: str) -> None:
        super().__init__()
        self.case = case
        self.a = nn.Linear(6, 8)
        self.b = nn.Linear(8, 8, bias=False)
        self.c = nn.Linear(8, 5)
        self.scale = nn.Parameter(torch.tensor(1.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a(x)
        h = F.relu(h, inplace=self.case == "inplace")  # in place: a's output is modified
        h = torch.tanh(self.b(h.view(x.shape[0], 2, 4).repeat(1, 1, 2)))  # a 3-D input: (N, 2, 8)
        if self.case == "twice":
            h = self.b(h)
        h = h.mean(1) * self.scale
        z = self.c(h)
        if self.case == "functional":  # c's weight is used outside its module too
            z = z + 0.1 * F.linear(h.flip(0), self.c.weight)
        return z


def _losses(trunk: nn.Module, x: torch.Tensor, k: int) -> list[torch.Tensor]:
    z = trunk(x)
    targets = torch.linspace(-1, 1, k)
    return [((z[:, i % z.shape[1]] - targets[i]) ** 2).mean() * (i + 1) for i in range(k)]


def _check(case: str, k: int = 4) -> list[str]:
    torch.manual_seed(0)
    trunk = Trunk(case)
    shared = list(trunk.parameters())
    engine = LayerGramian(eligible_linears(trunk, shared), shared, mode="layerwise")
    x = torch.randn(7, 6)
    seeds = [torch.tensor(0.5 + i) for i in range(k)]
    with engine.capture():
        rows = _losses(trunk, x, k)
    chosen = engine.select(k, rows)
    names = [n for c in chosen for n, m in trunk.named_modules() if m is c.module]
    j = jacobian(rows, shared, grad_outputs=seeds)
    seen = {}
    weights = torch.linspace(0.2, 1.0, k)

    def weights_from(g: torch.Tensor) -> torch.Tensor:
        seen["g"] = g
        return weights

    for p in shared:
        p.grad = None
    engine.backward(rows, seeds, chosen, weights_from)
    torch.testing.assert_close(seen["g"], j @ j.T, rtol=1e-5, atol=1e-6)
    got = torch.cat([p.grad.reshape(-1) for p in shared])
    torch.testing.assert_close(got, weights @ j, rtol=1e-5, atol=1e-6)
    return names


def test_gramian_and_direction_equal_the_jacobians():
    # a: 2-D input, bias; b: 3-D input, no bias, called once; c: 2-D, bias
    assert _check("plain") == ["a", "b", "c"]


@pytest.mark.parametrize(("case", "left_to_the_jacobian"),
                         [("inplace", "a"), ("twice", "b"), ("functional", "c")])
def test_unsafe_layers_are_left_to_the_jacobian(case, left_to_the_jacobian):
    names = _check(case)
    assert left_to_the_jacobian not in names and names  # the others still use the identity


def test_tied_subclassed_or_hooked_layers_are_not_eligible():
    class Own(nn.Linear):
        def forward(self, x):
            return super().forward(x) * 2

    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3), Own(3, 3), nn.Linear(3, 3), nn.Linear(3, 3))
    model[1].weight = model[0].weight  # tied
    model[3].register_forward_hook(lambda m, i, o: o + 1)
    frozen = model[4]
    shared = [p for n, p in model.named_parameters() if not n.startswith("4.")]
    assert eligible_linears(model, shared) == []
    assert eligible_linears(frozen, list(frozen.parameters())) == [frozen]


def test_the_cost_model_prefers_wide_layers_and_many_tasks():
    assert prefers_layer(40, 256, 512, 512)  # the benchmark's layers at K = 40
    assert prefers_layer(10, 256, 512, 512)
    assert not prefers_layer(40, 256, 64, 512)  # its first layer: a narrow input
    assert not prefers_layer(2, 256, 512, 512)
    assert not prefers_layer(40, 4096, 512, 512)  # more rows than inputs


def _trainer(method: str, engine: str, **kw) -> Trainer:
    torch.manual_seed(0)
    tasks = [Task(f"t{i}", "regression") for i in range(5)]
    model = HardSharing(mlp(12, (24, 24)), tasks)
    return Trainer(model, tasks, aggregator=AGGREGATORS.build(method), optimizer="sgd", lr=0.05, momentum=0.0,
                   batch_size=16, progress=False, gramian_engine=engine, **kw)


def _batch(seed: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(16, 12, generator=g)
    ys = {f"t{i}": torch.randn(16, 1, generator=g) for i in range(5)}
    ms = {f"t{i}": torch.rand(16, 1, generator=g) > 0.2 for i in range(5)}
    ms["t3"][:] = False if seed == 2 else ms["t3"]  # a step where one task has no label
    return x, ys, ms


GRAMIAN_METHODS = [n for n in AGGREGATORS.names()
                   if AGGREGATORS.get(n).gramian_based and AGGREGATORS.get(n).reads_gramian]


@pytest.mark.parametrize("method", GRAMIAN_METHODS)
def test_training_equals_the_jacobian_engine(method, monkeypatch):
    import mtlkit.training.step as step

    used = []
    original = step._layers_chosen
    monkeypatch.setattr(step, "_layers_chosen", lambda tr, rows: used.append(1) or original(tr, rows))
    layer, jac = _trainer(method, "layerwise"), _trainer(method, "jacobian")
    for s in range(4):
        r1, r2 = layer.train_step(_batch(s)), jac.train_step(_batch(s))
        torch.testing.assert_close(r1.aggregator_weights, r2.aggregator_weights, rtol=1e-4, atol=1e-5)
        assert r1.aggregator_tasks == r2.aggregator_tasks
    assert layer.plan.autogram is not None and jac.plan.autogram is None and used
    for (name, a), (_, b) in zip(layer.model.state_dict().items(), jac.model.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.parametrize("settings", [{"gramian_engine": "jacobian"}, {"precision": "bf16"},
                                      {"jacobian_block_size": 100}, {"level": "representation"},
                                      {"jacobian_engine": "batched"}])
def test_the_engine_is_off_where_it_does_not_apply(settings):
    tr = _trainer("upgrad", settings.pop("gramian_engine", "auto"), **settings)
    tr.setup()
    assert tr.plan.autogram is None


def test_off_for_methods_that_need_the_jacobian():
    for method in ("graddrop", "moco", "trimmed_mean", "mean"):
        tr = _trainer(method, "layerwise")
        tr.setup()
        assert tr.plan.autogram is None, method


def test_a_bad_engine_name_is_refused():
    with pytest.raises(ValueError, match=r"gramian_engine.*'fast'"):
        _trainer("upgrad", "fast")


def test_no_step_keeps_the_graph_alive_and_buffers_do_not_pile_up():
    import gc
    import weakref

    tr = _trainer("upgrad", "layerwise")
    refs = []
    for s in range(5):
        x, ys, ms = _batch(s)
        if s == 3:
            x, ys, ms = x[:9], {k: v[:9] for k, v in ys.items()}, {k: v[:9] for k, v in ms.items()}
        tr.train_step((x, ys, ms))
        assert tr.plan.autogram.calls == []
        refs.append(weakref.ref(tr.step_losses[0]) if tr.step_losses else None)
    gc.collect()
    assert all(r is None or r() is None for r in refs[:-1])
    assert len(tr.plan.autogram._buffers) <= 3  # one per layer and one for the other rows
