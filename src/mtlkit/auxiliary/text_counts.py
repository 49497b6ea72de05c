"""Hints from a text tool: counts computed from each text, as an auxiliary regression task."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from mtlkit._registry import AUXILIARY
from mtlkit.auxiliary._base import AuxiliaryGenerator, AuxTarget
from mtlkit.auxiliary._table import as_frame, check_columns_present

NLP_EXTRA = "pip install 'mtlkit[nlp]'"
#: the lexical counts of the built-in tool (no dependency)
LEXICAL = {
    "words": re.compile(r"\b\w+\b"),
    "mentions": re.compile(r"(?<!\w)@\w+"),
    "hashtags": re.compile(r"(?<!\w)#\w+"),
    "urls": re.compile(r"https?://\S+"),
    "capitalised": re.compile(r"\b[A-Z]{2,}\b"),
    "exclamations": re.compile(r"!"),
    "digits": re.compile(r"\d+"),
}
#: Universal POS tags (the spaCy tool counts each)
UPOS = ("ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN", "PUNCT",
        "SCONJ", "SYM", "VERB", "X")


def _lexical(texts: list[str]) -> tuple[np.ndarray, list[str]]:
    counts = np.array([[len(p.findall(t)) for p in LEXICAL.values()] for t in texts], dtype=np.float64)
    return counts.reshape(len(texts), len(LEXICAL)), list(LEXICAL)


def _spacy(model: str) -> Callable[[list[str]], tuple[np.ndarray, list[str]]]:
    try:
        import spacy
    except ImportError as exc:
        raise ImportError(f"TextCounts(tool='spacy') needs spaCy and an installed spaCy pipeline package: "
                          f"{NLP_EXTRA}, then install the pipeline (e.g. {model}) as a package.") from exc
    try:
        nlp = spacy.load(model)  # an installed pipeline package: nothing is downloaded
    except OSError as exc:
        raise ImportError(f"TextCounts: the spaCy pipeline {model!r} is not installed; install it as a package "
                          f"(it is never downloaded at run time).") from exc

    def count(texts: list[str]) -> tuple[np.ndarray, list[str]]:
        out = np.zeros((len(texts), len(UPOS) + 1))
        for i, doc in enumerate(nlp.pipe(texts)):
            for tok in doc:
                if tok.pos_ in UPOS:
                    out[i, UPOS.index(tok.pos_)] += 1
            out[i, -1] = len(doc.ents)
        return out, [f"pos_{p.lower()}" for p in UPOS] + ["entities"]

    return count


@AUXILIARY.register()
class TextCounts(AuxiliaryGenerator):
    """Counts computed by a text tool from each text (a "hint" task): ``log(1 + count)``
    per counted feature, one regression output each.

    Abu-Mostafa (1990), "Learning from hints in neural networks"; in NLP, e.g. Plank,
    Søgaard & Goldberg (2016), "Multilingual part-of-speech tagging with bidirectional LSTM
    models and auxiliary loss", and the auxiliary POS/NER targets of Ruder (2017), "An overview
    of multi-task learning in deep neural networks".

    Tools: ``"lexical"`` (built in, no dependency: words, @mentions, #hashtags, URLs,
    all-capital words, exclamation marks, numbers) or ``"spacy"`` (part-of-speech counts per
    Universal POS tag and the number of named entities from an installed spaCy pipeline
    package ``spacy_model``; needs the ``nlp`` extra: ``pip install 'mtlkit[nlp]'``). The
    targets are computed from the raw text column, before tokenisation, and the column stays
    an input. A missing text has masked targets.

    Args:
        column: the text column.
        tool: ``"lexical"`` or ``"spacy"``.
        spacy_model: the spaCy pipeline package (``tool="spacy"``).
        weight: the loss weight λ of the auxiliary task.
        name: the task name (default ``"aux_text_counts"``).

    >>> import pandas as pd
    >>> aux = TextCounts(column="t").generate(pd.DataFrame({"t": ["Hi @bob #mtl!", None]}))
    >>> aux.names[:3], [round(v, 3) for v in aux.targets[0, :3].tolist()], aux.mask[1].any().item()
    (('words', 'mentions', 'hashtags'), [1.386, 0.693, 0.693], False)
    """

    paper = "Abu-Mostafa 1990, Learning from hints in neural networks"
    input_kind = "table"

    def __init__(self, *, column: str, tool: str = "lexical", spacy_model: str = "en_core_web_sm",
                 weight: float = 0.1, name: str | None = None) -> None:
        super().__init__(weight=weight, name=name)
        if not isinstance(column, str) or not column:
            raise ValueError(f"The 'column' parameter of TextCounts must be a column name. Got {column!r}.")
        if tool not in ("lexical", "spacy"):
            raise ValueError(f"The 'tool' parameter of TextCounts must be 'lexical' or 'spacy'. Got {tool!r}.")
        self.column, self.tool, self.spacy_model = column, tool, spacy_model
        self._count = _lexical if tool == "lexical" else _spacy(spacy_model)

    def _generate(self, x: Any, *, columns: list[str] | None) -> AuxTarget:
        df = as_frame(x, columns, "TextCounts")
        check_columns_present(df, [self.column], "TextCounts")
        col = df[self.column]
        present = np.array([isinstance(v, str) for v in col.to_numpy(dtype=object)], dtype=bool)
        bad = [i for i, v in enumerate(col.to_numpy(dtype=object)) if not isinstance(v, str) and not pd.isna(v)]
        if bad:
            raise ValueError(f"TextCounts: column {self.column!r} holds a non-string value at row {bad[0]}.")
        texts = [v if isinstance(v, str) else "" for v in col.to_numpy(dtype=object)]
        counts, names = self._count(texts)
        values = np.log1p(counts)
        values[~present] = np.nan
        return self._regression(values, names, inputs=df)
