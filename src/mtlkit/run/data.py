"""The data of a run: load the config's source (a built-in dataset or a file), add the
configured auxiliary targets, split (seeded) and standardise the inputs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import pandas as pd
import torch

from mtlkit.config import RunConfig
from mtlkit.data._dataset import MultiTaskData
from mtlkit.data._preprocess import Standardizer
from mtlkit.data._split import split
from mtlkit.tasks import Task, check_tasks, task_from_dict

__all__ = ["PreparedData", "default_trunk_for", "prepare", "prepare_from_config", "resolve_tasks"]


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
    data, feats = from_dataframe(df, tasks, d.features, image_column=d.image_column, image_root=d.image_root,
                                 image_size=cast(tuple[int, int], tuple(d.image_size)) if d.image_size else None,
                                 grayscale=d.grayscale, source=repr(d.path))
    if aux_targets:
        from mtlkit.auxiliary import with_auxiliary

        data = with_auxiliary(data, aux_targets)
    data, _, extra = _array_aux(data, None, array_gens)
    return prepare(data, tasks + aux_tasks + extra, fractions=fr, stratify=d.split.stratify, seed=cfg.seed,
                   standardize=d.standardize, features=None if d.image_column else feats,
                   image_column=d.image_column, source=f"file:{d.path}")


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
