"""TrimmedMean orders each coordinate by a sorting network: the result must equal the
plain definition (``torch.sort`` along the tasks, mean of the kept rows) exactly."""

from __future__ import annotations

import pytest
import torch

from mtlkit.aggregation import TrimmedMean
from mtlkit.aggregation.trimmed_mean import _network


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


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("trim", [0, 1, 2, 5])
def test_equals_the_sort_exactly(dtype, trim):
    g = torch.Generator().manual_seed(trim)
    for k in (1, 2, 3, 4, 7, 10, 16, 40):
        j = torch.randn(k, 257, generator=g, dtype=dtype)
        j[:, :64] = torch.randint(-2, 3, (k, 64), generator=g).to(dtype)  # ties
        j[:, 64:80] *= 1e30
        assert torch.equal(TrimmedMean(trim_number=trim)(j), _by_sort(j, trim)), k


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
        assert torch.equal(got[~got.isnan()], want[~want.isnan()])
    got = TrimmedMean(trim_number=1)(j)
    assert torch.isfinite(got[0]) and got[1].isnan() and got[4].isnan()
    assert torch.isfinite(TrimmedMean(trim_number=2)(j)[1])


def test_differentiable_like_the_sort():
    j = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    TrimmedMean()(j).sum().backward()
    want = torch.autograd.grad(_by_sort(j, 1).sum(), j)[0]
    assert torch.equal(j.grad, want)
