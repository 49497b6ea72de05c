"""Several inputs per sample: one encoder per input, fused into one shared representation."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from mtlkit import _batch
from mtlkit._checks import check_int
from mtlkit._registry import ARCHITECTURES
from mtlkit.architectures._base import MultiTaskModel, make_head
from mtlkit.architectures._layers import (
    TaskModuleDict,
    TrunkArg,
    TrunkFactory,
    module_key,
    trunk_width,
)
from mtlkit.tasks import Task, check_tasks

FUSIONS = ("concat", "gated", "attention")


def default_encoder(shape: Sequence[int]) -> dict[str, Any]:
    """The stock trunk for one input by its per-sample shape: mlp (features,), cnn1d
    (channels, length), lenet (channels, height, width)."""
    nd = len(shape)
    if nd == 1:
        return {"name": "mlp", "hidden": [64]}
    if nd == 2:
        return {"name": "cnn1d"}
    if nd == 3:
        return {"name": "lenet"}
    raise ValueError(f"No stock encoder for an input of per-sample shape {tuple(shape)}; give one in 'encoders'.")


class _Gated(nn.Module):
    """Gated sum: h_i' = tanh(W_i h_i); z = softmax over the inputs of W_z [h_1, ..., h_M] (one
    logit per input and unit); representation Σ_i z_i ⊙ h_i'."""

    def __init__(self, widths: Sequence[int], dim: int) -> None:
        super().__init__()
        self.proj = nn.ModuleList(nn.Linear(w, dim) for w in widths)
        self.gate = nn.Linear(sum(widths), dim * len(widths))
        self.m, self.dim = len(widths), dim
        self.last_weights: Tensor | None = None

    def forward(self, hs: Sequence[Tensor]) -> Tensor:
        proj = torch.stack([torch.tanh(p(h)) for p, h in zip(self.proj, hs)], dim=1)  # (N, M, D)
        z = torch.softmax(self.gate(torch.cat(list(hs), 1)).view(-1, self.m, self.dim), dim=1)
        self.last_weights = z.detach().mean((0, 2))
        return (z * proj).sum(1)


class _Attention(nn.Module):
    """Attention over the inputs: h_i' = W_i h_i; score s_i = vᵀ tanh(U h_i'); weights
    α = softmax_i(s_i) per sample; representation Σ_i α_i h_i'."""

    def __init__(self, widths: Sequence[int], dim: int) -> None:
        super().__init__()
        self.proj = nn.ModuleList(nn.Linear(w, dim) for w in widths)
        self.score = nn.Sequential(nn.Linear(dim, dim), nn.Tanh(), nn.Linear(dim, 1, bias=False))
        self.last_weights: Tensor | None = None

    def forward(self, hs: Sequence[Tensor]) -> Tensor:
        proj = torch.stack([p(h) for p, h in zip(self.proj, hs)], dim=1)  # (N, M, D)
        alpha = torch.softmax(self.score(proj).squeeze(-1), dim=1)  # (N, M)
        self.last_weights = alpha.detach().mean(0)
        return (alpha.unsqueeze(-1) * proj).sum(1)


@ARCHITECTURES.register()
class Multimodal(MultiTaskModel):
    """One encoder per named input, fused into the shared representation that every head reads.

    The multi-input form of hard sharing for samples with several inputs (a batch's ``x`` is a
    dict ``{name: tensor}``): each input has its own encoder (any stock trunk spec, e.g.
    ``cnn1d`` for a sensor, ``lenet`` for an image, ``mlp`` for a table, or an ``nn.Module``),
    each encoder's output is flattened, and a fusion layer makes one representation of width
    ``rep_width``; the heads read it, so representation-level gradient methods work on it.

    Fusion (``fusion``):

    * ``concat``: the encoders' features concatenated (then ``Linear`` + ReLU to
      ``fusion_dim`` when it is given), the baseline of early/feature-level fusion;
    * ``gated``: the gated multimodal unit of Arevalo et al. (2017), "Gated Multimodal Units
      for Information Fusion", ICLR workshop: h_i' = tanh(W_i h_i), gates z from all inputs,
      representation Σ_i z_i ⊙ h_i'. The paper states it for two inputs with a sigmoid gate
      z and 1 − z; for M inputs we take a softmax over the inputs per unit (for M = 2 it is
      exactly the sigmoid form);
    * ``attention``: the attention fusion of Hori et al. (2017), "Attention-Based Multimodal
      Fusion for Video Description", ICCV: each input projected to ``fusion_dim``, a score
      vᵀ tanh(U h_i') per input, softmax weights over the inputs per sample, the weighted sum.
      The paper conditions the scores on the decoder state; with no decoder here the scores
      depend on the inputs alone (self-attention pooling over modalities).

    ``fusion_dim`` defaults to the widest encoder output (gated, attention) and to no
    projection (concat). ``sharing_summary()["fusion_weights"]`` reports the mean gate or
    attention weight of each input in the last forward pass.

    Args:
        encoders: ``{input name: trunk spec or nn.Module}``, one per input the model reads.
        tasks: the task specs; one head each on the fused representation.
        input_shape: ``{input name: per-sample shape}`` (needed for trunk specs).
        fusion: ``concat`` | ``gated`` | ``attention``.
        fusion_dim: width of the fused representation (see above).
        head_hidden: hidden widths of each head.

    >>> import torch
    >>> from mtlkit import Task
    >>> m = Multimodal({"accel": {"name": "cnn1d", "channels": [4], "hidden": 8},
    ...                 "table": {"name": "mlp", "hidden": [6]}},
    ...                [Task("a", "binary"), Task("b", "multiclass", num_classes=3)],
    ...                input_shape={"accel": (3, 20), "table": (5,)}, fusion="gated", fusion_dim=7)
    >>> out = m({"accel": torch.randn(4, 3, 20), "table": torch.randn(4, 5)})
    >>> {k: tuple(v.shape) for k, v in out.items()}, m.rep_width
    ({'a': (4,), 'b': (4, 3)}, 7)
    """

    paper = ("Arevalo et al. 2017, Gated Multimodal Units for Information Fusion; Hori et al. 2017, "
             "Attention-Based Multimodal Fusion for Video Description")

    def __init__(self, encoders: Mapping[str, TrunkArg], tasks: Sequence[Task], *,
                 input_shape: Mapping[str, Sequence[int]] | None = None, fusion: str = "concat",
                 fusion_dim: int | None = None, head_hidden: Sequence[int] = (), trunk: Any = None) -> None:
        super().__init__()
        owner = "Multimodal"
        self.tasks = check_tasks(tasks)
        if not isinstance(encoders, Mapping) or not encoders:
            raise ValueError(f"The 'encoders' parameter of {owner} must be a non-empty mapping "
                             f"{{input name: trunk spec}}. Got {encoders!r}.")
        if fusion not in FUSIONS:
            raise ValueError(f"The 'fusion' parameter of {owner} must be one of {', '.join(FUSIONS)}. Got {fusion!r}.")
        if fusion_dim is not None:
            check_int(owner, "fusion_dim", fusion_dim, low=1)
        shapes = _shapes(input_shape, list(encoders), owner)
        self.input_names = [str(k) for k in encoders]
        self.encoders = nn.ModuleDict()
        specs: dict[str, Any] = {}
        widths: list[int] = []
        for name, enc in encoders.items():
            shape = shapes.get(name)
            make = TrunkFactory(enc, shape, f"{owner} (encoder of input {name!r})")
            built = make()
            self.encoders[module_key(name)] = built
            specs[name] = make.spec
            widths.append(trunk_width(built, shape))
        self.widths = widths
        self.fusion_kind = fusion
        self.fuse: nn.Module
        if fusion == "concat":
            self.fuse = (nn.Sequential(nn.Linear(sum(widths), fusion_dim), nn.ReLU()) if fusion_dim is not None
                         else nn.Identity())
            self.rep_width = fusion_dim if fusion_dim is not None else sum(widths)
        else:
            dim = fusion_dim if fusion_dim is not None else max(widths)
            self.fuse = _Gated(widths, dim) if fusion == "gated" else _Attention(widths, dim)
            self.rep_width = dim
        self.heads = TaskModuleDict({t.name: make_head(self.rep_width, t, head_hidden) for t in self.tasks})
        complete = all(s is not None for s in specs.values())
        self.config: dict[str, Any] = {
            "name": "multimodal", "encoders": specs if complete else None, "fusion": fusion,
            "fusion_dim": fusion_dim, "head_hidden": list(head_hidden),
            # the key that says "rebuildable from JSON" to the exporters (None: a user encoder)
            "trunk": (dict(trunk) if isinstance(trunk, Mapping) else {}) if complete else None}

    @classmethod
    def from_config(cls, tasks: Sequence[Task], input_shape: Any, *, encoders: Mapping[str, Any] | None = None,
                    trunk: Mapping[str, Any] | None = None, **params: Any) -> Multimodal:
        """Build from JSON: every input of ``input_shape`` gets its entry of ``encoders``, else
        ``trunk`` when it names a stock trunk, else the stock trunk for its shape.

        A table divided into named inputs (``data.inputs``) hands each input's spec (category
        embeddings, token slots) in ``trunk["input"] = {"inputs": {name: spec}}``: it goes into
        that input's encoder spec (unless the spec has its own ``input``), and an input with
        text columns gets a ``transformer`` by default."""
        if not isinstance(input_shape, Mapping):
            raise ValueError(f"The multimodal architecture reads several named inputs (data.inputs in YAML, or a "
                             f"dict of tensors); the data has one input of shape {tuple(input_shape)}.")
        given = dict(encoders or {})
        unknown = [k for k in given if k not in input_shape]
        if unknown:
            raise ValueError(f"model.architecture.encoders names input(s) {unknown} that the data does not have; "
                             f"its inputs are {list(input_shape)}.")
        inp = trunk.get("input") if isinstance(trunk, Mapping) else None
        per_input = dict(inp["inputs"]) if isinstance(inp, Mapping) and "inputs" in inp else {}
        fallback = ({k: v for k, v in trunk.items() if not (per_input and k == "input")}
                    if isinstance(trunk, Mapping) and trunk.get("name") else None)
        specs: dict[str, Any] = {}
        for k, shape in input_shape.items():
            own = per_input.get(k)
            spec = dict(given[k]) if k in given else dict(
                fallback or ({"name": "transformer"} if own and own.get("text") else default_encoder(shape)))
            if own and "input" not in spec:
                spec["input"] = own
            specs[k] = spec
        return cls(specs, tasks, input_shape=input_shape, trunk=trunk, **params)

    @classmethod
    def single_task_config(cls, params: dict[str, Any], task: Task) -> dict[str, Any] | None:
        """The single-task reference reads the same inputs: this architecture with one head."""
        return {"name": "multimodal", **params}

    # ------------------------------------------------------------------ forward
    def encode_inputs(self, x: Mapping[str, Tensor]) -> list[Tensor]:
        """Each input's encoder features, flattened (N, width_i), in ``input_names`` order."""
        _batch.check_names(x, self.input_names, owner="The multimodal model")  # type: ignore[arg-type]
        out = []
        for name in self.input_names:
            h = self.encoders[module_key(name)](x[name])
            out.append(h.reshape(h.shape[0], -1))
        return out

    def encode(self, x: Any) -> Tensor:
        hs = self.encode_inputs(x)
        return self.fuse(torch.cat(hs, dim=1)) if self.fusion_kind == "concat" else self.fuse(hs)

    def decode(self, rep: Tensor) -> dict[str, Tensor]:
        return {t.name: t.shape_output(self.heads[t.name](rep)) for t in self.tasks}

    def forward(self, x: Any) -> dict[str, Tensor]:
        return self.decode(self.encode(x))

    # ------------------------------------------------------------------ contract
    def shared_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.encoders.parameters()
        yield from self.fuse.parameters()

    def last_shared_parameters(self) -> list[nn.Parameter]:
        fused = list(self.fuse.parameters())
        return fused[-2:] if fused else list(self.encoders.parameters())[-2:]

    def task_parameters(self, name: str) -> Iterator[nn.Parameter]:
        self._check_task(name)
        return self.heads[name].parameters()

    def sharing_summary(self) -> dict[str, Any]:
        w = getattr(self.fuse, "last_weights", None)
        if w is None:
            return {}
        return {"fusion_weights": dict(zip(self.input_names, [round(float(v), 6) for v in w.tolist()]))}


def _shapes(input_shape: Mapping[str, Sequence[int]] | None, names: Sequence[str], owner: str
            ) -> dict[str, tuple[int, ...]]:
    if input_shape is None:
        return {}
    if not isinstance(input_shape, Mapping):
        raise ValueError(f"The 'input_shape' of {owner} must be {{input name: shape}} for its inputs {list(names)}. "
                         f"Got {input_shape!r}.")
    missing = [k for k in names if k not in input_shape]
    if missing:
        raise ValueError(f"{owner} has encoders for input(s) {missing} that are not in input_shape "
                         f"{sorted(input_shape)}.")
    return {k: tuple(int(s) for s in v) for k, v in input_shape.items()}
