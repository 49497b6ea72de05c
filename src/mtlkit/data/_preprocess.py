"""Input preprocessing fitted on the training split and stored with the model."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


class Standardizer:
    """Per-feature (x − mean) / std for flat tabular inputs; constant features keep std 1.

    >>> s = Standardizer().fit(torch.tensor([[0.0, 5.0], [2.0, 5.0]]))
    >>> s.transform(torch.tensor([[1.0, 5.0]]))
    tensor([[0., 0.]])
    """

    def __init__(self) -> None:
        self.mean_: Tensor | None = None
        self.std_: Tensor | None = None

    def fit(self, x: Tensor) -> Standardizer:
        x = x.double()
        self.mean_ = x.mean(0)
        std = x.std(0, unbiased=False)
        self.std_ = torch.where(std > 1e-12, std, torch.ones_like(std))
        return self

    def transform(self, x: Tensor) -> Tensor:
        if self.mean_ is None or self.std_ is None:
            raise RuntimeError("Standardizer is not fitted yet; call fit first.")
        if x.shape[1:] != self.mean_.shape:
            raise ValueError(f"Inputs have {tuple(x.shape[1:])} features; the model expects {tuple(self.mean_.shape)}.")
        return ((x.double() - self.mean_) / self.std_).to(torch.float32)

    def to_dict(self) -> dict[str, Any]:
        assert self.mean_ is not None and self.std_ is not None
        return {"kind": "standardize", "mean": self.mean_.tolist(), "std": self.std_.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Standardizer:
        s = cls()
        s.mean_ = torch.tensor(d["mean"], dtype=torch.float64)
        s.std_ = torch.tensor(d["std"], dtype=torch.float64)
        return s
