"""Reading ``.ts`` files (the sktime/aeon format of the UEA/UCR archives), without timestamps."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["read_ts", "read_ts_unequal"]


def read_ts_unequal(path: str | Path) -> tuple[list[np.ndarray], list[str], list[str]]:
    """Read a ``.ts`` file (sktime/aeon format, no timestamps) whose series may differ in length.

    Returns one float32 array (channels, length_i) per series, the class label of each series
    and the class names in the order of the header's ``@classLabel`` line. Every series must
    have the same number of channels, and every channel of a series the same length."""
    class_names: list[str] = []
    series: list[np.ndarray] = []
    labels: list[str] = []
    in_data = False
    with open(path, encoding="utf-8") as fh:
        for lineno, raw in enumerate(fh, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if not in_data:
                low = line.lower()
                if low.startswith("@classlabel"):
                    parts = line.split()
                    if len(parts) < 3 or parts[1].lower() != "true":
                        raise ValueError(f"{path}: line {lineno}: expected '@classLabel true <names>'.")
                    class_names = parts[2:]
                elif low.startswith("@timestamps") and line.split()[-1].lower() == "true":
                    raise ValueError(f"{path}: series with timestamps are not supported.")
                elif low.startswith("@data"):
                    in_data = True
                continue
            *dims, label = line.split(":")
            try:
                chans = [[float(v) for v in d.split(",")] for d in dims]
            except ValueError as exc:
                raise ValueError(f"{path}: line {lineno}: {exc} (missing values are not supported).") from exc
            if not chans or len({len(c) for c in chans}) != 1:
                raise ValueError(f"{path}: line {lineno}: series of unequal length: the channels of one series differ in length.")
            series.append(np.asarray(chans, dtype=np.float32))
            labels.append(label.strip())
    if not series:
        raise ValueError(f"{path}: no series found after '@data'.")
    n_channels = {s.shape[0] for s in series}
    if len(n_channels) != 1:
        raise ValueError(f"{path}: series with different channel counts {sorted(n_channels)}.")
    unknown = sorted(set(labels) - set(class_names))
    if unknown:
        raise ValueError(f"{path}: labels {unknown} are not among @classLabel {class_names}.")
    return series, labels, class_names


def read_ts(path: str | Path) -> tuple[np.ndarray, list[str], list[str]]:
    """Read an equal-length ``.ts`` file: the series as float32 (N, channels, length), the class
    label of each series and the class names in the order of the header's ``@classLabel`` line."""
    series, labels, class_names = read_ts_unequal(path)
    lengths = sorted({s.shape[1] for s in series})
    if len(lengths) != 1:
        raise ValueError(f"{path}: series of unequal length {lengths[:4]}.")
    return np.stack(series), labels, class_names
