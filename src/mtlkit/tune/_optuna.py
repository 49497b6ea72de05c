"""The one guarded import of Optuna (the optional ``tune`` extra)."""

from __future__ import annotations

from typing import Any

__all__ = ["require_optuna"]

INSTALL_HINT = "pip install 'mtlkit[tune]'"


def require_optuna() -> Any:
    """The ``optuna`` module, or an :class:`ImportError` that says which extra to install."""
    try:
        import optuna
    except ImportError as exc:
        raise ImportError(f"mtlkit tune needs Optuna, which is not installed: install mtlkit[tune] "
                          f"({INSTALL_HINT}). ({exc})") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # mtlkit prints its own one line per trial
    return optuna
