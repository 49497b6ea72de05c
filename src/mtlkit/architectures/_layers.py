"""Private helpers shared by the sharing architectures: containers keyed by task name, trunk
copies, block access, feature pooling, gradient reversal, softmax gates and running means.
(Parameter checks: :mod:`mtlkit._checks`.)"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mtlkit._checks import check_float
from mtlkit.architectures.backbones import build_trunk, infer_out_features

TrunkArg = dict[str, Any] | nn.Module


# --------------------------------------------------------------------------- task-keyed containers
#: first character of an escaped key (see :func:`module_key`)
ESCAPE = "%"


_RESERVED: dict[type, frozenset[str]] = {}


def _reserved(cls: type[nn.Module]) -> frozenset[str]:
    """The attribute names an instance of the container class ``cls`` has of itself
    (methods such as ``type``, ``to``, ``cuda``, ``train``, ``keys``; ``training``; private
    state): a child stored under one of them would clash with it."""
    names = _RESERVED.get(cls)
    if names is None:
        names = _RESERVED[cls] = frozenset(dir(cls)) | frozenset(vars(cls()))
    return names


def module_key(name: str, container: type[nn.Module] = nn.ModuleDict) -> str:
    """The key under which the entry named ``name`` (a task name: any non-empty string a CSV
    header can hold) is stored in a ``container`` (:class:`TaskModuleDict`,
    :class:`TaskParameterDict`), hence its prefix in ``state_dict()``.

    The name itself whenever it can be one — not empty, no ``.``, not an attribute of the
    container, not starting with ``%`` — so the keys of ordinary names ("a", "income",
    "my task", "é") are those of a plain ``nn.ModuleDict``. Otherwise it is escaped: ``%``
    followed by the name with ``%`` written ``%25`` and ``.`` written ``%2E``, e.g.
    ``"type" -> "%type"``, ``"to.x" -> "%to%2Ex"``, ``"" -> "%"``, ``"%a" -> "%%25a"``.
    The rule is injective (escaped keys start with ``%``, kept names never do) and
    :func:`task_name` inverts it.

    >>> module_key("income"), module_key("type"), module_key("a.b")
    ('income', '%type', '%a%2Eb')
    """
    if not isinstance(name, str):
        raise TypeError(f"Task names are strings. Got {type(name).__name__}: {name!r}.")
    if name and "." not in name and not name.startswith(ESCAPE) and name not in _reserved(container):
        return name
    return ESCAPE + name.replace("%", "%25").replace(".", "%2E")


def task_name(key: str) -> str:
    """The name stored under ``key`` (the inverse of :func:`module_key`)."""
    if not key.startswith(ESCAPE):
        return key
    return re.sub("%(25|2E)", lambda m: "%" if m.group(1) == "25" else ".", key[1:])


class TaskModuleDict(nn.ModuleDict):
    """An ``nn.ModuleDict`` keyed by task names, whatever they are (``"type"``, ``"to.x"``,
    ``"cuda"`` ...): indexing, ``in``, iteration, ``keys()`` and ``items()`` use the task
    names; the modules are registered under :func:`module_key` of them.

    >>> from torch import nn
    >>> d = TaskModuleDict({"type": nn.Identity(), "a": nn.Identity()})
    >>> list(d), "type" in d, list(d._modules)
    (['type', 'a'], True, ['%type', 'a'])
    """

    def __getitem__(self, name: str) -> nn.Module:  # type: ignore[override]
        return self._modules[module_key(name, type(self))]  # type: ignore[return-value]

    def __setitem__(self, name: str, module: nn.Module) -> None:
        self.add_module(module_key(name, type(self)), module)

    def __delitem__(self, name: str) -> None:
        del self._modules[module_key(name, type(self))]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and module_key(name, type(self)) in self._modules

    def __iter__(self) -> Iterator[str]:
        return (task_name(k) for k in list(self._modules))

    def keys(self) -> list[str]:  # type: ignore[override]
        return [task_name(k) for k in self._modules]

    def items(self) -> list[tuple[str, nn.Module]]:  # type: ignore[override]
        return [(task_name(k), m) for k, m in self._modules.items() if m is not None]


class TaskParameterDict(nn.ParameterDict):
    """An ``nn.ParameterDict`` keyed by task names, whatever they are: the parameters are
    registered under :func:`module_key` of the names, which the dict shows everywhere else
    (``ParameterDict`` maps its keys to attribute names in one method; this overrides it).

    >>> import torch
    >>> d = TaskParameterDict({"to": torch.nn.Parameter(torch.zeros(1))})
    >>> list(d), [n for n, _ in d.named_parameters()]
    (['to'], ['%to'])
    """

    def _key_to_attr(self, key: str) -> str:
        return module_key(super()._key_to_attr(key), type(self))


# --------------------------------------------------------------------------- trunks
def reset_parameters(module: nn.Module) -> nn.Module:
    """Re-initialise every sub-module that knows how (fresh weights for a copied trunk)."""
    for m in module.modules():
        fn = getattr(m, "reset_parameters", None)
        if callable(fn):
            fn()
    return module


class TrunkFactory:
    """Independent copies of a trunk, and the trunk's JSON spec.

    ``trunk`` is a stock spec ``{"name": "mlp" | "cnn1d" | "lenet", ...}`` (each copy is
    built afresh by :func:`~mtlkit.architectures.backbones.build_trunk`) or an ``nn.Module``
    (the first copy is the module itself, the next ones are deep copies with re-initialised
    parameters)."""

    def __init__(self, trunk: TrunkArg, input_shape: Sequence[int] | None, owner: str) -> None:
        if isinstance(trunk, dict):
            if input_shape is None:
                raise ValueError(f"{owner} needs 'input_shape' to build the trunk {trunk!r}.")
        elif not isinstance(trunk, nn.Module):
            raise TypeError(f"The 'trunk' of {owner} must be a stock trunk spec (dict) or an nn.Module. "
                            f"Got {type(trunk).__name__}.")
        self.trunk = trunk
        self.input_shape = None if input_shape is None else tuple(int(s) for s in input_shape)
        self.spec: dict[str, Any] | None = None if isinstance(trunk, dict) else getattr(trunk, "spec", None)
        self._first = True

    def __call__(self) -> nn.Module:
        if isinstance(self.trunk, dict):
            assert self.input_shape is not None
            built = build_trunk(self.trunk, self.input_shape)
            if self.spec is None:
                self.spec = dict(getattr(built, "spec", self.trunk))
            return built
        if self._first:
            self._first = False
            return self.trunk
        return reset_parameters(copy.deepcopy(self.trunk))


def single_trunk(trunk: TrunkArg, input_shape: Sequence[int] | None, owner: str
                 ) -> tuple[nn.Module, dict[str, Any] | None]:
    make = TrunkFactory(trunk, input_shape, owner)
    built = make()
    return built, make.spec


def named_blocks(trunk: nn.Module, owner: str) -> list[tuple[str, nn.Module]]:
    """The top-level blocks of an ``nn.Sequential`` trunk (a plain module is one block)."""
    if isinstance(trunk, nn.Sequential):
        blocks = list(trunk.named_children())
        if not blocks:
            raise ValueError(f"The trunk given to {owner} is an empty nn.Sequential.")
        return blocks
    return [("trunk", trunk)]


def block_index(key: int | str, names: Sequence[str], param: str, owner: str) -> int:
    """Resolve a block given by index (negative counts from the end) or by name."""
    n = len(names)
    if isinstance(key, str) and key in names:
        return list(names).index(key)
    if isinstance(key, int) and not isinstance(key, bool) and -n <= key < n:
        return key % n
    raise ValueError(f"The {param!r} parameter of {owner} names block {key!r}, which is neither an "
                     f"index in [{-n}, {n}) nor a block name {list(names)}.")


def block_shapes(blocks: Sequence[nn.Module], input_shape: Sequence[int]) -> list[tuple[int, ...]]:
    """Per-sample output shape of each block, by one dummy forward in eval mode."""
    states = [b.training for b in blocks]
    for b in blocks:
        b.eval()
    shapes = []
    try:
        with torch.no_grad():
            p = next((q for b in blocks for q in b.parameters()), None)
            h = torch.zeros(2, *input_shape, dtype=p.dtype if p is not None else torch.float32)
            for b in blocks:
                h = b(h)
                shapes.append(tuple(h.shape[1:]))
    except Exception as exc:
        raise ValueError(f"The trunk cannot process inputs of shape {tuple(input_shape)}: {exc}") from exc
    finally:
        for b, s in zip(blocks, states):
            b.train(s)
    return shapes


def trunk_width(trunk: nn.Module, input_shape: Sequence[int] | None) -> int:
    width = getattr(trunk, "out_features", None)
    if input_shape is not None:
        return infer_out_features(trunk, input_shape)
    if width is None:
        raise ValueError("Give input_shape so the trunk's output width can be inferred.")
    return int(width)


def pool_flat(h: Tensor, pool_size: int = 1) -> Tensor:
    """(N, D) as is; (N, C, *spatial) adaptively average-pooled to ``pool_size`` per spatial
    dimension, then flattened."""
    if h.dim() <= 2:
        return h.reshape(h.shape[0], -1)
    if h.dim() == 3:
        h = F.adaptive_avg_pool1d(h, pool_size)
    elif h.dim() == 4:
        h = F.adaptive_avg_pool2d(h, pool_size)
    elif h.dim() == 5:
        h = F.adaptive_avg_pool3d(h, pool_size)
    else:
        raise ValueError(f"Cannot pool features of shape {tuple(h.shape)}.")
    return h.reshape(h.shape[0], -1)


def pooled_width(shape: Sequence[int], pool_size: int = 1) -> int:
    if len(shape) <= 1:
        return int(math.prod(shape))
    return int(shape[0]) * pool_size ** (len(shape) - 1)


def flat_size(shape: Sequence[int]) -> int:
    return int(math.prod(shape))


def params_of(*modules: nn.Module | None) -> Iterator[nn.Parameter]:
    """Parameters of several modules, each once."""
    seen: set[int] = set()
    for m in modules:
        if m is None:
            continue
        for p in m.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                yield p


# --------------------------------------------------------------------------- gradient reversal
class _ReverseGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, strength: float) -> Tensor:
        ctx.strength = strength
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return -ctx.strength * grad, None


def grad_reverse(x: Tensor, strength: float = 1.0) -> Tensor:
    """Identity forward; the backward pass multiplies the gradient by ``-strength``."""
    return _ReverseGrad.apply(x, float(strength))


class GradientReversal(nn.Module):
    """Gradient-reversal layer (Ganin & Lempitsky 2015, "Unsupervised Domain Adaptation by
    Backpropagation"): identity in the forward pass, gradient times ``-strength`` backward.

    >>> import torch
    >>> x = torch.ones(3, requires_grad=True)
    >>> GradientReversal(strength=0.5)(x).sum().backward()
    >>> x.grad
    tensor([-0.5000, -0.5000, -0.5000])
    """

    def __init__(self, *, strength: float = 1.0) -> None:
        super().__init__()
        self.strength = check_float("GradientReversal", "strength", strength, low=0.0)

    def forward(self, x: Tensor) -> Tensor:
        return grad_reverse(x, self.strength)

    def extra_repr(self) -> str:
        return f"strength={self.strength}"


# --------------------------------------------------------------------------- gates
class SoftmaxGate(nn.Module):
    """g(x) = softmax(W x + b) over ``num_experts`` (Ma et al. 2018), on flattened inputs."""

    def __init__(self, in_features: int, num_experts: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, num_experts)

    def forward(self, x: Tensor) -> Tensor:
        return torch.softmax(self.linear(x.reshape(x.shape[0], -1)), dim=-1)


def mix(weights: Tensor, outputs: Sequence[Tensor]) -> Tensor:
    """Σ_e weights[:, e] · outputs[e] for outputs of any shape (N, ...)."""
    stacked = torch.stack(list(outputs), dim=1)  # (N, E, ...)
    w = weights.reshape(*weights.shape, *([1] * (stacked.dim() - 2)))
    return (w * stacked).sum(dim=1)


class RunningMean:
    """Sample-weighted running mean of per-batch vectors since the last :meth:`pop`; when
    nothing was added since, :meth:`pop` repeats the previous mean."""

    def __init__(self) -> None:
        self.total: Tensor | None = None
        self.count = 0
        self.last: list[float] | None = None

    def update(self, batch_values: Tensor) -> None:
        v = batch_values.detach().double().cpu()
        s = v.sum(0)
        self.total = s if self.total is None else self.total + s
        self.count += int(v.shape[0])

    def pop(self) -> list[float] | None:
        if self.total is None or self.count == 0:
            return self.last
        self.last = (self.total / self.count).tolist()
        self.total, self.count = None, 0
        return self.last


def fresh_mean_dict(names: Sequence[str]) -> dict[str, RunningMean]:
    return {n: RunningMean() for n in names}


def require_spec(trunk: dict[str, Any] | None, owner: str) -> dict[str, Any]:
    if trunk is None:
        raise ValueError(f"{owner} was built from a user trunk (an nn.Module without a 'spec'); it "
                         f"cannot be rebuilt from its config. Use a stock trunk spec to rebuild from JSON.")
    return trunk
