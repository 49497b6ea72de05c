"""The guarded import of scikit-image (the ``images`` extra)."""

from __future__ import annotations

from typing import Any


def import_skimage(owner: str) -> Any:
    """``skimage`` or an ImportError that names the extra to install."""
    try:
        import skimage
        import skimage.feature
        import skimage.filters
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(f"{owner} needs scikit-image: pip install 'mtlkit[images]' "
                          f"(or pip install scikit-image).") from exc
    return skimage
