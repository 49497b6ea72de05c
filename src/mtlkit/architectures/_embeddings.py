"""Sparse ID features as embeddings: the input module of recommender models.

How a model receives several input fields
-----------------------------------------
A model still takes ONE float tensor ``x`` of shape (N, F), so :class:`MultiTaskData`, the
Trainer, saving, export and DDP are unchanged. Its columns are laid out by a *feature spec*
stored in the model's config (the ``input`` entry of the trunk spec)::

    x = [ dense columns (``dense`` of them, floats)
        | field 1: ``length`` columns of integer-valued IDs
        | field 2: ...                                      ]

A single-valued field (user, item, occupation) has ``length: 1``; a multi-valued field (a
genre list, a user's history) has ``length: L`` slots, padded with ``-1``, and is pooled
(``mean`` or ``sum`` of the embeddings of its non-padding slots: an embedding bag). Index 0
of every table is the *unknown* bucket: an ID outside ``[1, vocab)`` (never seen when the
vocabulary was built) reads as 0, and :class:`SparseFeatures` warns with the count when it
does so outside training. A field with ``hash_buckets: B`` takes raw non-negative integer
IDs of any size and hashes them into ``B`` buckets (the hashing trick for large
vocabularies; IDs are exact as float32 up to 2**24).

IDs must reach the model as they are: a dataset of ID columns is prepared with
``data.standardize: false`` (a standardised ID column is refused with that advice).

The spec, in YAML (``trunk: {name: mlp, hidden: [64], input: {...}}``)::

    input:
      dense: 0
      fields:
        - {name: user, vocab: 944, dim: 16}
        - {name: genre, vocab: 20, dim: 8, length: 6, pooling: mean}
        - {name: zip, hash_buckets: 1000, dim: 8}
      max_memory_mb: 1024

>>> import torch
>>> m = SparseFeatures(fields=[{"name": "u", "vocab": 5, "dim": 2},
...                            {"name": "g", "vocab": 4, "dim": 2, "length": 3}], dense=1)
>>> m.in_features, m.out_features
(5, 5)
>>> m(torch.tensor([[0.5, 3.0, 1.0, 2.0, -1.0]])).shape
torch.Size([1, 5])
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from mtlkit.data import embedding as _embedding

__all__ = ["FieldSpec", "SparseFeatures", "hash_ids", "with_fields"]

#: the default memory budget of all embedding tables together, in MiB
DEFAULT_MAX_MEMORY_MB = 1024.0
POOLINGS = ("mean", "sum")
_HASH_MULT = 2654435761  # Knuth's multiplicative hash constant


def hash_ids(ids: Tensor, buckets: int) -> Tensor:
    """Deterministic hash of non-negative int64 IDs into ``[1, buckets)`` (0 stays the unknown
    bucket for negative IDs).

    >>> hash_ids(torch.tensor([0, 1, 123456789]), 10).tolist()
    [1, 8, 7]
    """
    h = (ids * _HASH_MULT) % (2**32)
    out = 1 + h % (buckets - 1)
    return torch.where(ids >= 0, out, torch.zeros_like(out))


@dataclass(frozen=True)
class FieldSpec:
    """One sparse field: ``vocab`` indices (0 = unknown) or ``hash_buckets`` buckets, an
    embedding of width ``dim``, ``length`` columns of ``x`` (> 1: an embedding bag pooled by
    ``pooling``), and ``share``: the name of an earlier field whose table it reuses (a
    history of items shares the item table)."""

    name: str
    dim: int
    vocab: int | None = None
    hash_buckets: int | None = None
    length: int = 1
    pooling: str = "mean"
    share: str | None = None

    @classmethod
    def parse(cls, d: Mapping[str, Any], where: str) -> FieldSpec:
        if not isinstance(d, Mapping) or "name" not in d:
            raise ValueError(f"{where}: each field is a mapping with a 'name'. Got {d!r}.")
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"{where} field {d['name']!r}: unknown key(s) {sorted(unknown)}; "
                             f"known: {sorted(cls.__dataclass_fields__)}.")
        try:
            f = cls(**dict(d))
        except TypeError as exc:
            raise ValueError(f"{where} field {d.get('name')!r}: {exc}") from None
        f.check(where)
        return f

    def check(self, where: str) -> None:
        name = f"{where} field {self.name!r}"

        def pos(key: str, value: Any, low: int) -> None:
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name}: {key!r} must be an integer >= {low}. Got {value!r}.")

        pos("dim", self.dim, 1)
        pos("length", self.length, 1)
        if self.share is None and (self.vocab is None) == (self.hash_buckets is None):
            raise ValueError(f"{name}: give exactly one of 'vocab' (IDs 1..vocab-1, 0 = unknown) and "
                             f"'hash_buckets' (raw IDs hashed). Got vocab={self.vocab!r}, "
                             f"hash_buckets={self.hash_buckets!r}.")
        if self.vocab is not None:
            pos("vocab", self.vocab, 2)
        if self.hash_buckets is not None:
            pos("hash_buckets", self.hash_buckets, 2)
        if self.pooling not in POOLINGS:
            raise ValueError(f"{name}: 'pooling' must be one of {POOLINGS}. Got {self.pooling!r}.")

    @property
    def rows(self) -> int:
        return int(self.vocab if self.vocab is not None else self.hash_buckets)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items()
                if v is not None and not (k == "length" and v == 1) and not (k == "pooling" and v == "mean")}


class SparseFeatures(nn.Module):
    """``[dense | ID fields]`` -> ``[dense | one pooled embedding per field]``.

    Args:
        fields: the field specs (:class:`FieldSpec` or mappings), in column order.
        dense: the number of leading dense columns passed through as they are.
        max_memory_mb: refuse embedding tables whose float32 weights together exceed this
            (the error says how big they would be and suggests hashing).

    The tables start at N(0, 0.01²) (:data:`mtlkit.data.embedding.INIT_STD`), not at
    ``nn.Embedding``'s N(0, 1): the small initial ID embeddings of recommender practice
    (torch-rechub and DeepCTR draw N(0, 1e-4²), fastai's tabular embeddings N(0, 0.01²)).
    From N(0, 1), a few epochs of Adam left the random start dominating the learnt part of
    every user's and item's vector: on the MovieLens 100K funnel (all users, 3 epochs, Adam lr 3e-3, batch 512, 99 sampled
    negatives, 3 seeds; ``benchmarks/recommenders.py --epochs 3 --seeds 3``, with
    ``--init-std 1`` for the old start; docs/recommenders.md) the test click AUC of MMoE went
    from 0.826 to 0.860 and of ESMM from 0.824 to 0.855 (torch-rechub's: 0.865 and 0.860);
    N(0, 1e-4²) gave the same as N(0, 0.01²) within 0.001 (MMoE, seed 0).
    """

    def __init__(self, fields: Sequence[Mapping[str, Any] | FieldSpec], dense: int = 0, *,
                 max_memory_mb: float = DEFAULT_MAX_MEMORY_MB) -> None:
        super().__init__()
        where = "The embedding input"
        if not isinstance(dense, int) or isinstance(dense, bool) or dense < 0:
            raise ValueError(f"{where}: 'dense' must be a non-negative integer. Got {dense!r}.")
        if not fields:
            raise ValueError(f"{where} needs at least one field in 'fields'.")
        specs = [f if isinstance(f, FieldSpec) else FieldSpec.parse(f, where) for f in fields]
        names = [f.name for f in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"{where}: field names must be distinct. Got {names}.")
        self.dense = dense
        self.max_memory_mb = float(max_memory_mb)
        self.fields = specs
        owners: dict[str, str] = {}
        tables: OrderedDict[str, nn.Module] = OrderedDict()
        for f in specs:
            if f.share is not None:
                if f.share not in owners:
                    raise ValueError(f"{where} field {f.name!r} shares the table of {f.share!r}, which is "
                                     f"not an earlier field with its own table ({sorted(owners)}).")
                owners[f.name] = owners[f.share]
                continue
            owners[f.name] = f.name
        self._owner = owners
        mb = sum(f.rows * f.dim for f in specs if f.share is None) * 4 / 2**20
        if mb > self.max_memory_mb:
            big = max((f for f in specs if f.share is None), key=lambda f: f.rows * f.dim)
            raise ValueError(
                f"{where}: the embedding tables would take {mb:.1f} MiB of float32 weights, over the "
                f"budget max_memory_mb={self.max_memory_mb:g}. The largest is field {big.name!r} "
                f"({big.rows} rows x {big.dim}). Hash it (hash_buckets: e.g. {max(2, big.rows // 16)}), "
                f"shrink 'dim', or raise max_memory_mb.")
        for f in specs:
            if f.share is None:
                table = tables[f.name] = nn.Embedding(f.rows, f.dim)
                with torch.no_grad():  # N(0, 1) scaled: the same random draws, N(0, INIT_STD²)
                    table.weight.mul_(_embedding.INIT_STD)
        self.tables = nn.ModuleDict({_key(k): v for k, v in tables.items()})
        dims = {f.name: f.dim for f in specs if f.share is None}
        for f in specs:
            if f.share is not None and f.dim != dims[owners[f.name]]:
                raise ValueError(f"{where} field {f.name!r}: 'dim' {f.dim} differs from that of the table "
                                 f"it shares ({owners[f.name]!r}: {dims[owners[f.name]]}).")
        self.offsets: dict[str, int] = {}
        col = dense
        for f in specs:
            self.offsets[f.name] = col
            col += f.length
        self.in_features = col
        self.out_features = dense + sum(f.dim for f in specs)
        self.spec: dict[str, Any] = {"dense": dense, "fields": [f.to_dict() for f in specs]}
        if self.max_memory_mb != DEFAULT_MAX_MEMORY_MB:
            self.spec["max_memory_mb"] = self.max_memory_mb
        self.unknown_counts: dict[str, int] = {}

    # ------------------------------------------------------------------ lookups
    def field(self, name: str) -> FieldSpec:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"No field {name!r}; the fields are {[f.name for f in self.fields]}.")

    def indices(self, x: Tensor, name: str) -> tuple[Tensor, Tensor]:
        """The (N, length) table indices of field ``name`` and the (N, length) mask of
        non-padding slots."""
        f = self.field(name)
        start = self.offsets[name]
        raw = x[:, start:start + f.length]
        if self.training and raw.numel() and not torch.equal(raw, raw.round()):
            raise ValueError(f"Field {name!r} holds non-integer values (e.g. {raw.flatten()[0].item():g}): "
                             f"ID columns must reach the model unchanged. Prepare the data with "
                             f"data.standardize: false.")
        ids = raw.round().long()
        pad = ids == -1 if f.length > 1 else torch.zeros_like(ids, dtype=torch.bool)
        if f.hash_buckets is not None:
            idx = hash_ids(ids, f.hash_buckets)
            bad = (ids < 0) & ~pad
        else:
            rows = self.field(self._owner[name]).rows
            bad = ((ids < 0) | (ids >= rows)) & ~pad
            idx = torch.where(bad | pad, torch.zeros_like(ids), ids)
        if not self.training:
            n = int(bad.sum())
            if n:
                self.unknown_counts[name] = self.unknown_counts.get(name, 0) + n
                warnings.warn(f"{n} ID(s) of field {name!r} were never seen when the vocabulary was "
                              f"built; they read as the unknown bucket.", stacklevel=3)
        return idx, ~pad

    def embed(self, x: Tensor, name: str) -> tuple[Tensor, Tensor]:
        """Un-pooled embeddings (N, length, dim) of field ``name`` and its slot mask (N, length)."""
        idx, keep = self.indices(x, name)
        table = self.tables[_key(self._owner[name])]
        return table(idx).to(x.dtype), keep

    def pooled(self, x: Tensor, name: str) -> Tensor:
        """The (N, dim) embedding of field ``name``: the slot's embedding, or the bag's pooled
        (mean or sum over non-padding slots; an empty bag gives zeros)."""
        e, keep = self.embed(x, name)
        f = self.field(name)
        if f.length == 1:
            return e[:, 0]
        w = keep.to(e.dtype).unsqueeze(-1)
        s = (e * w).sum(1)
        if f.pooling == "sum":
            return s
        return s / w.sum(1).clamp_min(1.0)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"The embedding input reads (N, {self.in_features}) inputs ({self.dense} dense "
                             f"columns then the ID fields); got shape {tuple(x.shape)}.")
        return torch.cat([x[:, :self.dense], *[self.pooled(x, f.name) for f in self.fields]], dim=1)


def _key(name: str) -> str:
    from mtlkit.architectures._layers import module_key

    return module_key(name)


def parse_spec(spec: Mapping[str, Any]) -> SparseFeatures:
    spec = dict(spec)
    unknown = set(spec) - {"dense", "fields", "max_memory_mb"}
    if unknown:
        raise ValueError(f"The embedding input takes 'dense', 'fields' and 'max_memory_mb'; unknown "
                         f"key(s) {sorted(unknown)}.")
    return SparseFeatures(spec.get("fields") or [], int(spec.get("dense", 0)),
                          max_memory_mb=float(spec.get("max_memory_mb", DEFAULT_MAX_MEMORY_MB)))


def with_fields(spec: Mapping[str, Any], trunk_spec: dict[str, Any], input_shape: Sequence[int]) -> nn.Module:
    """A stock trunk (``trunk_spec``) with a :class:`SparseFeatures` (``spec``) before its
    first block; the trunk's ``spec`` records both, so the model rebuilds from its config.
    Every architecture that copies trunks (MMoE's experts, PLE's) then reads ID inputs."""
    from mtlkit.architectures.backbones import Trunk, build_trunk

    shape = tuple(int(s) for s in input_shape)
    layer = parse_spec(spec)
    if shape != (layer.in_features,):
        raise ValueError(f"The embedding input reads {layer.in_features} columns ({layer.dense} dense + "
                         f"the ID fields' slots); the data has shape {shape}.")
    inner = dict(trunk_spec)
    inner.pop("in_features", None)
    trunk = build_trunk(inner, (layer.out_features,))
    children = list(trunk.named_children())
    first_name, first = children[0]
    blocks: OrderedDict[str, nn.Module] = OrderedDict()
    blocks[first_name] = nn.Sequential(OrderedDict([("input", layer), *first.named_children()]))
    blocks.update(children[1:])
    out = Trunk(blocks)
    out.out_features = trunk.out_features
    out.spec = {**trunk.spec, "input": dict(layer.spec)}
    out.spec.pop("in_features", None)
    return out


def find_features(module: nn.Module) -> SparseFeatures | None:
    """The first :class:`SparseFeatures` inside ``module`` (None when it reads no IDs)."""
    for m in module.modules():
        if isinstance(m, SparseFeatures):
            return m
    return None


def shared_input(trunk: Any, input_shape: Sequence[int], owner: str
                 ) -> tuple[SparseFeatures | None, Any, Sequence[int]]:
    """For architectures that copy the trunk (MMoE's and PLE's experts): a trunk spec with ID
    fields (an ``input: {fields: ...}`` entry) gives ONE :class:`SparseFeatures` shared by
    every copy, the spec without it (each expert an MLP over the embedded features) and the
    per-sample shape those copies read. Anything else comes back unchanged (``None`` first).
    Put the entry back in the model's config with :func:`input_in_spec`."""
    spec = trunk.get("input") if isinstance(trunk, Mapping) else None
    if not isinstance(spec, Mapping) or "fields" not in spec:
        return None, trunk, input_shape
    layer = parse_spec(spec)
    shape = tuple(int(s) for s in input_shape)
    if shape != (layer.in_features,):
        raise ValueError(f"{owner}: the embedding input reads {layer.in_features} columns ({layer.dense} dense + "
                         f"the ID fields' slots); the data has shape {shape}.")
    inner = {k: v for k, v in trunk.items() if k not in ("input", "in_features")}
    return layer, inner, (layer.out_features,)


def input_in_spec(spec: dict[str, Any] | None, layer: SparseFeatures | None) -> dict[str, Any] | None:
    """The trunk spec with the shared input's ``input`` entry (for the model's config)."""
    if spec is None or layer is None:
        return spec
    out = {k: v for k, v in spec.items() if k != "in_features"}
    out["input"] = dict(layer.spec)
    return out
