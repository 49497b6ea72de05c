"""Next-token language modelling over the input text as an auxiliary task."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mtlkit._checks import check_int
from mtlkit._registry import AUXILIARY
from mtlkit.auxiliary._base import AuxiliaryGenerator, AuxTarget, to_numpy


@AUXILIARY.register()
class NextTokenLM(AuxiliaryGenerator):
    """The next token at each position of the input text, as an auxiliary ``next_token`` task.

    Rei (2017), "Semi-supervised multitask learning for sequence labeling", ACL: a language
    modelling objective (predict the next word from the forward states) trained with the main
    task on the same encoder; Liu et al. (2019), "Multi-task deep neural networks for natural
    language understanding" (MT-DNN) pre-train the shared text encoder with a language model.

    The targets are the token IDs shifted by one: ``target[t] = ids[t + 1]``; a position whose
    next slot is padding (and the last slot) is masked, so padding is never a target. The task
    needs a text trunk with ``token_states: true`` (``transformer``: causal attention;
    ``bilstm``: its forward direction), whose per-token states its head reads
    (:class:`mtlkit.architectures.text.TokenHead`). Choices where the papers leave room: one
    direction only (next token, no previous-token objective), the whole vocabulary as classes.

    In a run on a table the token slots of the text column (``column``, default the first) are
    found in the fitted preprocessing; from Python, ``generate`` takes (N, T) token IDs.

    Args:
        column: the text column (tables with several text columns).
        pad_id: the padding ID of (N, T) token IDs given directly.
        vocab: the vocabulary size (default: the tokenizer's, or the largest ID + 1).
        weight: the loss weight λ of the auxiliary task.
        name: the task name (default ``"aux_next_token"``).

    >>> import numpy as np
    >>> aux = NextTokenLM().generate(np.array([[2, 5, 6, 0], [2, 7, 0, 0]]))
    >>> aux.targets.tolist(), aux.mask.tolist()
    ([[5, 6, 0, 0], [7, 0, 0, 0]], [[True, True, False, False], [True, False, False, False]])
    """

    paper = "Rei 2017, Semi-supervised multitask learning for sequence labeling"
    input_kind = "tokens"

    def __init__(self, *, column: str | None = None, pad_id: int = 0, vocab: int | None = None,
                 weight: float = 0.1, name: str | None = None) -> None:
        super().__init__(weight=weight, name=name)
        if column is not None and (not isinstance(column, str) or not column):
            raise ValueError(f"The 'column' parameter of NextTokenLM must be a column name or None. Got {column!r}.")
        self.column = column
        self.pad_id = check_int("NextTokenLM", "pad_id", pad_id, low=0)
        self.vocab = None if vocab is None else check_int("NextTokenLM", "vocab", vocab, low=2)
        self._slots: tuple[int, int] | None = None

    def bind_table(self, pre: Any) -> None:
        """Read the token slots, padding ID and vocabulary of the text column from a fitted
        :class:`~mtlkit.data.tabular.TablePreprocessor` (the run calls this)."""
        spec = pre.input_spec or {}
        cols = spec.get("text") or []
        if not cols:
            raise ValueError("NextTokenLM needs a text column (data.features: {column: text}); the table has none.")
        names = [c["column"] for c in cols]
        if self.column is not None and self.column not in names:
            raise ValueError(f"NextTokenLM: 'column' {self.column!r} is not a text column; text columns: {names}.")
        k = names.index(self.column) if self.column is not None else 0
        start = int(spec["dense"]) + len(spec.get("cardinalities") or []) + sum(int(c["max_length"]) for c in cols[:k])
        self._slots = (start, int(cols[k]["max_length"]))
        self.pad_id = int(cols[k]["pad_id"])
        self.vocab = int(cols[k]["vocab"])

    def _generate(self, x: Any, *, columns: list[str] | None) -> AuxTarget:
        a = to_numpy(x)
        if a.ndim != 2 or a.shape[0] == 0:
            raise ValueError(f"NextTokenLM needs (N, T) token IDs (or a table with a text column). Got shape {a.shape}.")
        if self._slots is not None:
            a = a[:, self._slots[0]: self._slots[0] + self._slots[1]]
        if a.shape[1] < 2:
            raise ValueError(f"NextTokenLM needs at least 2 token slots per text. Got {a.shape[1]}.")
        ids = np.rint(a).astype(np.int64)
        target = np.full_like(ids, self.pad_id)
        target[:, :-1] = ids[:, 1:]
        mask = target != self.pad_id
        vocab = self.vocab if self.vocab is not None else int(ids.max()) + 1
        if mask.any() and int(target[mask].max()) >= vocab:
            raise ValueError(f"NextTokenLM: token ID {int(target[mask].max())} is outside the vocabulary of {vocab}.")
        task = self._task("next_token", num_classes=max(vocab, 2), out_shape=(ids.shape[1],))
        y = np.where(mask, target, 0)
        return AuxTarget(task, torch.as_tensor(y, dtype=torch.long), torch.as_tensor(mask))
