"""``mtlkit env``: versions and threads, for bug reports."""

from __future__ import annotations

import importlib.metadata as md
import platform

from mtlkit.cli._app import app
from mtlkit.cli._common import echo


@app.command()
def env() -> None:
    """Print versions of mtlkit, Python, torch and the main dependencies, and the threads."""
    import os

    import torch

    echo(f"mtlkit       {md.version('mtlkit') if _has('mtlkit') else 'dev'}")
    echo(f"python       {platform.python_version()} ({platform.platform()})")
    echo(f"torch        {torch.__version__} (CUDA available: {torch.cuda.is_available()})")
    echo(f"threads      torch={torch.get_num_threads()} interop={torch.get_num_interop_threads()} "
         f"cpus={os.cpu_count()}")
    for pkg in ("numpy", "pandas", "scikit-learn", "safetensors", "pydantic", "typer", "matplotlib",
                "scipy", "mlxtend", "river", "pyarrow", "onnxruntime"):
        echo(f"{pkg:<12} {md.version(pkg) if _has(pkg) else 'not installed'}")


def _has(pkg: str) -> bool:
    try:
        md.version(pkg)
        return True
    except md.PackageNotFoundError:
        return False
