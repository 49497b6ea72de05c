"""Per-word tags of a text column -> per-token targets, and per-token predictions -> per-word tags.

A ``token_tagging`` task (:mod:`mtlkit.kinds.token_tagging`) reads its labels from a **tag
column**: per row, space-separated tags, one per whitespace-separated word of the table's
first text column (the column whose per-token states the text trunk outputs)::

    tweet                               tags
    "Thank you @Ohio! #MAGA"            "O O B-MENTION B-HASHTAG"

The words are the text's maximal runs of non-whitespace characters (``str.split()``). After
the text is tokenised (sub-word tokens, :mod:`mtlkit.data.text`), each word's tag becomes the
target of the word's **first sub-token**; its other sub-tokens, special tokens (``[CLS]``) and
padding are masked (the BERT convention). A token belongs to the word in which its first
non-space character lies (the tokenizer's character offsets). A word whose first sub-token is
cut by ``max_length`` has no target (the truncation warning counts the texts). A missing or
empty tag cell leaves the whole row unlabelled; a row whose tag count differs from its word
count is an error naming the row and the column.

Predictions go back the same way: per row, the tag predicted at each word's first sub-token,
space-separated, one per word; a word that the model did not see (cut by ``max_length``) gets
``?``.
"""

from __future__ import annotations

import bisect
import dataclasses
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from mtlkit.tasks import Task

__all__ = ["UNSEEN", "fit_tag_classes", "is_tagging", "tag_targets", "word_slots", "word_tag_strings"]

#: the predicted tag of a word the model did not see (cut by max_length)
UNSEEN = "?"
_WORD = re.compile(r"\S+")


def is_tagging(task: Task) -> bool:
    """Whether the task's labels are per-word tags of a text column."""
    return bool(getattr(task.task_kind, "word_tags", False))


def _tag_lists(col: pd.Series, task: Task, column: Any, source: str) -> list[list[str] | None]:
    """The tags of each row (``None``: unlabelled); a non-string cell is an error naming it."""
    from mtlkit.data.tabular import short

    out: list[list[str] | None] = []
    for i, v in enumerate(col.to_numpy(dtype=object)):
        if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
            out.append(None)
        elif isinstance(v, str):
            out.append(v.split() or None)
        else:
            raise ValueError(f"Tag column {short(column)} of task {task.name!r} holds {short(v)} "
                             f"({type(v).__name__}) at row {i} of {source}; it must hold space-separated tags, "
                             f"one per word of the text.")
    return out


def _tag_order(tags: set[str]) -> list[str]:
    """``O`` first, then by type and ``B-`` before ``I-`` (plain tags by name)."""
    def key(t: str) -> tuple[str, str]:
        return (t[2:], t[0]) if len(t) > 2 and t[1] == "-" and t[0] in "BI" else (t, "")

    return (["O"] if "O" in tags else []) + sorted(tags - {"O"}, key=key)


def fit_tag_classes(df: pd.DataFrame, task: Task, *, source: str = "the table") -> Task:
    """The task with its tag names (``classes``, ``num_classes``) from its tag column, unless
    it names them; a tag outside the named ones is an error naming it, the row and column."""
    from mtlkit.data.tabular import short

    column = task.label_columns[0]
    if column not in df.columns:
        raise KeyError(f"Tag column {short(column)} of task {task.name!r} not found in {source}. "
                       f"Columns: {list(df.columns)[:30]}.")
    rows = _tag_lists(df[column], task, column, source)
    seen = {t for r in rows if r for t in r}
    if task.classes is not None:
        known = {str(c) for c in task.classes}
        for i, r in enumerate(rows):
            bad = [t for t in r or [] if t not in known]
            if bad:
                raise ValueError(f"Tag {short(bad[0])} of task {task.name!r} (column {short(column)}, row {i}) in "
                                 f"{source} is not one of the task's classes {list(task.classes)[:20]}.")
        return task
    if len(seen) < 2:
        raise ValueError(f"Tag column {short(column)} of task {task.name!r} in {source} holds "
                         f"{len(seen)} distinct tag(s); a tagger needs at least two.")
    classes = tuple(_tag_order(seen))
    return dataclasses.replace(task, classes=classes, num_classes=len(classes))


def word_slots(tok: Any, texts: Sequence[str], max_length: int) -> tuple[np.ndarray, list[int]]:
    """(N, max_length) int64: the index of the word whose first sub-token sits in each token
    slot (-1 elsewhere: special tokens, a word's later sub-tokens, padding), and the number of
    whitespace words of each text."""
    tok.no_truncation()
    tok.no_padding()
    encs = tok.encode_batch(list(texts)) if len(texts) else []
    out = np.full((len(texts), max_length), -1, dtype=np.int64)
    counts = []
    for r, (text, e) in enumerate(zip(texts, encs)):
        spans = [m.span() for m in _WORD.finditer(text)]
        counts.append(len(spans))
        starts = [s for s, _ in spans]
        seen: set[int] = set()
        special = e.special_tokens_mask
        for j, (a, b) in enumerate(e.offsets[:max_length]):
            if special[j] or a >= b:
                continue
            p = next((q for q in range(a, b) if not text[q].isspace()), -1)
            w = bisect.bisect_right(starts, p) - 1 if p >= 0 else -1
            if w < 0 or p >= spans[w][1] or w in seen:
                continue
            seen.add(w)
            out[r, j] = w
    return out, counts


def _text_column(pre: Any, task: Task) -> Any:
    if not pre.text:
        raise ValueError(f"Task {task.name!r} (token_tagging) tags the words of a text column; the table has none "
                         f"(declare one: data.features: {{column: text}}).")
    return pre.text[0]


def _texts_and_slots(pre: Any, df: pd.DataFrame, task: Task, source: str) -> tuple[list[str], np.ndarray, list[int]]:
    from mtlkit.data.text import texts_of, tokenizer_from_json

    c = _text_column(pre, task)
    texts, _ = texts_of(df[c.name], c.name, source)
    cache = pre.__dict__.setdefault("_tokenizers", {})
    if c.name not in cache:
        cache[c.name] = tokenizer_from_json(str(c.tokenizer))
    slots, counts = word_slots(cache[c.name], texts, int(c.max_length or 1))
    return texts, slots, counts


def tag_targets(pre: Any, df: pd.DataFrame, task: Task, *, source: str = "the table"
                ) -> tuple[Task, torch.Tensor, torch.Tensor]:
    """The task with ``out_shape`` (the text column's ``max_length``) and its (N, T) long
    targets and bool mask, from its tag column and the fitted preprocessing ``pre``
    (:class:`~mtlkit.data.tabular.TablePreprocessor`) of the text column."""
    from mtlkit.data.tabular import short

    c = _text_column(pre, task)
    t_len = int(c.max_length or 0)
    if task.out_shape is not None and tuple(task.out_shape) != (t_len,):
        raise ValueError(f"Task {task.name!r}: out_shape {tuple(task.out_shape)} but its text column "
                         f"{short(c.name)} has max_length {t_len}; leave out_shape out.")
    task = dataclasses.replace(task, out_shape=(t_len,))
    column = task.label_columns[0]
    rows = _tag_lists(df[column], task, column, source)
    _, slots, counts = _texts_and_slots(pre, df, task, source)
    lookup = {str(k): i for i, k in enumerate(task.classes or ())}
    y = np.zeros(slots.shape, dtype=np.int64)
    m = np.zeros(slots.shape, dtype=bool)
    for i, tags in enumerate(rows):
        if tags is None:
            continue
        if len(tags) != counts[i]:
            raise ValueError(f"Row {i} of {source}: tag column {short(column)} of task {task.name!r} holds "
                             f"{len(tags)} tag(s) but text column {short(c.name)} has {counts[i]} word(s) "
                             f"(whitespace-separated); give one tag per word.")
        keep = slots[i] >= 0
        ids = [lookup.get(tags[w], -1) for w in slots[i][keep]]
        if any(k < 0 for k in ids):
            bad = next(tags[w] for w in slots[i][keep] if tags[w] not in lookup)
            raise ValueError(f"Tag {short(bad)} of task {task.name!r} (column {short(column)}, row {i}) in {source} "
                             f"was never seen in training; the task's tags are {list(task.classes or ())[:20]}.")
        y[i, keep] = ids
        m[i, keep] = True
    return task, torch.as_tensor(y), torch.as_tensor(m)


def word_tag_strings(pre: Any, df: pd.DataFrame, task: Task, out: torch.Tensor, *, source: str = "the input"
                     ) -> list[str]:
    """Per row, the predicted tags of its words, space-separated (``?`` for a word the model
    did not see), from the (N, C, T) logits ``out`` of a ``token_tagging`` task."""
    from mtlkit.kinds.token_tagging import tag_names

    names = tag_names(task)
    _, slots, counts = _texts_and_slots(pre, df, task, source)
    pred = out.detach().float().argmax(1).cpu().numpy()
    lines = []
    for i, n in enumerate(counts):
        words = [UNSEEN] * n
        for j in np.flatnonzero(slots[i] >= 0):
            if j < pred.shape[1]:
                words[int(slots[i][j])] = names[int(pred[i, j])]
        lines.append(" ".join(words))
    return lines
