"""The decoder shared by the ``generation`` tasks of a text model (decaNLP / MT-DNN style).

McCann et al. (2018), "The natural language decathlon: multitask learning as question
answering" (decaNLP): every task is generation from one shared encoder and one shared decoder;
the task is told by its question. Here the encoder is the run's text trunk
(:mod:`mtlkit.architectures.text`) and :class:`SharedDecoder` a Transformer decoder (Vaswani et
al. 2017; ``torch.nn.TransformerDecoder``, pre-norm): causal self-attention over the tokens
produced so far, cross-attention over the encoder's per-token states of every text column
(their padding masked). **Task conditioning**: each generation task has a learned start token
(the decoder's input at position 0; an embedding of the task index, not a vocabulary token), so
the decoder is told which task it serves as decaNLP's question tells its model, with one
decoder for all tasks. The output layer maps to the input tokenizer's vocabulary (shared
vocabulary, decaNLP's choice); the padding token doubles as the end-of-sequence token.

Teacher forcing and the ``forward(x)`` contract
-----------------------------------------------
The model contract is ``forward(x) -> {task: Tensor}``, and teacher forcing needs the target
in the forward pass. The target of each generation task travels as ``max_length`` **decoder
input slots** at the end of the table's input matrix (as Hugging Face's ``decoder_input_ids``),
listed in the input spec (``input.decoder``: ``{task, column, vocab, max_length, pad_id}``) and
never read by the encoder: the target token IDs, padding after the end, ``-1`` where the target
is missing (at prediction time the column is absent, so every slot is ``-1``). So the trainer,
the gradient methods, the weightings, checkpoints, DDP and ONNX-free inference see an ordinary
model with one loss per task.

* training (``model.train()``): teacher forcing, the decoder reads ``[start_task, y_1 ..
  y_{L-1}]`` and its logits at position t predict ``y_t``;
* evaluation and prediction (``model.eval()``): the same teacher-forced logits (for the token
  accuracy; meaningless when the slots are ``-1``) and, autoregressively, the decoded sequence:
  greedy (default) or beam search (``decode: {method: beam, beam_size: 4}``; beams ranked by
  the sum of token log-probabilities, the end token included, no length normalisation).

:class:`Seq2SeqTrunk` wraps the text trunk and the decoder: its flat output is ``[text trunk
output (R) | per generation task: logits (V × L) and decoded IDs (L), i.e. (V + 1) × L]``, and
``head_layout`` says where each part is, so the heads of the other tasks read only the first R
columns and a generation task's head is its slice (no parameters of its own). The decoder sits
in the shared trunk: it counts among ``shared_parameters()``, and no task owns it.

Under ``soft_sharing`` (one trunk copy per task, tied by a penalty) each column is restricted
to its own task (:meth:`Seq2SeqTrunk.restrict_to`): a generation task's column holds its own
encoder and its own copy of the decoder and computes only its own block; the other tasks'
columns are encoder-only. So the decoder is not one module shared by the generation tasks
there: their copies are *soft*-shared, tied to each other by the soft-sharing penalty as the
encoders are (our choice; decaNLP shares one decoder, which is hard sharing). Under
``cross_stitch`` the columns are restricted the same way and the unit after the text trunk mixes
the columns' :meth:`Seq2SeqTrunk.encode` outputs before each decoder reads them
(:meth:`Seq2SeqTrunk.decode_blocks`).

Config: ``model.trunk: {name: transformer, ..., decoder: {hidden, layers, heads, feedforward,
dropout, decode: {method: greedy | beam, beam_size, max_length}}}`` (defaults: the encoder's
width, 1 layer, 4 heads (fewer if the width needs), 4·hidden, 0.1, greedy, 4, the task's L).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["DECODE_METHODS", "GenerationSlice", "Seq2SeqTrunk", "SharedDecoder", "build_seq2seq_trunk",
           "check_decoder_settings"]

DECODE_METHODS = ("greedy", "beam")


class SharedDecoder(nn.Module):
    """A Transformer decoder shared by several generation tasks (see the module docstring).

    Args:
        vocab: the vocabulary size V (output classes and input tokens).
        memory_width: the width of the encoder's per-token states (projected to ``hidden``).
        n_tasks: the number of generation tasks (one learned start token each).
        max_length: the longest sequence L it produces.
        eos_id: the end-of-sequence ID (the padding ID).

    >>> torch.manual_seed(0) and None
    >>> dec = SharedDecoder(9, 8, n_tasks=2, max_length=5, hidden=8, heads=2, dropout=0.0).eval()
    >>> memory, pad = torch.randn(3, 4, 8), torch.zeros(3, 4, dtype=torch.bool)
    >>> dec.teacher_forced(memory, pad, 1, torch.ones(3, 5, dtype=torch.long)).shape
    torch.Size([3, 9, 5])
    >>> dec.greedy(memory, pad, 0, 5)[0].shape
    torch.Size([3, 5])
    """

    def __init__(self, vocab: int, memory_width: int, *, n_tasks: int, max_length: int, hidden: int = 64,
                 layers: int = 1, heads: int = 4, feedforward: int | None = None, dropout: float = 0.1,
                 eos_id: int = 0) -> None:
        super().__init__()
        for name, value, low in (("vocab", vocab, 2), ("hidden", hidden, 1), ("layers", layers, 1),
                                 ("heads", heads, 1), ("n_tasks", n_tasks, 1), ("max_length", max_length, 1)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"The {name!r} parameter of the shared decoder must be an integer >= {low}. "
                                 f"Got {value!r}.")
        if hidden % heads:
            raise ValueError(f"The 'hidden' parameter of the shared decoder ({hidden}) must be a multiple of "
                             f"'heads' ({heads}).")
        if not 0.0 <= dropout < 1.0 or math.isnan(dropout):
            raise ValueError(f"The 'dropout' parameter of the shared decoder must be in [0, 1). Got {dropout}.")
        if not 0 <= eos_id < vocab:
            raise ValueError(f"The end-of-sequence ID {eos_id} of the shared decoder is outside its vocabulary "
                             f"of {vocab}.")
        self.vocab, self.max_length, self.eos_id = vocab, max_length, eos_id
        self.tokens = nn.Embedding(vocab, hidden)
        self.starts = nn.Embedding(n_tasks, hidden)  # one learned start token per generation task
        self.positions = nn.Embedding(max_length, hidden)
        self.memory = nn.Linear(memory_width, hidden) if memory_width != hidden else nn.Identity()
        layer = nn.TransformerDecoderLayer(hidden, heads, feedforward or 4 * hidden, dropout, batch_first=True,
                                           norm_first=True)
        self.decoder = nn.TransformerDecoder(layer, layers)
        self.norm = nn.LayerNorm(hidden)
        self.out = nn.Linear(hidden, vocab)

    def project(self, memory: Tensor) -> Tensor:
        """Encoder states (B, S, memory_width) -> (B, S, hidden)."""
        return self.memory(memory)

    def step_logits(self, memory: Tensor, memory_pad: Tensor, task: int, prev: Tensor, *,
                    last: bool = False) -> Tensor:
        """Logits (B, t + 1, V) of the positions after ``[start_task, prev]`` (``last``: of the
        last position only, (B, 1, V)); ``memory`` already projected, ``memory_pad`` (B, S)
        ``True`` at padding, ``prev`` (B, t) token IDs."""
        b, t = prev.shape[0], prev.shape[1] + 1
        start = self.starts.weight[task].expand(b, 1, -1)
        h = torch.cat([start, self.tokens(prev)], dim=1) + self.positions.weight[:t][None]
        causal = nn.Transformer.generate_square_subsequent_mask(t, device=h.device, dtype=h.dtype)
        pad = memory_pad.clone()
        pad[:, 0] = False  # a row without any real token attends to its first slot (never NaN)
        pad_f = torch.zeros(pad.shape, dtype=h.dtype, device=h.device).masked_fill(pad, float("-inf"))
        h = self.decoder(h, memory, tgt_mask=causal, memory_key_padding_mask=pad_f, tgt_is_causal=True)
        return self.out(self.norm(h[:, -1:] if last else h))

    def teacher_forced(self, memory: Tensor, memory_pad: Tensor, task: int, target: Tensor) -> Tensor:
        """(B, V, L) logits of position t given the gold prefix ``target[:, :t]`` (IDs outside
        the vocabulary, e.g. the ``-1`` of a missing target, read as the end token)."""
        length = target.shape[1]
        prev = torch.where((target >= 0) & (target < self.vocab), target, torch.full_like(target, self.eos_id))
        return self.step_logits(self.project(memory), memory_pad, task, prev[:, : length - 1]).transpose(1, 2)

    def _ended(self, ids: Tensor) -> Tensor:
        """Token IDs (B, L) with ``-1`` from each row's first end token on."""
        end = (ids == self.eos_id).long().cumsum(1) > 0
        return torch.where(end, torch.full_like(ids, -1), ids)

    @torch.no_grad()
    def greedy(self, memory: Tensor, memory_pad: Tensor, task: int, length: int) -> tuple[Tensor, Tensor]:
        """Greedy decoding: the IDs (B, L) (``-1`` from the end token on) and the per-step
        logits (B, V, L) along the decoded sequence."""
        mem = self.project(memory)
        b = memory.shape[0]
        prev = torch.zeros(b, 0, dtype=torch.long, device=memory.device)
        done = torch.zeros(b, dtype=torch.bool, device=memory.device)
        steps = []
        for _ in range(length):
            logits = self.step_logits(mem, memory_pad, task, prev, last=True)[:, -1]
            tok = torch.where(done, torch.full_like(done, self.eos_id, dtype=torch.long), logits.argmax(-1))
            done = done | (tok == self.eos_id)
            prev = torch.cat([prev, tok[:, None]], dim=1)
            steps.append(logits)
        return self._ended(prev), torch.stack(steps, dim=2)

    @torch.no_grad()
    def beam(self, memory: Tensor, memory_pad: Tensor, task: int, length: int, beam_size: int) -> Tensor:
        """Beam search (Graves 2012; Sutskever et al. 2014) keeping ``beam_size`` prefixes per
        sample ranked by their summed token log-probabilities (the end token included; an ended
        beam continues with the end token at no cost; no length normalisation): the best
        sequence's IDs (B, L), ``-1`` from the end token on."""
        b, k, v = memory.shape[0], beam_size, self.vocab
        mem = self.project(memory).repeat_interleave(k, 0)
        pad = memory_pad.repeat_interleave(k, 0)
        prev = torch.zeros(b * k, 0, dtype=torch.long, device=memory.device)
        done = torch.zeros(b * k, dtype=torch.bool, device=memory.device)
        scores = torch.full((b, k), float("-inf"), device=memory.device)
        scores[:, 0] = 0.0
        ended = torch.full((v,), float("-inf"), device=memory.device)
        ended[self.eos_id] = 0.0
        rows = torch.arange(b, device=memory.device)[:, None] * k
        for _ in range(length):
            logp = torch.log_softmax(self.step_logits(mem, pad, task, prev, last=True)[:, -1].float(), dim=-1)
            logp = torch.where(done[:, None], ended[None], logp)
            cand = (scores.reshape(-1, 1) + logp).reshape(b, k * v)
            scores, idx = cand.topk(k, dim=1)
            src = (rows + idx // v).reshape(-1)
            tok = (idx % v).reshape(-1)
            prev = torch.cat([prev[src], tok[:, None]], dim=1)
            done = done[src] | (tok == self.eos_id)
        best = scores.argmax(1)
        return self._ended(prev.reshape(b, k, length)[torch.arange(b, device=memory.device), best])

    def sequence_log_prob(self, memory: Tensor, memory_pad: Tensor, task: int, ids: Tensor) -> Tensor:
        """Summed log-probability (B,) of sequences ``ids`` (B, L) (``-1`` from the end token
        on), the end token included, as :meth:`beam` ranks them."""
        filled = torch.where(ids >= 0, ids, torch.full_like(ids, self.eos_id))
        logp = torch.log_softmax(self.teacher_forced(memory, memory_pad, task, filled).float(), dim=1)
        tok = logp.gather(1, filled[:, None]).squeeze(1)
        first_end = (ids < 0).long().cumsum(1) <= 1  # the tokens and the end token itself
        return (tok * first_end.to(tok.dtype)).sum(1)


class GenerationSlice(nn.Module):
    """A head that reads columns ``[start, stop)`` of the flat representation (no parameters):
    a generation task's block, or the text part that the other heads read."""

    def __init__(self, start: int, stop: int) -> None:
        super().__init__()
        self.start, self.stop = int(start), int(stop)

    def forward(self, rep: Tensor) -> Tensor:
        return rep[:, self.start: self.stop]

    def extra_repr(self) -> str:
        return f"start={self.start}, stop={self.stop}"


class Seq2SeqTrunk(nn.Module):
    """A text trunk and the decoder shared by the generation tasks (see the module docstring):
    ``x`` (B, W + Σ L) -> ``[text trunk output | per generation task (V + 1) × L]``."""

    def __init__(self, encoder: nn.Module, entries: Sequence[Mapping[str, Any]], encoder_width: int,
                 decoder: SharedDecoder, *, method: str = "greedy", beam_size: int = 4,
                 decode_length: int | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder: SharedDecoder | None = decoder
        self.entries = [dict(e) for e in entries]
        self.encoder_width = int(encoder_width)
        self.method, self.beam_size = method, int(beam_size)
        self.decode_length = decode_length
        #: the generation tasks whose blocks this trunk computes (all, unless :meth:`restrict_to`)
        self.active = [str(e["task"]) for e in self.entries]
        self.head_layout: dict[str, Any] = {}
        self._set_layout()
        self.spec: dict[str, Any] = {}

    def _set_layout(self) -> None:
        rep = int(getattr(self.encoder, "out_features"))  # noqa: B009 - a TextTrunk attribute nn.Module does not type
        tasks, start = {}, rep
        for e in self.entries:
            if str(e["task"]) in self.active:
                stop = start + (int(e["vocab"]) + 1) * int(e["max_length"])
                tasks[str(e["task"])] = (start, stop)
                start = stop
        self.out_features = start
        #: where the heads read: the text part (other tasks) and each generation task's block
        self.head_layout = {"shared": rep, "tasks": tasks}

    def restrict_to(self, names: Sequence[str]) -> Seq2SeqTrunk:
        """Compute the blocks of the generation tasks among ``names`` only (the column of one
        task in :class:`~mtlkit.architectures.soft_sharing.SoftSharing`): the output and
        ``head_layout`` hold those blocks only, and without any the decoder is dropped (an
        encoder-only column). Each kept task keeps its start token (its index among all the
        generation tasks), and every decoder input slot stays in the input. Returns ``self``."""
        keep = {str(n) for n in names}
        self.active = [str(e["task"]) for e in self.entries if str(e["task"]) in keep]
        if not self.active:
            self.decoder = None
        self._set_layout()
        return self

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The text trunk's output (B, R), the encoder states of every text column (B, S, H)
        and their padding mask (B, S) (``True`` = padding)."""
        block: Any = self.encoder.text
        enc_x = x[:, : self.encoder_width]
        if block.token_states:  # the trunk's own (causal) layout, and full-context states to attend to
            rep = self.encoder(enc_x)
            cols = block.columns(enc_x, causal=False)[1]
        else:
            dense, cols = block.columns(enc_x)
            rep = torch.cat([c.pooled for c in cols] + [dense.to(cols[0].pooled.dtype)], dim=1)
        memory = torch.cat([c.states for c in cols], dim=1)
        pad = ~torch.cat([c.mask for c in cols], dim=1)
        return rep, memory, pad

    def generate(self, task: int, memory: Tensor, pad: Tensor, slots: Tensor) -> Tensor:
        """(B, V + 1, L): teacher-forced logits on ``slots`` and the decoded IDs (arg-max of
        those logits in training; greedy or beam search otherwise)."""
        length = slots.shape[1]
        assert self.decoder is not None, "restrict_to() dropped the decoder: no generation task is computed"
        logits = self.decoder.teacher_forced(memory, pad, task, slots)
        if self.training:
            ids = self.decoder._ended(logits.argmax(1))
        else:
            steps = min(self.decode_length or length, length)
            if self.method == "beam":
                ids = self.decoder.beam(memory, pad, task, steps, self.beam_size)
            else:
                ids = self.decoder.greedy(memory, pad, task, steps)[0]
            if steps < length:
                ids = torch.cat([ids, ids.new_full((ids.shape[0], length - steps), -1)], dim=1)
        return torch.cat([logits, ids[:, None].to(logits.dtype)], dim=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.decode_blocks(x, *self.encode(x))

    def decode_blocks(self, x: Tensor, rep: Tensor, memory: Tensor, pad: Tensor) -> Tensor:
        """The flat output from :meth:`encode`'s parts (``x`` for the decoder input slots);
        cross-stitch mixes those parts between the task columns before this step."""
        outs, start = [rep], self.encoder_width
        for k, e in enumerate(self.entries):
            length = int(e["max_length"])
            slots = x[:, start: start + length].round().long()
            start += length
            if str(e["task"]) not in self.active:  # another column's task (soft sharing)
                continue
            outs.append(self.generate(k, memory, pad, slots).reshape(x.shape[0], -1))
        return torch.cat(outs, dim=1)


def _decoder_settings(p: Mapping[str, Any], hidden: int) -> tuple[dict[str, Any], dict[str, Any]]:
    allowed = {"hidden", "layers", "heads", "feedforward", "dropout", "decode"}
    bad = sorted(set(p) - allowed)
    if bad:
        raise ValueError(f"Unknown setting(s) {bad} of model.trunk.decoder; it takes {sorted(allowed)}.")
    dec = dict(p.get("decode") or {})
    bad = sorted(set(dec) - {"method", "beam_size", "max_length"})
    if bad:
        raise ValueError(f"Unknown setting(s) {bad} of model.trunk.decoder.decode; it takes method, beam_size, "
                         f"max_length.")
    method = dec.get("method", "greedy")
    if method not in DECODE_METHODS:
        raise ValueError(f"The 'method' of model.trunk.decoder.decode must be one of {DECODE_METHODS}. "
                         f"Got {method!r}.")
    for key in ("beam_size", "max_length"):
        v = dec.get(key)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
            raise ValueError(f"The {key!r} of model.trunk.decoder.decode must be a positive integer. Got {v!r}.")
    width = int(p.get("hidden", hidden))
    heads = int(p.get("heads", next(h for h in (4, 2, 1) if width % h == 0)))
    net = {"hidden": width, "layers": int(p.get("layers", 1)), "heads": heads, "feedforward": p.get("feedforward"),
           "dropout": float(p.get("dropout", 0.1))}
    return net, {"method": method, "beam_size": int(dec.get("beam_size", 4)), "decode_length": dec.get("max_length")}


def check_decoder_settings(trunk: str, settings: Any) -> None:
    """Check ``model.trunk.decoder`` before any data is read (names the wrong setting)."""
    from mtlkit.architectures.text import TEXT_TRUNKS

    if trunk not in TEXT_TRUNKS:
        raise ValueError(f"model.trunk.decoder (the decoder of generation tasks) needs a text trunk "
                         f"({', '.join(TEXT_TRUNKS)}). Got trunk {trunk!r}.")
    if not isinstance(settings, Mapping):
        raise ValueError(f"model.trunk.decoder must be a mapping of the decoder's settings. Got {settings!r}.")
    _decoder_settings(settings, 64)


def build_seq2seq_trunk(spec: Mapping[str, Any], input_shape: Sequence[int]) -> Seq2SeqTrunk:
    """The text trunk of ``spec`` with the decoder of the generation tasks listed in its input
    spec (``input.decoder``); ``spec["decoder"]`` holds the decoder's settings."""
    from mtlkit.architectures.text import build_text_trunk

    spec = dict(spec)
    settings = spec.pop("decoder", None) or {}
    if not isinstance(settings, Mapping):
        raise ValueError(f"model.trunk.decoder must be a mapping of the decoder's settings. Got {settings!r}.")
    inp = dict(spec.get("input") or {})
    entries = list(inp.pop("decoder", None) or [])
    if not entries:
        raise ValueError("model.trunk.decoder configures the decoder of generation tasks; the run has none "
                         "(a task of kind generation whose target is a text column).")
    shape = tuple(int(s) for s in input_shape)
    width = shape[0] - sum(int(e["max_length"]) for e in entries)
    encoder = build_text_trunk({**spec, "input": inp}, (width,))
    block: Any = encoder.text
    net, dec = _decoder_settings(settings, int(block.encoder.hidden))
    vocabs = {int(e["vocab"]) for e in entries}
    pads = {int(e["pad_id"]) for e in entries}
    if len(vocabs) != 1 or len(pads) != 1:
        raise ValueError(f"The generation tasks {[e['task'] for e in entries]} share one decoder and must share "
                         f"one vocabulary; their vocabularies differ ({sorted(vocabs)}).")
    decoder = SharedDecoder(vocabs.pop(), int(block.encoder.hidden), n_tasks=len(entries),
                            max_length=max(int(e["max_length"]) for e in entries), eos_id=pads.pop(), **net)
    trunk = Seq2SeqTrunk(encoder, entries, width, decoder, **dec)
    trunk.spec = {**dict(getattr(encoder, "spec", {})), "decoder": dict(settings),
                  "input": {**dict(getattr(encoder, "spec", {}).get("input") or {}), "decoder": entries}}
    return trunk
