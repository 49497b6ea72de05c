"""``mtlkit group RUN_OR_MATRIX --networks G [--train]``: choose task groups (TAG)."""

from __future__ import annotations

from pathlib import Path

import typer

from mtlkit.cli._app import app
from mtlkit.cli._common import echo, friendly_errors, set_threads


@app.command()
@friendly_errors
def group(
    source: Path = typer.Argument(..., help="An affinity matrix (affinity.json or .csv), a folder written "
                                            "by `mtlkit affinity`, or a training run folder (its "
                                            "gradient-cosine statistics are used)."),
    networks: int = typer.Option(..., "--networks", "-g", help="Budget: at most this many networks."),
    aggregate: str = typer.Option("mean", "--aggregate", help="mean (TAG) or sum of the group-mates' "
                                                              "affinity onto a task."),
    search: str = typer.Option("auto", "--search", help="auto (exact up to 12 tasks), exact or beam."),
    singleton_score: float = typer.Option(0.0, "--singleton-score", help="Score of a task alone in a group."),
    train: bool = typer.Option(False, "--train", help="Train one network per group, the all-in-one model "
                                                      "and single-task baselines, and compare them."),
    config: Path = typer.Option(None, "--config", help="The run config for --train (default: the "
                                                       "config.yaml next to the matrix)."),
    out: Path = typer.Option(None, "--out", "-o", help="Output folder (default: <source folder>/grouping-G<G>)."),
    metric: str = typer.Option(None, "--metric", help="Metric of the --train table (default: each task's main)."),
    set_: list[str] = typer.Option([], "--set", help="Override a config key (with --train)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
    threads: int = typer.Option(None, "--threads", help="torch threads (default: torch's choice)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace finished runs in the output folder."),
) -> None:
    """Choose task groups for a budget of networks from an affinity matrix (TAG).

    Each task is served by the group whose group-mates give it the highest affinity; the
    total over tasks is maximised. Prints and saves grouping.json. With --train, trains one
    network per group, the all-in-one model and single-task baselines, and compares them.
    """
    set_threads(threads)
    src = Path(source)
    base = src if src.is_dir() else src.parent
    cfg = None
    if train:  # the config first: a problem in it is reported before anything is computed or written
        from mtlkit.config import load_config
        from mtlkit.run.precheck import precheck

        cfg_path = config or (base / "config.yaml")
        if not cfg_path.exists():
            raise FileNotFoundError(f"--train needs the run config: pass --config CONFIG.yaml "
                                    f"(no {str(cfg_path)!r}).")
        cfg = load_config(cfg_path, list(set_))
        precheck(cfg)  # a misspelt name or key, a value out of range: before torch loads
        from mtlkit.run import validate

        validate(cfg)
    from mtlkit.analysis import AffinityResult, affinity_from_run, select_groups

    aff = affinity_from_run(src) if src.is_dir() else AffinityResult.load(src)
    grouping = select_groups(aff, networks, aggregate=aggregate, singleton_score=singleton_score, search=search)
    grouping.meta["affinity_source"] = str(src)
    grouping.meta["affinity_method"] = aff.method
    out_dir = out or base / f"grouping-G{networks}"
    echo(str(grouping))
    path = grouping.save(out_dir)
    echo(f"Wrote {path}")
    if cfg is None:
        return
    from mtlkit.analysis import train_groups

    result = train_groups(cfg, grouping, out_dir=out_dir, progress=progress, log=echo, overwrite=overwrite)
    echo(result.table(metric))
    echo(f"Wrote {out_dir / 'groups_comparison.json'}")
