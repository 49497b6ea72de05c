"""``care``: CARE, Contextual Attention-based REpresentation learning (Sodhani, Zhang and
Pineau, ICML 2021, "Multi-Task Reinforcement Learning with Context-based Representations",
https://arxiv.org/abs/2102.06177).

From the task's *metadata* a context encoder computes ``z_τ``; ``k`` state encoders
``E_1 … E_k`` each encode the observation; attention weights driven by the context alone

    w_τ = softmax(g(z_τ) / temperature) ∈ Δ^k

mix them, ``z_enc = Σ_j w_τ,j·E_j(s)``, and the backbone takes ``[z_enc, z_τ]``. So each
task chooses which representations it uses, and tasks that need different features need not
share them. As the other methods here have separate policy and value networks, the policy
and the value each have such a network (a :class:`CARETower`); the attention reported is the
policy's.

Context: the paper embeds a text description with a frozen pretrained language model; here,
with no download, a *learned* bag of hashed words (each lower-cased word or number is
hashed with CRC-32 into ``hash_buckets`` rows of an embedding table, the rows of a
description are averaged) or a metadata *vector* (standardised over the tasks), followed by
a small MLP. The paper trains with SAC on Meta-World; here the same network sits in the
on-policy actor-critic of the other methods.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from mtlkit.rl._base import ACTIVATIONS, AgentOutput, RLAgent, mlp
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


class CARETower(nn.Module):
    """One CARE network: context encoder, attention, ``k`` state encoders and a head MLP on
    ``[z_enc, z_τ]`` with ``out_dim`` outputs."""

    def __init__(self, obs_dim: int, out_dim: int, *, meta: torch.Tensor, text: bool, hidden: Sequence[int],
                 activation: str, encoders: int, encoder_dim: int, context_dim: int, temperature: float,
                 out_gain: float) -> None:
        super().__init__()
        act = ACTIVATIONS[activation]
        self.temperature = temperature
        self.meta: torch.Tensor
        self.register_buffer("meta", meta.clone())  # (each tower its own copy: safetensors refuses shared memory)
        self.word_embedding: nn.Parameter | None
        if text:  # meta is the [T, buckets] bag of words: a mean of learned word vectors
            self.word_embedding = nn.Parameter(torch.randn(meta.shape[1], context_dim))  # as nn.Embedding
            self.context_net = nn.Sequential(act(), nn.Linear(context_dim, context_dim), act())
        else:
            self.word_embedding = None
            self.context_net = nn.Sequential(nn.Linear(meta.shape[1], context_dim), act(),
                                             nn.Linear(context_dim, context_dim), act())
        self.attention = nn.Sequential(nn.Linear(context_dim, context_dim), act(), nn.Linear(context_dim, encoders))
        enc_hidden = list(hidden[:1]) or [encoder_dim]
        self.encoders = nn.ModuleList(mlp([obs_dim, *enc_hidden, encoder_dim], activation, out_gain=2 ** 0.5,
                                          out_activation=True) for _ in range(encoders))
        self.head = mlp([encoder_dim + context_dim, *hidden, out_dim], activation, out_gain=out_gain)

    def context(self) -> torch.Tensor:
        """``z_τ`` of every task, ``[T, context_dim]``."""
        x = self.meta @ self.word_embedding if self.word_embedding is not None else self.meta
        return self.context_net(x)

    def attention_weights(self, z: torch.Tensor | None = None) -> torch.Tensor:
        """``w_τ``, ``[T, k]``: each row sums to one."""
        z = self.context() if z is None else z
        return torch.softmax(self.attention(z) / self.temperature, dim=-1)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``obs [T, M, D]`` -> (head output ``[T, M, out_dim]``, attention ``[T, k]``)."""
        z = self.context()
        w = self.attention_weights(z)
        enc = torch.stack([e(obs) for e in self.encoders])          # [k, T, M, E]
        mixed = torch.einsum("ktme,tk->tme", enc, w)
        x = torch.cat([mixed, z[:, None, :].expand(-1, obs.shape[1], -1)], dim=-1)
        return self.head(x), w


class CARE(RLAgent):
    """CARE for an actor-critic: a CARE tower for the policy and one for the value (each with
    its own context encoder, attention and ``encoders`` state encoders, as the other methods
    have separate policy and value networks).

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
        if self.text:
            meta = bag_of_words(self.metadata, hash_buckets)
        else:
            if len({len(m) for m in self.metadata}) != 1 or not self.metadata[0]:
                raise ValueError(f"CARE's metadata vectors must be non-empty and of one length. Got lengths "
                                 f"{[len(m) for m in self.metadata]}.")
            meta = standardise(self.metadata)
        common: dict[str, Any] = {"meta": meta, "text": self.text, "hidden": self.hidden, "activation": activation,
                                  "encoders": encoders, "encoder_dim": encoder_dim, "context_dim": context_dim,
                                  "temperature": self.temperature}
        self.actor = CARETower(self.obs_dim, self.n_actions, out_gain=0.01, **common)
        self.critic = CARETower(self.obs_dim, 1, out_gain=1.0, **common)

    def attention_weights(self) -> torch.Tensor:
        """The policy's attention over its encoders, ``[T, k]`` (each row sums to one)."""
        return self.actor.attention_weights()

    def forward(self, obs: torch.Tensor) -> AgentOutput:
        logits, w = self.actor(obs)
        value, w_critic = self.critic(obs)
        return AgentOutput(self.mask(logits), value.squeeze(-1), {"attention": w, "critic_attention": w_critic})

    def policy_logits(self, obs: torch.Tensor) -> torch.Tensor:
        return self.mask(self.actor(obs)[0])

    def task_stats(self, out: AgentOutput, valid: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"attention": out.extras["attention"].detach(),
                "critic_attention": out.extras["critic_attention"].detach()}

    def config(self) -> dict[str, Any]:
        return {**super().config(), "metadata": self.metadata, "encoders": self.encoders_k,
                "encoder_dim": self.encoder_dim, "context_dim": self.context_dim,
                "hash_buckets": self.hash_buckets, "temperature": self.temperature}
