"""CAML-style co-attentive multi-task recommender: a rating task and an explanation task."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from mtlkit._registry import ARCHITECTURES
from mtlkit.architectures._base import MultiTaskModel, make_head
from mtlkit.architectures._embeddings import SparseFeatures, parse_spec
from mtlkit.architectures._layers import TaskModuleDict, params_of, require_spec
from mtlkit.tasks import Task, check_tasks

_MASKED = -1e9  # a finite "minus infinity": an empty history gives zeros, never NaN (and exports)


class CoAttention(nn.Module):
    """Max-pooled co-attention between a user side ``H`` (N, L, d_u) and an item side ``V``
    (N, M, d_v): affinity ``A = tanh(H W Vᵀ)`` (N, L, M); the user-side weights are the
    softmax over L of each row's maximum, the item-side weights the softmax over M of each
    column's maximum (padding slots excluded). Returns both pooled vectors and both weights."""

    def __init__(self, d_user: int, d_item: int) -> None:
        super().__init__()
        self.W = nn.Parameter(torch.empty(d_user, d_item))
        nn.init.xavier_uniform_(self.W)

    def forward(self, h: Tensor, h_keep: Tensor, v: Tensor, v_keep: Tensor
                ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        a = torch.tanh(torch.einsum("nld,de,nme->nlm", h, self.W, v))
        both = h_keep.unsqueeze(2) & v_keep.unsqueeze(1)
        a = a.masked_fill(~both, _MASKED)
        wu = _masked_softmax(a.max(dim=2).values, h_keep)
        wv = _masked_softmax(a.max(dim=1).values, v_keep)
        return (wu.unsqueeze(-1) * h).sum(1), (wv.unsqueeze(-1) * v).sum(1), wu, wv


def _masked_softmax(score: Tensor, keep: Tensor) -> Tensor:
    w = torch.softmax(score.masked_fill(~keep, _MASKED), dim=-1) * keep.to(score.dtype)
    return w / w.sum(-1, keepdim=True).clamp_min(1e-12)


@ARCHITECTURES.register()
class CAML(MultiTaskModel):
    """Co-attentive multi-task recommender: rating prediction and its explanation.

    After Chen, Zhang, Xu, Wang, Zhang & Liu (2019), "Co-Attentive Multi-Task Learning for
    Explainable Recommendation", IJCAI. The user is represented by the items of their history
    (a bag field, e.g. ``history`` sharing the item table), the candidate by its item
    embedding (plus the item-side fields ``item_fields``, e.g. the release year, when given).
    A co-attention between the two sides (:class:`CoAttention`: ``A = tanh(H W Vᵀ)``,
    max-pooled along each side, softmax weights) selects the history items that matter for
    this candidate; the shared representation is
    ``MLP([user embedding, attended history h, attended item v, h ⊙ v, other fields])`` (the
    trunk spec's MLP; the trunk's ``input`` entry is the feature spec). Every task has a tower
    on it: the rating (regression), a like (binary) and the explanation — the item's concepts
    (genres) as a multilabel task. :meth:`explain` returns the attention weights over the
    history slots: which of the user's items drove the score.

    How this simplifies the paper: CAML generates a natural-language explanation (review text)
    with an encoder-selector-decoder (a GRU decoder over the selected concepts); here the
    explanation is reduced to predicting the item's concepts (multilabel), i.e. the concept
    selection without the text generation, so no review corpus is needed. The paper's
    co-attention is between the concepts of the user's and the item's reviews; here the
    user side is the user's item history and the item side is the candidate's ID-field
    embeddings (the concepts are the explanation target, so they are not inputs). With one
    item-side vector (no ``item_fields``) the item-side weights are trivially 1. The
    max-pooled bilinear co-attention is our choice where the paper's formulation depends on
    the review encoder.

    Args:
        trunk: a stock MLP spec with an ``input: {fields: ...}`` entry (the feature spec).
        tasks: the task specs (e.g. rating, like, genre).
        input_shape: per-sample input shape (the feature spec's column count).
        user_field / item_field / history_field: the names of those fields in the spec; the
            history must have the item's embedding width (share the item table).
        item_fields: further single-valued fields of the item side (same width as the item).
        tower_hidden: hidden widths of each task tower.

    >>> import torch
    >>> from mtlkit import Task
    >>> spec = {"name": "mlp", "hidden": [8], "input": {"fields": [
    ...     {"name": "user", "vocab": 5, "dim": 4}, {"name": "item", "vocab": 9, "dim": 4},
    ...     {"name": "history", "share": "item", "dim": 4, "length": 3}]}}
    >>> tasks = [Task("rating", "regression"), Task("genre", "multilabel", num_labels=3)]
    >>> m = CAML(spec, tasks, input_shape=(5,))
    >>> x = torch.tensor([[1.0, 2.0, 3.0, 4.0, -1.0]])
    >>> {k: tuple(v.shape) for k, v in m(x).items()}, m.explain(x)[0].tolist()[2]
    ({'rating': (1, 1), 'genre': (1, 3)}, 0.0)
    """

    paper = ("Chen et al. 2019, Co-Attentive Multi-Task Learning for Explainable Recommendation "
             "(simplified: the explanation is the item's concepts, not generated text)")
    name = "caml"

    def __init__(self, trunk: dict[str, Any], tasks: Sequence[Task], *, input_shape: Sequence[int] | None = None,
                 user_field: str = "user", item_field: str = "item", history_field: str = "history",
                 item_fields: Sequence[str] = (), tower_hidden: Sequence[int] = ()) -> None:
        super().__init__()
        self.tasks = check_tasks(tasks)
        if not isinstance(trunk, dict) or not isinstance(trunk.get("input"), dict) or "fields" not in trunk["input"]:
            raise ValueError("CAML reads ID fields: give a trunk spec with an 'input: {fields: [...]}' entry "
                             f"(the feature spec; see mtlkit.architectures._embeddings). Got {trunk!r}.")
        self.inputs = parse_spec(trunk["input"])
        if input_shape is not None and tuple(int(s) for s in input_shape) != (self.inputs.in_features,):
            raise ValueError(f"CAML's feature spec reads {self.inputs.in_features} columns; the data has shape "
                             f"{tuple(input_shape)}.")
        self.user_field, self.item_field, self.history_field = user_field, item_field, history_field
        self.item_fields = [str(f) for f in item_fields]
        self._check_fields()
        d_item = self.inputs.field(item_field).dim
        self.coattention = CoAttention(self.inputs.field(history_field).dim, d_item)
        used = {user_field, item_field, history_field, *self.item_fields}
        self.context = [f.name for f in self.inputs.fields if f.name not in used]
        width = (self.inputs.dense + self.inputs.field(user_field).dim + 3 * d_item
                 + sum(self.inputs.field(f).dim for f in self.context))
        from mtlkit.architectures.backbones import build_trunk

        inner = {k: v for k, v in trunk.items() if k not in ("input", "in_features")}
        self.mlp = build_trunk(inner, (width,))
        self.width = int(self.mlp.out_features)
        self.tower_hidden = [int(h) for h in tower_hidden]
        self.towers = TaskModuleDict({t.name: make_head(self.width, t, self.tower_hidden) for t in self.tasks})
        self.config: dict[str, Any] = {
            "name": self.name, "trunk": {**inner, "input": dict(self.inputs.spec)}, "user_field": user_field,
            "item_field": item_field, "history_field": history_field, "item_fields": self.item_fields,
            "tower_hidden": self.tower_hidden}

    def _check_fields(self) -> None:
        names = [f.name for f in self.inputs.fields]
        for param, value in (("user_field", self.user_field), ("item_field", self.item_field),
                             ("history_field", self.history_field), *(("item_fields", f) for f in self.item_fields)):
            if value not in names:
                raise ValueError(f"The {param!r} parameter of CAML names field {value!r}, which is not in the "
                                 f"feature spec; the fields are {names}.")
        d = self.inputs.field(self.item_field).dim
        if self.inputs.field(self.history_field).dim != d:
            raise ValueError(f"The 'history_field' of CAML ({self.history_field!r}) must have the item's embedding "
                             f"width {d} (share the item table: share: {self.item_field}).")
        for f in [self.user_field, self.item_field, *self.item_fields]:
            if self.inputs.field(f).length != 1:
                raise ValueError(f"CAML: field {f!r} must be single-valued (length 1), not a bag.")
        for f in self.item_fields:
            if self.inputs.field(f).dim != d:
                raise ValueError(f"The 'item_fields' of CAML must have the item's width {d}; field {f!r} has "
                                 f"{self.inputs.field(f).dim}.")

    @classmethod
    def from_config(cls, tasks: Sequence[Task], input_shape: Sequence[int], *, trunk: dict[str, Any] | None,
                    **params: Any) -> CAML:
        return cls(require_spec(trunk, cls.__name__), tasks, input_shape=input_shape, **params)

    @classmethod
    def single_task_config(cls, params: dict[str, Any], task: Task) -> dict[str, Any] | None:
        """The single-task reference is the same co-attentive model with one tower."""
        return {"name": "caml", **params}

    def _attend(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        sf: SparseFeatures = self.inputs
        if x.dim() != 2 or x.shape[1] != sf.in_features:
            raise ValueError(f"CAML reads (N, {sf.in_features}) inputs; got shape {tuple(x.shape)}.")
        hist, h_keep = sf.embed(x, self.history_field)
        side = [sf.embed(x, f)[0] for f in [self.item_field, *self.item_fields]]
        v = torch.cat(side, dim=1)
        v_keep = torch.ones(v.shape[:2], dtype=torch.bool, device=x.device)
        h, item, wu, _ = self.coattention(hist, h_keep, v, v_keep)
        return h, item, wu, hist

    def encode(self, x: Tensor) -> Tensor:
        h, v, _, _ = self._attend(x)
        sf = self.inputs
        parts = [x[:, :sf.dense], sf.pooled(x, self.user_field), h, v, h * v,
                 *[sf.pooled(x, f) for f in self.context]]
        out = self.mlp(torch.cat(parts, dim=1))
        return out.reshape(out.shape[0], -1)

    def decode(self, rep: Tensor) -> dict[str, Tensor]:
        return {t.name: t.shape_output(self.towers[t.name](rep)) for t in self.tasks}

    @torch.no_grad()
    def explain(self, x: Tensor) -> Tensor:
        """The co-attention weights (N, history length) over the user's history slots for each
        row's candidate (0 on padding): the history items that explain the prediction."""
        return self._attend(x)[2]

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        return params_of(self.inputs, self.coattention, self.mlp)

    def task_parameters(self, name: str) -> Iterator[nn.Parameter]:
        self._check_task(name)
        return params_of(self.towers[name])
