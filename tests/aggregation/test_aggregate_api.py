"""``Aggregator.aggregate``: one entry point giving the direction and, for a weighting of the
Gramian, the weights; a precomputed Gramian is used instead of forming ``J Jᵀ`` again."""

from __future__ import annotations

import dataclasses
import warnings

import pytest
import torch

from mtlkit._registry import AGGREGATORS
from mtlkit.aggregation import Aggregation, Mean
from mtlkit.aggregation._base import gramian

from ._properties import FAMILIES, build, conflicting, names

ALL = names()
GRAMIAN = [n for n in ALL if AGGREGATORS.get(n).gramian_based]
OTHERS = [n for n in ALL if not AGGREGATORS.get(n).gramian_based]
# families on which every method is well defined (NashMTL falls back, with a warning, elsewhere)
JACOBIANS = ["random", "conflicting", "low_rank", "k_gt_p", "zero_row", "zero"]


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="NashMTL", category=RuntimeWarning)
        return fn(*args, **kwargs)


def test_the_registry_has_both_kinds():
    assert GRAMIAN and OTHERS


def test_aggregation_is_a_frozen_dataclass():
    a = Aggregation(torch.zeros(3), None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.direction = torch.ones(3)  # type: ignore[misc]


@pytest.mark.parametrize("family", JACOBIANS)
@pytest.mark.parametrize("name", ALL)
def test_aggregate_direction_is_the_call(name, family):
    j = FAMILIES[family]()
    # two fresh instances: stateful / randomized methods start from the same state
    expected = quiet(build(name), j)
    out = quiet(build(name).aggregate, j)
    assert isinstance(out, Aggregation)
    assert torch.equal(out.direction, expected)
    assert out.direction.dtype == j.dtype and out.direction.device == j.device
    if AGGREGATORS.get(name).gramian_based:
        assert out.weights is not None and out.weights.shape == (j.shape[0],)
    else:
        assert out.weights is None


@pytest.mark.parametrize("name", ALL)
def test_aggregate_keeps_the_state_in_step_with_the_call(name):
    # three successive steps, with task indices: the state evolves identically
    a, b = build(name), build(name)
    for seed in range(3):
        j = conflicting(k=3, p=6, seed=seed)
        tasks = [2, 0, 1] if seed % 2 else [0, 1, 2]
        torch.testing.assert_close(quiet(b.aggregate, j, tasks=tasks).direction, quiet(a, j, tasks=tasks),
                                   rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("family", JACOBIANS)
@pytest.mark.parametrize("name", GRAMIAN)
def test_a_given_gramian_gives_the_same_aggregation(name, family, dtype):
    j = FAMILIES[family]().to(dtype)
    own = quiet(build(name).aggregate, j)
    # the very matrix the method would form: the same numbers
    given = quiet(build(name).aggregate, j, gramian=gramian(j))
    assert torch.equal(given.direction, own.direction)
    assert torch.equal(given.weights, own.weights)
    # J Jᵀ as one product (round-off differs from the grouped product): the same direction;
    # the weights too where they are unique (full row rank)
    other = quiet(build(name).aggregate, j, gramian=j @ j.T)
    tol = {"rtol": 1e-4, "atol": 1e-5} if dtype == torch.float32 else {"rtol": 1e-9, "atol": 1e-11}
    scale = max(float(own.direction.abs().max()), float(j.abs().max()), 1e-30)
    torch.testing.assert_close(other.direction / scale, own.direction / scale, **tol)
    if family in ("random", "conflicting"):
        torch.testing.assert_close(other.weights, own.weights, **tol)


@pytest.mark.parametrize("family", JACOBIANS)
@pytest.mark.parametrize("name", GRAMIAN)
def test_direction_is_weights_times_jacobian(name, family):
    j = FAMILIES[family]()
    for out in (quiet(build(name).aggregate, j), quiet(build(name).aggregate, j, gramian=j @ j.T)):
        assert out.weights is not None
        assert torch.equal(out.direction, out.weights.to(j.dtype) @ j)
    assert torch.equal(quiet(build(name).aggregate, j).weights, quiet(build(name).weights_of, j))


@pytest.mark.parametrize("name", GRAMIAN)
def test_the_given_gramian_is_the_one_used(name):
    # a Gramian computed elsewhere (e.g. summed over processes) drives the weights; they are
    # applied to the local Jacobian
    j = conflicting(k=3, p=6, seed=3)
    other = conflicting(k=3, p=6, seed=4)
    g = other @ other.T
    out = quiet(build(name).aggregate, j, gramian=g, tasks=[0, 1, 2])
    expected = quiet(build(name).weights_from, g, tasks=[0, 1, 2])
    torch.testing.assert_close(out.weights, expected)
    torch.testing.assert_close(out.direction, expected @ j)


def test_a_float64_gramian_with_a_float32_jacobian():
    j = conflicting(k=3, p=5, dtype=torch.float32)
    out = build("upgrad").aggregate(j, gramian=(j @ j.T).double())
    assert out.direction.dtype == torch.float32
    assert out.weights is not None and out.weights.dtype == torch.float64


def test_mean_never_forms_the_gramian(monkeypatch):
    import mtlkit.aggregation._base as base

    def boom(_):
        raise AssertionError("the Gramian was formed")

    monkeypatch.setattr(base, "gramian", boom)
    j = conflicting(k=3, p=5)
    out = Mean().aggregate(j)
    assert out.weights is not None
    torch.testing.assert_close(out.weights, torch.full((3,), 1 / 3, dtype=j.dtype))
    torch.testing.assert_close(out.direction, j.mean(dim=0))


@pytest.mark.parametrize("name", OTHERS)
def test_methods_that_are_not_weightings_ignore_a_valid_gramian(name):
    j = conflicting(k=3, p=6, seed=1)
    plain = build(name).aggregate(j)
    given = build(name).aggregate(j, gramian=torch.zeros(3, 3, dtype=j.dtype))
    assert given.weights is None
    assert torch.equal(given.direction, plain.direction)


@pytest.mark.parametrize("bad", [torch.zeros(3, 4), torch.zeros(2, 2), torch.zeros(4, 4), torch.zeros(3),
                                 torch.zeros(3, 3, dtype=torch.int64), "gramian"])
@pytest.mark.parametrize("name", ALL)
def test_a_gramian_of_the_wrong_shape_is_a_clear_error(name, bad):
    j = conflicting(k=3, p=6)
    with pytest.raises(ValueError, match=r"Gramian") as info:
        build(name).aggregate(j, gramian=bad)
    assert AGGREGATORS.get(name).__name__ in str(info.value)
    if isinstance(bad, torch.Tensor) and bad.dim() == 2 and bad.shape[0] == bad.shape[1] and len(bad) != 3:
        assert "3 rows" in str(info.value)


@pytest.mark.parametrize("name", ALL)
def test_the_jacobian_is_still_checked(name):
    with pytest.raises(ValueError, match="2-D Jacobian"):
        build(name).aggregate(torch.zeros(3), gramian=torch.zeros(3, 3))
    with pytest.raises(ValueError, match="tasks"):
        build(name).aggregate(torch.ones(2, 3), tasks=[0, 0])
