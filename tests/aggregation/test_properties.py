"""The property suite: every registered aggregator, every family of Jacobians."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mtlkit._registry import AGGREGATORS
from mtlkit.aggregation import Aggregator, GramianWeightedAggregator

from ._properties import (
    CLEAR,
    FAMILIES,
    PROPERTIES,
    assert_finite,
    assert_non_conflicting,
    assert_permutation_invariant,
    assert_positive_multiple,
    assert_shape_dtype_device,
    build,
    claims,
    conflicting,
    constructor_params,
    documented_table,
    low_rank,
    magnitude,
    names,
    property_table,
    random_matrix,
    rel_tol,
    run,
    strongly_stationary_matrix,
)

ALL = names()
BAD_VALUES = ["bogus", -1, -1.5, float("nan"), 1.5, 10**9, True]


def test_registry_has_the_issue_methods():
    expected = {"mean", "mgda", "pcgrad", "cagrad", "gradvac", "graddrop", "imtl_g", "nash_mtl",
                "aligned_mtl", "upgrad"}
    assert expected <= set(ALL)


@pytest.mark.parametrize("name", ALL)
def test_contract_metadata(name):
    cls = AGGREGATORS.get(name)
    agg = cls()
    assert isinstance(agg, Aggregator)
    assert cls.__module__.rsplit(".", 1)[-1] == name  # registered under its file stem
    assert cls.paper, f"{cls.__name__} has no paper"
    assert ">>>" in (cls.__doc__ or ""), f"{cls.__name__} has no runnable example"
    assert str(agg) == cls.__name__
    assert repr(agg).startswith(f"{cls.__name__}(")
    assert set(agg.hparams()) == set(constructor_params(name))
    if agg.stateful:
        agg.reset()
        assert isinstance(agg.state_dict(), dict)
    assert isinstance(agg, GramianWeightedAggregator) == cls.gramian_based


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", ALL)
def test_shape_dtype_device_kept(name, dtype):
    assert_shape_dtype_device(build(name), random_matrix(dtype=dtype))
    assert_shape_dtype_device(build(name), conflicting(k=3, p=5, dtype=dtype))


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("name", ALL)
def test_finite_on_every_family(name, family):
    assert_finite(build(name), FAMILIES[family]())


@pytest.mark.parametrize("name", ALL)
def test_zero_jacobian_gives_zero(name):
    d = run(build(name), torch.zeros(3, 5, dtype=torch.float64))
    assert torch.equal(d, torch.zeros(5, dtype=torch.float64))


@pytest.mark.parametrize("scale", [1e-12, 1.0, 1e12])
@pytest.mark.parametrize("name", ALL)
def test_one_task_gives_the_gradient_up_to_positive_scaling(name, scale):
    g = scale * torch.tensor([[0.3, -1.2, 2.0, 0.0, 0.7]], dtype=torch.float64)
    assert_positive_multiple(run(build(name), g), g[0])


@pytest.mark.parametrize("name", [n for n in ALL if AGGREGATORS.get(n).permutation_invariant])
@pytest.mark.parametrize("family", ["random", "conflicting", "low_rank", "k_gt_p", "zero_row"])
def test_permutation_invariance_where_flagged(name, family):
    assert_permutation_invariant(name, FAMILIES[family]())


# the families this test was written for (its bound is relative to the largest row; the
# families added since, e.g. nearly stationary or rows from 1e-15 to 1e15, are checked with
# per-row allowances by test_claimed_property_holds_on_every_family)
ORIGINAL_FAMILIES = ["random", "conflicting", "low_rank", "k_gt_p", "zero_row", "duplicated", "opposite",
                     "zero", "tiny", "huge", "tiny_f32", "huge_f32"]


@pytest.mark.parametrize("name", [n for n in ALL if AGGREGATORS.get(n).non_conflicting])
@pytest.mark.parametrize("family", ORIGINAL_FAMILIES)
def test_non_conflicting_where_flagged(name, family):
    j = FAMILIES[family]()
    d = run(build(name), j)
    jn = j.double() / max(float(j.double().abs().max()), 1e-300)
    dn = d.double() / max(float(j.double().abs().max()), 1e-300)
    assert_non_conflicting(jn, dn, tol=1e-5 if j.dtype == torch.float32 else 1e-9)


@pytest.mark.parametrize("name", [n for n in ALL if AGGREGATORS.get(n).non_conflicting])
@pytest.mark.parametrize("seed", range(20))
def test_non_conflicting_on_random_conflicts(name, seed):
    k = 2 + seed % 7
    j = conflicting(k=k, p=3 + seed % 5, seed=seed) if seed % 2 else low_rank(k=k, seed=seed)
    assert_non_conflicting(j, run(build(name), j))


def test_non_conflicting_flags():
    for n in ("mgda", "upgrad", "nash_mtl"):
        assert AGGREGATORS.get(n).non_conflicting, n


@pytest.mark.parametrize("name", ["pcgrad", "gradvac"])
@pytest.mark.parametrize("seed", range(10))
def test_two_task_surgery_is_non_conflicting(name, seed):
    # PCGrad's guarantee with two tasks (GradVac's first step is PCGrad: targets start at 0)
    assert_non_conflicting(conflicting(k=2, p=6, seed=seed), run(build(name), conflicting(k=2, p=6, seed=seed)))


@pytest.mark.parametrize("name", [n for n in ALL if AGGREGATORS.get(n).randomized])
def test_randomized_methods_are_seeded(name):
    j = conflicting(k=5, p=8)
    a, b, c = build(name, seed=3), build(name, seed=3), build(name, seed=4)
    da = [run(a, j) for _ in range(3)]
    db = [run(b, j) for _ in range(3)]
    for x, y in zip(da, db):
        assert torch.equal(x, y)
    dc = [run(c, j) for _ in range(3)]
    assert any(not torch.equal(x, y) for x, y in zip(da, dc))


@pytest.mark.parametrize("name", [n for n in ALL if AGGREGATORS.get(n).stateful])
def test_state_dict_resumes_exactly(name):
    j1, j2 = conflicting(k=4, p=7, seed=1), conflicting(k=4, p=7, seed=2)
    a = build(name)
    run(a, j1)
    run(a, j2)
    state = a.state_dict()
    expected = run(a, j1)
    b = build(name)
    b.load_state_dict(state)
    torch.testing.assert_close(run(b, j1), expected, rtol=1e-12, atol=1e-12)
    a.reset()
    fresh = build(name)
    torch.testing.assert_close(run(a, j1), run(fresh, j1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", [n for n in ALL if constructor_params(n)])
def test_bad_hyperparameters_are_rejected_naming_the_parameter(name):
    cls = AGGREGATORS.get(name)
    for param in constructor_params(name):
        rejected = 0
        for bad in BAD_VALUES:
            try:
                cls(**{param: bad})
            except (ValueError, TypeError) as exc:
                assert f"'{param}'" in str(exc), f"{cls.__name__}({param}={bad!r}): {exc}"
                assert cls.__name__ in str(exc)
                rejected += 1
        assert rejected, f"{cls.__name__} accepts every bad value of {param!r}"


@pytest.mark.parametrize("name", ALL)
def test_bad_input_is_rejected(name):
    agg = build(name)
    with pytest.raises(ValueError, match="2-D Jacobian"):
        agg(torch.zeros(3))
    with pytest.raises(ValueError, match="no task rows"):
        agg(torch.zeros(0, 3))
    with pytest.raises(ValueError, match="tasks"):
        agg(torch.ones(2, 3), tasks=[0, 0])


@pytest.mark.parametrize("name", [n for n in ALL if AGGREGATORS.get(n).gramian_based])
def test_gramian_methods_are_weights_times_jacobian(name):
    j = conflicting(k=4, p=7, seed=5)
    w = build(name).weights_of(j)
    d = run(build(name), j)
    torch.testing.assert_close(d, w @ j, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", [n for n in ALL if AGGREGATORS.get(n).gramian_based
                                  and not AGGREGATORS.get(n).randomized])
def test_gramian_methods_only_see_the_gramian(name):
    # J and J Q (Q orthogonal) have the same Gramian: same weights
    j = conflicting(k=3, p=4, seed=7)
    q, _ = torch.linalg.qr(torch.randn(4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    torch.testing.assert_close(build(name).weights_of(j), build(name).weights_of(j @ q), rtol=1e-7, atol=1e-9)


def test_hparams_round_trip_through_the_registry():
    for entry in AGGREGATORS:
        agg = entry.obj()
        again = AGGREGATORS.build(entry.name, **agg.hparams())
        assert repr(again) == repr(agg)
        assert not math.isnan(0.0)


@pytest.mark.parametrize("name", [n for n in ALL if AGGREGATORS.get(n).gramian_based])
def test_weights_from_a_gramian_equal_weights_of(name):
    # the trainer's entry point: it computes the (possibly process-averaged) Gramian itself
    j = conflicting(k=3, p=6, seed=9)
    torch.testing.assert_close(build(name).weights_from(j @ j.T, tasks=[4, 0, 2]),
                               build(name).weights_of(j, tasks=[4, 0, 2]))
    with pytest.raises(ValueError, match="square"):
        build(name).weights_from(j)


# --------------------------------------------------------------------------- the property table
# Every registered method, every property of the table, every family: a claimed property (✓)
# holds on all of them, an unclaimed one (✗) clearly fails on at least one (else the table
# under-states the method: claim it, or add the family where it fails).
CLAIMS = {name: claims(name) for name in ALL}
CLAIMED = [(n, f) for n in ALL for f in PROPERTIES if CLAIMS[n][f]]
UNCLAIMED = [(n, f) for n in ALL for f in PROPERTIES if not CLAIMS[n][f]]


@pytest.mark.parametrize(("name", "flag"), CLAIMED)
def test_claimed_property_holds_on_every_family(name, flag):
    prop = PROPERTIES[flag]
    bad = {family: prop.check(name, make()) for family, make in prop.families.items()}
    broken = {f: f"{b:.3g}" for f, b in bad.items() if not b <= 1.0}
    assert not broken, (f"{AGGREGATORS.get(name).__name__} claims {flag} but breaks it (defect / round-off "
                        f"allowance) on: {broken}")


@pytest.mark.parametrize(("name", "flag"), UNCLAIMED)
def test_unclaimed_property_fails_on_some_family(name, flag):
    prop = PROPERTIES[flag]
    worst = max(((prop.check(name, make()), family) for family, make in prop.families.items()),
                key=lambda bf: bf[0])
    assert worst[0] >= CLEAR, (
        f"{AGGREGATORS.get(name).__name__} does not claim {flag}, yet no family breaks it (worst: "
        f"{worst[0]:.3g} × the round-off allowance on '{worst[1]}'): set the flag if the method "
        f"guarantees it, or add a family where it fails")


def _random_jacobian(seed: int, kind: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    k = 2 + seed % 5
    p = 1 + (seed // 5) % 8
    j = torch.randn(k, p, generator=g, dtype=torch.float64)
    if kind == 1:  # rows scaled from 1e-15 to 1e15
        j = 10.0 ** (30 * torch.rand(k, 1, generator=g, dtype=torch.float64) - 15) * j
    elif kind == 2 and k > 2:  # low rank
        j = torch.randn(k, 1, generator=g, dtype=torch.float64) @ j[:1] + 1e-3 * j
    elif kind == 3:  # nearly weakly stationary
        j[-1] = -(0.2 + torch.rand(k - 1, generator=g, dtype=torch.float64)) @ j[:-1] + 1e-9 * j[-1]
    elif kind == 4:  # a zero row
        j[seed % k] = 0.0
    return j


# Aligned-MTL scales by σ², the smallest eigenvalue of G above λ_max·K·eps (the authors'
# cut-off): when the gradients' norms spread over more than ~1e7 the eigenvalues near the
# cut-off are round-off, so σ — and the result, at 1e-2 — depends on the order the Gramian's
# eigendecomposition sees the rows in. Not fixable from G in float64; reported in issue 21.
_ALIGNED_ROUND_OFF = pytest.mark.xfail(strict=True, reason="Aligned-MTL's σ is round-off for a Gramian whose "
                                       "spectrum spans more than 1/eps (rows scaled 1e-15 ... 1e15)")


@pytest.mark.parametrize("name", [pytest.param(n, marks=_ALIGNED_ROUND_OFF) if n == "aligned_mtl" else n
                                  for n in ALL])
@settings(max_examples=12, deadline=None, derandomize=True, database=None)
@given(seed=st.integers(0, 10_000), kind=st.integers(0, 4))
def test_claimed_properties_on_random_jacobians(name, seed, kind):
    j = _random_jacobian(seed, kind)
    for flag, prop in PROPERTIES.items():
        if CLAIMS[name][flag] and flag != "equals_mean_for_one_task":
            b = prop.check(name, j)
            assert b <= 1.0, f"{AGGREGATORS.get(name).__name__} breaks {flag} ({b:.3g}) on seed={seed} kind={kind}"


def test_docs_property_table_matches_the_flags():
    expected = property_table()
    assert documented_table() == expected, (
        "docs/aggregation.md's property table differs from the flags; regenerate it with "
        "`python tests/aggregation/_properties.py --write`. Expected:\n" + expected)


@pytest.mark.parametrize("name", [n for n in ALL if AGGREGATORS.get(n).gramian_based and CLAIMS[n]["non_conflicting"]])
def test_non_conflicting_weightings_vanish_at_strong_stationarity(name):
    # Jᵀw = 0 with w > 0 leaves {x : Jx ≥ 0} = the orthogonal of the rows, which meets their
    # span only at 0: a non-conflicting weighting of the rows must return 0
    j = strongly_stationary_matrix()
    d, m = magnitude(build(name), j)
    assert float(d.norm()) <= 1e3 * rel_tol(j.dtype) * max(m, float(j.norm(dim=1).sum()))


@pytest.mark.parametrize("name", ALL)
def test_a_jacobian_that_requires_grad_is_accepted(name):
    j = conflicting(k=3, p=5).requires_grad_(True)
    d = run(build(name), j)
    assert torch.isfinite(d).all()
    torch.testing.assert_close(d.detach(), run(build(name), j.detach()), rtol=1e-12, atol=1e-14)
    if d.requires_grad:
        d.sum().backward()
        assert j.grad is not None and torch.isfinite(j.grad).all()
