"""The data of a run: load the config's source (a built-in dataset or a file), add the
configured auxiliary targets, split (seeded) and standardise the inputs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import pandas as pd
import torch

from mtlkit import _batch
from mtlkit._batch import Shape
from mtlkit.config import RunConfig
from mtlkit.data._dataset import MultiTaskData
from mtlkit.data._preprocess import Standardizer
from mtlkit.data._split import split
from mtlkit.data.tabular import (
    TableOptions,
    TablePreprocessor,
    check_frame,
    fit_labels,
    fit_target_scaling,
    labels_from_frame,
    resolve_types,
)
from mtlkit.data.tagging import fit_tag_classes, is_tagging, tag_targets
from mtlkit.tasks import Task, check_funnels, check_tasks, funnel_masks, task_from_dict

__all__ = ["PreparedData", "TableData", "default_trunk_for", "divide_table", "named_inputs", "prepare",
           "prepare_from_config", "prepare_table", "resolve_tasks", "table_inputs", "table_options",
           "with_named_inputs"]


@dataclass
class TableData:
    """The raw table of a run, its split (row positions) and its fitted preprocessing: what
    the GBDT baselines and the table-in, table-out predictions use."""

    frame: pd.DataFrame
    train_idx: np.ndarray
    val_idx: np.ndarray
    test_idx: np.ndarray
    preprocessor: TablePreprocessor


@dataclass
class PreparedData:
    """Split, preprocessed data and what the model builder needs to know about it."""

    train: MultiTaskData
    val: MultiTaskData
    test: MultiTaskData
    tasks: list[Task]
    #: per-sample shape; ``{input name: shape}`` for several named inputs (``data.inputs``)
    input_shape: Shape
    default_trunk: dict[str, Any]
    preprocessing: dict[str, Any] | None = None
    features: list[str] | None = None
    image_column: str | None = None
    source: str = ""
    extra_meta: dict[str, Any] = field(default_factory=dict)
    #: a table read as it is (:func:`prepare_table`): its frame, split and preprocessing
    table: TableData | None = None

    @property
    def input_module(self) -> dict[str, Any] | None:
        """The spec of the model's input module (a table's category embeddings, token slots), if
        any; a table divided into named inputs (``data.inputs``): ``{"inputs": {name: spec}}``,
        which the multimodal architecture hands to each input's encoder."""
        if self.table is None:
            return None
        layout = (self.preprocessing or {}).get("inputs")
        if layout:
            return {"inputs": {k: v["input"] for k, v in layout.items()}}
        return self.table.preprocessor.input_spec


def default_trunk_for(input_shape: Shape | Sequence[int]) -> dict[str, Any]:
    """The stock trunk for inputs of this per-sample shape. Several named inputs: ``{}`` (the
    multimodal architecture then picks each input's stock encoder by its shape)."""
    if isinstance(input_shape, Mapping):
        return {}
    nd = len(input_shape)
    if nd == 1:
        return {"name": "mlp", "hidden": [128, 64]}
    if nd == 2:
        return {"name": "cnn1d"}
    if nd == 3:
        return {"name": "lenet"}
    raise ValueError(f"No stock trunk for inputs of shape {tuple(input_shape)}; pass your own trunk.")


def resolve_tasks(cfg_tasks: Sequence[Any] | None, available: Sequence[Task] | None) -> list[Task]:
    if cfg_tasks:
        tasks = [task_from_dict(t.model_dump() if hasattr(t, "model_dump") else dict(t)) for t in cfg_tasks]
    elif available:
        tasks = list(available)
    else:
        raise ValueError("No tasks: give 'tasks' in the config.")
    tasks = check_tasks(tasks)
    check_funnels(tasks)  # a funnel parent ('given') that is not a task: an error naming it
    return tasks


def prepare(data: MultiTaskData, tasks: Sequence[Task], *, test: MultiTaskData | None = None,
            fractions: Sequence[float] = (0.6, 0.25, 0.15), stratify: str | None = None, seed: int = 0,
            standardize: bool = True, default_trunk: dict[str, Any] | None = None,
            features: list[str] | None = None, image_column: str | None = None, source: str = "",
            funnel_violations: str = "error") -> PreparedData:
    """Split (seeded; a given ``test`` set is kept and train/val split in proportion) and fit
    the input standardisation on the training split (flat inputs only)."""
    tasks = check_tasks(tasks)
    if stratify is not None and stratify not in {t.name for t in tasks}:
        raise ValueError(f"split.stratify names unknown task {stratify!r}; tasks are {[t.name for t in tasks]}.")
    data = _restrict(data, tasks, funnel_violations)
    if test is not None:
        test = _restrict(test, tasks, funnel_violations)
        ftr, fva = fractions[0], fractions[1]
        tot = ftr + fva
        train, val, _ = split(data, (ftr / tot, fva / tot, 0.0), seed=seed, stratify=stratify)
    else:
        train, val, test = split(data, fractions, seed=seed, stratify=stratify)
    pre = _standardize(train, val, test) if standardize else None
    shape = train.input_shape
    return PreparedData(train, val, test, list(tasks), shape, default_trunk or default_trunk_for(shape),
                        pre, features, image_column, source)


def _standardize(train: MultiTaskData, val: MultiTaskData, test: MultiTaskData) -> dict[str, Any] | None:
    """Fit the standardisation of flat float inputs on the training split and apply it to every
    split; several named inputs: each flat one on its own (``{"kind": "inputs", "inputs": {name:
    standardisation}}``)."""
    def flat(t: torch.Tensor) -> bool:
        return t.dim() == 2 and t.is_floating_point()

    if not _batch.is_multi(train.x):
        if not flat(train.x):  # type: ignore[arg-type]
            return None
        st = Standardizer().fit(train.x)  # type: ignore[arg-type]
        for part in (train, val, test):
            part.x = st.transform(part.x)  # type: ignore[arg-type]
        return st.to_dict()
    fitted = {k: Standardizer().fit(v) for k, v in train.x.items() if flat(v)}  # type: ignore[union-attr]
    if not fitted:
        return None
    for part in (train, val, test):
        part.x = {k: fitted[k].transform(v) if k in fitted else v for k, v in part.x.items()}  # type: ignore[union-attr]
    return {"kind": "inputs", "inputs": {k: st.to_dict() for k, st in fitted.items()}}


def _restrict(data: MultiTaskData, tasks: Sequence[Task], funnel_violations: str = "error") -> MultiTaskData:
    from mtlkit.data._dataset import check_targets

    missing = [t.name for t in tasks if t.name not in data.targets]
    if missing:
        raise ValueError(f"No labels for task(s) {missing}; the data has {data.task_names}.")
    names = [t.name for t in tasks]
    check_targets(tasks, data.targets, data.masks)
    out = data.subset(np.arange(len(data)))
    out.targets = {k: data.targets[k] for k in names}
    out.masks = funnel_masks(tasks, out.targets, {k: data.masks[k] for k in names}, violations=funnel_violations)
    out.tasks = list(tasks)
    return out


def prepare_from_config(cfg: RunConfig) -> PreparedData:
    """Load the config's data source (built-in dataset or file), add the configured
    auxiliary targets (computed once from the raw inputs), and prepare it."""
    d = cfg.data
    fr = (d.split.train, d.split.val, d.split.test)
    gens = _auxiliary_generators(cfg)
    table_gens = [g for g in gens if g.input_kind == "table"]
    array_gens = [g for g in gens if g.input_kind != "table"]
    if d.dataset is not None:
        from mtlkit.datasets import load

        try:
            bundle = load(d.dataset, **d.options)
        except TypeError as exc:
            raise ValueError(f"data.options: {exc}") from None
        tasks = resolve_tasks(cfg.tasks, bundle.tasks)
        if bundle.info.get("frame") is not None:  # a raw table (e.g. text columns): preprocessed as a file is
            df, aux_tasks, aux_targets = _generate(bundle.info["frame"], table_gens)
            return prepare_table(df, tasks, d.features or bundle.info.get("features"), fractions=fr,
                                 stratify=d.split.stratify, seed=cfg.seed, options=table_options(cfg),
                                 source=f"dataset {d.dataset!r}", aux_tasks=aux_tasks, aux_targets=aux_targets,
                                 array_generators=array_gens, label=f"dataset:{d.dataset}", inputs=d.inputs)
        data, test, feats = bundle.data, bundle.test, bundle.feature_names
        if table_gens:
            if not feats:
                raise ValueError(f"Auxiliary generator(s) {[str(g) for g in table_gens]} need a table; the "
                                 f"dataset {d.dataset!r} has no named feature columns.")
            data, extra, feats = _table_aux(data, feats, table_gens)
            if test is not None:
                test, _, _ = _table_aux(test, bundle.feature_names or [], table_gens)
            tasks += extra
        data, test, extra = _array_aux(data, test, array_gens)  # from the raw input, before it is divided
        if d.inputs:
            names = feats or list(bundle.info.get("channels") or []) or None
            data = with_named_inputs(data, d.inputs, names)
            test = with_named_inputs(test, d.inputs, names) if test is not None else None
        return _with_dataset_info(prepare(
            data, tasks + extra, test=test, fractions=fr, stratify=d.split.stratify, seed=cfg.seed,
            standardize=d.standardize, default_trunk={} if d.inputs else bundle.default_trunk, features=feats,
            source=f"dataset:{d.dataset}", funnel_violations=d.funnel_violations), bundle.info)
    assert d.path is not None
    if d.inputs and d.image_column is not None:
        raise ValueError("data.inputs divides a table's columns into named inputs; a table of image paths "
                         "(data.image_column) is one input. Build the dict of inputs in Python instead.")
    return _prepare_file(cfg, fr, table_gens, array_gens)


def _prepare_file(cfg: RunConfig, fr: tuple[float, float, float], table_gens: list[Any], array_gens: list[Any]
                  ) -> PreparedData:
    """:func:`prepare_from_config` for a file (``data.path``)."""
    from mtlkit.data._table import from_dataframe, read_table

    d = cfg.data
    assert d.path is not None
    tasks = resolve_tasks(cfg.tasks, None)
    df, aux_tasks, aux_targets = _generate(read_table(d.path), table_gens)
    if d.image_column is None:  # a table as it is: types, encoders, imputation, fitted on the training split
        return prepare_table(df, tasks, d.features, fractions=fr, stratify=d.split.stratify, seed=cfg.seed,
                             options=table_options(cfg), source=repr(d.path), aux_tasks=aux_tasks,
                             aux_targets=aux_targets, array_generators=array_gens, label=f"file:{d.path}",
                             funnel_violations=d.funnel_violations, inputs=d.inputs)
    feature_list = list(d.features) if d.features is not None else None
    data, feats = from_dataframe(df, tasks, feature_list, image_column=d.image_column, image_root=d.image_root,
                                 image_size=cast(tuple[int, int], tuple(d.image_size)) if d.image_size else None,
                                 grayscale=d.grayscale, source=repr(d.path))
    if aux_targets:
        from mtlkit.auxiliary import with_auxiliary

        data = with_auxiliary(data, aux_targets)
    data, _, extra = _array_aux(data, None, array_gens)
    return prepare(data, tasks + aux_tasks + extra, fractions=fr, stratify=d.split.stratify, seed=cfg.seed,
                   standardize=d.standardize, features=None if d.image_column else feats,
                   image_column=d.image_column, source=f"file:{d.path}", funnel_violations=d.funnel_violations)


def _with_dataset_info(prepared: PreparedData, info: Mapping[str, Any] | None) -> PreparedData:
    """Keep what the ranking metrics read from a dataset's ``info``: its user column and the
    statement of its candidate sets (:mod:`mtlkit.evaluation.ranking_run`)."""
    info = info or {}
    prepared.extra_meta["dataset_info"] = {k: info[k] for k in ("user_column", "candidates") if k in info}
    return prepared


def table_options(cfg: RunConfig) -> TableOptions:
    """The config's ``data.categorical`` and ``data.standardize`` as :class:`TableOptions`."""
    c = cfg.data.categorical
    return TableOptions(onehot_max=c.onehot_max, min_count=c.min_count, embedding_dim=c.embedding_dim,
                        max_categories=c.max_categories, standardize=cfg.data.standardize, text=cfg.data.text)


def prepare_table(df: pd.DataFrame, tasks: Sequence[Task], features: Sequence[str] | Mapping[str, Any] | None = None,
                  *, fractions: Sequence[float] = (0.6, 0.25, 0.15), stratify: str | None = None, seed: int = 0,
                  options: TableOptions | None = None, source: str = "the table",
                  aux_tasks: Sequence[Task] = (), aux_targets: Sequence[Any] = (),
                  array_generators: Sequence[Any] = (), label: str | None = None,
                  funnel_violations: str = "error", inputs: Mapping[str, Any] | None = None) -> PreparedData:
    """A table as it is -> split, preprocessed data (see :mod:`mtlkit.data.tabular`).

    Column types are declared (``features`` as a mapping) or inferred; class labels get
    their names (``Task.classes``); the rows are split (seeded, stratified on a task if
    asked); then the preprocessing (imputation, standardisation, category vocabularies) and
    the regression targets' scaling are fitted on the training rows alone and applied to
    every split. ``aux_targets``: auxiliary targets already computed from the table (one
    row each); ``array_generators``: auxiliary generators of the encoded inputs. ``inputs``
    (``data.inputs``): ``{input name: [column, ...]}`` divides the encoded table into named
    inputs, one per group of columns (:func:`table_inputs`), for a multimodal model."""
    check_frame(df, source)
    if len(df) == 0:
        raise ValueError(f"{source} is empty: it has no rows.")
    tasks = check_tasks(tasks)
    names = [t.name for t in tasks]
    if stratify is not None and stratify not in names + [t.name for t in aux_tasks]:
        raise ValueError(f"split.stratify names unknown task {stratify!r}; tasks are {names}.")
    label_cols = [c for t in tasks for c in t.label_columns]
    if inputs:
        features = _grouped_features(df, features, inputs, label_cols, array_generators)
    types = resolve_types(df, features, label_cols, source=source)
    tagging = {t.name for t in tasks if is_tagging(t)}  # per-word tags: targets once the tokenizer is fitted
    tasks = [fit_tag_classes(df, t, source=source) if t.name in tagging else t
             for t in fit_labels(df, tasks, source=source)]
    generation = {t.name for t in tasks if getattr(t.task_kind, "targets_from_inputs", False)}  # from the slots
    plain = [t for t in tasks if t.name not in tagging and t.name not in generation]
    targets, masks = labels_from_frame(df, plain, source=source)
    masks = funnel_masks(plain, targets, masks, violations=funnel_violations)  # 'given': refuse or mask
    n = len(df)
    rows = MultiTaskData(torch.arange(n, dtype=torch.float32)[:, None], targets, masks, plain, source=source)
    strat = stratify if stratify in names and stratify not in tagging else None
    parts = split(rows, fractions, seed=seed, stratify=strat)
    idx = [cast(torch.Tensor, p.x)[:, 0].long().numpy() for p in parts]
    _check_training_classes(tasks, targets, masks, idx[0], source)
    pre = TablePreprocessor(types, options).fit(df.iloc[idx[0]], source=f"the training split of {source}")
    for i, t in enumerate(tasks):
        if t.name in tagging:
            tasks[i], targets[t.name], masks[t.name] = tag_targets(pre, df, t, source=source)
    tasks, x = _encode_table(pre, df, tasks, generation, targets, masks, source)
    tasks = fit_target_scaling(tasks, targets, masks, idx[0])
    data = MultiTaskData(x, targets, masks, tasks, source=source)
    if aux_targets:
        from mtlkit.auxiliary import with_auxiliary

        data = with_auxiliary(data, list(aux_targets))
    for g in array_generators:  # generators that read the encoded table's layout (token slots)
        if hasattr(g, "bind_table"):
            g.bind_table(pre)
    data, _, extra = _array_aux(data, None, array_generators)
    return _split_table(df, data, pre, idx, list(tasks) + list(aux_tasks) + list(extra), inputs, label or source)


def _encode_table(pre: TablePreprocessor, df: pd.DataFrame, tasks: list[Task], generation: set[str],
                  targets: dict[str, Any], masks: dict[str, Any], source: str) -> tuple[list[Task], torch.Tensor]:
    """The encoded table; ``generation`` tasks first get their decoder input slots and
    vocabulary (:func:`mtlkit.data.text.add_decoder_slots`) and then their targets from the
    slots (written into ``targets`` and ``masks``)."""
    if not generation:
        return tasks, torch.as_tensor(pre.transform(df, source=source))
    from mtlkit.data.text import add_decoder_slots, generation_targets

    tasks = add_decoder_slots(pre, tasks, source=source)
    x = torch.as_tensor(pre.transform(df, source=source))
    for t in tasks:
        if t.name in generation:
            targets[t.name], masks[t.name] = generation_targets(x, pre.input_spec or {}, t.name)
    return tasks, x


def _split_table(df: pd.DataFrame, data: MultiTaskData, pre: TablePreprocessor, idx: Sequence[np.ndarray],
                 every: list[Task], inputs: Mapping[str, Any] | None, label: str) -> PreparedData:
    """The end of :func:`prepare_table`: the encoded table divided into its named inputs (if
    ``inputs``), split by the row positions ``idx``, with its default trunk."""
    record, layout = pre.to_dict(), table_inputs(pre, inputs) if inputs else None
    if layout is not None:
        data.x, record["inputs"] = divide_table(cast(torch.Tensor, data.x), layout), layout
    train, val, test = (data.subset(i) for i in idx)
    for part in (train, val, test):
        part.tasks = every
    shape: Shape = (pre.width,) if layout is None else {k: (len(v["columns"]),) for k, v in layout.items()}
    # text columns need a text trunk; named inputs: the multimodal architecture picks each encoder
    trunk = {} if layout is not None else {"name": "transformer"} if pre.text else default_trunk_for(shape)
    return PreparedData(train, val, test, every, shape, trunk, record, pre.features,
                        None, label, table=TableData(df, idx[0], idx[1], idx[2], pre))


def _check_training_classes(tasks: Sequence[Task], targets: Mapping[str, Any], masks: Mapping[str, Any],
                            train_idx: np.ndarray, source: str) -> None:
    """A classification task needs two classes among its labelled training rows."""
    for t in tasks:
        if not t.task_kind.class_per_sample:
            continue
        y = np.asarray(targets[t.name])[train_idx][np.asarray(masks[t.name], dtype=bool)[train_idx]]
        seen = np.unique(y)
        if len(seen) < 2:
            one = (t.classes[int(seen[0])] if t.classes is not None else seen[0].item()) if len(seen) else None
            raise ValueError(f"Task {t.name!r}: the training split of {source} holds a single class ({one!r}) of "
                             f"its label column {t.label_columns[0]!r}; a classifier needs at least two. Use "
                             f"more data, stratify on it (data.split.stratify), or drop the task.")


def _auxiliary_generators(cfg: RunConfig) -> list[Any]:
    if not cfg.auxiliary:
        return []
    from mtlkit.auxiliary import build_generators

    try:
        return build_generators(cfg.auxiliary)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"auxiliary: {exc}") from None


def _array_aux(data: MultiTaskData, test: MultiTaskData | None, gens: Sequence[Any]
               ) -> tuple[MultiTaskData, MultiTaskData | None, list[Task]]:
    """Add targets computed from each sample's own raw input (no leakage across splits)."""
    if not gens:
        return data, test, []
    from mtlkit.auxiliary import with_auxiliary

    if isinstance(data.x, dict):
        raise ValueError(f"auxiliary: the generators read one input tensor; the data has named inputs {list(data.x)}. "
                         f"Divide one input with data.inputs instead (targets are computed before it is divided).")
    aux = [g.generate(data.x) for g in gens]
    data = with_auxiliary(data, aux)
    if test is not None:
        test = with_auxiliary(test, [_generate_like(g, cast(torch.Tensor, test.x)) for g in gens])
    return data, test, [a.task for a in aux]


def _generate_like(gen: Any, x: torch.Tensor) -> Any:
    """Targets for held-out inputs on the training targets' scale (a standardising generator
    reuses the mean and scale fitted on the training inputs)."""
    if not getattr(gen, "standardize", False) or not hasattr(gen, "target_mean_"):
        return gen.generate(x)
    mean, scale = gen.target_mean_, gen.target_scale_
    gen.standardize = False
    try:
        raw = gen.generate(x)
    finally:
        gen.standardize = True
    z = (raw.targets.double().numpy() - mean) / scale
    return dataclasses.replace(raw, targets=torch.as_tensor(z, dtype=raw.targets.dtype))


def _table_aux(data: MultiTaskData, feats: Sequence[str], gens: Sequence[Any]
               ) -> tuple[MultiTaskData, list[Task], list[str]]:
    """Privileged/quantisation columns of a tensor table: become targets, leave the inputs."""
    from mtlkit.auxiliary import with_auxiliary

    df, tasks, targets = _generate(pd.DataFrame(cast(torch.Tensor, data.x).numpy(), columns=list(feats)), gens)
    base = MultiTaskData(torch.as_tensor(df.to_numpy(dtype=np.float32)), data.targets, data.masks, data.tasks)
    return with_auxiliary(base, targets), tasks, list(df.columns)


# ---------------------------------------------------------------------------- several inputs
DERIVED = ("pooled", "stats")


def _grouped_features(df: pd.DataFrame, features: Sequence[str] | Mapping[str, Any] | None,
                      inputs: Mapping[str, Any], label_cols: Sequence[str], generators: Sequence[Any]
                      ) -> list[str] | dict[str, Any]:
    """The feature columns of a table divided by ``data.inputs`` (each group a non-empty list of
    the table's feature columns, a column in one group only), checked with errors naming the
    group and the column. Without ``features`` the groups' columns are the features (types
    inferred); with them, every feature that is not an ``id`` must be in a group."""
    if generators:
        raise ValueError(f"data.inputs: the auxiliary generator(s) {[str(g) for g in generators]} read the "
                         f"encoded table as one input; leave them out or leave data.inputs out.")
    if not isinstance(inputs, Mapping) or not inputs:
        raise ValueError(f"data.inputs must map input names to lists of the table's columns. Got {inputs!r}.")
    declared = dict(features) if isinstance(features, Mapping) else None
    pool = list(declared) if declared is not None else list(features) if features is not None else \
        [c for c in df.columns if c not in set(label_cols)]
    owner: dict[Any, str] = {}
    for name, cols in inputs.items():
        where = f"data.inputs.{name}"
        if isinstance(cols, (str, Mapping)) or not isinstance(cols, Sequence):
            raise ValueError(f"{where}: a table's input is a list of its column names. Got {cols!r}.")
        if not cols:
            raise ValueError(f"{where} is empty: give at least one of the table's columns.")
        for c in cols:
            if c in label_cols:
                raise ValueError(f"{where}: column {c!r} is a task's label, not a feature.")
            if c not in pool or (declared is not None and declared[c] == "id"):
                raise ValueError(f"{where}: unknown column {c!r}; the table's feature columns are "
                                 f"{[k for k in pool if declared is None or declared[k] != 'id'][:30]}.")
            if c in owner:
                raise ValueError(f"{where}: column {c!r} is already in input {owner[c]!r}; a column belongs to one "
                                 f"input.")
            owner[c] = str(name)
    if declared is not None:
        left = [c for c, t in declared.items() if t != "id" and c not in owner]
        if left:
            raise ValueError(f"data.inputs: feature column(s) {left} are in no input; add each to one, or leave it "
                             f"out of data.features.")
        return declared
    if features is not None:
        left = [c for c in features if c not in owner]
        if left:
            raise ValueError(f"data.inputs: feature column(s) {left} are in no input; add each to one, or leave it "
                             f"out of data.features.")
    return list(owner)


def table_inputs(pre: TablePreprocessor, inputs: Mapping[str, Sequence[Any]]) -> dict[str, dict[str, Any]]:
    """Where each named input's columns lie in the encoded table of ``pre``: per input,
    ``columns`` (positions in the encoded matrix, in its order) and ``input`` (the input spec of
    those columns, as :attr:`~mtlkit.data.tabular.TablePreprocessor.input_spec`: category
    embeddings and token slots; ``None`` for dense columns only). Recorded in the run's
    preprocessing record (``inputs``) so that a table is divided the same way at prediction."""
    where: dict[str, list[int]] = {str(c.name): [] for c in pre.fitted}
    pos = 0

    def take(c: Any, width: int) -> None:
        nonlocal pos
        where[str(c.name)] += list(range(pos, pos + width))
        pos += width

    for c in pre.numeric:
        take(c, c.width)
    for c in pre.numeric:
        if c.indicator:
            take(c, 1)
    for c in pre.onehot:
        take(c, c.cardinality)
    for c in pre.embedded:
        take(c, 1)
    for c in pre.text:
        take(c, int(c.max_length or 0))
    assert pos == pre.width, (pos, pre.width)
    out: dict[str, dict[str, Any]] = {}
    for name, cols in inputs.items():
        mine = {str(c) for c in cols}
        emb = [c for c in pre.embedded if str(c.name) in mine]
        text = [c for c in pre.text if str(c.name) in mine]
        positions = sorted(i for c in mine for i in where.get(c, []))
        spec: dict[str, Any] | None = None
        if emb or text:
            spec = {"dense": len(positions) - len(emb) - sum(int(c.max_length or 0) for c in text),
                    "cardinalities": [c.cardinality for c in emb], "dims": [int(c.dim or 1) for c in emb],
                    "columns": [str(c.name) for c in emb]}
            if text:
                spec["text"] = [{"column": str(c.name), "vocab": int(c.vocab or 0), "max_length": int(c.max_length or 0),
                                 "pad_id": int(c.pad_id or 0)} for c in text]
        out[str(name)] = {"columns": positions, "input": spec}
    return out


def divide_table(x: torch.Tensor, layout: Mapping[str, Mapping[str, Any]]) -> dict[str, torch.Tensor]:
    """An encoded table (N, width) as named inputs by the layout of :func:`table_inputs`."""
    width = 1 + max((i for v in layout.values() for i in v["columns"]), default=-1)
    if x.dim() != 2 or x.shape[1] < width:
        raise ValueError(f"The encoded table has shape {tuple(x.shape)}; its named inputs need {width} columns.")
    return {str(k): x[:, list(v["columns"])] for k, v in layout.items()}



def with_named_inputs(data: MultiTaskData, spec: Mapping[str, Any], names: Sequence[str] | None = None
                      ) -> MultiTaskData:
    """``data`` with its one input divided into named inputs by :func:`named_inputs`."""
    if _batch.is_multi(data.x):
        raise ValueError("data.inputs: the dataset has named inputs already; leave data.inputs out.")
    out = data.subset(np.arange(len(data)))
    out.x = named_inputs(data.x, spec, names)  # type: ignore[arg-type]
    return out


def named_inputs(x: torch.Tensor, spec: Mapping[str, Any], names: Sequence[str] | None = None
                 ) -> dict[str, torch.Tensor]:
    """Several named inputs from one (N, C, ...) tensor, as ``data.inputs`` says, per name:

    * a list of indices or names of dimension 1 (a series' or an image's channels, a table's
      columns; names are the dataset's feature or channel names): those, in that order;
    * ``all``: the whole tensor;
    * ``{derive: pooled, size: k}``: a small table derived from the whole tensor, each channel
      average-pooled to k (series) or k×k (image) cells, flattened;
    * ``{derive: stats}``: per channel the mean, standard deviation, minimum and maximum.

    >>> x = torch.arange(24.0).reshape(2, 3, 4)
    >>> parts = named_inputs(x, {"a": [0, 2], "b": {"derive": "stats"}})
    >>> tuple(parts["a"].shape), tuple(parts["b"].shape)
    ((2, 2, 4), (2, 12))
    """
    if x.dim() < 2:
        raise ValueError(f"data.inputs divides the inputs along their second dimension; these have shape "
                         f"{tuple(x.shape)}.")
    if not isinstance(spec, Mapping) or not spec:
        raise ValueError(f"data.inputs must map input names to channels/columns. Got {spec!r}.")
    out: dict[str, torch.Tensor] = {}
    for name, sel in spec.items():
        where = f"data.inputs.{name}"
        if sel == "all":
            out[name] = x
        elif isinstance(sel, Mapping):
            out[name] = _derived(x, sel, where)
        elif isinstance(sel, (list, tuple)) and sel:
            out[name] = x[:, [_position(v, names, int(x.shape[1]), where) for v in sel]]
        else:
            raise ValueError(f"{where}: give a list of channel/column indices or names, 'all', or "
                             f"{{derive: {' | '.join(DERIVED)}}}. Got {sel!r}.")
    return out


def _position(v: Any, names: Sequence[str] | None, width: int, where: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, str)):
        raise ValueError(f"{where}: {v!r} is neither an index nor a name.")
    if isinstance(v, str):
        if not names or v not in names:
            raise ValueError(f"{where}: unknown channel/column {v!r}; the dataset's are {list(names or [])}"
                             f"{'' if names else ' (none named: use indices)'}.")
        return list(names).index(v)
    if not 0 <= v < width:
        raise ValueError(f"{where}: index {v} is out of range; the inputs have {width} channels/columns.")
    return v


def _derived(x: torch.Tensor, sel: Mapping[str, Any], where: str) -> torch.Tensor:
    import torch.nn.functional as F

    kind = sel.get("derive")
    extra = sorted(set(sel) - {"derive", "size"})
    if kind not in DERIVED or extra:
        raise ValueError(f"{where}: a derived input is {{derive: {' | '.join(DERIVED)}, size: k}}. Got {dict(sel)!r}.")
    z = x.float()
    if kind == "stats":
        flat = z.reshape(z.shape[0], z.shape[1], -1)
        std = flat.std(-1, unbiased=False)
        return torch.cat([flat.mean(-1), std, flat.amin(-1), flat.amax(-1)], dim=1)
    size = sel.get("size", 2)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"{where}.size must be a positive integer. Got {size!r}.")
    if z.dim() == 3:
        return F.adaptive_avg_pool1d(z, size).reshape(z.shape[0], -1)
    if z.dim() == 4:
        return F.adaptive_avg_pool2d(z, size).reshape(z.shape[0], -1)
    raise ValueError(f"{where}: 'pooled' needs series (N, C, T) or images (N, C, H, W); the inputs have shape "
                     f"{tuple(x.shape)}.")


def _generate(df: pd.DataFrame, gens: Sequence[Any]) -> tuple[pd.DataFrame, list[Task], list[Any]]:
    """Apply table generators in order (each sees the table the previous one left): the table,
    the auxiliary tasks and their targets (without their copy of the table)."""
    tasks: list[Task] = []
    targets: list[Any] = []
    for g in gens:
        a = g.generate(df)
        df = a.inputs
        tasks.append(a.task)
        targets.append(dataclasses.replace(a, inputs=None))
    return df, tasks, targets
