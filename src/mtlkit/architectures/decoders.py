"""Small dense decoder heads: the flat shared representation -> a map (C, H, W) or (C, T).

The stock trunks (:func:`~mtlkit.architectures.backbones.lenet`,
:func:`~mtlkit.architectures.backbones.cnn1d`, :func:`~mtlkit.architectures.backbones.mlp`)
end in a flat (N, F) representation, so a dense head starts with a linear layer to a coarse
grid of ``channels[0]`` maps, then doubles the resolution once per entry of ``channels``
with a transposed convolution (kernel 4, stride 2, padding 1), and ends with a 3×3 (or 3)
convolution to ``out_channels``. The coarse grid is ``ceil(size / 2**len(channels))``, so
the decoded map is at least the requested size and is cropped to it (top-left).

For a segmentation task, ``out_channels`` is the number of classes and the output is the
logits (N, C, H, W); for a dense regression task it is the target's channels.

The design is the usual "DCGAN-style" upsampling decoder (Radford, Metz & Chintala 2016,
"Unsupervised representation learning with deep convolutional generative adversarial
networks"), kept deliberately small: it is an auxiliary head, not a segmentation network.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from mtlkit._checks import check_int, check_ints


class ConvDecoder2d(nn.Module):
    """Flat features (N, F) -> maps (N, out_channels, H, W).

    Args:
        in_features: width F of the shared representation.
        out_channels: channels of the output (classes for segmentation).
        out_size: (H, W) of the output, or one int for a square map.
        channels: feature maps of each upsampling stage (one ×2 stage per entry).
        activation_out: ``None`` (logits/raw values, default) or ``"sigmoid"``.

    >>> import torch
    >>> dec = ConvDecoder2d(50, 2, (7, 7))
    >>> tuple(dec(torch.zeros(3, 50)).shape)
    (3, 2, 7, 7)
    """

    def __init__(self, in_features: int, out_channels: int, out_size: int | Sequence[int], *,
                 channels: Sequence[int] = (32, 16), activation_out: str | None = None) -> None:
        super().__init__()
        name = type(self).__name__
        # "a positive int": the wording tests/auxiliary/test_aux_decoders.py asserts
        self.in_features = check_int(name, "in_features", in_features, low=1, what="a positive int")
        self.out_channels = check_int(name, "out_channels", out_channels, low=1)
        size = (out_size, out_size) if isinstance(out_size, int) else tuple(out_size)
        if len(size) != 2:
            raise ValueError(f"The 'out_size' parameter of {name} must be an int or (H, W). Got {out_size!r}.")
        self.out_size = (check_int(name, "out_size", size[0], low=1), check_int(name, "out_size", size[1], low=1))
        self.channels = check_ints(name, "channels", channels, low=1)
        if activation_out not in (None, "sigmoid"):
            raise ValueError(f"The 'activation_out' parameter of {name} must be None or 'sigmoid'. "
                             f"Got {activation_out!r}.")
        self.activation_out = activation_out
        k = len(self.channels)
        self._grid = tuple(math.ceil(s / 2**k) for s in self.out_size)
        c0 = self.channels[0]
        self.project = nn.Sequential(nn.Linear(self.in_features, c0 * self._grid[0] * self._grid[1]), nn.ReLU())
        ups: list[nn.Module] = []
        prev = c0
        for c in self.channels:
            ups += [nn.ConvTranspose2d(prev, c, kernel_size=4, stride=2, padding=1), nn.ReLU()]
            prev = c
        self.upsample = nn.Sequential(*ups)
        self.out = nn.Conv2d(prev, self.out_channels, kernel_size=3, padding=1)

    def forward(self, rep: Tensor) -> Tensor:
        h = self.project(rep.reshape(rep.shape[0], -1))
        h = h.reshape(h.shape[0], self.channels[0], *self._grid)
        h = self.out(self.upsample(h))[:, :, : self.out_size[0], : self.out_size[1]]
        return h.sigmoid() if self.activation_out == "sigmoid" else h


class ConvDecoder1d(nn.Module):
    """Flat features (N, F) -> series (N, out_channels, length).

    Args:
        in_features: width F of the shared representation.
        out_channels: channels of the output (classes for sequence labelling).
        length: number of time steps T of the output.
        channels: feature maps of each upsampling stage (one ×2 stage per entry).
        activation_out: ``None`` (logits/raw values, default) or ``"sigmoid"``.

    >>> import torch
    >>> tuple(ConvDecoder1d(64, 3, 100)(torch.zeros(2, 64)).shape)
    (2, 3, 100)
    """

    def __init__(self, in_features: int, out_channels: int, length: int, *,
                 channels: Sequence[int] = (32, 16), activation_out: str | None = None) -> None:
        super().__init__()
        name = type(self).__name__
        self.in_features = check_int(name, "in_features", in_features, low=1)
        self.out_channels = check_int(name, "out_channels", out_channels, low=1)
        self.length = check_int(name, "length", length, low=1)
        self.channels = check_ints(name, "channels", channels, low=1)
        if activation_out not in (None, "sigmoid"):
            raise ValueError(f"The 'activation_out' parameter of {name} must be None or 'sigmoid'. "
                             f"Got {activation_out!r}.")
        self.activation_out = activation_out
        self._grid = math.ceil(self.length / 2 ** len(self.channels))
        c0 = self.channels[0]
        self.project = nn.Sequential(nn.Linear(self.in_features, c0 * self._grid), nn.ReLU())
        ups: list[nn.Module] = []
        prev = c0
        for c in self.channels:
            ups += [nn.ConvTranspose1d(prev, c, kernel_size=4, stride=2, padding=1), nn.ReLU()]
            prev = c
        self.upsample = nn.Sequential(*ups)
        self.out = nn.Conv1d(prev, self.out_channels, kernel_size=3, padding=1)

    def forward(self, rep: Tensor) -> Tensor:
        h = self.project(rep.reshape(rep.shape[0], -1))
        h = h.reshape(h.shape[0], self.channels[0], self._grid)
        h = self.out(self.upsample(h))[:, :, : self.length]
        return h.sigmoid() if self.activation_out == "sigmoid" else h


def dense_head(in_features: int, task: Any, *, channels: Sequence[int] = (32, 16)) -> nn.Module:
    """The decoder head that fits a task's prediction shape.

    ``task`` is a :class:`mtlkit.Task` of a dense kind (``segmentation``,
    ``sequence_labelling``, ``dense_regression``). Its per-sample prediction shape is
    (C, H, W) -> :class:`ConvDecoder2d`, (C, T) -> :class:`ConvDecoder1d`, and a flat (D,)
    -> a linear layer.

    >>> from types import SimpleNamespace
    >>> seg = SimpleNamespace(kind="segmentation", num_classes=2, out_shape=(7, 7))
    >>> type(dense_head(50, seg)).__name__
    'ConvDecoder2d'
    """
    from mtlkit.kinds import get_kind, kind_names

    kind = getattr(task, "kind", None)
    spec = get_kind(kind) if isinstance(kind, str) and kind in kind_names() else None
    if spec is None or not spec.dense:
        dense = ", ".join(k for k in kind_names() if get_kind(k).dense)
        raise ValueError(f"dense_head needs a dense task ({dense}). Got kind {kind!r}.")
    shape = spec.output_shape(task)
    if len(shape) == 3:
        return ConvDecoder2d(in_features, shape[0], shape[1:], channels=channels)
    if len(shape) == 2:
        return ConvDecoder1d(in_features, shape[0], shape[1], channels=channels)
    if len(shape) == 1:
        return nn.Linear(in_features, shape[0])
    raise ValueError(f"No stock decoder for per-sample prediction shape {shape}; give a 1-, 2- or "
                     f"3-axis out_shape.")
