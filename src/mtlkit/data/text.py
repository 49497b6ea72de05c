"""Text columns of a table: a tokenizer fitted on the training split, token IDs as columns.

A feature column declared ``text`` (``features: {tweet: text}``; a column is never read as
text unless declared: a column of long, distinct, multi-word strings is reported with a
warning that suggests the declaration) is encoded as ``max_length`` columns of token IDs,
padded with the tokenizer's padding ID, at the end of the table's input matrix. The text
trunks (:mod:`mtlkit.architectures.text`) read those slots, trim each batch to its longest
sequence and build the attention mask from the padding ID.

The tokenizer comes from the ``tokenizers`` library (optional extra: ``pip install
'mtlkit[text]'``), one of:

* ``{kind: bpe | wordpiece, vocab_size: N}``: trained locally on the training split's texts
  (byte-level BPE: every string round-trips exactly; WordPiece: BERT-style normalisation and
  pre-tokenisation). Special tokens ``[PAD]`` (ID 0), ``[UNK]`` (1) and ``[CLS]`` (2); every
  sequence starts with ``[CLS]`` (the CLS-pooled trunks read it);
* ``{file: PATH}``: the user's own ``tokenizer.json`` (its padding token is found among
  ``[PAD]``, ``<pad>``, ``<|pad|>``, ``<PAD>`` or its padding setting);
* ``{huggingface: PATH}``: the fast tokenizer of a local Hugging Face model folder
  (``AutoTokenizer``, ``local_files_only=True``): use it with ``trunk: {name: huggingface,
  model: PATH}`` so the IDs are the model's own.

Nothing is downloaded. The fitted tokenizer is stored as its JSON string inside the table's
preprocessing record (``model.json`` of the run folder) and rebuilt with
``Tokenizer.from_str``: never pickled.

Missing values and empty (or blank) strings are encoded as an empty text (``[CLS]`` only)
and counted in one warning naming the column and the first row; a non-string value (a number,
a list ...) is an error naming the column and the row. Sequences longer than ``max_length``
are cut (``truncation: warn``, one warning with the count) or refused (``truncation: error``).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["TEXT_EXTRA", "TextOptions", "add_decoder_slots", "decoder_slots", "encode_texts", "fit_tokenizer",
           "generation_targets", "load_tokenizer", "pad_id_of", "require_tokenizers", "texts_of", "tokenizer_from_json"]

TEXT_EXTRA = "pip install 'mtlkit[text]'"
PAD, UNK, CLS = "[PAD]", "[UNK]", "[CLS]"
SPECIAL = (PAD, UNK, CLS)
_PAD_CANDIDATES = ("[PAD]", "<pad>", "<|pad|>", "<PAD>")
TOKENIZER_KINDS = ("bpe", "wordpiece")
#: token IDs travel in a float32 matrix: exact below 2**24
MAX_VOCAB = 2 ** 24


def require_tokenizers() -> Any:
    """The ``tokenizers`` module, or an ImportError that names the extra to install."""
    try:
        import tokenizers
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(f"Text columns need the 'tokenizers' package, which is not installed: {TEXT_EXTRA}.") \
            from exc
    return tokenizers


@dataclass(frozen=True)
class TextOptions:
    """How text columns are tokenised (``data.text`` of a run config).

    Args:
        kind: ``"bpe"`` (byte-level BPE) or ``"wordpiece"``: the tokenizer trained on the
            training split.
        vocab_size: the vocabulary size of the trained tokenizer (special tokens included).
        min_frequency: a merge/piece must be seen this often in the training texts.
        lowercase: lowercase the texts (trained tokenizers only).
        file: a ``tokenizer.json`` to use as it is instead of training one.
        huggingface: a local Hugging Face model folder whose tokenizer to use.
        max_length: token slots per text (longer sequences are cut or refused).
        truncation: ``"warn"`` (cut, counted in one warning) or ``"error"`` (refused).
    """

    kind: str = "bpe"
    vocab_size: int = 2000
    min_frequency: int = 2
    lowercase: bool = True
    file: str | None = None
    huggingface: str | None = None
    max_length: int = 64
    truncation: str = "warn"

    def __post_init__(self) -> None:
        if self.kind not in TOKENIZER_KINDS:
            raise ValueError(f"The 'kind' of data.text.tokenizer must be one of {TOKENIZER_KINDS}. Got {self.kind!r}.")
        for name, low in (("vocab_size", 8), ("min_frequency", 1), ("max_length", 2)):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < low:
                raise ValueError(f"The {name!r} parameter of data.text must be an integer >= {low}. Got {v!r}.")
        if self.vocab_size >= MAX_VOCAB:
            raise ValueError(f"The 'vocab_size' parameter of data.text must be below {MAX_VOCAB:,}. "
                             f"Got {self.vocab_size!r}.")
        if self.truncation not in ("warn", "error"):
            raise ValueError(f"The 'truncation' parameter of data.text must be 'warn' or 'error'. "
                             f"Got {self.truncation!r}.")
        if self.file is not None and self.huggingface is not None:
            raise ValueError("data.text.tokenizer: give 'file' or 'huggingface', not both.")
        if not isinstance(self.lowercase, bool):
            raise ValueError(f"The 'lowercase' parameter of data.text must be true or false. Got {self.lowercase!r}.")

    @classmethod
    def from_mapping(cls, d: Mapping[str, Any] | None) -> TextOptions:
        """From ``{tokenizer: {kind, vocab_size, min_frequency, lowercase} | {file} |
        {huggingface}, max_length, truncation}`` (the YAML form); unknown keys are errors."""
        if d is None:
            return cls()
        if isinstance(d, TextOptions):
            return d
        d = dict(d)
        tok = d.pop("tokenizer", None) or {}
        if not isinstance(tok, Mapping):
            raise ValueError(f"data.text.tokenizer must be a mapping such as {{kind: bpe, vocab_size: 2000}} or "
                             f"{{file: tokenizer.json}}. Got {tok!r}.")
        fields = {f.name for f in dataclasses.fields(cls)}
        top = {"max_length", "truncation"}
        bad = [f"data.text.{k}" for k in d if k not in top] + [f"data.text.tokenizer.{k}" for k in tok
                                                                if k not in fields - top]
        if bad:
            raise ValueError(f"Unknown setting(s) {bad}; data.text takes tokenizer: {{kind, vocab_size, "
                             f"min_frequency, lowercase, file, huggingface}}, max_length and truncation.")
        return cls(**dict(tok), **d)


# ---------------------------------------------------------------------------- values
def texts_of(col: pd.Series, name: Any, source: str) -> tuple[list[str], np.ndarray]:
    """The texts of a column and a bool mask of the empty ones (missing, ``""`` or blank:
    encoded as an empty text). A non-string value is an error naming the column and row."""
    from mtlkit.data.tabular import short

    vals = col.to_numpy(dtype=object)
    out: list[str] = []
    empty = np.zeros(len(vals), dtype=bool)
    for i, v in enumerate(vals):
        if isinstance(v, str):
            out.append(v)
            empty[i] = not v.strip()
        elif v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA or v is pd.NaT:
            out.append("")
            empty[i] = True
        else:
            raise ValueError(f"Text column {short(name)} of {source} holds a non-string value {short(v)} "
                             f"({type(v).__name__}) at row {i}; a text column holds strings (convert the "
                             f"column, or declare its type in data.features).")
    return out, empty


# ---------------------------------------------------------------------------- tokenizers
def tokenizer_from_json(text: str) -> Any:
    """A ``tokenizers.Tokenizer`` rebuilt from its JSON (no code runs, nothing pickled)."""
    return require_tokenizers().Tokenizer.from_str(text)


def load_tokenizer(path: str | Path) -> Any:
    """A user's ``tokenizer.json``; a missing file or a file that is not a tokenizer is an
    error naming the path."""
    tk = require_tokenizers()
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"data.text.tokenizer.file: the tokenizer file {str(p)!r} does not exist.")
    try:
        return tk.Tokenizer.from_file(str(p))
    except Exception as exc:
        raise ValueError(f"data.text.tokenizer.file: {str(p)!r} is not a tokenizer file (a tokenizer.json "
                         f"written by the 'tokenizers' library): {str(exc)[:200]}") from None


def _huggingface_tokenizer(path: str) -> Any:
    try:
        from transformers import AutoTokenizer
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(f"data.text.tokenizer.huggingface needs the 'transformers' package: {TEXT_EXTRA}.") from exc
    if not Path(path).is_dir():
        raise FileNotFoundError(f"data.text.tokenizer.huggingface: {path!r} is not a local model folder (nothing "
                                f"is downloaded: save the model and its tokenizer with save_pretrained first).")
    try:
        hf = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except Exception as exc:
        raise ValueError(f"data.text.tokenizer.huggingface: no tokenizer could be loaded from {path!r} "
                         f"({str(exc)[:200]}); save one next to the model (tokenizer.save_pretrained).") from None
    backend = getattr(hf, "backend_tokenizer", None)
    if backend is None:
        raise ValueError(f"data.text.tokenizer.huggingface: the tokenizer of {path!r} is not a fast tokenizer "
                         f"(no tokenizer.json); convert it or pass data.text.tokenizer.file.")
    return require_tokenizers().Tokenizer.from_str(backend.to_str())


def _train(texts: Sequence[str], opts: TextOptions) -> Any:
    tk = require_tokenizers()
    from tokenizers import decoders, models, normalizers, pre_tokenizers, processors, trainers

    norm = [normalizers.NFKC()] + ([normalizers.Lowercase()] if opts.lowercase else [])
    if opts.kind == "bpe":
        tok = tk.Tokenizer(models.BPE())
        tok.normalizer = normalizers.Sequence(norm)
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer: Any = trainers.BpeTrainer(vocab_size=opts.vocab_size, min_frequency=opts.min_frequency,
                                           special_tokens=list(SPECIAL), show_progress=False,
                                           initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    else:
        tok = tk.Tokenizer(models.WordPiece(unk_token=UNK))
        tok.normalizer = normalizers.BertNormalizer(lowercase=opts.lowercase)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(vocab_size=opts.vocab_size, min_frequency=opts.min_frequency,
                                            special_tokens=list(SPECIAL), show_progress=False)
    tok.train_from_iterator([t for t in texts if t.strip()], trainer=trainer)
    if opts.kind == "wordpiece":
        tok.model = _stable_wordpiece(tok.get_vocab(), models)
    tok.post_processor = processors.TemplateProcessing(single=f"{CLS} $A", special_tokens=[(CLS, 2)])
    return tok


def _stable_wordpiece(vocab: dict[str, int], models: Any) -> Any:
    """The trained WordPiece model with its IDs in a fixed order: ``tokenizers`` (0.23) numbers
    a WordPiece vocabulary in an order that changes from one training to the next (hash-map
    order of the alphabet; ties between merges of equal count), so the same texts gave other
    token IDs on each training. The special tokens keep their IDs; the other tokens are
    numbered in the order of their text. A WordPiece model looks tokens up by text (longest
    match first), so the encoding is the same up to this renumbering."""
    rest = sorted(t for t in vocab if t not in SPECIAL)
    order = [t for t in SPECIAL if t in vocab] + rest
    return models.WordPiece(vocab={t: i for i, t in enumerate(order)}, unk_token=UNK)


def fit_tokenizer(texts: Sequence[str], opts: TextOptions) -> Any:
    """The tokenizer of ``opts``: trained on ``texts`` (the training split), or loaded."""
    if opts.file is not None:
        return load_tokenizer(opts.file)
    if opts.huggingface is not None:
        return _huggingface_tokenizer(opts.huggingface)
    if not any(t.strip() for t in texts):
        raise ValueError("A text column has no non-empty text in the training split: nothing to fit a tokenizer on.")
    return _train(texts, opts)


def pad_id_of(tok: Any, where: str = "the tokenizer") -> int:
    """The padding ID of a tokenizer (its padding setting, else a usual padding token)."""
    pad = getattr(tok, "padding", None)
    if pad and pad.get("pad_id") is not None and tok.id_to_token(pad["pad_id"]) is not None:
        return int(pad["pad_id"])
    for t in _PAD_CANDIDATES:
        i = tok.token_to_id(t)
        if i is not None:
            return int(i)
    raise ValueError(f"{where} has no padding token (none of {list(_PAD_CANDIDATES)}); add one to its vocabulary "
                     f"(e.g. tokenizer.add_special_tokens(['[PAD]'])) and save it again.")


def encode_texts(tok: Any, texts: Sequence[str], *, max_length: int, pad_id: int, truncation: str = "warn",
                 column: Any = "text", source: str = "the input") -> np.ndarray:
    """(N, max_length) int64 token IDs, padded with ``pad_id``; sequences longer than
    ``max_length`` are cut (one warning with their count) or refused (``truncation="error"``)."""
    from mtlkit.data.tabular import short

    tok.no_truncation()
    tok.no_padding()
    encs = tok.encode_batch(list(texts)) if len(texts) else []
    out = np.full((len(texts), max_length), pad_id, dtype=np.int64)
    lengths = np.array([len(e.ids) for e in encs], dtype=np.int64)
    long = np.flatnonzero(lengths > max_length)
    if len(long):
        i = int(long[np.argmax(lengths[long])])
        msg = (f"Text column {short(column)}: {len(long):,} of {len(texts):,} text(s) of {source} are longer than "
               f"max_length={max_length} tokens (the longest: {int(lengths[i])} tokens, row {i})")
        if truncation == "error":
            raise ValueError(f"{msg}; raise data.text.max_length or set data.text.truncation: warn to cut them.")
        warnings.warn(f"{msg} and were cut to {max_length}. Raise data.text.max_length to keep more.", stacklevel=3)
    for r, e in enumerate(encs):
        ids = e.ids[:max_length]
        out[r, :len(ids)] = ids
    return out


# ---------------------------------------------------------------------------- generation targets
def add_decoder_slots(pre: Any, tasks: Sequence[Any], *, source: str = "the table") -> list[Any]:
    """Give a fitted table preprocessor the decoder input slots of the ``generation`` tasks
    (:mod:`mtlkit.kinds.generation`): each task's target text column is tokenised with the
    tokenizer of the first text feature column (one vocabulary shared by encoder and decoder)
    into ``out_shape[0]`` slots after the text slots. Returns the tasks with their vocabulary
    (``num_classes``, ``classes``: the token strings in ID order)."""
    import dataclasses as dc

    gen = [t for t in tasks if getattr(t.task_kind, "targets_from_inputs", False)]
    if not gen:
        return list(tasks)
    if not pre.text:
        raise ValueError(f"Generation task(s) {[t.name for t in gen]} need a text feature column (data.features: "
                         f"{{column: text}}): their targets are tokenised with its tokenizer and the decoder attends "
                         f"to its tokens.")
    col = pre.text[0]
    tok = tokenizer_from_json(str(col.tokenizer))
    vocab = int(col.vocab or 0)
    inv = {i: t for t, i in tok.get_vocab(with_added_tokens=True).items()}
    classes = tuple(inv.get(i, f"<{i}>") for i in range(vocab))
    pre.decoder_ = []
    out = []
    for t in tasks:
        if t in gen:
            length = int((t.out_shape or (32,))[0])
            pre.decoder_.append({"task": t.name, "column": str(t.label_columns[0]), "source": str(col.name),
                                 "vocab": vocab, "max_length": length, "pad_id": int(col.pad_id or 0)})
            t = dc.replace(t, num_classes=vocab, classes=classes, out_shape=(length,))
        out.append(t)
    return out


def decoder_slots(pre: Any, entry: Mapping[str, Any], df: pd.DataFrame, source: str = "the input") -> np.ndarray:
    """(N, L) decoder input slots of one generation task: its target's token IDs (no ``[CLS]``),
    the padding ID (= end of sequence) after the last token, ``-1`` for a missing target (and
    for every row when the column is absent, as at prediction time). Targets longer than L
    tokens are cut to L (one warning with their count)."""
    from mtlkit.data.tabular import short

    n, length, pad = len(df), int(entry["max_length"]), int(entry["pad_id"])
    name = entry["column"]
    if name not in df.columns:
        return np.full((n, length), -1, dtype=np.int64)
    col = df[name]
    missing = col.isna().to_numpy()
    texts, _ = texts_of(col, name, source)
    cache = pre.__dict__.setdefault("_tokenizers", {})
    src = next(c for c in pre.text if str(c.name) == str(entry["source"]))
    if src.name not in cache:
        cache[src.name] = tokenizer_from_json(str(src.tokenizer))
    tok = cache[src.name]
    tok.no_truncation()
    tok.no_padding()
    encs = tok.encode_batch(list(texts), add_special_tokens=False) if n else []
    out = np.full((n, length), pad, dtype=np.int64)
    cut = 0
    for r, e in enumerate(encs):
        ids = e.ids[:length]
        cut += len(e.ids) > length
        out[r, :len(ids)] = ids
    out[missing] = -1
    if cut:
        warnings.warn(f"Generation target column {short(name)}: {cut:,} of {n:,} text(s) of {source} are longer "
                      f"than the task's {length} tokens and were cut (no end token). Raise the task's out_shape "
                      f"to keep more.", stacklevel=3)
    return out


def generation_targets(x: Any, spec: Mapping[str, Any], task: str) -> tuple[Any, Any]:
    """``(target (N, L) long, mask (N, L) bool)`` of a generation task from the decoder input
    slots of an encoded table ``x`` (``spec``: the input spec): the tokens and the end token
    are labelled, the padding after it and the rows of a missing target are not."""
    import torch

    entries = list(spec.get("decoder") or [])
    names = [e["task"] for e in entries]
    if task not in names:
        raise ValueError(f"Task {task!r} has no decoder input slots in this table; generation tasks: {names}.")
    width = int(x.shape[1]) - sum(int(e["max_length"]) for e in entries)
    k = names.index(task)
    start = width + sum(int(e["max_length"]) for e in entries[:k])
    slots = torch.as_tensor(x)[:, start: start + int(entries[k]["max_length"])].round().long()
    pad = int(entries[k]["pad_id"])
    present = (slots >= 0).all(1, keepdim=True)
    after_end = (slots == pad).long().cumsum(1) - (slots == pad).long() > 0  # positions past the first end token
    mask = present & ~after_end
    return torch.where(slots >= 0, slots, torch.full_like(slots, pad)), mask
