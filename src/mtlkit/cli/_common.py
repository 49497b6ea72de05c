"""Shared CLI helpers: clear errors instead of tracebacks, console output."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer

F = TypeVar("F", bound=Callable[..., Any])

#: errors that are the user's input, shown as one clear message (exit code 2)
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, KeyError, FileNotFoundError, ImportError,
                                                PermissionError, TypeError, RuntimeError, OSError)


def friendly_errors(fn: F) -> F:
    """Turn user errors into ``Error: <message>`` on stderr and exit code 2.

    Set ``MTLKIT_DEBUG=1`` to see the full traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except USER_ERRORS as exc:
            if os.environ.get("MTLKIT_DEBUG"):
                raise
            msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            typer.echo(f"Error: {msg}", err=True)
            raise typer.Exit(code=2) from None

    return wrapper  # type: ignore[return-value]


def echo(msg: str = "") -> None:
    typer.echo(msg)


def print_summary(summary: dict[str, Any]) -> None:
    try:
        from mtlkit.report import summary_table
    except ImportError:  # pragma: no cover
        import json

        typer.echo(json.dumps(summary.get("mtl", {}).get("test", {}), indent=2))
        return
    typer.echo(summary_table(summary))


def set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


def is_tty() -> bool:
    return sys.stdout.isatty()
