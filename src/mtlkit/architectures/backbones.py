"""Small stock trunks: MLP (tables), 1-D CNN (multichannel series), LeNet-style 2-D CNN.

Every trunk is an ``nn.Sequential`` of named blocks (so a model can be split after a named
or indexed block) and carries ``out_features``: the width of its flat output.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, cast

import torch
from torch import nn


class Trunk(nn.Sequential):
    """``nn.Sequential`` with the width of its output and the spec that rebuilds it."""

    out_features: int
    spec: dict[str, Any]


def _act(name: str) -> nn.Module:
    acts = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "elu": nn.ELU, "silu": nn.SiLU}
    if name not in acts:
        raise ValueError(f"Unknown activation {name!r}; choose from {sorted(acts)}.")
    return acts[name]()


def mlp(in_features: int, hidden: Sequence[int] = (128, 64), *, dropout: float = 0.0,
        activation: str = "relu", batch_norm: bool = False) -> Trunk:
    """Fully connected trunk: one block (Linear, [BatchNorm], activation, [Dropout]) per width."""
    if in_features < 1 or not hidden or any(h < 1 for h in hidden):
        raise ValueError(f"mlp needs in_features >= 1 and positive hidden widths. Got {in_features}, {list(hidden)}.")
    blocks: OrderedDict[str, nn.Module] = OrderedDict()
    prev = in_features
    for i, h in enumerate(hidden):
        layers: list[nn.Module] = [nn.Linear(prev, h)]
        if batch_norm:
            layers.append(nn.BatchNorm1d(h))
        layers.append(_act(activation))
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        blocks[f"block{i + 1}"] = nn.Sequential(*layers)
        prev = h
    t = Trunk(blocks)
    t.out_features = prev
    t.spec = {"name": "mlp", "in_features": in_features, "hidden": list(hidden), "dropout": dropout,
              "activation": activation, "batch_norm": batch_norm}
    return t


def cnn1d(in_channels: int, *, channels: Sequence[int] = (32, 64), kernel_size: int = 5,
          hidden: int = 64, dropout: float = 0.0) -> Trunk:
    """1-D CNN for (N, C, T) series: conv blocks, global average pooling, a dense block."""
    blocks: OrderedDict[str, nn.Module] = OrderedDict()
    prev = in_channels
    for i, c in enumerate(channels):
        blocks[f"conv{i + 1}"] = nn.Sequential(
            nn.Conv1d(prev, c, kernel_size, padding=kernel_size // 2), nn.BatchNorm1d(c), nn.ReLU())
        prev = c
    blocks["pool"] = nn.Sequential(nn.AdaptiveAvgPool1d(1), nn.Flatten())
    dense: list[nn.Module] = [nn.Linear(prev, hidden), nn.ReLU()]
    if dropout > 0:
        dense.append(nn.Dropout(dropout))
    blocks["fc"] = nn.Sequential(*dense)
    t = Trunk(blocks)
    t.out_features = hidden
    t.spec = {"name": "cnn1d", "in_channels": in_channels, "channels": list(channels),
              "kernel_size": kernel_size, "hidden": hidden, "dropout": dropout}
    return t


def lenet(in_channels: int = 1, image_size: Sequence[int] = (28, 28), *, channels: Sequence[int] = (10, 20),
          hidden: int = 50, dropout: float = 0.0) -> Trunk:
    """LeNet-style 2-D CNN (the MultiMNIST trunk of Sener & Koltun 2018): two 5×5 conv +
    max-pool blocks, then a dense block of ``hidden`` units."""
    c1, c2 = channels
    blocks: OrderedDict[str, nn.Module] = OrderedDict()
    blocks["conv1"] = nn.Sequential(nn.Conv2d(in_channels, c1, 5), nn.MaxPool2d(2), nn.ReLU())
    blocks["conv2"] = nn.Sequential(nn.Conv2d(c1, c2, 5), nn.MaxPool2d(2), nn.ReLU(), nn.Flatten())
    with torch.no_grad():
        flat = nn.Sequential(blocks["conv1"], blocks["conv2"])(torch.zeros(1, in_channels, *image_size)).shape[1]
    dense: list[nn.Module] = [nn.Linear(flat, hidden), nn.ReLU()]
    if dropout > 0:
        dense.append(nn.Dropout(dropout))
    blocks["fc"] = nn.Sequential(*dense)
    t = Trunk(blocks)
    t.out_features = hidden
    t.spec = {"name": "lenet", "in_channels": in_channels, "image_size": list(image_size),
              "channels": list(channels), "hidden": hidden, "dropout": dropout}
    return t


TRUNKS: dict[str, Callable[..., Trunk]] = {"mlp": mlp, "cnn1d": cnn1d, "lenet": lenet}
from mtlkit.architectures.text import TEXT_TRUNK_BUILDERS  # noqa: E402  text trunks: token-ID slots of a table

TRUNKS.update(cast(dict[str, Callable[..., Trunk]], TEXT_TRUNK_BUILDERS))


def build_trunk(spec: dict[str, Any], input_shape: Sequence[int]) -> Trunk:
    """Build a stock trunk from ``{"name": ..., **params}``, filling the input size from the
    data's ``input_shape`` (per sample) when the spec does not give it."""
    if isinstance(input_shape, dict):  # several named inputs: one trunk reads one tensor
        raise ValueError(f"The data has several named inputs {list(input_shape)}; a single trunk reads one tensor. "
                         f"Use model.architecture: {{name: multimodal}} (one encoder per input).")
    spec = dict(spec)
    from mtlkit.architectures.text import TEXT_TRUNKS, build_text_trunk

    if spec.get("name") in TEXT_TRUNKS:
        if "decoder" in spec or (spec.get("input") or {}).get("decoder"):  # generation tasks: the shared decoder
            from mtlkit.architectures.text_decoder import build_seq2seq_trunk

            return cast(Trunk, build_seq2seq_trunk(spec, input_shape))
        return cast(Trunk, build_text_trunk(spec, input_shape))
    if (spec.get("input") or {}).get("text"):
        raise ValueError(f"The table has text column(s) {[c['column'] for c in spec['input']['text']]}: use a text "
                         f"trunk ({', '.join(TEXT_TRUNKS)}) instead of {spec.get('name')!r}.")
    if spec.get("input") is not None and "fields" in spec["input"]:  # ID fields (recommenders)
        from mtlkit.architectures._embeddings import with_fields

        return cast(Trunk, with_fields(spec.pop("input"), spec, input_shape))
    if spec.get("input") is not None:  # a table's input module (category embeddings) before the trunk
        from mtlkit.data.embedding import with_input

        return cast(Trunk, with_input(spec.pop("input"), spec, input_shape))
    spec.pop("input", None)
    name = spec.pop("name", None)
    if name not in TRUNKS:
        raise ValueError(f"Unknown trunk {name!r}; choose from {sorted(TRUNKS)}.")
    shape = tuple(int(s) for s in input_shape)
    if name == "mlp":
        if len(shape) != 1:
            raise ValueError(f"The mlp trunk needs flat inputs (features,); the data has shape {shape}.")
        spec.setdefault("in_features", shape[0])
    elif name == "cnn1d":
        if len(shape) != 2:
            raise ValueError(f"The cnn1d trunk needs (channels, length) inputs; the data has shape {shape}.")
        spec.setdefault("in_channels", shape[0])
    else:
        if len(shape) != 3:
            raise ValueError(f"The lenet trunk needs (channels, height, width) inputs; the data has shape {shape}.")
        spec.setdefault("in_channels", shape[0])
        spec.setdefault("image_size", list(shape[1:]))
    try:
        return TRUNKS[name](**spec)
    except TypeError as exc:
        raise ValueError(f"Bad parameters for trunk {name!r}: {exc}") from exc


def infer_out_features(trunk: nn.Module, input_shape: Sequence[int]) -> int:
    """Width of a trunk's flattened output, by one dummy forward in eval mode."""
    was = trunk.training
    trunk.eval()
    try:
        with torch.no_grad():
            p = next(trunk.parameters(), None)
            out = trunk(torch.zeros(2, *input_shape, dtype=p.dtype if p is not None else torch.float32))
    except Exception as exc:
        raise ValueError(f"The trunk cannot process inputs of shape {tuple(input_shape)}: {exc}") from exc
    finally:
        trunk.train(was)
    name = type(trunk).__name__
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"The trunk {name} must return one Tensor of features; it returned a "
                        f"{type(out).__name__}.")
    if out.dim() < 1 or out.shape[0] != 2:
        raise ValueError(f"The trunk {name} must keep the batch dimension first: for a batch of 2 inputs "
                         f"of shape {tuple(input_shape)} it returned shape {tuple(out.shape)}.")
    return int(out.reshape(out.shape[0], -1).shape[1])
