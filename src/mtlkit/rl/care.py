"""``care``: CARE, Contextual Attention-based REpresentation learning (Sodhani, Zhang and
Pineau, ICML 2021, "Multi-Task Reinforcement Learning with Context-based Representations",
https://arxiv.org/abs/2102.06177).

From the task's *metadata* a context encoder computes ``z_τ``; ``k`` state encoders
``E_1 … E_k`` each encode the observation; attention weights driven by the context alone

    w_τ = softmax(g(z_τ) / temperature) ∈ Δ^k

mix them, ``z_enc = Σ_j w_τ,j·E_j(s)``, and the actor and critic (the backbone) take
``[z_enc, z_τ]``. So each task chooses which representations it uses, and tasks that need
different features need not share them.

Context: the paper embeds a text description with a frozen pretrained language model; here,
with no download, a *learned* bag of hashed words (each lower-cased word or number is
hashed with CRC-32 into ``hash_buckets`` rows of an embedding table, the rows of a
description are averaged) or a metadata *vector* (standardised over the tasks), followed by
a small MLP. The paper trains with SAC on Meta-World; here the same network sits in the
on-policy actor-critic of the other methods, and the context and encoders are trained by
both the actor's and the critic's losses.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from mtlkit.rl._base import ACTIVATIONS, ActorCritic, AgentOutput, RLAgent, mlp
from mtlkit.rl._envs import Space

_WORD = re.compile(r"[a-z0-9]+(?:\.[0-9]+)?")


def hashed_words(text: str, buckets: int) -> list[int]:
    """The bucket of each word of ``text`` (lower-cased words and numbers, CRC-32; the same
    on every machine and Python process).

    >>> hashed_words("Long pole, mass 0.5", 1000) == hashed_words("long POLE mass 0.5", 1000)
    True
    """
    return [zlib.crc32(w.encode("utf-8")) % buckets for w in _WORD.findall(text.lower())]


def bag_of_words(texts: Sequence[str], buckets: int) -> torch.Tensor:
    """``[T, buckets]``: row ``t`` is the average of the one-hot buckets of text ``t``'s words."""
    out = torch.zeros(len(texts), buckets)
    for t, text in enumerate(texts):
        ids = hashed_words(text, buckets)
        if not ids:
            raise ValueError(f"The metadata text of task {t} has no words: {text!r}.")
        for i in ids:
            out[t, i] += 1.0 / len(ids)
    return out


def standardise(vectors: Sequence[Sequence[float]]) -> torch.Tensor:
    """Metadata vectors centred and scaled per component over the tasks (constant components
    are only centred)."""
    x = torch.tensor([list(map(float, v)) for v in vectors], dtype=torch.float32)
    sd = x.std(0, unbiased=False)
    return (x - x.mean(0)) / torch.where(sd > 0, sd, torch.ones_like(sd))


class CARE(RLAgent):
    """Mixture of ``encoders`` state encoders, attention from the task context.

    ``metadata``: one text per task, or one vector per task (all the same length).

    >>> from mtlkit.rl import Space
    >>> agent = CARE([Space(4, 2, "")] * 2, hidden=[8], encoders=3,
    ...              metadata=["short light pole", "long heavy pole"])
    >>> w = agent.attention_weights()
    >>> tuple(w.shape), bool(torch.allclose(w.sum(1), torch.ones(2)))
    ((2, 3), True)
    """

    method = "care"

    def __init__(self, spaces: Sequence[Space], *, hidden: Sequence[int] = (64, 64), activation: str = "tanh",
                 metadata: Sequence[str] | Sequence[Sequence[float]], encoders: int = 4, encoder_dim: int = 32,
                 context_dim: int = 16, hash_buckets: int = 256, temperature: float = 1.0) -> None:
        super().__init__(spaces, hidden=hidden, activation=activation)
        for name, value in (("encoders", encoders), ("encoder_dim", encoder_dim), ("context_dim", context_dim),
                            ("hash_buckets", hash_buckets)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"The {name!r} parameter of CARE must be a positive integer. Got {value!r}.")
        if not temperature > 0:
            raise ValueError(f"The 'temperature' parameter of CARE must be a positive float. Got {temperature!r}.")
        if len(metadata) != self.n_tasks:
            raise ValueError(f"CARE needs one metadata entry per task ({self.n_tasks}). Got {len(metadata)}.")
        self.metadata: list[Any] = [m if isinstance(m, str) else [float(x) for x in m] for m in metadata]
        self.text = all(isinstance(m, str) for m in self.metadata)
        if not self.text and any(isinstance(m, str) for m in self.metadata):
            raise ValueError("CARE's metadata must be all texts or all vectors, not a mix.")
        self.encoders_k, self.encoder_dim, self.context_dim = encoders, encoder_dim, context_dim
        self.hash_buckets, self.temperature = hash_buckets, float(temperature)
        act = ACTIVATIONS[activation]
        self.meta: torch.Tensor
        self.word_embedding: nn.Parameter | None
        if self.text:
            self.register_buffer("meta", bag_of_words(self.metadata, hash_buckets))
            self.word_embedding = nn.Parameter(torch.randn(hash_buckets, context_dim))  # as nn.Embedding
            self.context_net = nn.Sequential(act(), nn.Linear(context_dim, context_dim), act())
        else:
            if len({len(m) for m in self.metadata}) != 1 or not self.metadata[0]:
                raise ValueError(f"CARE's metadata vectors must be non-empty and of one length. Got lengths "
                                 f"{[len(m) for m in self.metadata]}.")
            self.register_buffer("meta", standardise(self.metadata))
            self.word_embedding = None
            m = len(self.metadata[0])
            self.context_net = nn.Sequential(nn.Linear(m, context_dim), act(), nn.Linear(context_dim, context_dim),
                                             act())
        self.attention = nn.Sequential(nn.Linear(context_dim, context_dim), act(), nn.Linear(context_dim, encoders))
        enc_hidden = self.hidden[:1] or [encoder_dim]
        self.encoders = nn.ModuleList(mlp([self.obs_dim, *enc_hidden, encoder_dim], activation, out_gain=2 ** 0.5,
                                          out_activation=True) for _ in range(encoders))
        self.backbone = ActorCritic(encoder_dim + context_dim, self.n_actions, self.hidden, activation)

    def context(self) -> torch.Tensor:
        """``z_τ`` of every task, ``[T, context_dim]``."""
        x = self.meta @ self.word_embedding if self.word_embedding is not None else self.meta
        return self.context_net(x)

    def attention_weights(self, z: torch.Tensor | None = None) -> torch.Tensor:
        """``w_τ``, ``[T, k]``: each row sums to one."""
        z = self.context() if z is None else z
        return torch.softmax(self.attention(z) / self.temperature, dim=-1)

    def _features(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.context()
        w = self.attention_weights(z)
        enc = torch.stack([e(obs) for e in self.encoders])          # [k, T, M, E]
        mixed = torch.einsum("ktme,tk->tme", enc, w)
        return torch.cat([mixed, z[:, None, :].expand(-1, obs.shape[1], -1)], dim=-1), w

    def forward(self, obs: torch.Tensor) -> AgentOutput:
        x, w = self._features(obs)
        logits, value = self.backbone(x)
        return AgentOutput(self.mask(logits), value, {"attention": w})

    def policy_logits(self, obs: torch.Tensor) -> torch.Tensor:
        return self.mask(self.backbone.actor(self._features(obs)[0]))

    def task_stats(self, out: AgentOutput, valid: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"attention": out.extras["attention"].detach()}

    def config(self) -> dict[str, Any]:
        return {**super().config(), "metadata": self.metadata, "encoders": self.encoders_k,
                "encoder_dim": self.encoder_dim, "context_dim": self.context_dim,
                "hash_buckets": self.hash_buckets, "temperature": self.temperature}
