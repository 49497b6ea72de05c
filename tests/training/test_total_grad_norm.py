"""The plain step's non-finite check (issue 22): ``total_grad_norm`` is the value of
``torch.nn.utils.get_total_norm`` (without its per-call wrappers), non-finite iff some entry
is, and falls back to torch's own function for gradients of mixed dtypes."""

from __future__ import annotations

import pytest
import torch

from mtlkit.training.step import total_grad_norm


def test_total_grad_norm_is_torchs_value():
    g = torch.Generator().manual_seed(0)
    grads = [torch.randn(5, 3, generator=g), torch.randn(7, generator=g) * 1e3, torch.randn(1, generator=g)]
    torch.testing.assert_close(total_grad_norm(grads, torch.device("cpu")), torch.nn.utils.get_total_norm(grads))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_total_grad_norm_is_non_finite_iff_an_entry_is(bad):
    grads = [torch.ones(4), torch.zeros(3)]
    assert bool(torch.isfinite(total_grad_norm(grads, torch.device("cpu"))))
    grads[1][2] = bad
    assert not bool(torch.isfinite(total_grad_norm(grads, torch.device("cpu"))))


def test_total_grad_norm_of_mixed_dtypes_and_of_nothing():
    grads = [torch.full((4,), 2.0), torch.full((1,), 3.0, dtype=torch.float64)]
    assert float(total_grad_norm(grads, torch.device("cpu"))) == pytest.approx(5.0)
    assert float(total_grad_norm([], torch.device("cpu"))) == 0.0
