"""``mtlkit env``: versions and threads, for bug reports."""

from __future__ import annotations

import platform

from mtlkit.cli._app import app
from mtlkit.cli._common import echo


@app.command()
def env() -> None:
    """Print versions of mtlkit, Python, torch and the main dependencies, and the threads."""
    import importlib.metadata as md
    import os

    import torch

    echo(f"mtlkit       {md.version('mtlkit') if _has('mtlkit') else 'dev'}")
    echo(f"python       {platform.python_version()} ({platform.platform()})")
    echo(f"torch        {torch.__version__} (CUDA available: {torch.cuda.is_available()})")
    echo(f"threads      torch={torch.get_num_threads()} interop={torch.get_num_interop_threads()} "
         f"cpus={os.cpu_count()}")
    echo(f"devices      {', '.join(_devices(torch))}  (training.device: auto picks the first)")
    echo(f"distributed  {_backends(torch)}")
    for pkg in ("numpy", "pandas", "scikit-learn", "safetensors", "pydantic", "typer", "matplotlib",
                "scipy", "mlxtend", "river", "pyarrow", "onnxruntime"):
        echo(f"{pkg:<12} {md.version(pkg) if _has(pkg) else 'not installed'}")


def _has(pkg: str) -> bool:
    import importlib.metadata as md  # here, not at import: ``mtlkit --help`` loads every command

    try:
        md.version(pkg)
        return True
    except md.PackageNotFoundError:
        return False


def _devices(torch) -> list[str]:
    """The devices ``training.device`` can name on this machine."""
    found = [f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(torch.cuda.device_count())] \
        if torch.cuda.is_available() else []
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    return [*found, "cpu"]


def _backends(torch) -> str:
    """torch.distributed's backends usable here (mtlkit train --nproc-per-node)."""
    dist = torch.distributed
    if not dist.is_available():
        return "not available in this torch build"
    names = [name for name, ok in (("gloo", dist.is_gloo_available()), ("nccl", dist.is_nccl_available()),
                                   ("mpi", dist.is_mpi_available())) if ok]
    return ", ".join(names) or "no backend"
