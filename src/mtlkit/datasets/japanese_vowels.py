"""JapaneseVowels: 12-channel LPC cepstra of a spoken vowel, 9 speakers (UCI / UEA archive)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mtlkit._checks import check_int
from mtlkit._registry import DATASETS
from mtlkit.data._dataset import MultiTaskData
from mtlkit.datasets._bundle import DatasetBundle
from mtlkit.datasets._files import TIMESERIES_EXTRA, package_dir
from mtlkit.datasets._ts import read_ts_unequal
from mtlkit.tasks import Task

# Packages that ship the UEA .ts files, searched in this order (neither is imported).
PROVIDERS = ("aeon", "sktime")
_FOLDER = "datasets/data/JapaneseVowels"
_TRAIN, _TEST = "JapaneseVowels_TRAIN.ts", "JapaneseVowels_TEST.ts"

PAPER = ("Kudo, Toyama & Shimbo (1999), Multidimensional curve classification using passing-through "
         "regions; Bagnall et al. (2018), The UEA multivariate time series classification archive")



def resample(series: list[np.ndarray], length: int) -> np.ndarray:
    """Each (channels, T_i) series linearly interpolated to ``length`` equally spaced points
    over its own duration (first and last samples kept); shape (N, channels, length).

    >>> resample([np.array([[0.0, 2.0]]), np.array([[1.0, 1.0, 1.0]])], 3).tolist()
    [[[0.0, 1.0, 2.0]], [[1.0, 1.0, 1.0]]]
    """
    out = np.empty((len(series), series[0].shape[0], length), dtype=np.float32)
    grid = np.linspace(0.0, 1.0, length)
    for i, s in enumerate(series):
        src = np.linspace(0.0, 1.0, s.shape[1]) if s.shape[1] > 1 else np.zeros(1)
        for c in range(s.shape[0]):
            out[i, c] = np.interp(grid, src, s[c]) if s.shape[1] > 1 else s[c, 0]
    return out


def _find_folder() -> Path:
    for pkg in PROVIDERS:
        root = package_dir(pkg)
        if root is not None and (root / _FOLDER / _TRAIN).is_file():
            return root / _FOLDER
    raise ImportError(
        "The 'japanese_vowels' dataset is read from the JapaneseVowels .ts files shipped inside the "
        f"{' or '.join(repr(p) for p in PROVIDERS)} package, and neither is installed (or ships "
        f"them). Install the time-series extra: {TIMESERIES_EXTRA}."
    )


@DATASETS.register()
def load_japanese_vowels(length: int = 25) -> DatasetBundle:
    """JapaneseVowels (UCI; UEA multivariate archive): 640 utterances, 9 speakers, 12 channels.

    Kudo, M., Toyama, J. & Shimbo, M. (1999), "Multidimensional curve classification using
    passing-through regions", Pattern Recognition Letters 20; in the archive of Bagnall et al.
    (2018), arXiv:1811.00075. Nine male speakers uttered the vowels /ae/; each utterance is
    analysed into 12 LPC cepstrum coefficients per frame, 7 to 29 frames long. One multiclass
    task ``speaker`` (9 classes, header order 1..9). The archive's own split is kept: 270
    training utterances (30 per speaker) and 370 as ``test`` (24 to 88 per speaker).

    The frames differ in number, so each utterance is linearly interpolated to ``length``
    frames over its own duration (our choice; the archive's ``_eq`` files use another length
    and an undocumented method, so they are not used): x has shape (N, 12, length), float32,
    unscaled. The .ts files are read from the installed aeon (or sktime) package, which is
    not imported.

    Chosen over BasicMotions for the time-series auxiliary case because a small 1-D CNN does
    not classify it perfectly (BasicMotions' test set is solved in every seed).

    >>> b = load_japanese_vowels()  # doctest: +SKIP
    >>> b.data.x.shape, b.test.x.shape, b.tasks[0].num_classes  # doctest: +SKIP
    (torch.Size([270, 12, 25]), torch.Size([370, 12, 25]), 9)
    """
    length = check_int("load_japanese_vowels", "length", length, low=2)
    folder = _find_folder()
    s_tr, y_tr, classes = read_ts_unequal(folder / _TRAIN)
    s_te, y_te, classes_te = read_ts_unequal(folder / _TEST)
    if classes_te != classes or s_tr[0].shape[0] != s_te[0].shape[0]:
        raise ValueError(f"{folder}: the train and test files disagree on classes or channel count.")
    index = {c: i for i, c in enumerate(classes)}
    task = Task("speaker", "multiclass", num_classes=len(classes))

    def part(series: list[np.ndarray], y: list[str], name: str) -> MultiTaskData:
        target = torch.as_tensor([index[v] for v in y], dtype=torch.long)
        return MultiTaskData(torch.from_numpy(resample(series, length)), {"speaker": target}, None, [task],
                             source=f"japanese_vowels ({name})")

    lengths = [s.shape[1] for s in s_tr + s_te]
    return DatasetBundle(
        name="japanese_vowels",
        data=part(s_tr, y_tr, "train"),
        tasks=[task],
        test=part(s_te, y_te, "test"),
        input_kind="series",
        default_trunk={"name": "cnn1d"},
        feature_names=None,
        description=(
            f"JapaneseVowels (UCI / UEA archive): 12 LPC cepstrum coefficients per frame of a spoken "
            f"/ae/, {min(lengths)}-{max(lengths)} frames resampled to {length}; speaker in 1..9; "
            f"{len(s_tr)} train / {len(s_te)} test utterances."
        ),
        licence=(
            "UCI Machine Learning Repository (CC BY 4.0) and UEA & UCR time series classification "
            f"archive, free for research use with citation; files shipped in {folder.parts[-4]} "
            "(BSD-3-Clause)."
        ),
        info={"class_names": classes, "channels": [f"lpc_{i + 1}" for i in range(s_tr[0].shape[0])],
              "source": str(folder), "original_lengths": [min(lengths), max(lengths)], "length": length},
    )


load_japanese_vowels.paper = PAPER  # type: ignore[attr-defined]
