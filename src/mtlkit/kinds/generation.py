"""``generation``: a token sequence per sample, produced by the decoder shared by the generation
tasks of a model (:mod:`mtlkit.architectures.decoder`).

Targets and outputs
-------------------
* target: long (N, L) token IDs (``out_shape`` (L,), default 32) of a text column, tokenised
  with the run's input tokenizer (one vocabulary shared by the encoder and the decoder, the
  decaNLP choice), without the ``[CLS]`` the input texts start with. The end of a text is
  marked by the padding token (end-of-sequence = padding ID): the position right after the
  last token is a target (the decoder learns to stop), the positions after it are masked. A
  text with L tokens or more is cut to L tokens (no end mark).
* output: (N, V + 1, L): channels ``0..V-1`` are the logits over the vocabulary (teacher-forced
  on the decoder input slots: see :mod:`mtlkit.architectures.decoder`), channel ``V`` holds the
  decoded token IDs (greedy or beam search in evaluation and prediction; the arg-max of the
  teacher-forced logits in training), ``-1`` from the end token on.
* loss: cross-entropy of the teacher-forced logits over the labelled positions (padding after
  the end mark never counts).

Metrics
-------
* ``token_accuracy``: the share of labelled positions whose teacher-forced arg-max is the
  target token (teacher forcing: the model sees the gold prefix).
* ``bleu`` (main): corpus BLEU (Papineni et al. 2002) of the *decoded* texts against the target
  texts, computed by ``sacrebleu`` (Post 2018, "A call for clarity in reporting BLEU scores";
  ``pip install 'mtlkit[text]'``) with its defaults: 13a tokenisation of the detokenised
  strings, exponential smoothing, no lowercasing, one reference. Both sides are turned back
  into text by the tokenizer's decoder (:func:`detokenize`), special tokens skipped. Samples
  whose target is missing are left out; a split whose references are all empty scores NaN.

The vocabulary travels in ``Task.classes`` (token strings in ID order, filled in by the run from
the fitted tokenizer), so a loaded run decodes without the tokenizer object: byte-level BPE and
WordPiece tokens are decoded with the ``tokenizers`` decoders that mtlkit's trained tokenizers
use (recognised from the vocabulary: ``Ġ``-prefixed byte-level pieces, ``##`` continuation
pieces); other vocabularies are joined with spaces. Without ``classes`` tokens are their IDs.

>>> from mtlkit import Task
>>> t = Task("tags", "generation", num_classes=7, out_shape=(4,))
>>> t.output_shape, t.target_shape, t.main_metric
((8, 4), (4,), 'bleu')
"""

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

__all__ = ["Generation", "corpus_bleu", "decoded_ids", "detokenize", "require_sacrebleu"]

SACREBLEU_EXTRA = "pip install 'mtlkit[text]'"
#: tokens never written into a decoded text (the special tokens of mtlkit's tokenizers and usual ones)
SPECIAL_TOKENS = frozenset({"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "<pad>", "<|pad|>", "<PAD>", "<s>", "</s>",
                            "<unk>", "<|endoftext|>"})
DEFAULT_LENGTH = 32


def require_sacrebleu() -> Any:
    """The ``sacrebleu`` module, or an ImportError naming the extra to install."""
    try:
        import sacrebleu
    except ImportError as exc:
        raise ImportError(f"The BLEU metric of generation tasks needs the 'sacrebleu' package, which is not "
                          f"installed: {SACREBLEU_EXTRA}.") from exc
    return sacrebleu


def pad_index(classes: Sequence[Any] | None) -> int:
    """The padding (= end-of-sequence) ID of a vocabulary: the first usual padding token, else 0."""
    if classes:
        for name in ("[PAD]", "<pad>", "<|pad|>", "<PAD>"):
            if name in classes:
                return list(classes).index(name)
    return 0


def detokenize(ids: Sequence[int], classes: Sequence[Any] | None = None) -> str:
    """A text from token IDs (special tokens skipped), decoded as the vocabulary's tokenizer
    decodes: byte-level BPE, WordPiece, else tokens joined with spaces (IDs without a vocabulary).

    >>> detokenize([2, 5, 6], ["[PAD]", "[UNK]", "[CLS]", "a", "b", "#ma", "##ga"])
    '#maga'
    """
    if classes is None:
        return " ".join(str(int(i)) for i in ids if int(i) != 0)
    vocab = list(classes)
    tokens = [str(vocab[int(i)]) for i in ids if 0 <= int(i) < len(vocab)]
    tokens = [t for t in tokens if t not in SPECIAL_TOKENS]
    kind = _decoder_kind(tuple(vocab))
    if kind == "plain":
        return " ".join(tokens)
    from tokenizers import decoders

    dec = decoders.ByteLevel() if kind == "bytelevel" else decoders.WordPiece(prefix="##")
    return str(dec.decode(tokens))


_KINDS_CACHE: dict[int, tuple[tuple[Any, ...], str]] = {}


def _decoder_kind(vocab: tuple[Any, ...]) -> str:
    hit = _KINDS_CACHE.get(id(vocab))
    if hit is not None and hit[0] is vocab:
        return hit[1]
    words = [str(v) for v in vocab]
    kind = ("bytelevel" if any(w.startswith("Ġ") for w in words)
            else "wordpiece" if any(w.startswith("##") and len(w) > 2 for w in words) else "plain")
    _KINDS_CACHE.clear()
    _KINDS_CACHE[id(vocab)] = (vocab, kind)
    return kind


def decoded_ids(out: Tensor) -> list[list[int]]:
    """The decoded token IDs of each sample of an (N, V + 1, L) output (up to the end mark)."""
    rows = torch.as_tensor(out)[:, -1].detach().round().long().cpu()
    stop = torch.where((rows < 0).any(1), (rows < 0).long().argmax(1), rows.shape[1]).tolist()
    return [r[:k] for r, k in zip(rows.tolist(), stop, strict=True)]


def reference_ids(target: Tensor, mask: Tensor) -> list[list[int]]:
    """The target token IDs of each sample over its labelled positions (the end mark included:
    :func:`detokenize` skips it)."""
    y = torch.as_tensor(target).long().cpu()
    m = torch.as_tensor(mask).bool().cpu()
    return [y[i][m[i]].tolist() for i in range(y.shape[0])]


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU (0–100) of ``hypotheses`` against one reference each, sacrebleu's defaults;
    NaN when there is no sample or every reference is empty."""
    if not hypotheses or not any(r.strip() for r in references):
        return float("nan")
    sb = require_sacrebleu()
    return float(sb.corpus_bleu(list(hypotheses), [list(references)]).score)


@KINDS.register()
class Generation(DenseClassKind):
    """A token sequence per sample from the shared decoder: long target (N, L) (``out_shape``
    (L,)), (N, V + 1, L) output (logits over the V tokens ``num_classes``, then the decoded IDs),
    teacher-forced cross-entropy over the labelled positions; metrics token accuracy and
    corpus BLEU of the decoded texts (main). See the module docstring."""

    spatial_rank = 1
    out_shape_help = "(L,)"
    main_metric = "bleu"
    #: ``Task.classes`` names the classes of each position: the vocabulary (token strings in ID order)
    named_classes: ClassVar[bool] = True
    #: the predictions are texts: ``mtlkit predict`` writes one column of decoded strings
    text_output: ClassVar[bool] = True
    #: the targets are the decoder input slots of the encoded table (``TablePreprocessor``)
    targets_from_inputs: ClassVar[bool] = True
    example: ClassVar[dict[str, Any]] = {"num_classes": 6, "out_shape": (5,)}

    def validate(self, task: Any) -> dict[str, Any]:
        if task.num_classes is not None:  # None until the run fills it in from the tokenizer
            check_positive_int(task, "num_classes", 3)
        shape = task.out_shape if task.out_shape is not None else (DEFAULT_LENGTH,)
        if len(shape) != 1 or int(shape[0]) < 1:
            raise ValueError(f"Task {task.name!r}: a generation task needs out_shape (L,) with L >= 1 (the maximum "
                             f"number of tokens of a generated text). Got {task.out_shape!r}.")
        out = {"out_shape": tuple(int(s) for s in shape)}
        if task.classes is not None and task.num_classes is not None and len(task.classes) != task.num_classes:
            raise ValueError(f"Task {task.name!r}: its vocabulary ('classes') has {len(task.classes)} tokens but "
                             f"num_classes is {task.num_classes}.")
        return out

    def _vocab(self, task: Any) -> int:
        if task.num_classes is None:
            raise ValueError(f"Task {task.name!r} (generation) has no vocabulary size yet: give num_classes, or "
                             f"train it on a table with a text column (the run sets it from the tokenizer).")
        return int(task.num_classes)

    def output_shape(self, task: Any) -> tuple[int, ...]:
        return (self._vocab(task) + 1, *(task.out_shape or (DEFAULT_LENGTH,)))

    def compute_loss(self, task: Any, pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        return td.sequence_labelling_loss(pred[:, :-1], target, mask)

    def predict_transform(self, task: Any, out: Tensor) -> Tensor:
        """Token probabilities (softmax of the logits); the decoded-ID channel is kept."""
        return torch.cat([torch.softmax(out[:, :-1], dim=1), out[:, -1:]], dim=1)

    def _build_metrics(self) -> tuple[Metric, ...]:
        nan = lambda y, p: float("nan")  # noqa: E731 - computed by evaluate over a whole split
        return (Metric("bleu", nan, True), Metric("token_accuracy", nan, True))

    def texts(self, task: Any, out: Tensor) -> list[str]:
        """The decoded texts of an (N, V + 1, L) output."""
        return [detokenize(r, task.classes) for r in decoded_ids(out)]

    def evaluate(self, task: Any, out: Any, target: Any, mask: Any) -> dict[str, float]:
        """BLEU of the decoded texts (labelled samples) and the teacher-forced token accuracy."""
        out_t = torch.as_tensor(out).detach()
        y = torch.as_tensor(target).detach().long()
        m = torch.as_tensor(mask).detach().bool()
        hits = 0
        for s in range(0, out_t.shape[0], 256):
            o, t, k = out_t[s:s + 256, :-1].float(), y[s:s + 256], m[s:s + 256]
            hits += int(((o.argmax(1) == t) & k).sum())
        total = int(m.sum())
        rows = m.any(1)
        hyp = [detokenize(r, task.classes) for r, keep in zip(decoded_ids(out_t), rows.tolist(), strict=True) if keep]
        ref = [detokenize(r, task.classes) for r in reference_ids(y[rows], m[rows])]
        return {"bleu": corpus_bleu(hyp, ref), "token_accuracy": hits / total if total else float("nan")}

    def prediction_columns(self, task: Any, out: Tensor) -> dict[str, np.ndarray]:
        """One column of decoded texts, named after the task."""
        return {task.name: np.asarray(self.texts(task, out), dtype=object)}
