"""Model inputs that are one tensor or several named tensors (a dict), handled alike.

A sample may have several inputs (``{"accel": (N, 3, T), "gyro": (N, 3, T)}``,
``{"image": (N, 1, H, W), "table": (N, F)}``): every tensor of a dict shares the first
(sample) dimension. The helpers here are the only place that looks inside such inputs, so the
dataset, the step, the DDP sharding and prediction treat a tensor and a dict the same way.

>>> import torch
>>> x = {"a": torch.zeros(5, 3), "b": torch.ones(5, 2, 4)}
>>> rows(x), shape_of(x)
(5, {'a': (3,), 'b': (2, 4)})
>>> {k: tuple(v.shape) for k, v in take(x, slice(1, 3)).items()}
{'a': (2, 3), 'b': (2, 2, 4)}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, Union, cast

import torch
from torch import Tensor

#: one tensor, or several named tensors sharing the first (sample) dimension
Inputs = Union[Tensor, dict[str, Tensor]]
#: a tensor in, a tensor out; a dict in, a dict out
X = TypeVar("X", Tensor, dict[str, Tensor], Inputs)
#: the per-sample shape of :data:`Inputs`: a tuple, or one tuple per named input
Shape = Union[tuple[int, ...], dict[str, tuple[int, ...]]]

__all__ = ["Inputs", "Shape", "as_inputs", "check_names", "concat", "finite_check", "float_inputs", "is_multi", "map_inputs",
           "rows", "shape_json", "shape_of", "take", "tile", "to_device"]


def is_multi(x: Any) -> bool:
    """Whether ``x`` holds several named inputs (a mapping)."""
    return isinstance(x, Mapping)


def as_inputs(x: Any, *, source: str | None = None) -> Inputs:
    """``x`` as a tensor, or as a dict of tensors checked to share the first dimension.

    A dict needs at least one entry, string names and tensors (or arrays) with the same
    number of samples; an error names the input at fault."""
    where = f" of {source}" if source else ""
    if not is_multi(x):
        return torch.as_tensor(x)
    if len(x) == 0:
        raise ValueError(f"The inputs{where} are an empty dict: give at least one named input.")
    out: dict[str, Tensor] = {}
    for name, v in x.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"Input names{where} must be non-empty strings. Got {name!r}.")
        if is_multi(v):
            raise TypeError(f"Input {name!r}{where} is itself a dict; nested inputs are not supported.")
        try:
            t = torch.as_tensor(v)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise TypeError(f"Input {name!r}{where} is not a tensor or array: {exc}") from None
        if t.dim() == 0:
            raise ValueError(f"Input {name!r}{where} is a scalar; it needs a first (sample) dimension.")
        out[name] = t
    counts = {k: int(v.shape[0]) for k, v in out.items()}
    if len(set(counts.values())) > 1:
        raise ValueError(f"The inputs{where} have different numbers of samples: {counts}.")
    return out


def rows(x: Inputs) -> int:
    """The number of samples (the first dimension)."""
    if is_multi(x):
        return int(next(iter(x.values())).shape[0])  # type: ignore[union-attr]
    return int(x.shape[0])  # type: ignore[union-attr]


def shape_of(x: Inputs) -> Shape:
    """The per-sample shape: a tuple, or ``{name: tuple}``."""
    if is_multi(x):
        return {k: tuple(int(s) for s in v.shape[1:]) for k, v in x.items()}  # type: ignore[union-attr]
    return tuple(int(s) for s in x.shape[1:])  # type: ignore[union-attr]


def map_inputs(x: Inputs, fn: Callable[[Tensor], Tensor]) -> Inputs:
    """``fn`` applied to the tensor, or to each named tensor."""
    if is_multi(x):
        return {k: fn(v) for k, v in x.items()}  # type: ignore[union-attr]
    return fn(x)  # type: ignore[arg-type]


def take(x: X, idx: Any) -> X:
    """Rows ``idx`` (an index tensor, array or slice) of every input."""
    return cast(X, map_inputs(x, lambda t: t[idx]))


def to_device(x: X, device: torch.device | str, *, non_blocking: bool = False) -> X:
    """Every input moved to ``device``."""
    return cast(X, map_inputs(x, lambda t: t.to(device, non_blocking=non_blocking)))


def float_inputs(x: Inputs) -> Inputs:
    """Floating-point inputs as float32; integer inputs (IDs, tokens) kept as they are."""
    return map_inputs(x, lambda t: t.float() if t.is_floating_point() else t)


def concat(parts: Sequence[Inputs]) -> Inputs:
    """Rows of several inputs stacked (all tensors, or all dicts with the same names)."""
    first = parts[0]
    if not is_multi(first):
        return torch.cat(list(parts))  # type: ignore[arg-type]
    names = list(first)  # type: ignore[arg-type]
    for p in parts[1:]:
        if not is_multi(p) or list(p) != names:  # type: ignore[arg-type]
            got = list(p) if is_multi(p) else type(p).__name__  # type: ignore[arg-type]
            raise ValueError(f"Cannot stack inputs named {names} with inputs {got}.")
    return {k: torch.cat([p[k] for p in parts]) for k in names}  # type: ignore[index]


def check_names(x: Inputs, expected: Sequence[str], *, owner: str = "The model") -> None:
    """Raise a clear error when ``x`` lacks one of the ``expected`` named inputs, or when a
    single tensor is given where named inputs are expected."""
    if not expected:
        return
    if not is_multi(x):
        raise TypeError(f"{owner} reads several named inputs {list(expected)}; it was given a single "
                        f"{type(x).__name__}. Pass a dict {{name: tensor}}.")
    missing = [k for k in expected if k not in x]  # type: ignore[operator]
    if missing:
        raise KeyError(f"{owner} needs the input(s) {missing}, missing from the given inputs "
                       f"{sorted(x)}; it reads {list(expected)}.")  # type: ignore[arg-type]


def finite_check(x: Inputs, source: str | None = None) -> None:
    """Raise when a floating-point input holds NaN or infinite values (names the input)."""
    items: list[tuple[str, Tensor]] = list(x.items()) if isinstance(x, dict) else [("", x)]
    for name, t in items:
        if t.is_floating_point() and t.numel() and not torch.isfinite(t).all():
            bad = (~torch.isfinite(t.reshape(t.shape[0], -1))).any(1).nonzero()[:5, 0].tolist()
            what = f"The input {name!r}" if name else "The inputs"
            of = f" of {source}" if source else ""
            raise ValueError(f"{what}{of} contain NaN or infinite values (rows {bad} ...).")


def shape_json(shape: Any) -> Any:
    """A per-sample shape as JSON: a list, or ``{name: list}`` (what ``model.json`` records)."""
    if isinstance(shape, Mapping):
        return {str(k): [int(s) for s in v] for k, v in shape.items()}
    return [int(s) for s in shape]


def tile(x: Inputs, n: int) -> Inputs:
    """The first ``n`` rows of ``x`` repeated along the sample dimension as often as needed."""
    reps = -(-n // max(rows(x), 1))
    return take(map_inputs(x, lambda t: t.repeat(reps, *([1] * (t.dim() - 1))) if reps > 1 else t), slice(0, n))
