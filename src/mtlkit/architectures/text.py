"""Text trunks over the token-ID columns of a table: Transformer, BiLSTM, 1-D CNN, Hugging Face.

A table with a ``text`` column (:mod:`mtlkit.data.text`) carries ``max_length`` token-ID slots
per text column at the end of its input matrix; the table's input spec (``trunk.input``,
filled in by the run from :attr:`~mtlkit.data.tabular.TablePreprocessor.input_spec`) says
where they are, their vocabulary size and padding ID. Each trunk

* splits a batch into the dense columns (numeric, one-hot, and the learned category
  embeddings of :class:`~mtlkit.data.embedding.TabularInput`) and the token IDs;
* trims the token IDs to the longest sequence of the batch (per-batch padding; skipped while
  a graph is traced for export, where the result is the same);
* builds the attention mask from the padding ID (``True`` = a real token);
* encodes the tokens into per-token states (B, T, H) and pools them into one vector (B, H)
  (mean over the real tokens, or the first token, ``[CLS]``);
* returns ``[pooled vector of each text column | dense columns]``: the shared representation.

:meth:`TextTrunk.token_states` gives the per-token states, the mask and the pooled vector of
the first text column (:class:`TextStates`), for per-token heads. The ``token_states`` option
puts the per-token states of the first text column into the trunk's flat output, for the
per-token heads (:class:`TokenHead`); sequence-level heads then read the whole flat output:

* ``true`` (or ``"causal"``; for the ``next_token`` task of :mod:`mtlkit.auxiliary.next_token`):
  ``[fused (W) | causal states (max_length × W)]``: ``fused`` is a linear map of ``[pooled |
  dense]`` to the per-token width W, and the states are those of a causal pass (Transformer:
  causal attention for the whole encoder, and the pooled vector is of that pass too; BiLSTM:
  the forward direction, W = H/2) so that a token's state has not seen the token it predicts;
* ``"full"`` (for ``token_tagging``): ``[fused (W) | full-context states (max_length × W)]``,
  the bidirectional (non-causal) states, W = H; every trunk has them (Hugging Face: the
  model's ``last_hidden_state``; textcnn: its convolution feature maps);
* ``"both"`` (a tagging task and a language model in one model): ``[fused (W) | causal states
  (max_length × W) | full-context states (max_length × W)]``, W = H (the BiLSTM's forward
  states, H/2 wide, are zero-padded to H); the pooled vector is of the full-context pass
  (Transformer: a second, causal pass gives the causal states).

Padding positions of the states are zero. A run sets ``token_states`` from its tasks when the
config leaves it out (:func:`token_states_for`).

Trunk names (``trunk: {name: ...}``): ``transformer``, ``bilstm``, ``textcnn``,
``huggingface`` (``model: PATH`` of a local model folder; ``transformers`` is imported only
then: ``pip install 'mtlkit[text]'``).

>>> import torch
>>> spec = {"dense": 1, "cardinalities": [], "dims": [], "columns": [],
...         "text": [{"column": "t", "vocab": 50, "max_length": 6, "pad_id": 0}]}
>>> trunk = build_text_trunk({"name": "transformer", "hidden": 16, "layers": 1, "heads": 2, "input": spec}, (7,))
>>> x = torch.tensor([[0.5, 2, 9, 4, 0, 0, 0], [1.0, 2, 7, 0, 0, 0, 0]])
>>> trunk(x).shape, trunk.token_states(x).states.shape
(torch.Size([2, 17]), torch.Size([2, 3, 16]))
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

__all__ = ["TEXT_TRUNKS", "TEXT_TRUNK_BUILDERS", "TOKEN_STATES", "TextStates", "TextTrunk", "TokenHead", "bilstm",
           "build_text_trunk", "huggingface", "textcnn", "token_states_for", "tracing", "transformer"]

TEXT_TRUNKS = ("transformer", "bilstm", "textcnn", "huggingface")
#: the values of the ``token_states`` option besides false
TOKEN_STATES = ("causal", "full", "both")


class TextStates(NamedTuple):
    """Per-token states (B, T, H), the mask (B, T) (``True`` = a real token) and the pooled
    vector (B, H) of one text column."""

    states: Tensor
    mask: Tensor
    pooled: Tensor


def tracing() -> bool:
    """Whether a graph is being traced or exported (data-dependent trimming is skipped)."""
    return bool(torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_exporting())


def _masked_mean(states: Tensor, mask: Tensor) -> Tensor:
    m = mask.unsqueeze(-1).to(states.dtype)
    return (states * m).sum(1) / m.sum(1).clamp(min=1.0)


# ---------------------------------------------------------------------------- encoders
class _Encoder(nn.Module):
    """Token IDs (B, T) and mask (B, T) -> states (B, T, H) (``causal``: a state sees only
    its own token and the ones before)."""

    hidden: int
    token_width: int  # the width of the causal per-token states

    def forward(self, ids: Tensor, mask: Tensor, *, causal: bool = False) -> Tensor:  # pragma: no cover
        raise NotImplementedError

    def causal_states(self, states: Tensor) -> Tensor:
        return states


class _Transformer(_Encoder):
    """``torch.nn.TransformerEncoder`` (Vaswani et al. 2017, "Attention is all you need")
    over token embeddings plus learned position embeddings (as BERT, Devlin et al. 2019)."""

    def __init__(self, vocab: int, max_length: int, pad_id: int, *, hidden: int, layers: int, heads: int,
                 feedforward: int | None, dropout: float) -> None:
        super().__init__()
        if hidden % heads:
            raise ValueError(f"The 'hidden' parameter of the transformer trunk ({hidden}) must be a multiple of "
                             f"'heads' ({heads}).")
        self.hidden = self.token_width = hidden
        self.tokens = nn.Embedding(vocab, hidden, padding_idx=pad_id)
        self.positions = nn.Embedding(max_length, hidden)
        layer = nn.TransformerEncoderLayer(hidden, heads, feedforward or 4 * hidden, dropout, batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(hidden)

    def forward(self, ids: Tensor, mask: Tensor, *, causal: bool = False) -> Tensor:
        t = ids.shape[1]
        pos = torch.arange(t, device=ids.device)
        h = self.tokens(ids) + self.positions(pos)[None]
        pad = ~mask
        pad = torch.cat([torch.zeros_like(pad[:, :1]), pad[:, 1:]], dim=1)  # an all-padding row attends to slot 0
        attn = nn.Transformer.generate_square_subsequent_mask(t, device=ids.device, dtype=h.dtype) if causal else None
        pad_f = torch.zeros(pad.shape, dtype=h.dtype, device=h.device).masked_fill(pad, float("-inf"))
        return self.norm(self.encoder(h, mask=attn, src_key_padding_mask=pad_f))


class _BiLSTM(_Encoder):
    """A bidirectional LSTM (Hochreiter & Schmidhuber 1997; Graves & Schmidhuber 2005) over
    token embeddings; padded steps are skipped (packed sequences), so padding never changes a
    state. Causal states: the forward direction (width H/2)."""

    def __init__(self, vocab: int, pad_id: int, *, hidden: int, layers: int, dropout: float,
                 embedding_dim: int | None) -> None:
        super().__init__()
        if hidden % 2:
            raise ValueError(f"The 'hidden' parameter of the bilstm trunk must be even (two directions). Got {hidden}.")
        emb = embedding_dim or hidden
        self.hidden = hidden
        self.token_width = hidden // 2
        self.tokens = nn.Embedding(vocab, emb, padding_idx=pad_id)
        self.lstm = nn.LSTM(emb, hidden // 2, num_layers=layers, batch_first=True, bidirectional=True,
                            dropout=dropout if layers > 1 else 0.0)

    def forward(self, ids: Tensor, mask: Tensor, *, causal: bool = False) -> Tensor:
        h = self.tokens(ids)
        lengths = mask.sum(1).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(h, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        states, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])
        return states

    def causal_states(self, states: Tensor) -> Tensor:
        return states[..., : self.token_width]


class _TextCNN(_Encoder):
    """Kim (2014), "Convolutional neural networks for sentence classification": parallel 1-D
    convolutions of several widths over token embeddings, max-pooled over the real tokens.
    The padding embedding is zero, as the convolution's own zero padding, so padding never
    changes the output. No causal states."""

    def __init__(self, vocab: int, pad_id: int, *, hidden: int, kernel_sizes: Sequence[int],
                 embedding_dim: int | None, dropout: float) -> None:
        super().__init__()
        ks = [int(k) for k in kernel_sizes]
        if not ks or any(k < 1 or k % 2 == 0 for k in ks):
            raise ValueError(f"The 'kernel_sizes' parameter of the textcnn trunk must be odd positive integers. "
                             f"Got {list(kernel_sizes)}.")
        emb = embedding_dim or hidden
        self.tokens = nn.Embedding(vocab, emb, padding_idx=pad_id)
        per = max(1, hidden // len(ks))
        self.convs = nn.ModuleList(nn.Conv1d(emb, per, k, padding=k // 2) for k in ks)
        self.hidden = self.token_width = per * len(ks)
        self.dropout = nn.Dropout(dropout)

    def forward(self, ids: Tensor, mask: Tensor, *, causal: bool = False) -> Tensor:
        h = self.tokens(ids).transpose(1, 2)
        out = torch.cat([torch.relu(c(h)) for c in self.convs], dim=1).transpose(1, 2)
        return self.dropout(out)


class _HuggingFace(_Encoder):
    """Any Hugging Face ``transformers`` encoder loaded from a local folder
    (``AutoModel.from_pretrained(path, local_files_only=True)``): its last hidden states."""

    def __init__(self, model: str, vocab: int) -> None:
        super().__init__()
        try:
            from transformers import AutoModel
        except ImportError as exc:
            raise ImportError("The huggingface trunk needs the 'transformers' package: "
                              "pip install 'mtlkit[text]'.") from exc
        from pathlib import Path

        if not Path(model).is_dir():
            raise FileNotFoundError(f"The 'model' of the huggingface trunk must be a local model folder (nothing is "
                                    f"downloaded). Got {model!r}; save the model there with save_pretrained.")
        try:  # no hub kernels: they would be fetched from the network
            self.model = AutoModel.from_pretrained(model, local_files_only=True, use_kernels=False)
        except TypeError:  # pragma: no cover - transformers without the option
            self.model = AutoModel.from_pretrained(model, local_files_only=True)
        cfg = self.model.config
        self.hidden = self.token_width = int(getattr(cfg, "hidden_size", 0) or getattr(cfg, "d_model", 0))
        size = int(getattr(cfg, "vocab_size", 0) or 0)
        if size and vocab > size:
            raise ValueError(f"The text column's tokenizer has {vocab} tokens but the model {model!r} knows {size}: "
                             f"tokenise with the model's own tokenizer (data.text.tokenizer: {{huggingface: "
                             f"{model}}}).")

    def forward(self, ids: Tensor, mask: Tensor, *, causal: bool = False) -> Tensor:
        if causal:
            raise ValueError("The huggingface trunk has no causal per-token states; use transformer or bilstm "
                             "for a next-token task.")
        return self.model(input_ids=ids, attention_mask=mask.long()).last_hidden_state


# ---------------------------------------------------------------------------- the trunk
class _TextBlock(nn.Module):
    """The whole text trunk as one block: slots -> [pooled | dense] (or the token layout)."""

    def __init__(self, spec: dict[str, Any], width: int, encoder: _Encoder, *, pooling: str,
                 token_states: bool | str) -> None:
        super().__init__()
        from mtlkit.data.embedding import TabularInput

        self.text_cols = list(spec["text"])
        self.dense = int(spec.get("dense", 0))
        cards = list(spec.get("cardinalities") or [])
        self.n_embedded = len(cards)
        self.table = TabularInput(self.dense, cards, spec.get("dims") or []) if cards else None
        self.dense_out = self.table.out_features if self.table is not None else self.dense
        self.offset = self.dense + self.n_embedded
        need = self.offset + sum(int(c["max_length"]) for c in self.text_cols)
        if width != need:
            raise ValueError(f"The text trunk reads {need} input columns (the table's input spec); the data has "
                             f"{width}.")
        self.encoder = encoder
        self.pooling = pooling
        self.token_states = token_states
        #: "" (pooled only), "causal", "full" or "both" (see the module docstring)
        self.mode = "causal" if token_states is True else (token_states or "")
        self.max_length = int(self.text_cols[0]["max_length"])
        self.pad_id = int(self.text_cols[0]["pad_id"])
        if self.mode:
            w = self.width = encoder.token_width if self.mode == "causal" else encoder.hidden
            self.fuse = nn.Linear(encoder.hidden * len(self.text_cols) + self.dense_out, w)
            self.out_features = w * (1 + self.max_length * (2 if self.mode == "both" else 1))
        else:
            self.out_features = encoder.hidden * len(self.text_cols) + self.dense_out

    def slots(self, x: Tensor) -> tuple[Tensor, list[tuple[Tensor, Tensor]]]:
        """The dense part and, per text column, the trimmed token IDs and their mask."""
        dense = x[:, : self.offset]
        if self.table is not None:
            dense = self.table(dense)
        out, start = [], self.offset
        for c in self.text_cols:
            ids = x[:, start: start + int(c["max_length"])].round().long()
            start += int(c["max_length"])
            ids = torch.where((ids >= 0) & (ids < int(c["vocab"])), ids, torch.full_like(ids, int(c["pad_id"])))
            mask = ids != int(c["pad_id"])
            ids = torch.where(mask, ids, torch.full_like(ids, self.pad_id))  # the encoder's padding ID
            if not tracing() and ids.shape[0]:
                longest = int(mask.long().cumsum(1).argmax(1).max().item()) + 1 if bool(mask.any()) else 1
                ids, mask = ids[:, :longest], mask[:, :longest]
            out.append((ids, mask))
        return dense, out

    def pool(self, states: Tensor, mask: Tensor) -> Tensor:
        if self.pooling == "cls":
            return states[:, 0]
        if self.pooling == "max":
            return states.masked_fill(~mask.unsqueeze(-1), -1e4).amax(1) * mask.any(1, keepdim=True).to(states.dtype)
        return _masked_mean(states, mask)

    def columns(self, x: Tensor, *, causal: bool = False) -> tuple[Tensor, list[TextStates]]:
        dense, cols = self.slots(x)
        out = []
        for ids, mask in cols:
            states = self.encoder(ids, mask, causal=causal)
            out.append(TextStates(states, mask, self.pool(states, mask)))
        return dense, out

    def _flat(self, states: Tensor, mask: Tensor) -> Tensor:
        """(B, t, w) states -> (B, max_length · W): padding zeroed, positions and width padded."""
        tok = states * mask.unsqueeze(-1).to(states.dtype)
        b, t, w = tok.shape
        if t < self.max_length or w < self.width:
            tok = torch.cat([tok, tok.new_zeros(b, t, self.width - w)], dim=2) if w < self.width else tok
            tok = torch.cat([tok, tok.new_zeros(b, self.max_length - t, self.width)], dim=1)
        return tok.reshape(b, -1)

    def forward(self, x: Tensor) -> Tensor:
        mode = self.mode
        if mode == "both" and not isinstance(self.encoder, _BiLSTM):  # two passes: full, then causal
            dense, slots = self.slots(x)
            cols = []
            for ids, mask in slots:
                states = self.encoder(ids, mask)
                cols.append(TextStates(states, mask, self.pool(states, mask)))
            ids0, mask0 = slots[0]
            causal = self.encoder(ids0, mask0, causal=True)
        else:
            dense, cols = self.columns(x, causal=mode == "causal")
            causal = self.encoder.causal_states(cols[0].states)
        rep = torch.cat([c.pooled for c in cols] + [dense.to(cols[0].pooled.dtype)], dim=1)
        if not mode:
            return rep
        first = cols[0]
        blocks = [self.fuse(rep)]
        if mode in ("causal", "both"):
            blocks.append(self._flat(causal, first.mask))
        if mode in ("full", "both"):
            blocks.append(self._flat(first.states, first.mask))
        return torch.cat(blocks, dim=1)


class TextTrunk(nn.Sequential):
    """A text trunk: one named block (``text``) so that it plugs in wherever a stock trunk
    does (as :class:`~mtlkit.architectures.backbones.Trunk`: ``out_features`` and ``spec``)."""

    out_features: int
    spec: dict[str, Any]

    def token_states(self, x: Tensor, column: int = 0) -> TextStates:
        """Per-token states (B, T, H), mask (B, T) and pooled vector (B, H) of a text column
        (T: the batch's longest sequence)."""
        block: _TextBlock = self.text  # type: ignore[assignment]
        return block.columns(x, causal=block.mode == "causal")[1][column]


class TokenHead(nn.Module):
    """The head of a per-token task (``next_token``, ``token_tagging``): reads per-token
    states from the flat output of a text trunk built with ``token_states`` and maps each
    position's state to the task's classes with the same layers: (B, in_features) -> (B, C, T).

    The layout is ``[fused (W) | states (T × W)]`` (W = in_features / (T + 1): ``true``,
    ``full``) or ``[fused (W) | causal (T × W) | full (T × W)]`` (W = in_features / (2T + 1):
    ``both``; the trunk refuses a width for which both readings would fit). The task's kind
    says which states it reads (``token_states`` of the kind: ``"causal"`` for ``next_token``,
    ``"full"`` for ``token_tagging``); with one block of states, that block (a run checks
    that the trunk gives the right ones, :func:`token_states_for`).

    >>> from mtlkit import Task
    >>> head = TokenHead(4 * 7, Task("lm", "next_token", num_classes=9, out_shape=(6,)))
    >>> head(torch.zeros(2, 28)).shape
    torch.Size([2, 9, 6])
    """

    def __init__(self, in_features: int, task: Any, hidden: Sequence[int] = ()) -> None:
        super().__init__()
        t = int((task.out_shape or (0,))[0])
        blocks = 1 if t >= 1 and in_features % (t + 1) == 0 else 2 if t >= 1 and in_features % (2 * t + 1) == 0 else 0
        if not blocks:
            raise ValueError(f"Task {task.name!r} ({task.kind}) reads per-token states: build the text trunk with "
                             f"token_states: true (or full, both) and max_length {t} (its representation width "
                             f"{in_features} is not a multiple of max_length + 1 nor of 2·max_length + 1).")
        self.length, self.width = t, in_features // (1 + blocks * t)
        full = getattr(task.task_kind, "token_states", "causal") == "full"
        self.start = self.width * (1 + t) if blocks == 2 and full else self.width
        layers: list[nn.Module] = []
        prev = self.width
        for h in hidden:
            layers += [nn.Linear(prev, int(h)), nn.ReLU()]
            prev = int(h)
        layers.append(nn.Linear(prev, int(task.num_classes or 0)))
        self.net = nn.Sequential(*layers)

    def forward(self, rep: Tensor) -> Tensor:
        states = rep[:, self.start: self.start + self.length * self.width].reshape(rep.shape[0], self.length,
                                                                                  self.width)
        return self.net(states).transpose(1, 2)


def _check_params(name: str, params: dict[str, Any], allowed: set[str]) -> None:
    bad = sorted(set(params) - allowed)
    if bad:
        raise ValueError(f"Bad parameters for trunk {name!r}: {bad}; it takes {sorted(allowed)}.")


def _encoder(name: str, col: dict[str, Any], p: dict[str, Any]) -> _Encoder:
    vocab, length, pad = int(col["vocab"]), int(col["max_length"]), int(col["pad_id"])
    hidden = int(p.get("hidden", 64))
    if hidden < 1:
        raise ValueError(f"The 'hidden' parameter of the {name} trunk must be a positive integer. Got {hidden}.")
    dropout = float(p.get("dropout", 0.1 if name == "transformer" else 0.0))
    if not 0.0 <= dropout < 1.0 or math.isnan(dropout):
        raise ValueError(f"The 'dropout' parameter of the {name} trunk must be in [0, 1). Got {dropout}.")
    if name == "transformer":
        return _Transformer(vocab, length, pad, hidden=hidden, layers=int(p.get("layers", 2)),
                            heads=int(p.get("heads", 4)), feedforward=p.get("feedforward"), dropout=dropout)
    if name == "bilstm":
        return _BiLSTM(vocab, pad, hidden=hidden, layers=int(p.get("layers", 1)), dropout=dropout,
                       embedding_dim=p.get("embedding_dim"))
    if name == "textcnn":
        return _TextCNN(vocab, pad, hidden=hidden, kernel_sizes=p.get("kernel_sizes", (3, 5)),
                        embedding_dim=p.get("embedding_dim"), dropout=dropout)
    if "model" not in p:
        raise ValueError("The huggingface trunk needs 'model': the path of a local model folder.")
    return _HuggingFace(str(p["model"]), vocab)


_PARAMS = {"transformer": {"hidden", "layers", "heads", "feedforward", "dropout"},
           "bilstm": {"hidden", "layers", "dropout", "embedding_dim"},
           "textcnn": {"hidden", "kernel_sizes", "embedding_dim", "dropout"},
           "huggingface": {"model"}}


def _width(spec: dict[str, Any]) -> int:
    return (int(spec.get("dense", 0)) + len(spec.get("cardinalities") or [])
            + sum(int(c["max_length"]) for c in spec.get("text") or []))


def transformer(input: dict[str, Any], *, hidden: int = 64, layers: int = 2, heads: int = 4,
                feedforward: int | None = None, dropout: float = 0.1, pooling: str = "mean",
                token_states: bool | str = False) -> TextTrunk:
    """A Transformer encoder trunk over the text slots of ``input`` (a table's input spec)."""
    return build_text_trunk({"name": "transformer", "input": input, "hidden": hidden, "layers": layers,
                             "heads": heads, "feedforward": feedforward, "dropout": dropout, "pooling": pooling,
                             "token_states": token_states}, (_width(input),))


def bilstm(input: dict[str, Any], *, hidden: int = 64, layers: int = 1, dropout: float = 0.0,
           embedding_dim: int | None = None, pooling: str = "mean", token_states: bool | str = False) -> TextTrunk:
    """A BiLSTM trunk over the text slots of ``input`` (a table's input spec)."""
    return build_text_trunk({"name": "bilstm", "input": input, "hidden": hidden, "layers": layers, "dropout": dropout,
                             "embedding_dim": embedding_dim, "pooling": pooling, "token_states": token_states},
                            (_width(input),))


def textcnn(input: dict[str, Any], *, hidden: int = 64, kernel_sizes: Sequence[int] = (3, 5),
            embedding_dim: int | None = None, dropout: float = 0.0, pooling: str = "max",
            token_states: bool | str = False) -> TextTrunk:
    """A 1-D CNN trunk (Kim 2014) over the text slots of ``input`` (a table's input spec)."""
    return build_text_trunk({"name": "textcnn", "input": input, "hidden": hidden, "kernel_sizes": list(kernel_sizes),
                             "embedding_dim": embedding_dim, "dropout": dropout, "pooling": pooling,
                             "token_states": token_states}, (_width(input),))


def huggingface(input: dict[str, Any], *, model: str, pooling: str = "cls",
                token_states: bool | str = False) -> TextTrunk:
    """A local Hugging Face encoder (``model``: its folder) over the text slots of ``input``."""
    return build_text_trunk({"name": "huggingface", "input": input, "model": model, "pooling": pooling,
                             "token_states": token_states}, (_width(input),))


def _token_states_option(name: str, value: Any) -> bool | str:
    """``token_states`` as False, True (causal: the layout of earlier runs), "full" or "both"."""
    if value is None or isinstance(value, bool):
        return bool(value)
    if value not in TOKEN_STATES:
        raise ValueError(f"The 'token_states' parameter of the {name} trunk must be true, false, 'causal', 'full' or "
                         f"'both'. Got {value!r}.")
    return True if value == "causal" else str(value)


def token_states_for(trunk: dict[str, Any], tasks: Sequence[Any]) -> dict[str, Any]:
    """The spec of a text trunk with the ``token_states`` its per-token tasks need: the kinds
    say which states their heads read (``next_token``: causal, ``token_tagging``: full). Left
    out (or false), it is set (``true``, ``"full"`` or ``"both"``); given, it must provide them
    (an error names the task and the value to use). Other trunks are returned as they are.

    >>> from mtlkit import Task
    >>> token_states_for({"name": "bilstm"}, [Task("ner", "token_tagging")])["token_states"]
    'full'
    """
    if not isinstance(trunk, dict) or trunk.get("name") not in TEXT_TRUNKS:
        return trunk
    need: dict[str, str] = {}
    for t in tasks:
        if getattr(t.task_kind, "per_token", False):
            need.setdefault(getattr(t.task_kind, "token_states", "causal"), t.name)
    if not need:
        return trunk
    name = str(trunk["name"])
    given = _token_states_option(name, trunk.get("token_states", False))
    has = {True: {"causal"}, "full": {"full"}, "both": {"causal", "full"}}.get(given, set())
    want: bool | str = "both" if len(need) == 2 else (True if "causal" in need else "full")
    if not given:
        return {**trunk, "token_states": want}
    lacking = [k for k in need if k not in has]
    if lacking:
        raise ValueError(f"Task {need[lacking[0]]!r} reads {lacking[0]} per-token states, which model.trunk."
                         f"token_states: {given} does not give; use token_states: "
                         f"{'true' if want is True else want} (or leave it out).")
    return trunk


#: the registered text trunks (merged into :data:`mtlkit.architectures.backbones.TRUNKS`)
TEXT_TRUNK_BUILDERS = {"transformer": transformer, "bilstm": bilstm, "textcnn": textcnn, "huggingface": huggingface}


def build_text_trunk(spec: dict[str, Any], input_shape: Sequence[int]) -> TextTrunk:
    """A text trunk from ``{name, input, pooling, token_states, **params}``; ``input`` is the
    table's input spec with its ``text`` entry (filled in by the run)."""
    spec = dict(spec)
    name = spec.pop("name")
    inp = spec.pop("input", None)
    if not inp or not inp.get("text"):
        raise ValueError(f"The {name} trunk reads text columns, and the data has none: declare a column "
                         f"text (data.features: {{column: text}}), or use a trunk for dense inputs (mlp).")
    pooling = spec.pop("pooling", {"huggingface": "cls", "textcnn": "max"}.get(name, "mean"))
    if pooling not in ("mean", "cls", "max"):
        raise ValueError(f"The 'pooling' parameter of the {name} trunk must be 'mean', 'cls' or 'max'. Got {pooling!r}.")
    token_states = _token_states_option(name, spec.pop("token_states", False))
    if token_states in (True, "both") and name not in ("transformer", "bilstm"):
        raise ValueError(f"The {name} trunk has no causal per-token states (token_states: {token_states}); use "
                         f"transformer or bilstm{', or token_states: full' if token_states == 'both' else ''}.")
    spec.pop("in_features", None)
    spec = {k: v for k, v in spec.items() if v is not None}
    _check_params(name, spec, _PARAMS[name])
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 1:
        raise ValueError(f"The {name} trunk reads a table's encoded rows (features,); the data has shape {shape}.")
    lengths = {int(c["max_length"]) for c in inp["text"]}
    if token_states and len(lengths) > 1:
        raise ValueError("token_states needs every text column to have the same max_length.")
    first = {"vocab": max(int(c["vocab"]) for c in inp["text"]), "max_length": max(lengths),
             "pad_id": int(inp["text"][0]["pad_id"])}
    encoder = _encoder(name, first, spec)
    if token_states == "both" and encoder.hidden % (first["max_length"] + 1) == 0:
        raise ValueError(f"token_states: both with a width of {encoder.hidden} and max_length {first['max_length']}: "
                         f"the width must not be a multiple of max_length + 1 (the per-token heads could not tell "
                         f"the layout apart from a one-block one); change 'hidden' or max_length.")
    block = _TextBlock(inp, shape[0], encoder, pooling=pooling, token_states=token_states)
    t = TextTrunk(OrderedDict([("text", block)]))
    t.out_features = block.out_features
    t.spec = {"name": name, **spec, "pooling": pooling, "token_states": token_states, "input": dict(inp)}
    return t
