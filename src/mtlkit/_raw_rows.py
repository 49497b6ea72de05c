"""The TorchScript module of a raw-row export (:func:`mtlkit.export.export_table`).

This module has no ``from __future__ import annotations``: TorchScript reads the class
annotations below as types.
"""

from typing import Any

import torch
from torch import nn


class RawRowsTS(nn.Module):
    """TorchScript: raw rows (numbers by column, strings by column) -> outputs, labels."""

    num_cols: list[str]
    num_median: list[float]
    num_mean: list[float]
    num_std: list[float]
    num_indicator: list[bool]
    cat_cols: list[str]
    cat_vocab: list[dict[str, int]]
    cat_card: list[int]
    cat_onehot: list[bool]
    out_names: list[str]
    out_widths: list[int]
    out_kinds: list[int]  # 0 regression, 1 binary, 2 multiclass
    out_classes: list[list[str]]

    def __init__(self, core: Any, tasks: list, pre: Any) -> None:
        super().__init__()
        self.core = core
        num = [c for c in pre.fitted if c.type != "categorical"]
        cats = pre.onehot + pre.embedded
        self.num_cols = [str(c.name) for c in num]
        self.num_median = [float(c.median[0]) for c in num]
        self.num_mean = [float(c.mean[0]) for c in num]
        self.num_std = [float(c.std[0]) for c in num]
        self.num_indicator = [bool(c.indicator) for c in num]
        self.cat_cols = [str(c.name) for c in cats]
        self.cat_vocab = [{v: i + 2 for i, v in enumerate(c.categories)} for c in cats]
        self.cat_card = [c.cardinality for c in cats]
        self.cat_onehot = [c.encoding == "onehot" for c in cats]
        self.out_names, self.out_widths, self.out_kinds, self.out_classes = [], [], [], []
        for t in tasks:
            self.out_names.append(t.name)
            if t.task_kind.class_per_sample:
                binary = t.task_kind.binary_targets
                classes = list(t.classes) if t.classes is not None else list(range(2 if binary else int(t.num_classes or 0)))
                self.out_kinds.append(1 if binary else 2)
                self.out_widths.append(1 if binary else len(classes))
                self.out_classes.append([str(c) for c in classes])
            else:
                self.out_kinds.append(0)
                self.out_widths.append(t.out_dim)
                self.out_classes.append([""])

    def forward(self, numeric: dict[str, torch.Tensor], categorical: dict[str, list[str]]
                ) -> tuple[dict[str, torch.Tensor], dict[str, list[str]]]:
        blocks: list[torch.Tensor] = []
        indicators: list[torch.Tensor] = []
        for i in range(len(self.num_cols)):
            v = numeric[self.num_cols[i]].to(torch.float64).reshape(-1, 1)
            nan = torch.isnan(v)
            v = torch.where(nan, torch.full_like(v, self.num_median[i]), v)
            blocks.append(((v - self.num_mean[i]) / self.num_std[i]).to(torch.float32))
            if self.num_indicator[i]:
                indicators.append(nan.to(torch.float32))
        onehots: list[torch.Tensor] = []
        embedded: list[torch.Tensor] = []
        for j in range(len(self.cat_cols)):
            vocab = self.cat_vocab[j]
            idx: list[int] = []
            for s in categorical[self.cat_cols[j]]:
                idx.append(1 if s == "" else vocab.get(s, 0))
            col = torch.tensor(idx, dtype=torch.long).reshape(-1, 1)
            if self.cat_onehot[j]:
                onehots.append((col == torch.arange(self.cat_card[j]).reshape(1, -1)).to(torch.float32))
            else:
                embedded.append(col.to(torch.float32))
        # the encoded matrix: numeric | missing indicators | one-hot | embedding indices
        x = torch.cat(blocks + indicators + onehots + embedded, dim=1)
        with torch.no_grad():
            y = self.core(x)
        values: dict[str, torch.Tensor] = {}
        labels: dict[str, list[str]] = {}
        at = 0
        for k in range(len(self.out_names)):
            name, w, kind = self.out_names[k], self.out_widths[k], self.out_kinds[k]
            if kind == 0:
                values[name] = y[:, at:at + w]
                at += w
                continue
            p = y[:, at:at + w]
            at += w + 1  # the class index follows the probabilities
            pick = (p[:, 0] >= 0.5).long() if kind == 1 else p.argmax(-1)
            values[name + "_proba"] = p[:, 0] if kind == 1 else p
            names = self.out_classes[k]
            picked: list[int] = pick.tolist()
            labels[name] = [names[i] for i in picked]
        return values, labels
