"""Properties every registered weighting must have (iterating the registry, so a new method
is checked without editing this file)."""

from __future__ import annotations

import copy
import inspect

import pytest
import torch

from mtlkit._registry import WEIGHTINGS
from mtlkit.weighting import Equal, StepContext, Weighting

from ._helpers import SIZES, TASKS, TinyModel, build, copy_state, drive

NAMES = WEIGHTINGS.names()
PRESENT = torch.tensor([True, False, True])


def _step(w: Weighting, model: TinyModel, gen: torch.Generator | None = None,
          present: torch.Tensor | None = None):
    losses = model.losses()
    if present is not None:
        losses = torch.where(present, losses, losses * 0.0)  # absent tasks have loss 0
    return losses, w(losses, model.context(step=9, present=present, generator=gen))


@pytest.mark.parametrize("name", NAMES)
def test_weights_finite_non_negative_and_the_derivative_of_the_objective(name):
    w, model = build(name), TinyModel()
    gen = torch.Generator().manual_seed(0)
    for weights in drive(w, model, 5, generator=gen):
        assert weights.shape == (3,)
        assert bool(torch.isfinite(weights).all()) and bool((weights >= 0).all()), weights
    losses, res = _step(w, model, gen)
    assert res.objective.shape == ()
    assert bool(torch.isfinite(res.objective))
    assert not res.weights.requires_grad
    (d,) = torch.autograd.grad(res.objective, losses, retain_graph=True)
    torch.testing.assert_close(d, res.weights, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_absent_tasks_get_weight_zero(name):
    w, model = build(name), TinyModel()
    gen = torch.Generator().manual_seed(0)
    for weights in drive(w, model, 4, generator=gen, present=PRESENT):
        assert float(weights[1]) == 0.0
    losses, res = _step(w, model, gen, PRESENT)
    assert float(res.weights[1]) == 0.0
    (d,) = torch.autograd.grad(res.objective, losses, retain_graph=True)
    assert float(d[1]) == 0.0
    assert bool(torch.isfinite(res.objective))


@pytest.mark.parametrize("name", NAMES)
def test_state_round_trip_gives_identical_next_weights(name):
    w, model = build(name), TinyModel()
    gen = torch.Generator().manual_seed(0)
    drive(w, model, 4, generator=gen)
    state = copy_state(w)
    model.rep = None  # the last step's representation (a non-leaf tensor) is not state
    model2, gen2 = copy.deepcopy(model), torch.Generator().manual_seed(0)
    gen2.set_state(gen.get_state())
    resumed = build(name)
    resumed.load_state_dict(state)
    for a, b in zip(drive(w, model, 3, generator=gen), drive(resumed, model2, 3, generator=gen2)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    _, ra = _step(w, model, gen)
    _, rb = _step(resumed, model2, gen2)
    torch.testing.assert_close(ra.objective, rb.objective, rtol=0, atol=0)


@pytest.mark.parametrize("name", NAMES)
def test_state_survives_the_checkpoint_format(name):
    from mtlkit.training.checkpoint import flatten_state, unflatten_state

    w, model = build(name), TinyModel()
    drive(w, model, 4, generator=torch.Generator().manual_seed(0))
    tree, tensors = flatten_state(w.state_dict())
    resumed = build(name)
    resumed.load_state_dict(unflatten_state(copy.deepcopy(tree), {k: v.clone() for k, v in tensors.items()}))
    for (k, a), (k2, b) in zip(w.state_dict().items(), resumed.state_dict().items()):
        assert k == k2
        if isinstance(a, torch.Tensor):
            torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_numbers(name):
    runs = []
    for _ in range(2):
        runs.append(drive(build(name), TinyModel(), 4, generator=torch.Generator().manual_seed(5)))
    for a, b in zip(*runs):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("name", NAMES)
def test_one_task(name):
    w = WEIGHTINGS.get(name)()
    w.setup(["a"], {"a": 10})
    model = TinyModel(k=1)
    for weights in drive(w, model, 3, generator=torch.Generator().manual_seed(0)):
        assert weights.shape == (1,) and bool(torch.isfinite(weights).all())


@pytest.mark.parametrize("name", NAMES)
def test_registry_metadata_docstring_and_repr(name):
    cls = WEIGHTINGS.get(name)
    assert issubclass(cls, Weighting)
    assert cls.paper, f"{name} must cite its paper in `paper`"
    doc = inspect.getdoc(cls) or ""
    assert ">>>" in doc, f"{name}'s docstring needs a runnable example"
    w = cls()
    assert repr(w).startswith(f"{cls.__name__}(") and str(w) == cls.__name__
    for p in inspect.signature(cls.__init__).parameters.values():
        if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            assert p.kind is p.KEYWORD_ONLY, f"{name}: hyperparameter {p.name!r} must be keyword-only"
    if cls.stateful is False:
        assert not list(w.buffers()) or all(not b.numel() for b in w.buffers())


@pytest.mark.parametrize("seed", range(5))
def test_equal_is_the_plain_sum(seed):
    losses = torch.rand(7, generator=torch.Generator().manual_seed(seed)) * 10
    res = Equal()(losses, StepContext())
    assert float(res.objective) == pytest.approx(float(losses.sum()), rel=1e-6)
    torch.testing.assert_close(res.weights, torch.ones(7))


def test_registry_holds_the_issue_methods():
    expected = {"equal", "static", "inverse_size", "uncertainty", "gradnorm", "dwa", "rlw", "gls",
                "imtll", "dbmtl", "famo"}
    assert expected <= set(NAMES)


def test_sizes_and_tasks_of_the_helpers_match():
    assert set(SIZES) == set(TASKS)
