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
from mtlkit.tasks import Task, check_tasks, task_from_dict

__all__ = ["PreparedData", "TableData", "default_trunk_for", "prepare", "prepare_from_config", "prepare_table",
           "resolve_tasks", "table_options"]


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
    input_shape: tuple[int, ...]
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
        """The spec of the model's input module (a table's category embeddings), if any."""
        return self.table.preprocessor.input_spec if self.table is not None else None


def default_trunk_for(input_shape: Sequence[int]) -> dict[str, Any]:
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
    return check_tasks(tasks)


def prepare(data: MultiTaskData, tasks: Sequence[Task], *, test: MultiTaskData | None = None,
            fractions: Sequence[float] = (0.6, 0.25, 0.15), stratify: str | None = None, seed: int = 0,
            standardize: bool = True, default_trunk: dict[str, Any] | None = None,
            features: list[str] | None = None, image_column: str | None = None, source: str = ""
            ) -> PreparedData:
    """Split (seeded; a given ``test`` set is kept and train/val split in proportion) and fit
    the input standardisation on the training split (flat inputs only)."""
    tasks = check_tasks(tasks)
    if stratify is not None and stratify not in {t.name for t in tasks}:
        raise ValueError(f"split.stratify names unknown task {stratify!r}; tasks are {[t.name for t in tasks]}.")
    data = _restrict(data, tasks)
    if test is not None:
        test = _restrict(test, tasks)
        ftr, fva = fractions[0], fractions[1]
        tot = ftr + fva
        train, val, _ = split(data, (ftr / tot, fva / tot, 0.0), seed=seed, stratify=stratify)
    else:
        train, val, test = split(data, fractions, seed=seed, stratify=stratify)
    pre = None
    if standardize and train.x.dim() == 2 and train.x.is_floating_point():
        st = Standardizer().fit(train.x)
        for part in (train, val, test):
            part.x = st.transform(part.x)
        pre = st.to_dict()
    shape = tuple(int(s) for s in train.x.shape[1:])
    return PreparedData(train, val, test, list(tasks), shape, default_trunk or default_trunk_for(shape),
                        pre, features, image_column, source)


def _restrict(data: MultiTaskData, tasks: Sequence[Task]) -> MultiTaskData:
    from mtlkit.data._dataset import check_targets

    missing = [t.name for t in tasks if t.name not in data.targets]
    if missing:
        raise ValueError(f"No labels for task(s) {missing}; the data has {data.task_names}.")
    names = [t.name for t in tasks]
    check_targets(tasks, data.targets, data.masks)
    out = data.subset(np.arange(len(data)))
    out.targets = {k: data.targets[k] for k in names}
    out.masks = {k: data.masks[k] for k in names}
    out.tasks = list(tasks)
    return out


def prepare_from_config(cfg: RunConfig) -> PreparedData:
    """Load the config's data source (built-in dataset or file), add the configured
    auxiliary targets (computed once from the raw inputs), and prepare it."""
    from mtlkit.data._table import from_dataframe, read_table

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
        data, test, feats = bundle.data, bundle.test, bundle.feature_names
        if table_gens:
            if not feats:
                raise ValueError(f"Auxiliary generator(s) {[str(g) for g in table_gens]} need a table; the "
                                 f"dataset {d.dataset!r} has no named feature columns.")
            data, extra, feats = _table_aux(data, feats, table_gens)
            if test is not None:
                test, _, _ = _table_aux(test, bundle.feature_names or [], table_gens)
            tasks += extra
        data, test, extra = _array_aux(data, test, array_gens)
        return prepare(data, tasks + extra, test=test, fractions=fr, stratify=d.split.stratify,
                       seed=cfg.seed, standardize=d.standardize, default_trunk=bundle.default_trunk,
                       features=feats, source=f"dataset:{d.dataset}")
    assert d.path is not None
    tasks = resolve_tasks(cfg.tasks, None)
    df = read_table(d.path)
    aux_tasks: list[Task] = []
    aux_targets = []
    for g in table_gens:
        a = g.generate(df)
        df = a.inputs
        aux_tasks.append(a.task)
        aux_targets.append(dataclasses.replace(a, inputs=None))
    if d.image_column is None:  # a table as it is: types, encoders, imputation, fitted on the training split
        return prepare_table(df, tasks, d.features, fractions=fr, stratify=d.split.stratify, seed=cfg.seed,
                             options=table_options(cfg), source=repr(d.path), aux_tasks=aux_tasks,
                             aux_targets=aux_targets, array_generators=array_gens, label=f"file:{d.path}")
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
                   image_column=d.image_column, source=f"file:{d.path}")


def table_options(cfg: RunConfig) -> TableOptions:
    """The config's ``data.categorical`` and ``data.standardize`` as :class:`TableOptions`."""
    c = cfg.data.categorical
    return TableOptions(onehot_max=c.onehot_max, min_count=c.min_count, embedding_dim=c.embedding_dim,
                        max_categories=c.max_categories, standardize=cfg.data.standardize)


def prepare_table(df: pd.DataFrame, tasks: Sequence[Task], features: Sequence[str] | Mapping[str, Any] | None = None,
                  *, fractions: Sequence[float] = (0.6, 0.25, 0.15), stratify: str | None = None, seed: int = 0,
                  options: TableOptions | None = None, source: str = "the table",
                  aux_tasks: Sequence[Task] = (), aux_targets: Sequence[Any] = (),
                  array_generators: Sequence[Any] = (), label: str | None = None) -> PreparedData:
    """A table as it is -> split, preprocessed data (see :mod:`mtlkit.data.tabular`).

    Column types are declared (``features`` as a mapping) or inferred; class labels get
    their names (``Task.classes``); the rows are split (seeded, stratified on a task if
    asked); then the preprocessing (imputation, standardisation, category vocabularies) and
    the regression targets' scaling are fitted on the training rows alone and applied to
    every split. ``aux_targets``: auxiliary targets already computed from the table (one
    row each); ``array_generators``: auxiliary generators of the encoded inputs."""
    check_frame(df, source)
    if len(df) == 0:
        raise ValueError(f"{source} is empty: it has no rows.")
    tasks = check_tasks(tasks)
    names = [t.name for t in tasks]
    if stratify is not None and stratify not in names + [t.name for t in aux_tasks]:
        raise ValueError(f"split.stratify names unknown task {stratify!r}; tasks are {names}.")
    label_cols = [c for t in tasks for c in t.label_columns]
    types = resolve_types(df, features, label_cols, source=source)
    tasks = fit_labels(df, tasks, source=source)
    targets, masks = labels_from_frame(df, tasks, source=source)
    n = len(df)
    rows = MultiTaskData(torch.arange(n, dtype=torch.float32)[:, None], targets, masks, tasks, source=source)
    strat = stratify if stratify in names else None
    parts = split(rows, fractions, seed=seed, stratify=strat)
    idx = [p.x[:, 0].long().numpy() for p in parts]
    _check_training_classes(tasks, targets, masks, idx[0], source)
    pre = TablePreprocessor(types, options).fit(df.iloc[idx[0]], source=f"the training split of {source}")
    x = torch.as_tensor(pre.transform(df, source=source))
    tasks = fit_target_scaling(tasks, targets, masks, idx[0])
    data = MultiTaskData(x, targets, masks, tasks, source=source)
    if aux_targets:
        from mtlkit.auxiliary import with_auxiliary

        data = with_auxiliary(data, list(aux_targets))
    data, _, extra = _array_aux(data, None, array_generators)
    every = list(tasks) + list(aux_tasks) + list(extra)
    train, val, test = (data.subset(i) for i in idx)
    for part in (train, val, test):
        part.tasks = every
    shape = (int(x.shape[1]),)
    return PreparedData(train, val, test, every, shape, default_trunk_for(shape), pre.to_dict(), pre.features,
                        None, label or source, table=TableData(df, idx[0], idx[1], idx[2], pre))


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

    aux = [g.generate(data.x) for g in gens]
    data = with_auxiliary(data, aux)
    if test is not None:
        test = with_auxiliary(test, [_generate_like(g, test.x) for g in gens])
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

    df = pd.DataFrame(data.x.numpy(), columns=list(feats))
    targets, tasks = [], []
    for g in gens:
        a = g.generate(df)
        df = a.inputs
        tasks.append(a.task)
        targets.append(dataclasses.replace(a, inputs=None))
    base = MultiTaskData(torch.as_tensor(df.to_numpy(dtype=np.float32)), data.targets, data.masks, data.tasks)
    return with_auxiliary(base, targets), tasks, list(df.columns)
