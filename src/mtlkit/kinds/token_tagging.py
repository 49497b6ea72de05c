"""``token_tagging``: one tag per word of a text column (named entities, chunks, POS ...)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from mtlkit import tasks_dense as td
from mtlkit._registry import KINDS
from mtlkit.kinds._base import Metric, check_positive_int
from mtlkit.kinds._dense import DenseClassKind

Span = tuple[int, int, str]


def _split_tag(tag: str) -> tuple[str, str]:
    """``(prefix, type)`` of a tag: ``"O"`` -> ``("O", "")``, ``"B-PER"`` -> ``("B", "PER")``,
    ``"I-PER"`` -> ``("I", "PER")``; any other tag ``"X"`` is read as ``("I", "X")`` (the IO
    scheme: a run of one tag is one span)."""
    if tag == "O":
        return "O", ""
    if len(tag) > 2 and tag[1] == "-" and tag[0] in "BI":
        return tag[0], tag[2:]
    return "I", tag


def bio_spans(tags: Sequence[str]) -> set[Span]:
    """The spans ``(start, end, type)`` (end exclusive) of a tag sequence, as conlleval reads
    it: ``B-X`` starts a span; ``I-X`` continues the open span of type X and starts a new one
    after ``O`` or after a span of another type; ``O`` closes it. A tag without a ``B-``/``I-``
    prefix is read as ``I-`` (so a run of one plain tag is one span).

    >>> sorted(bio_spans(["B-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-ORG"]))
    [(0, 2, 'PER'), (3, 4, 'LOC'), (4, 5, 'LOC'), (5, 6, 'ORG')]
    """
    spans: set[Span] = set()
    start, kind = -1, ""
    for i, tag in enumerate(tags):
        prefix, t = _split_tag(tag)
        if start >= 0 and (prefix != "I" or t != kind):
            spans.add((start, i, kind))
            start = -1
        if prefix != "O" and start < 0:
            start, kind = i, t
    if start >= 0:
        spans.add((start, len(tags), kind))
    return spans


def span_f1(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> float:
    """Exact-match span F1, micro-averaged over span types (conlleval's "FB1"): a predicted
    span counts only when its start, end and type all equal a gold span's. 1.0 when neither
    side has a span; NaN for no sequence.

    >>> span_f1([["B-PER", "I-PER", "O"]], [["B-PER", "O", "O"]])
    0.0
    >>> round(span_f1([["B-A", "O", "B-B"]], [["B-A", "O", "B-A"]]), 4)
    0.5
    """
    if not len(gold):
        return float("nan")
    tp = n_gold = n_pred = 0
    for g, p in zip(gold, pred):
        gs, ps = bio_spans(g), bio_spans(p)
        tp += len(gs & ps)
        n_gold += len(gs)
        n_pred += len(ps)
    if n_gold + n_pred == 0:
        return 1.0
    return 2.0 * tp / (n_gold + n_pred)


def tag_names(task: Any) -> list[str]:
    """The tag of each class index: the task's ``classes``, else ``"O"`` for 0 and the index
    as a plain tag for the others."""
    if task.classes is not None:
        return [str(c) for c in task.classes]
    return ["O"] + [str(i) for i in range(1, int(task.num_classes or 0))]


def _sequences(y: np.ndarray, p: np.ndarray, names: Sequence[str]) -> tuple[list[list[str]], list[list[str]]]:
    """Gold and predicted tag sequences over the labelled positions (``y >= 0``) of each row."""
    gold, pred = [], []
    for yr, pr in zip(y, p):
        keep = yr >= 0
        gold.append([names[int(k)] for k in yr[keep]])
        pred.append([names[int(k)] for k in pr[keep]])
    return gold, pred


def _metrics_of_classes(y: np.ndarray, p: np.ndarray, names: Sequence[str]) -> dict[str, float]:
    """span F1, token accuracy and macro F1 of gold (N, T) classes ``y`` (-1: not a target)
    and predicted (N, T) classes ``p``."""
    keep = y >= 0
    if not keep.any():
        return {"span_f1": float("nan"), "token_accuracy": float("nan"), "macro_f1": float("nan")}
    gold, pred = _sequences(y, p, names)
    return {"span_f1": span_f1(gold, pred), "token_accuracy": float((p[keep] == y[keep]).mean()),
            "macro_f1": td.macro_f1(p, np.where(keep, y, 0), keep)}


def _classes_of(p: np.ndarray) -> np.ndarray:
    return p.argmax(1) if p.ndim == 3 else p


def _metric(name: str) -> Any:
    def fn(y: np.ndarray, p: np.ndarray) -> float:
        n = int(p.shape[1]) if p.ndim == 3 else int(max(y.max(), p.max())) + 1
        return _metrics_of_classes(y, _classes_of(p), ["O"] + [str(i) for i in range(1, n)])[name]

    return fn


@KINDS.register()
class TokenTagging(DenseClassKind):
    """One tag per word of a text column: long target (N, T) aligned with the T token slots
    of the first text column (``out_shape`` (T,), T its ``max_length``), (N, C, T) logits over
    the C tags (``num_classes``; ``classes`` names them), cross-entropy averaged over the
    labelled positions only. A word's tag is the target of its first sub-token; the other
    sub-tokens, the ``[CLS]`` slot and padding are never targets (masked; the BERT convention,
    Devlin et al. 2019, "BERT: pre-training of deep bidirectional transformers", sec. 5.3).

    Its head (:class:`mtlkit.architectures.text.TokenHead`) reads the full-context
    (bidirectional, non-causal) per-token states of a text trunk built with ``token_states:
    full`` or ``both`` (set automatically by a run).

    Metrics, over the labelled positions (the words) of a split:

    * ``span_f1`` (main): exact-match span F1 micro-averaged over span types, with
      conlleval semantics (Tjong Kim Sang & De Meulder 2003, the CoNLL-2003 shared task):
      ``B-X`` starts a span, ``I-X`` after ``O`` or after a span of another type starts a new
      span (it is not dropped), ``O`` closes a span. Tags that are not BIO (no ``B-``/``I-``
      prefix, e.g. POS tags) are read as the IO scheme: a run of equal tags is one span of
      that tag, so for per-word tag sets without ``O`` it counts runs of equal tags (we
      report ``macro_f1`` too for those). Without ``classes``, class 0 is ``O``;
    * ``token_accuracy``: the fraction of words whose tag is right;
    * ``macro_f1``: the unweighted mean over tags of the per-word F1.

    >>> from mtlkit import Task
    >>> t = Task("ner", "token_tagging", classes=("O", "B-PER", "I-PER"), out_shape=(8,))
    >>> t.task_kind.output_shape(t), t.num_classes, t.task_kind.main_metric
    ((3, 8), 3, 'span_f1')
    """

    spatial_rank = 1
    per_token = True
    #: the per-token states its head reads: the non-causal ones
    token_states: ClassVar[str] = "full"
    #: its targets are tags of the whitespace words of a text column (a table's tag column)
    word_tags: ClassVar[bool] = True
    #: it takes ``classes`` (the tag names) although it is not one class per sample
    named_classes: ClassVar[bool] = True
    out_shape_help = "(T,)"
    main_metric = "span_f1"
    example: ClassVar[dict[str, Any]] = {"num_classes": 3, "out_shape": (6,)}

    def validate(self, task: Any) -> dict[str, Any]:
        """``num_classes`` and ``out_shape`` may be left out: a run sets them from the data
        (the tag column's tags, the text column's ``max_length``)."""
        if task.num_classes is not None:
            check_positive_int(task, "num_classes", 2)
        shape = task.out_shape
        if shape is not None and (len(shape) != 1 or shape[0] < 2):
            raise ValueError(f"Task {task.name!r}: a token_tagging task needs out_shape (T,), T >= 2 the token "
                             f"slots of its text column. Got {task.out_shape!r}.")
        return {}

    def _check_ready(self, task: Any) -> None:
        if task.num_classes is None or task.out_shape is None:
            raise ValueError(f"Task {task.name!r} (token_tagging) has no num_classes/out_shape yet: they come from "
                             f"the data (a table's tag column and text column), or give them "
                             f"(Task(..., num_classes=C, out_shape=(max_length,))).")

    def output_shape(self, task: Any) -> tuple[int, ...]:
        self._check_ready(task)
        return super().output_shape(task)

    def target_shape(self, task: Any) -> tuple[int, ...]:
        self._check_ready(task)
        return super().target_shape(task)

    def compute_loss(self, task: Any, pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        return td.sequence_labelling_loss(pred, target, mask)

    def _build_metrics(self) -> tuple[Metric, ...]:
        return (Metric("span_f1", _metric("span_f1"), True), Metric("token_accuracy", _metric("token_accuracy"), True),
                Metric("macro_f1", _metric("macro_f1"), True))

    def evaluate(self, task: Any, out: Any, target: Any, mask: Any) -> dict[str, float]:
        """The metrics of a split, the tags named by the task's ``classes``; the arg-max is
        taken in chunks (no (N, C, T) probability array)."""
        out_t = torch.as_tensor(out).detach()
        pred = torch.cat([out_t[s:s + 1024].float().argmax(1) for s in range(0, out_t.shape[0], 1024)]) \
            if out_t.shape[0] else out_t.new_zeros((0, *out_t.shape[2:]), dtype=torch.long)
        y = td.encode_class_mask(target, mask)
        return _metrics_of_classes(y, pred.cpu().numpy(), tag_names(task))
