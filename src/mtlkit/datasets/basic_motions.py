"""BasicMotions: 6-channel smartwatch series, 4 activities (UEA archive)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mtlkit._registry import DATASETS
from mtlkit.data._dataset import MultiTaskData
from mtlkit.datasets._bundle import DatasetBundle
from mtlkit.datasets._files import TIMESERIES_EXTRA, package_dir
from mtlkit.datasets._ts import read_ts
from mtlkit.tasks import Task

# Packages that ship the UEA .ts files, searched in this order (neither is imported).
PROVIDERS = ("aeon", "sktime")
_FOLDER = "datasets/data/BasicMotions"

#: the six channels of the .ts files, in file order: the 3-D accelerometer, then the 3-D gyroscope
CHANNELS = ("accel_x", "accel_y", "accel_z", "gyro_x", "gyro_y", "gyro_z")
#: the two sensors as named inputs (``split_inputs=True``): channel indices of each
SENSORS = {"accel": (0, 1, 2), "gyro": (3, 4, 5)}

PAPER = "Bagnall et al. (2018), The UEA multivariate time series classification archive"


def _find_folder() -> Path:
    for pkg in PROVIDERS:
        root = package_dir(pkg)
        if root is not None and (root / _FOLDER / "BasicMotions_TRAIN.ts").is_file():
            return root / _FOLDER
    raise ImportError(
        "The 'basic_motions' dataset is read from the BasicMotions .ts files shipped inside the "
        f"{' or '.join(repr(p) for p in PROVIDERS)} package, and neither is installed (or ships "
        f"them). Install the time-series extra: {TIMESERIES_EXTRA}."
    )


@DATASETS.register()
def load_basic_motions(split_inputs: bool = False) -> DatasetBundle:
    """BasicMotions (UEA multivariate archive, Bagnall et al. 2018): 80 series, 4 activities.

    Bagnall, A. et al. (2018), "The UEA multivariate time series classification archive,
    2018", arXiv:1811.00075. Students wearing a smartwatch were recorded standing, walking,
    running and playing badminton; each series is 10 s of a 3-D accelerometer and a 3-D
    gyroscope sampled at 10 Hz: x has shape (N, 6, 100), float32, unscaled. One multiclass
    task ``activity`` (class order of the file header: Standing, Running, Walking,
    Badminton). The archive's own split is kept: 40 training series, 40 as ``test``.

    The .ts files are read from the installed aeon (or sktime) package, which is not imported.

    Args:
        split_inputs: give the two sensors as two named inputs, x = ``{"accel": (N, 3, 100),
            "gyro": (N, 3, 100)}`` (channels 0-2 and 3-5 of the files, :data:`SENSORS`), for
            a multi-input model (``model.architecture: {name: multimodal}``). The same as
            ``data.inputs: {accel: [accel_x, accel_y, accel_z], gyro: [gyro_x, gyro_y, gyro_z]}``.

    >>> b = load_basic_motions()  # doctest: +SKIP
    >>> b.data.x.shape, b.test.x.shape, b.tasks[0].num_classes  # doctest: +SKIP
    (torch.Size([40, 6, 100]), torch.Size([40, 6, 100]), 4)
    """
    if not isinstance(split_inputs, bool):
        raise ValueError(f"The 'split_inputs' option of basic_motions must be true or false. Got {split_inputs!r}.")
    folder = _find_folder()
    x_tr, y_tr, classes = read_ts(folder / "BasicMotions_TRAIN.ts")
    x_te, y_te, classes_te = read_ts(folder / "BasicMotions_TEST.ts")
    if classes_te != classes or x_tr.shape[1:] != x_te.shape[1:]:
        raise ValueError(f"{folder}: the train and test files disagree on classes or series shape.")
    index = {c: i for i, c in enumerate(classes)}
    task = Task("activity", "multiclass", num_classes=len(classes))

    def part(x: np.ndarray, y: list[str], name: str) -> MultiTaskData:
        target = torch.as_tensor([index[v] for v in y], dtype=torch.long)
        series = torch.from_numpy(x)
        return MultiTaskData(
            {k: series[:, list(c)] for k, c in SENSORS.items()} if split_inputs else series,
            {"activity": target},
            None,
            [task],
            source=f"basic_motions ({name})",
        )

    return DatasetBundle(
        name="basic_motions",
        data=part(x_tr, y_tr, "train"),
        tasks=[task],
        test=part(x_te, y_te, "test"),
        input_kind="series",
        default_trunk={} if split_inputs else {"name": "cnn1d"},
        feature_names=None,
        description=(
            "BasicMotions (UEA archive): smartwatch accelerometer + gyroscope, 6 channels "
            "x 100 steps at 10 Hz; activity in {Standing, Running, Walking, Badminton}; "
            "40 train / 40 test series."
        ),
        licence=(
            "UEA & UCR time series classification archive, free for research use with "
            f"citation; files shipped in {folder.parts[-4]} (BSD-3-Clause)."
        ),
        info={
            "class_names": classes,
            "channels": list(CHANNELS) if x_tr.shape[1] == len(CHANNELS) else [f"dim_{i}" for i in range(x_tr.shape[1])],
            "source": str(folder),
        },
    )


load_basic_motions.paper = PAPER  # type: ignore[attr-defined]
