"""Gradient-conflict statistics between task gradients, accumulated over an epoch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor


class ConflictMonitor:
    """Accumulates, per epoch, the pairwise cosine similarity of task gradients, the fraction
    of conflicting pairs (cos < 0) and each task's gradient norm relative to the mean norm.

    Fed with Jacobians (rows = present tasks, ``idx`` = their task indices).

    >>> m = ConflictMonitor(["a", "b"])
    >>> m.update(torch.tensor([[1.0, 0.0], [-1.0, 1.0]]), [0, 1])
    >>> round(m.epoch_summary()["mean_cosine"], 4), m.epoch_summary()["conflict_fraction"]
    (-0.7071, 1.0)
    """

    def __init__(self, task_names: Sequence[str]) -> None:
        self.task_names = list(task_names)
        k = len(self.task_names)
        self._cos_sum = torch.zeros(k, k, dtype=torch.float64)
        self._conf = torch.zeros(k, k, dtype=torch.float64)
        self._pair_n = torch.zeros(k, k, dtype=torch.float64)
        self._ratio_sum = torch.zeros(k, dtype=torch.float64)
        self._ratio_n = torch.zeros(k, dtype=torch.float64)

    def state_dict(self) -> dict[str, Any]:
        return {"cos_sum": self._cos_sum.clone(), "conf": self._conf.clone(), "pair_n": self._pair_n.clone(),
                "ratio_sum": self._ratio_sum.clone(), "ratio_n": self._ratio_n.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._cos_sum, self._conf, self._pair_n = state["cos_sum"], state["conf"], state["pair_n"]
        self._ratio_sum, self._ratio_n = state["ratio_sum"], state["ratio_n"]

    def reset(self) -> None:
        self.__init__(self.task_names)  # type: ignore[misc]

    @torch.no_grad()
    def update(self, jacobian: Tensor, idx: Sequence[int]) -> None:
        j = jacobian.detach().to(torch.float64)
        norms = j.norm(dim=1)
        unit = j / norms.clamp_min(1e-30).unsqueeze(1)
        cos = unit @ unit.T
        ix = torch.as_tensor(list(idx))
        valid = (norms > 0).float()
        pv = valid[:, None] * valid[None, :]
        self._cos_sum[ix[:, None], ix[None, :]] += cos * pv
        self._conf[ix[:, None], ix[None, :]] += (cos < 0).double() * pv
        self._pair_n[ix[:, None], ix[None, :]] += pv
        mean_norm = norms[norms > 0].mean() if bool((norms > 0).any()) else torch.tensor(1.0, dtype=torch.float64)
        self._ratio_sum[ix] += (norms / mean_norm) * valid
        self._ratio_n[ix] += valid

    def update_parameters(self, jacobian: Tensor, idx: Sequence[int]) -> None:
        """:meth:`update` with a Jacobian w.r.t. parameters (rather than the representation):
        the same statistics in one process; a distributed trainer averages it over ranks."""
        self.update(jacobian, idx)

    def epoch_summary(self, reset: bool = True) -> dict[str, Any]:
        k = len(self.task_names)
        cos = (self._cos_sum / self._pair_n.clamp_min(1))
        off = ~torch.eye(k, dtype=torch.bool) & (self._pair_n > 0)
        mean_cos = float(cos[off].mean()) if bool(off.any()) else float("nan")
        frac = float(self._conf[off].sum() / self._pair_n[off].sum()) if bool(off.any()) else float("nan")
        ratio = (self._ratio_sum / self._ratio_n.clamp_min(1)).tolist()
        out = {"mean_cosine": mean_cos, "conflict_fraction": frac,
               "cosine_matrix": cos.tolist(),
               "norm_ratio": dict(zip(self.task_names, ratio))}
        if reset:
            self.reset()
        return out
