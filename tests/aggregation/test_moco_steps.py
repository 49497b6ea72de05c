"""MoCo writes its tracked estimates in place and checks finiteness on the K×K Gramian:
the directions, weights and state must be those of the plain algorithm, step by step."""

from __future__ import annotations

import numpy as np
import torch

from mtlkit.aggregation import MoCo
from mtlkit.aggregation._simplex import project_to_simplex


def _reference_steps(jacobians, task_lists, beta=0.5, gamma=0.1, rho=0.01, bs=0.5, gs=0.5):
    """Fernando et al. (2023), Algorithm 1, written out (y_i starts at the first gradient)."""
    y: dict[int, torch.Tensor] = {}
    lam: dict[int, float] = {}
    out, step = [], 0
    for j, ids in zip(jacobians, task_lists, strict=True):
        if not torch.isfinite(j).all():
            out.append(None)
            continue
        step += 1
        b_k, g_k = beta * step ** (-bs), gamma * step ** (-gs)
        rows = [
            j[i].clone() if t not in y or y[t].shape != j[i].shape else y[t] + b_k * (j[i] - y[t])
            for i, t in enumerate(ids)
        ]
        Y = torch.stack(rows).double()
        G = (Y @ Y.T).numpy()
        lam0 = np.array([lam.get(t, 1.0 / len(ids)) for t in ids])
        new = project_to_simplex(lam0 - g_k * (G @ lam0 + rho * lam0))
        y.update((t, Y[i].to(j.dtype)) for i, t in enumerate(ids))
        lam.update(zip(ids, new.tolist()))
        out.append(torch.as_tensor(new) @ Y)
    return out, lam


def test_steps_equal_the_plain_algorithm():
    g = torch.Generator().manual_seed(0)
    task_lists = [[0, 1, 2], [0, 1, 2], [2, 0], [0, 1, 2, 3], [1, 3], [0, 1, 2, 3]]
    jacobians = [torch.randn(len(t), 50, generator=g, dtype=torch.float64) for t in task_lists]
    jacobians[3] = jacobians[3].clone()
    jacobians[3][1, 4] = float("nan")  # a skipped step: state untouched
    moco = MoCo(rho=0.01)
    want, lam = _reference_steps(jacobians, task_lists)
    for j, ids, w in zip(jacobians, task_lists, want, strict=True):
        d = moco(j, tasks=ids)
        if w is None:
            assert not torch.isfinite(d).all()
        else:
            torch.testing.assert_close(d, w, rtol=1e-6, atol=1e-9)
    assert moco.lambda_.keys() == lam.keys()
    assert np.allclose([moco.lambda_[t] for t in lam], list(lam.values()), rtol=1e-6, atol=1e-12)


def test_overflowing_gramian_falls_back_to_float64():
    j = torch.tensor([[3e19, 0.0], [0.0, 2e19]], dtype=torch.float32)  # J Jᵀ overflows float32
    moco = MoCo(gamma=0.5)
    d = moco(j)
    assert torch.isfinite(d).all()
    want, _ = _reference_steps([j.double()], [[0, 1]], gamma=0.5, rho=0.0)
    torch.testing.assert_close(d.double(), want[0], rtol=1e-6, atol=0)
    assert all(torch.isfinite(y).all() for y in moco.tracked_.values())


def test_alternating_buffers_give_the_plain_algorithm():
    """Same tasks step after step (the fused lerp into the spare buffer), subsets, a new
    order, a skipped step and a restored state: the plain algorithm's directions and weights
    to 1e-6, and the steady state alternates between two buffers (no K×P allocation)."""
    g = torch.Generator().manual_seed(1)
    task_lists = [[0, 1, 2]] * 4 + [[2, 0], [0, 1, 2], [0, 1, 2], [1, 0, 2], [1, 0, 2], [0, 1, 2, 3]] + \
        [[0, 1, 2, 3]] * 3
    jacobians = [torch.randn(len(t), 40, generator=g) for t in task_lists]
    jacobians[2] = jacobians[2].clone()
    jacobians[2][0, 3] = float("inf")  # skipped: the state and the buffers stay as they were
    moco = MoCo(rho=0.01)
    want, lam = _reference_steps([j.double() for j in jacobians], task_lists)
    pointers = []
    for j, ids, w in zip(jacobians, task_lists, want, strict=True):
        d = moco(j, tasks=ids)
        if w is None:
            assert not torch.isfinite(d).all()
            continue
        torch.testing.assert_close(d.double(), w, rtol=1e-6, atol=1e-6)
        pointers.append(moco._buffer.data_ptr())
    assert np.allclose([moco.lambda_[t] for t in lam], list(lam.values()), rtol=1e-6, atol=1e-9)
    assert len(set(pointers[-3:])) == 2 and pointers[-1] == pointers[-3]  # two buffers alternate
    # a restored state continues exactly as the original
    twin = MoCo(rho=0.01)
    twin.load_state_dict(moco.state_dict())
    nxt = torch.randn(4, 40, generator=g)
    torch.testing.assert_close(twin(nxt, tasks=[0, 1, 2, 3]), moco(nxt, tasks=[0, 1, 2, 3]), rtol=0, atol=0)
    assert all(torch.equal(twin.tracked_[t], moco.tracked_[t]) for t in range(4))
