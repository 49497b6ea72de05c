"""Yeast: gene-function classes of 2,417 yeast genes, 14 binary tasks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from mtlkit._registry import DATASETS
from mtlkit.data._dataset import MultiTaskData
from mtlkit.datasets._bundle import DatasetBundle
from mtlkit.datasets._files import package_file
from mtlkit.tasks import Task

N_FEATURES = 103
N_LABELS = 14

PAPER = "Elisseeff & Weston (2002), A kernel method for multi-labelled classification"


@DATASETS.register()
def load_yeast(multilabel: bool = False) -> DatasetBundle:
    """Yeast (Elisseeff & Weston 2002): 2,417 genes × 103 features, 14 functional classes.

    Elisseeff, A. and Weston, J. (2002), "A kernel method for multi-labelled classification",
    NeurIPS; the MULAN version (Tsoumakas et al. 2011), as shipped in river
    (``river/datasets/yeast.csv.gz``; river is not imported). Features ``Att1..Att103`` are
    micro-array expression and phylogenetic profiles (float32, already roughly centred);
    the tasks are the 14 label columns ``Class1..Class14`` of the file, one binary task each.
    There is no predefined test split.

    Args:
        multilabel: ``True`` gives one ``multilabel`` task ``functions`` with the 14 labels
            as its columns instead of 14 binary tasks.

    >>> b = load_yeast()
    >>> b.data.x.shape, len(b.tasks), b.tasks[0].name, b.tasks[0].kind
    (torch.Size([2417, 103]), 14, 'Class1', 'binary')
    """
    if not isinstance(multilabel, bool):
        raise ValueError(
            f"The 'multilabel' parameter of load_yeast must be a bool. Got {multilabel!r}."
        )
    path = package_file("yeast", "river", "datasets/yeast.csv.gz")
    df = pd.read_csv(path)
    features = [c for c in df.columns if c.startswith("Att")]
    labels = [c for c in df.columns if c.startswith("Class")]
    if len(features) != N_FEATURES or len(labels) != N_LABELS:
        raise ValueError(
            f"{path}: expected {N_FEATURES} 'Att' and {N_LABELS} 'Class' columns; "
            f"found {len(features)} and {len(labels)}."
        )
    x = torch.as_tensor(df[features].to_numpy(dtype=np.float32, copy=True))
    y = df[labels].to_numpy(dtype=np.float32, copy=True)
    if multilabel:
        tasks = [Task("functions", "multilabel", num_labels=N_LABELS, columns=tuple(labels))]
        targets = {"functions": torch.as_tensor(y)}
    else:
        tasks = [Task(c, "binary") for c in labels]
        targets = {c: torch.as_tensor(y[:, j]) for j, c in enumerate(labels)}
    return DatasetBundle(
        name="yeast",
        data=MultiTaskData(x, targets, None, tasks, source="yeast"),
        tasks=tasks,
        test=None,
        input_kind="table",
        default_trunk={"name": "mlp", "hidden": [128, 64]},
        feature_names=features,
        description=(
            "Yeast gene functions (Elisseeff & Weston 2002, MULAN version): 2,417 genes, "
            "103 expression/phylogenetic features, 14 functional classes as binary tasks."
        ),
        licence="Public research data set (MULAN repository); file shipped in river (BSD-3-Clause).",
        info={"label_columns": labels},
    )


load_yeast.paper = PAPER  # type: ignore[attr-defined]
