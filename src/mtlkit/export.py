"""Shipping a model: the primary tasks alone, as safetensors, TorchScript or ONNX.

``primary_only`` rebuilds the architecture with the primary tasks only (from the JSON config,
no pickle) and copies every weight the smaller model has: the auxiliary heads, branches and
decoders are not in it at all. The result is checked to give the same primary outputs.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mtlkit._io import atomic_write, write_json
from mtlkit.run.folder import save_model
from mtlkit.tasks import Task

FORMATS = ("safetensors", "torchscript", "onnx")


def primary_only(model: nn.Module, tasks: list[Task], input_shape: list[int] | tuple[int, ...],
                 *, check: bool = True) -> tuple[nn.Module, list[Task]]:
    """A copy of ``model`` with the auxiliary tasks' parameters removed."""
    from mtlkit.architectures import build_model

    cfg = getattr(model, "config", None)
    if not cfg or cfg.get("trunk") is None:
        raise ValueError("primary-only export needs a model built from a config (a stock trunk); "
                         "rebuild your own model without the auxiliary heads instead.")
    primary = [t for t in tasks if t.role == "primary"]
    if not primary:
        raise ValueError("No primary task: every task is auxiliary, nothing to export.")
    from mtlkit._registry import ARCHITECTURES

    cfg = dict(cfg)
    if cfg.get("name") in ARCHITECTURES:  # drop the auxiliary tasks' entries of task-keyed parameters
        restrict = getattr(ARCHITECTURES.get(cfg["name"]), "config_for_tasks", None)
        if restrict is not None:
            cfg = restrict(cfg, [t.name for t in primary])
    small = build_model(cfg, primary, input_shape)
    full_state = model.state_dict()
    small_state = small.state_dict()
    params = {name for name, _ in small.named_parameters()}
    missing = [k for k in small_state if k not in full_state]
    # a per-task buffer (e.g. AdaShare's fixed policy, one row per task) has another shape in
    # the smaller model, which set it from its config; the output check below confirms it
    reshaped = [k for k in small_state if k in full_state and full_state[k].shape != small_state[k].shape]
    if missing or any(k in params for k in reshaped):
        raise ValueError(f"Cannot map weights for the primary-only model: {(missing + reshaped)[:3]} ...")
    small.load_state_dict({k: (small_state[k] if k in reshaped else full_state[k]) for k in small_state})
    small.eval()
    if check:
        was = model.training
        model.eval()
        x = torch.randn(4, *input_shape, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            a, b = model(x), small(x)
        model.train(was)
        for t in primary:
            if not torch.allclose(a[t.name], b[t.name], atol=1e-6, rtol=1e-5):
                raise RuntimeError(f"Primary-only model differs from the full model on task {t.name!r}.")
    return small, primary


class _TupleOutputs(nn.Module):
    """Dict outputs -> a tuple in task order (for TorchScript tracing and ONNX)."""

    def __init__(self, model: nn.Module, names: list[str]) -> None:
        super().__init__()
        self.model = model
        self.names = names

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(x)
        return tuple(out[n] for n in self.names)


def export_model(model: nn.Module, tasks: list[Task], input_shape: list[int] | tuple[int, ...], out: str | Path,
                 *, fmt: str = "safetensors", meta: dict[str, Any] | None = None) -> Path:
    """Write ``model`` as ``safetensors`` (a run-style folder: weights + model.json),
    ``torchscript`` (traced, outputs a tuple in task order) or ``onnx`` (one named output
    per task; needs the ``onnx`` package, checked with onnxruntime by the tests)."""
    if fmt not in FORMATS:
        raise ValueError(f"Unknown export format {fmt!r}; choose from {', '.join(FORMATS)}.")
    out = Path(out)
    names = [t.name for t in tasks]
    model.eval()
    example = torch.zeros(2, *input_shape)
    if fmt == "safetensors":
        m = dict(meta or {})
        m.update({"architecture": getattr(model, "config", None), "tasks": [t.to_dict() for t in tasks],
                  "input_shape": list(input_shape)})
        save_model(out, model, m)
        return out
    wrapped = _TupleOutputs(model, names).eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "torchscript":
        with torch.no_grad():
            traced = torch.jit.trace(wrapped, example)
        atomic_write(out, lambda p: traced.save(str(p)))
    else:
        try:
            import onnx  # noqa: F401
        except ImportError as exc:
            raise ImportError("ONNX export needs the onnx package: pip install 'mtlkit[export]'.") from exc
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            atomic_write(out, lambda p: torch.onnx.export(
                wrapped, (example,), str(p), dynamo=False, input_names=["x"], output_names=names,
                dynamic_axes={"x": {0: "batch"}, **{n: {0: "batch"} for n in names}}))
    write_json(out.with_suffix(out.suffix + ".json"),
               {"tasks": [t.to_dict() for t in tasks], "input_shape": list(input_shape), "format": fmt,
                "outputs": names, **({"preprocessing": meta.get("preprocessing"), "features": meta.get("features")}
                                     if meta else {})})
    return out
