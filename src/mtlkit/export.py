"""Shipping a model: the primary tasks alone, as safetensors, TorchScript or ONNX.

``primary_only`` rebuilds the architecture with the primary tasks only (from the JSON config,
no pickle) and copies every weight the smaller model has: the auxiliary heads, branches and
decoders are not in it at all. The result is checked to give the same primary outputs.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mtlkit._batch import shape_json
from mtlkit._io import atomic_write, write_json
from mtlkit.run.folder import save_model
from mtlkit.tasks import Task

FORMATS = ("safetensors", "torchscript", "onnx")


def primary_only(model: nn.Module, tasks: list[Task], input_shape: Any,
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
        x = _example(input_shape, 4, random=True)
        with torch.no_grad():
            a, b = model(x), small(x)
        model.train(was)
        for t in primary:
            if not torch.allclose(a[t.name], b[t.name], atol=1e-6, rtol=1e-5):
                raise RuntimeError(f"Primary-only model differs from the full model on task {t.name!r}.")
    return small, primary


def _example(input_shape: Any, n: int, *, random: bool = False) -> Any:
    """``n`` example inputs: a tensor, or ``{name: tensor}`` for several named inputs."""
    gen = torch.Generator().manual_seed(0)

    def one(shape: Any) -> torch.Tensor:
        return torch.randn(n, *shape, generator=gen) if random else torch.zeros(n, *shape)

    if isinstance(input_shape, Mapping):
        return {str(k): one(v) for k, v in input_shape.items()}
    return one(input_shape)


class _TupleOutputs(nn.Module):
    """Dict outputs -> a tuple in task order (for TorchScript tracing and ONNX). With
    ``input_names`` the model reads several named inputs: they come in as positional tensors
    in that order (ONNX: one graph input per name) and go to the model as a dict."""

    def __init__(self, model: nn.Module, names: list[str], input_names: list[str] | None = None) -> None:
        super().__init__()
        self.model = model
        self.names = names
        self.input_names = input_names

    def forward(self, *xs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(dict(zip(self.input_names, xs)) if self.input_names is not None else xs[0])
        return tuple(out[n] for n in self.names)


def export_model(model: nn.Module, tasks: list[Task], input_shape: Any, out: str | Path,
                 *, fmt: str = "safetensors", meta: dict[str, Any] | None = None) -> Path:
    """Write ``model`` as ``safetensors`` (a run-style folder: weights + model.json),
    ``torchscript`` (traced, outputs a tuple in task order) or ``onnx`` (one named output
    per task; needs the ``onnx`` package, checked with onnxruntime by the tests).

    ``input_shape``: the per-sample shape, or ``{name: shape}`` for a model of several named
    inputs: the ONNX graph then has one input per name (batch dimension dynamic), and the
    TorchScript module takes the tensors positionally in that order."""
    if fmt not in FORMATS:
        raise ValueError(f"Unknown export format {fmt!r}; choose from {', '.join(FORMATS)}.")
    out = Path(out)
    names = [t.name for t in tasks]
    model.eval()
    example = _example(input_shape, 2)
    inputs = list(example) if isinstance(example, dict) else None
    args = tuple(example.values()) if isinstance(example, dict) else (example,)
    if fmt == "safetensors":
        m = dict(meta or {})
        m.update({"architecture": getattr(model, "config", None), "tasks": [t.to_dict() for t in tasks],
                  "input_shape": shape_json(input_shape)})
        save_model(out, model, m)
        return out
    wrapped = _TupleOutputs(model, names, inputs).eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "torchscript":
        with torch.no_grad():
            traced = torch.jit.trace(wrapped, args)
        atomic_write(out, lambda p: traced.save(str(p)))
    else:
        try:
            import onnx  # noqa: F401
        except ImportError as exc:
            raise ImportError("ONNX export needs the onnx package: pip install 'mtlkit[export]'.") from exc
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            graph_inputs = inputs or ["x"]
            atomic_write(out, lambda p: torch.onnx.export(
                wrapped, args, str(p), dynamo=False, input_names=graph_inputs, output_names=names,
                dynamic_axes={**{i: {0: "batch"} for i in graph_inputs}, **{n: {0: "batch"} for n in names}}))
    write_json(out.with_suffix(out.suffix + ".json"),
               {"tasks": [t.to_dict() for t in tasks], "input_shape": shape_json(input_shape), "format": fmt,
                "outputs": names, **({"preprocessing": meta.get("preprocessing"), "features": meta.get("features")}
                                     if meta else {})})
    return out


# ---------------------------------------------------------------------------- raw rows in
class _Decoded(nn.Module):
    """Encoded inputs -> per primary task the probabilities (classification: (N,) positive
    probability or (N, C)), the class index, or the values in original units."""

    def __init__(self, model: nn.Module, tasks: list[Task], *, concat: bool = False) -> None:
        super().__init__()
        self.model = model
        self.tasks = tasks
        self.concat = concat

    def forward(self, x: torch.Tensor) -> Any:
        out = self.model(x)
        parts: list[torch.Tensor] = []
        for t in self.tasks:
            p = t.predict_transform(out[t.name])
            if t.task_kind.binary_targets:
                parts += [p, (p >= 0.5).long()]
            elif t.task_kind.has_classes:
                parts += [p, p.argmax(-1)]
            else:
                parts.append(p)
        if self.concat:
            return torch.cat([q.reshape(q.shape[0], -1).to(torch.float32) for q in parts], dim=1)
        return tuple(parts)


def _output_names(tasks: list[Task]) -> list[str]:
    names: list[str] = []
    for t in tasks:
        names += [f"{t.name}_proba", f"{t.name}__index"] if t.task_kind.class_per_sample else [t.name]
    return names


def _refuse(pre: Any, tasks: list[Task]) -> None:
    """The parts of a table run that cannot go into an exported raw-row graph."""
    dates = [c.name for c in pre.fitted if c.type == "datetime"]
    if dates:
        raise ValueError(f"Cannot export raw rows: datetime column(s) {dates} are parsed into parts (year, month, "
                         f"...) by pandas, and the exported graph has no date parser. Give the parts as numeric "
                         f"columns (or leave the column out) and train again, or export the encoded model "
                         f"(mtlkit.export.export_model).")
    bad = [t.name for t in tasks if t.task_kind.dense or t.task_kind.pairwise
           or (t.task_kind.multi_column and t.task_kind.is_classification)]
    if bad:
        raise ValueError(f"Cannot export raw rows for task(s) {bad}: only binary, multiclass and regression "
                         f"tasks are decoded in the graph.")


def export_table(run: Any, out: str | Path, *, fmt: str = "onnx", primary: bool = True) -> Path:
    """Export a table run's model with its preprocessing and decoding **in the graph**: it
    takes raw rows and returns probabilities, decoded labels and values in original units.

    * ``onnx``: one ``(N, 1)`` input per feature column, named by the column: ``double``
      with NaN for numeric and boolean columns, ``string`` (``""`` = missing) for
      categorical ones (:func:`mtlkit.data.tabular.onnx_feed` builds them from a DataFrame).
      Outputs per task: ``<task>_proba`` and ``<task>`` (the class name, via ONNX-ML's
      ``LabelEncoder``) for classification, ``<task>`` for regression. Imputation,
      standardisation, the category lookups (``LabelEncoder``), one-hot and the embeddings
      are graph nodes.
    * ``torchscript``: ``forward(numeric: Dict[str, Tensor], categorical: Dict[str,
      List[str]])`` -> ``(Dict[str, Tensor], Dict[str, List[str]])``: probabilities and
      values, and the decoded labels.

    A part that cannot go into the graph (a datetime column) is refused with a message
    naming it; nothing is written to a side file."""
    from mtlkit.data.tabular import TablePreprocessor

    if fmt not in ("onnx", "torchscript"):
        raise ValueError(f"Raw-row export is for onnx and torchscript; got {fmt!r}.")
    pre = run.preprocessor
    if not isinstance(pre, TablePreprocessor):
        raise ValueError("Raw-row export needs a run trained on a table (its preprocessing is recorded in "
                         "model.json); export the encoded model with export_model instead.")
    if isinstance(run.meta.get("input_shape"), Mapping):
        raise ValueError(f"Raw-row export reads one encoded table; this run's model reads the named inputs "
                         f"{list(run.meta['input_shape'])} (data.inputs). Export the encoded model with "
                         f"mtlkit.export.export_model: one graph input per named input.")
    model, tasks = run.model, list(run.tasks)
    if primary and any(t.role != "primary" for t in tasks):
        model, tasks = primary_only(model, tasks, run.meta["input_shape"])
    _refuse(pre, tasks)
    model.eval()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "onnx":
        proto = _onnx_raw(model, tasks, pre, int(run.meta["input_shape"][0]))
        atomic_write(out, lambda p: p.write_bytes(proto.SerializeToString()))
    else:
        scripted = _torchscript_raw(model, tasks, pre, int(run.meta["input_shape"][0]))
        atomic_write(out, lambda p: scripted.save(str(p)))
    return out


def _onnx_raw(model: nn.Module, tasks: list[Task], pre: Any, width: int) -> Any:
    """The core model exported by torch, with the preprocessing nodes before it and the
    label decoding after it, in one ONNX graph."""
    import io

    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError as exc:
        raise ImportError("ONNX export needs the onnx package: pip install 'mtlkit[export]'.") from exc
    import numpy as np

    names = _output_names(tasks)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_Decoded(model, tasks).eval(), (torch.zeros(2, width),), buf,  # type: ignore[arg-type]
                          dynamo=False,
                          input_names=["x"], output_names=names,
                          dynamic_axes={"x": {0: "batch"}, **{n: {0: "batch"} for n in names}})
    core = onnx.load_from_string(buf.getvalue())
    g = core.graph
    nodes: list[Any] = []
    inits: list[Any] = []
    inputs: list[Any] = []

    def const(name: str, value: Any) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    blocks, indicators, onehots, embeds = [], [], [], []
    for i, c in enumerate(pre.fitted):
        col = str(c.name)
        if c.type == "categorical":
            inputs.append(helper.make_tensor_value_info(col, TensorProto.STRING, ["batch", 1]))
            idx = f"pre_{i}_index"
            nodes.append(helper.make_node("LabelEncoder", [col], [idx], domain="ai.onnx.ml",
                                          keys_strings=["", *c.categories],
                                          values_int64s=list(range(1, len(c.categories) + 2)), default_int64=0))
            if c.encoding == "onehot":
                rng = const(f"pre_{i}_range", np.arange(c.cardinality, dtype=np.int64)[None, :])
                nodes.append(helper.make_node("Equal", [idx, rng], [f"pre_{i}_eq"]))
                nodes.append(helper.make_node("Cast", [f"pre_{i}_eq"], [f"pre_{i}_onehot"], to=TensorProto.FLOAT))
                onehots.append(f"pre_{i}_onehot")
            else:
                nodes.append(helper.make_node("Cast", [idx], [f"pre_{i}_emb"], to=TensorProto.FLOAT))
                embeds.append(f"pre_{i}_emb")
            continue
        inputs.append(helper.make_tensor_value_info(col, TensorProto.DOUBLE, ["batch", 1]))
        nan = f"pre_{i}_nan"
        nodes.append(helper.make_node("IsNaN", [col], [nan]))
        med = const(f"pre_{i}_median", np.asarray([c.median], dtype=np.float64))
        nodes.append(helper.make_node("Where", [nan, med, col], [f"pre_{i}_filled"]))
        nodes.append(helper.make_node("Sub", [f"pre_{i}_filled", const(f"pre_{i}_mean", np.asarray([c.mean]))],
                                      [f"pre_{i}_centred"]))
        nodes.append(helper.make_node("Div", [f"pre_{i}_centred", const(f"pre_{i}_std", np.asarray([c.std]))],
                                      [f"pre_{i}_z64"]))
        nodes.append(helper.make_node("Cast", [f"pre_{i}_z64"], [f"pre_{i}_z"], to=TensorProto.FLOAT))
        blocks.append(f"pre_{i}_z")
        if c.indicator:
            nodes.append(helper.make_node("Cast", [nan], [f"pre_{i}_ind"], to=TensorProto.FLOAT))
            indicators.append(f"pre_{i}_ind")
    nodes.append(helper.make_node("Concat", blocks + indicators + onehots + embeds, ["x"], axis=1))
    # label decoding after the core graph: class index -> class name
    outputs = []
    old = {o.name: o for o in g.output}
    decode: list[Any] = []
    for t in tasks:
        if not t.task_kind.class_per_sample:
            outputs.append(old[t.name])
            continue
        outputs.append(old[f"{t.name}_proba"])
        classes = list(t.classes) if t.classes is not None else list(range(2 if t.task_kind.binary_targets
                                                                            else int(t.num_classes or 0)))
        keys = list(range(len(classes)))
        if all(isinstance(v, int) and not isinstance(v, bool) for v in classes):
            decode.append(helper.make_node("LabelEncoder", [f"{t.name}__index"], [t.name], domain="ai.onnx.ml",
                                           keys_int64s=keys, values_int64s=[int(v) for v in classes],
                                           default_int64=-1))
            outputs.append(helper.make_tensor_value_info(t.name, TensorProto.INT64, ["batch"]))
        else:
            decode.append(helper.make_node("LabelEncoder", [f"{t.name}__index"], [t.name], domain="ai.onnx.ml",
                                           keys_int64s=keys, values_strings=[str(v) for v in classes],
                                           default_string=""))
            outputs.append(helper.make_tensor_value_info(t.name, TensorProto.STRING, ["batch"]))
    graph = helper.make_graph(nodes + list(g.node) + decode, "mtlkit_raw_rows", inputs, outputs,
                              initializer=inits + list(g.initializer))
    opsets = [o for o in core.opset_import if o.domain not in ("", "ai.onnx.ml")]
    opsets += [helper.make_opsetid("", max(o.version for o in core.opset_import if o.domain == "")),
               helper.make_opsetid("ai.onnx.ml", 3)]
    proto = helper.make_model(graph, opset_imports=opsets, producer_name="mtlkit")
    proto.ir_version = core.ir_version
    onnx.checker.check_model(proto)
    return proto


def _torchscript_raw(model: nn.Module, tasks: list[Task], pre: Any, width: int) -> Any:
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the target statistics are constants of the trace, as meant
        core = torch.jit.trace(_Decoded(model, tasks, concat=True).eval(), torch.zeros(2, width))
    from mtlkit._raw_rows import RawRowsTS

    return torch.jit.script(RawRowsTS(core, tasks, pre))
