"""The ``mtlkit`` command. Each command lives in its own module and registers on ``app``."""

from __future__ import annotations

import importlib
import pkgutil

from mtlkit.cli._app import app

_loaded = False


def _load_commands() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


def _format_warning(message, category, filename, lineno, line=None) -> str:
    """Warnings on the command line: "Warning (UserWarning): ...", without the source line
    (a user of the CLI did not write that line; library users keep Python's format)."""
    return f"Warning ({category.__name__}): {message}\n"


def main() -> None:
    import warnings

    warnings.formatwarning = _format_warning
    _load_commands()
    app()


def get_app():
    """The Typer app with every command registered (for CliRunner tests)."""
    _load_commands()
    return app


__all__ = ["app", "get_app", "main"]
