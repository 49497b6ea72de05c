"""TrimmedMean keeps, in every coordinate, exactly the values that the plain definition
(``torch.sort`` along the tasks, mean of the kept rows) keeps, ties included; the streamed
path sums them in task order, so the result equals the sort's bit for bit when the sum is
exact (integer values) and up to the rounding of the sum otherwise."""

from __future__ import annotations

import pytest
import torch

from mtlkit.aggregation import TrimmedMean
from mtlkit.aggregation.trimmed_mean import _network, _network_mean, _streamed_mean


def _by_sort(jacobian: torch.Tensor, trim: int) -> torch.Tensor:
    k = jacobian.shape[0]
    b = min(trim, (k - 1) // 2)
    if b == 0:
        return jacobian.mean(dim=0)
    return torch.sort(jacobian, dim=0).values[b : k - b].mean(dim=0)


@pytest.mark.parametrize("k", [*range(1, 18), 31, 40, 41])
def test_network_sorts_every_column(k):
    g = torch.Generator().manual_seed(k)
    x = torch.randint(-3, 4, (k, 500), generator=g).double()  # many ties
    rows = list(x.unbind(0))
    for i, j in _network(k):
        assert i < j < k
        rows[i], rows[j] = torch.minimum(rows[i], rows[j]), torch.maximum(rows[i], rows[j])
    got = torch.stack(rows) if k else x
    assert torch.equal(got, torch.sort(x, dim=0).values)


def _within_rounding(got, want, j, trim):
    """|got − want| within the rounding of two sums of the kept values in different orders."""
    k = j.shape[0]
    b = min(trim, (k - 1) // 2)
    kept = torch.sort(j, dim=0).values[b : k - b].abs().mean(dim=0)
    return bool(((got - want).abs() <= 2 * k * torch.finfo(j.dtype).eps * kept).all())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("trim", [0, 1, 2, 3, 5])
def test_keeps_exactly_the_values_of_the_sort(dtype, trim):
    """Integer values (sums exact in any order), many ties: bit for bit the sort's result."""
    g = torch.Generator().manual_seed(trim)
    for k in (*range(1, 18), 31, 40, 41):
        j = torch.randint(-3, 4, (k, 257), generator=g).to(dtype)
        assert torch.equal(TrimmedMean(trim_number=trim)(j), _by_sort(j, trim)), k


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("trim", [0, 1, 2, 5])
def test_equals_the_sort_up_to_the_rounding_of_the_sum(dtype, trim):
    g = torch.Generator().manual_seed(trim)
    for k in (1, 2, 3, 4, 7, 10, 16, 40):
        j = torch.randn(k, 257, generator=g, dtype=dtype)
        j[:, :64] = torch.randint(-2, 3, (k, 64), generator=g).to(dtype)  # ties
        j[:, 64:80] *= 1e30
        j[0, 80:120] = 1e30  # outliers: trimmed, never added to the kept values
        got, want = TrimmedMean(trim_number=trim)(j), _by_sort(j, trim)
        assert _within_rounding(got, want, j, trim), k


@pytest.mark.parametrize("k", [3, 4, 5, 8, 10, 17, 40])
@pytest.mark.parametrize("trim", [1, 2, 3, 8])
def test_the_stream_equals_the_previous_sorting_network(k, trim):
    """The streamed path against the previous implementation (the network over all rows), on
    random matrices with ties, across several column blocks."""
    b = min(trim, (k - 1) // 2)
    if b == 0:
        return
    g = torch.Generator().manual_seed(10 * k + trim)
    j = torch.randn(k, 1000, generator=g)
    j[:, ::7] = torch.randint(-1, 2, (k, 143), generator=g).float()
    import mtlkit.aggregation.trimmed_mean as tm

    old = tm._COLUMNS
    try:
        tm._COLUMNS = 96  # many blocks, the last one partial
        got = _streamed_mean(j, b)
    finally:
        tm._COLUMNS = old
    assert _within_rounding(got, _network_mean(j, b), j, trim)
    ints = torch.randint(-2, 3, (k, 300), generator=g).float()
    assert torch.equal(_streamed_mean(ints, b), _network_mean(ints, b))


def test_non_finite_values_as_the_sort():
    """NaN is the largest value in torch.sort: trimmed when at most b of them."""
    j = torch.randn(7, 6, dtype=torch.float64)
    j[0, 0] = j[1, 1] = j[2, 1] = float("nan")  # column 1: two NaNs, more than b = 1
    j[3, 2] = float("inf")
    j[4, 3], j[5, 3] = float("inf"), float("-inf")
    j[:, 4] = float("nan")
    for trim in (1, 2, 3):
        want, got = _by_sort(j, trim), TrimmedMean(trim_number=trim)(j)
        assert torch.equal(got.isnan(), want.isnan())
        finite = torch.isfinite(want)
        assert torch.equal(got[~finite & ~got.isnan()], want[~finite & ~want.isnan()])
        torch.testing.assert_close(got[finite], want[finite], rtol=1e-12, atol=1e-12)
    got = TrimmedMean(trim_number=1)(j)
    assert torch.isfinite(got[0]) and got[1].isnan() and got[4].isnan()
    assert torch.isfinite(TrimmedMean(trim_number=2)(j)[1])


def test_differentiable_like_the_sort():
    j = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    TrimmedMean()(j).sum().backward()
    want = torch.autograd.grad(_by_sort(j, 1).sum(), j)[0]
    assert torch.equal(j.grad, want)


def _hard_matrix(k: int, p: int, dtype: torch.dtype, seed: int) -> torch.Tensor:
    """Random values with ties, huge outliers, infinities of one sign and signed zeros."""
    g = torch.Generator().manual_seed(seed)
    j = torch.randn(k, p, generator=g, dtype=dtype)
    j[:, ::5] = torch.randint(-2, 3, (k, len(range(0, p, 5))), generator=g).to(dtype)
    j[0, 1::11] = 1e30
    j[k - 1, 2::13] = -1e30
    j[1, 3::17] = float("inf")
    j[:, 4::19] = -0.0
    return j


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("k", [3, 4, 5, 6, 9, 10, 40, 41])
def test_the_compiled_kernel_gives_the_streams_bits(dtype, k, monkeypatch):
    """mtlkit.aggregation._trimmed_kernel (numba, b = 1): the same floating-point operations
    in the same order as the torch stream, so the same bits, whatever the threads."""
    pytest.importorskip("numba")
    import mtlkit.aggregation.trimmed_mean as tm

    monkeypatch.delenv("MTLKIT_NUMBA", raising=False)
    j = _hard_matrix(k, 3 * 16384 + 77, dtype, k)  # several kernel blocks, the last one partial
    want = _streamed_mean(j, 1)
    got = tm._compiled_mean_one(j)
    assert got is not None
    assert torch.equal(got, want)
    assert torch.equal(TrimmedMean()(j), want)
    monkeypatch.setattr(tm, "_MIN_COLUMNS_PER_THREAD", 1000)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(3)  # three column ranges in three threads
        assert torch.equal(tm._compiled_mean_one(j), want)
    finally:
        torch.set_num_threads(threads)


def test_the_compiled_kernel_leaves_nan_to_the_sort_order(monkeypatch):
    """A NaN (or +inf and -inf in one column) sends the call to the torch route, which orders
    NaN as the largest value; MTLKIT_NUMBA=0, a non-contiguous or a half-precision matrix
    never reach the kernel."""
    pytest.importorskip("numba")
    import mtlkit.aggregation.trimmed_mean as tm

    monkeypatch.delenv("MTLKIT_NUMBA", raising=False)
    j = torch.randn(6, 50, dtype=torch.float64)
    j[2, 7] = float("nan")
    assert tm._compiled_mean_one(j) is None
    torch.testing.assert_close(TrimmedMean()(j), _by_sort(j, 1), rtol=1e-12, atol=1e-12)  # the NaN trimmed
    j = torch.randn(6, 50, dtype=torch.float64)
    j[0, 3], j[1, 3] = float("inf"), float("-inf")  # both trimmed: the kept mean is finite
    assert tm._compiled_mean_one(j) is None
    assert torch.isfinite(TrimmedMean()(j)[3])
    ok = torch.randn(6, 50)
    assert tm._compiled_mean_one(ok) is not None
    assert tm._compiled_mean_one(ok.t().contiguous().t()) is None
    assert tm._compiled_mean_one(ok.half()) is None
    monkeypatch.setenv("MTLKIT_NUMBA", "0")
    assert tm._compiled_mean_one(ok) is None


def test_a_run_loads_the_kernel_before_the_fit_timer(monkeypatch):
    """``warm_up_imports(trainer)`` calls the aggregator's ``warm_up``, which loads the kernel
    (numba) or does nothing (MTLKIT_NUMBA=0 / no numba); every other aggregator has the no-op."""
    import mtlkit.aggregation.trimmed_mean as tm
    from mtlkit.aggregation import Mean
    from mtlkit.run.train_one import warm_up_imports

    calls = []
    monkeypatch.setattr(tm, "_compiled_mean_one", lambda x: calls.append(tuple(x.shape)))

    class _Trainer:
        aggregator = TrimmedMean()

    warm_up_imports(_Trainer())
    assert calls == [(3, 1)]
    Mean().warm_up()
    TrimmedMean(trim_number=0).warm_up()
    assert calls == [(3, 1)]


def test_a_jacobian_that_requires_grad_under_no_grad():
    """Under ``torch.no_grad`` a Jacobian that requires grad takes the fast route (no graph
    is recorded), compiled or not."""
    j = torch.randn(6, 40, dtype=torch.float64, requires_grad=True)
    with torch.no_grad():
        got = TrimmedMean()(j)
    assert not got.requires_grad
    torch.testing.assert_close(got, _by_sort(j.detach(), 1), rtol=1e-12, atol=1e-12)
