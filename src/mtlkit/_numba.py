"""The optional numba kernels (``pip install mtlkit[fast]``): one switch for all of them.

A module of compiled kernels imports numba at its top; :func:`optional_kernels` imports it
on first use and gives None when numba is not installed or when the environment variable
``MTLKIT_NUMBA`` is ``0`` (read at every call, so a test or a user can switch the kernels
off at any time). Used by the classic trees (:mod:`mtlkit.classic._kernels`) and the
trimmed mean (:mod:`mtlkit.aggregation._trimmed_kernel`).
"""

from __future__ import annotations

import functools
import importlib
import os
from types import ModuleType


def optional_kernels(module: str) -> ModuleType | None:
    """The kernels module ``module``, or None: numba not installed, or ``MTLKIT_NUMBA=0``."""
    if os.environ.get("MTLKIT_NUMBA", "").strip() == "0":
        return None
    return _imported(module)


@functools.cache
def _imported(module: str) -> ModuleType | None:
    try:
        return importlib.import_module(module)
    except ImportError:  # numba is not installed
        return None
