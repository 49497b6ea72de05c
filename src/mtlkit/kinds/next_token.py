"""``next_token``: the next token of the input text at each position (a language model)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from mtlkit import tasks_dense as td
from mtlkit._registry import KINDS
from mtlkit.kinds._base import Metric
from mtlkit.kinds._dense import DenseClassKind


def _token_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    """Fraction of labelled positions (``y >= 0``) whose arg-max token is the target."""
    keep = y >= 0
    return float((pred[keep] == y[keep]).mean()) if keep.any() else float("nan")


@KINDS.register()
class NextToken(DenseClassKind):
    """The next token at each position of a text: long target (N, T) (``out_shape`` (T,)),
    (N, V, T) logits over the vocabulary (``num_classes`` V), cross-entropy averaged over the
    labelled positions (padding is never a target). Its head reads the per-token states of a
    text trunk built with ``token_states: true`` (:class:`mtlkit.architectures.text.TokenHead`).
    Metrics: token accuracy (main) and perplexity ``exp(mean cross-entropy)``.

    >>> from mtlkit import Task
    >>> t = Task("lm", "next_token", num_classes=50, out_shape=(8,))
    >>> t.task_kind.output_shape(t), t.task_kind.main_metric
    ((50, 8), 'token_accuracy')
    """

    spatial_rank = 1
    per_token = True
    out_shape_help = "(T,)"
    main_metric = "token_accuracy"
    example: ClassVar[dict[str, Any]] = {"num_classes": 5, "out_shape": (6,)}

    def compute_loss(self, task: Any, pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        return td.sequence_labelling_loss(pred, target, mask)

    def _build_metrics(self) -> tuple[Metric, ...]:
        return (Metric("token_accuracy", _token_accuracy, True), Metric("perplexity", lambda y, p: float("nan"), False))

    def evaluate(self, task: Any, out: Any, target: Any, mask: Any) -> dict[str, float]:
        """Token accuracy and perplexity over the labelled positions of a split, in chunks
        (no (N, V, T) probability array is materialised)."""
        out_t = torch.as_tensor(out).detach()
        y = torch.as_tensor(target).detach().long()
        m = torch.as_tensor(mask).detach().bool()
        hits = total = 0
        nll = 0.0
        for s in range(0, out_t.shape[0], 256):
            o, t, k = out_t[s:s + 256].float(), y[s:s + 256], m[s:s + 256]
            hits += int(((o.argmax(1) == t) & k).sum())
            ce = torch.nn.functional.cross_entropy(o, torch.where(k, t, 0), reduction="none")
            nll += float(ce[k].sum())
            total += int(k.sum())
        if total == 0:
            return {"token_accuracy": float("nan"), "perplexity": float("nan")}
        return {"token_accuracy": hits / total, "perplexity": float(np.exp(nll / total))}
