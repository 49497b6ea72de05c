"""The small Python API that mirrors ``mtlkit train``."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import pandas as pd
from torch import nn
from torch.utils.data import Dataset

from mtlkit.aggregation._base import Aggregator
from mtlkit.config import parse_config
from mtlkit.data._dataset import MultiTaskData, from_torch_dataset
from mtlkit.data._table import from_arrays, from_dataframe, read_table
from mtlkit.run import RunResult, prepare, run
from mtlkit.tasks import Task, check_tasks
from mtlkit.weighting._base import Weighting


def fit(data: pd.DataFrame | str | Path | MultiTaskData | Dataset | tuple[Any, Mapping[str, Any]],
        tasks: Sequence[Task], features: Sequence[str] | Mapping[str, str | None] | None = None, *,
        trunk: dict[str, Any] | nn.Module | None = None, architecture: str = "hard_sharing",
        architecture_params: Mapping[str, Any] | None = None,
        weighting: str | Weighting | None = None, aggregator: str | Aggregator | None = None,
        level: str = "parameters", epochs: int = 10, batch_size: int = 64, lr: float = 1e-3,
        optimizer: str = "adam", weight_decay: float = 0.0, patience: int | None = None,
        baselines: bool | Sequence[str] = True, split: Sequence[float] = (0.6, 0.25, 0.15),
        stratify: str | None = None, standardize: bool = True, seed: int = 0,
        out_dir: str | Path | None = None, progress: bool = False,
        image_column: str | None = None, name: str = "fit", overwrite: bool = False,
        device: str = "cpu", categorical: Mapping[str, Any] | None = None,
        text: Mapping[str, Any] | None = None, inputs: Mapping[str, Sequence[str]] | None = None) -> RunResult:
    """Train a multi-task model (and, by default, the single-task baselines) in one call.

    Args:
        data: a DataFrame or CSV/Parquet path (feature columns + one column per task), a
            :class:`~mtlkit.data.MultiTaskData`, a torch ``Dataset`` returning
            ``(x, {task: y})``, or a tuple ``(x, {task: labels})`` of arrays.
        tasks: the :class:`~mtlkit.Task` specs. Missing labels (NaN / sentinel) are masked.
        features: feature columns (tables only; default: every non-label column), a list
            (types inferred) or ``{column: numeric|categorical|boolean|datetime|id}``. A table
            is taken as it is: strings, missing values, string class labels (see
            :mod:`mtlkit.data.tabular`); regression targets are standardised on the training
            split unless the task says ``standardize=False``.
        baselines: ``True`` (neural single-task baselines), ``False``, or a list of
            ``"neural"`` and ``"gbdt"`` (scikit-learn's HistGradientBoosting per task).
        categorical: ``data.categorical`` options (``onehot_max``, ``min_count``,
            ``embedding_dim``, ``max_categories``).
        text: ``data.text`` options for the table's ``text`` columns (declare them in
            ``features``: ``{"tweet": "text"}``): ``{"tokenizer": {"kind": "bpe" | "wordpiece",
            "vocab_size": 2000, "min_frequency": 2, "lowercase": True} | {"file": PATH} |
            {"huggingface": DIR}, "max_length": 64, "truncation": "warn" | "error"}`` (see
            :class:`mtlkit.data.text.TextOptions`); the tokenizer is fitted on the training
            split and stored with the run. Give a text trunk (``trunk={"name": "transformer"}``,
            ``bilstm``, ``textcnn``, ``huggingface``); it is the default for a table with text.
        inputs: several named inputs from a table's columns, ``{input: [column, ...]}``
            (``data.inputs`` in YAML; tables only), e.g. ``{"text": ["tweet"], "table":
            ["followers", "hour"]}``: each group is encoded as the table is and read by its own
            encoder of ``architecture="multimodal"`` (``architecture_params={"encoders":
            {...}, "fusion": "gated"}``; a group with text gets a ``transformer``, others an
            ``mlp``). Arrays with several inputs: pass ``({name: array}, labels)`` or a
            :class:`~mtlkit.data.MultiTaskData` of a dict instead.
        trunk: a stock trunk spec (``{"name": "mlp", "hidden": [64]}``) or your own
            ``nn.Module`` (then the hard-sharing model is built around it).
        weighting / aggregator: a registry name (``"dwa"``, ``"pcgrad"``) or an object.
        out_dir: write the run folder (config, metrics, weights, summary, report) there.
        device: where to train: ``cpu`` (default), ``cuda``, ``cuda:N``, ``mps`` or ``auto``;
            the returned model is on the CPU.

    Returns a :class:`~mtlkit.run.RunResult` (``.model``, ``.summary``, ``.delta_m``,
    ``.predict(df)``: a DataFrame of decoded labels, probabilities and values;
    ``.predict_raw(df)``: the raw tensors).

    >>> import numpy as np, pandas as pd
    >>> from mtlkit import Task, fit
    >>> r = np.random.default_rng(0); x = r.normal(size=(300, 4))
    >>> df = pd.DataFrame(x, columns=list("abcd"))
    >>> df["y1"] = (x[:, 0] > 0).astype(int); df["y2"] = x[:, 0] + 0.1 * x[:, 1]
    >>> res = fit(df, [Task("y1", "binary"), Task("y2", "regression")], epochs=3)
    >>> sorted(res.summary["mtl"]["test"])
    ['y1', 'y2']
    """
    tasks = check_tasks(tasks)
    feats: list[str] | None = None
    cat_options = dict(categorical or {})
    text_options = _text_options(text)
    if inputs is not None and not (isinstance(data, (str, Path, pd.DataFrame)) and image_column is None):
        raise ValueError("The 'inputs' parameter of fit divides a table's columns into named inputs; the data is "
                         f"a {type(data).__name__}. For arrays pass ({{name: array}}, labels) instead.")
    base = baselines if isinstance(baselines, bool) else list(baselines)
    prepared = None
    if isinstance(data, (str, Path)):
        data = read_table(data)
    if isinstance(data, pd.DataFrame) and image_column is None:
        from mtlkit.config import CategoricalConfig
        from mtlkit.data.tabular import TableOptions
        from mtlkit.run.data import prepare_table

        opts = TableOptions(**CategoricalConfig(**cat_options).model_dump(), standardize=standardize,
                            text=text_options)
        prepared = prepare_table(data, tasks, features, fractions=split, stratify=stratify, seed=seed,
                                 options=opts, source="the table", label="python", inputs=inputs)
        tasks = prepared.tasks
    elif text_options is not None:
        raise ValueError("The 'text' parameter of fit is for a table with text columns (a DataFrame or a CSV/Parquet "
                         f"path, no image_column); the data is a {type(data).__name__}.")
    elif isinstance(data, pd.DataFrame):
        mt, feats = from_dataframe(data, tasks, list(features) if features is not None else None,
                                   image_column=image_column)
    elif isinstance(data, MultiTaskData):
        mt = data
    elif isinstance(data, tuple) and len(data) == 2:
        mt = from_arrays(data[0], data[1], tasks)
    elif isinstance(data, Dataset):
        mt = from_torch_dataset(data, tasks)
    else:
        raise TypeError(f"Unsupported data type {type(data).__name__}: pass a DataFrame, a file path, "
                        f"MultiTaskData, a torch Dataset or (x, labels).")
    if prepared is None:
        prepared = prepare(mt, tasks, fractions=split, stratify=stratify, seed=seed, standardize=standardize,
                           features=feats if image_column is None else None, image_column=image_column,
                           source="python")
    user_model = None
    builder = None
    training: dict[str, Any] = {"epochs": epochs, "batch_size": batch_size, "patience": patience,
                                "level": level, "device": device,
                                "optimizer": {"name": optimizer, "lr": lr, "weight_decay": weight_decay}}
    objects: dict[str, Any] = {}
    for key, val in (("weighting", weighting), ("aggregator", aggregator)):
        if isinstance(val, str):
            training[key] = {"name": val}
        elif val is not None:
            objects[key] = val
    model_cfg: dict[str, Any] = {"architecture": {"name": architecture, **dict(architecture_params or {})}}
    if isinstance(trunk, nn.Module):
        from mtlkit.architectures import HardSharing

        if prepared.input_module:  # a table's category embeddings before the user's trunk
            from mtlkit.data.embedding import TabularInput

            trunk = nn.Sequential(TabularInput(**prepared.input_module), trunk)
        user_model = HardSharing(trunk, tasks, input_shape=cast(tuple[int, ...], prepared.input_shape))
        fresh_trunk = copy.deepcopy(trunk)

        def builder(task: Task) -> nn.Module:
            t = copy.deepcopy(fresh_trunk)
            for m in t.modules():
                if hasattr(m, "reset_parameters"):
                    cast(Callable[[], None], m.reset_parameters)()
            return HardSharing(t, [task], input_shape=cast(tuple[int, ...], prepared.input_shape))
    elif trunk is not None:
        model_cfg["trunk"] = dict(trunk)
    cfg = parse_config({"name": name, "seed": seed, "data": {"in_memory": True, "standardize": standardize,
                                                             "categorical": cat_options, "text": text_options,
                                                             "inputs": _inputs_config(inputs),
                                                             "split": {"train": split[0], "val": split[1],
                                                                       "test": split[2], "stratify": stratify}},
                        "tasks": [_config_task(t) for t in tasks], "model": model_cfg, "training": training,
                        "baselines": base}, source="(mtlkit.fit arguments)")
    return run(cfg, prepared, out_dir=out_dir, progress=progress, model=user_model, components=objects,
               baseline_builder=builder, overwrite=overwrite)


def _text_options(text: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``text`` checked as ``data.text`` is (an error names the wrong option)."""
    if text is None:
        return None
    if not isinstance(text, Mapping):
        raise TypeError(f"The 'text' parameter of fit must be a mapping of data.text options (tokenizer, "
                        f"max_length, truncation). Got {type(text).__name__}.")
    from mtlkit.data.text import TextOptions

    TextOptions.from_mapping(text)  # raises on an unknown key or a bad value, naming it
    return dict(text)


def _inputs_config(inputs: Mapping[str, Sequence[str]] | None) -> dict[str, Any] | None:
    if inputs is None:
        return None
    if not isinstance(inputs, Mapping):
        raise TypeError(f"The 'inputs' parameter of fit must be {{input name: [column, ...]}}. Got {inputs!r}.")
    return {str(k): v if isinstance(v, str) else list(v) for k, v in inputs.items()}


def _config_task(t: Task) -> dict[str, Any]:
    """A task's config entry (the statistics fitted on the data are not config)."""
    d = t.to_dict()
    d.pop("target_mean", None)
    d.pop("target_std", None)
    return d
