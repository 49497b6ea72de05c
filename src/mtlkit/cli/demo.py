"""``mtlkit demo``: the main job — MultiMNIST, hard-sharing LeNet, baselines, Δm, report, and
the verdict per task over seeds."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

from mtlkit.cli._app import app
from mtlkit.cli._common import echo, friendly_errors, print_summary, set_threads

DEMO_CONFIG: dict[str, Any] = {
    "name": "demo-multimnist",
    "seed": 0,
    "data": {"dataset": "multimnist", "options": {}, "split": {"train": 0.8, "val": 0.2, "test": 0.0}},
    "model": {"trunk": {"name": "lenet"}, "architecture": {"name": "hard_sharing"}},
    "training": {"epochs": 6, "batch_size": 128, "optimizer": {"name": "adam", "lr": 0.002}},
    "baselines": True,
}

#: what ``mtlkit tune`` searches when the demo points to it: the loss weighting and the
#: learning rate (the demo's two tasks have no auxiliary weight to search)
DEMO_SEARCH: dict[str, Any] = {
    "training.weighting.name": {"choices": ["equal", "uncertainty", "dwa"]},
    "training.optimizer.lr": {"low": 3.0e-4, "high": 1.0e-2, "log": True},
}


def demo_config(quick: bool) -> dict:
    import copy

    cfg = copy.deepcopy(DEMO_CONFIG)
    if quick:
        cfg["name"] = "demo-multimnist-quick"
        cfg["data"]["options"] = {"quick": True}
        cfg["training"]["epochs"] = 2
    return cfg


def write_tune_config(quick: bool, out: Path) -> Path:
    """The demo's config with a ``search:`` section, as ``<out>-tune.yaml`` beside the run
    folder: the file ``mtlkit tune`` takes when multi-task learning does not help."""
    import yaml

    from mtlkit._io import atomic_write

    cfg = {**demo_config(quick), "search": DEMO_SEARCH}
    path = out.parent / f"{out.name}-tune.yaml"
    header = (f"# mtlkit tune {path} --trials 20\n# The demo's config (mtlkit demo{' --quick' if quick else ''}) "
              "with a search over the loss weighting and the learning rate.\n")
    return atomic_write(path, header + yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))


def _move_other_layout(out: Path, seeds: int) -> None:
    """A previous demo of the other layout (one run / a run over seeds) in ``out`` moves to
    ``<out>.previous-<time>`` (nothing is deleted), so that the new demo can take the folder."""
    if not out.is_dir():
        return
    single, over_seeds = (out / "config.yaml").exists(), (out / "seeds.json").exists()
    if (seeds > 1 and single) or (seeds == 1 and over_seeds):
        aside = out.with_name(f"{out.name}.previous-{time.strftime('%Y%m%d-%H%M%S')}")
        out.rename(aside)
        echo(f"The earlier demo in {str(out)!r} was moved to {str(aside)!r}.")


@app.command()
@friendly_errors
def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", "-o", help="Run folder."),
    quick: bool = typer.Option(False, "--quick", help="Small data, 2 epochs, one seed (< 60 s): a smoke test."),
    seeds: int = typer.Option(None, "--seeds", help="Train N seeds for intervals and a verdict per task "
                                                    "(default 3; with --quick 1)."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    threads: int = typer.Option(None, "--threads", help="torch threads."),
) -> None:
    """Train a hard-sharing LeNet on MultiMNIST (left/right digit) with single-task
    baselines; print accuracy per task, Δm, parameters and inference time; write a report.
    Over several seeds, end with the verdict per task (multi-task helps / hurts / no evidence)
    and, where it does not help, the `mtlkit tune` command to try. The demo replaces its own
    previous run folder."""
    from mtlkit.config import parse_config
    from mtlkit.run import prepare_from_config, run
    from mtlkit.run.seeds import seeds_from_count

    count = seeds_from_count(seeds if seeds is not None else (1 if quick else 3))
    set_threads(threads)
    cfg = parse_config(demo_config(quick), source="(demo)")
    prepared = prepare_from_config(cfg)
    echo(f"MultiMNIST: {len(prepared.train)} train / {len(prepared.val)} val / {len(prepared.test)} test "
         f"pairs, 36x36 images, tasks left and right (10 classes each).")
    _move_other_layout(out, len(count))
    tune_cfg = write_tune_config(quick, out)
    if len(count) == 1:
        result = run(cfg, prepared, out_dir=out, progress=progress, log=echo, overwrite=True)
        print_summary(result.summary)
        for line in single_run_verdict(result.summary, tune_cfg):
            echo(line)
        echo(f"Run folder: {out}  (report: {out / 'report.html'})")
        return
    _demo_seeds(cfg, prepared, count, out, tune_cfg, progress=progress)


def _demo_seeds(cfg: Any, prepared: Any, seeds: list[int], out: Path, tune_cfg: Path, *, progress: bool) -> None:
    """The demo over ``seeds``: the evidence table, then the verdict per task."""
    from mtlkit.report.seeds import seeds_table
    from mtlkit.run import prepare_from_config
    from mtlkit.run.seeds import run_seeds

    def data(cfg_s: Any) -> Any:  # the first seed's data is loaded already
        return prepared if cfg_s.seed == cfg.seed else prepare_from_config(cfg_s)

    result = run_seeds(cfg, seeds, out_dir=out, data=data, progress=progress, log=echo, overwrite=True)
    echo(seeds_table(result.record, config=str(tune_cfg)))
    echo(f"Run folder: {out}  (report: {out / 'report.html'}; each seed in {out / 'seed-<s>'})")


def single_run_verdict(summary: dict[str, Any], tune_cfg: Path) -> list[str]:
    """What one seed can say: no verdict (no interval), Δm's sign in plain words, and where to
    go when the single-task models are better."""
    from mtlkit.report._format import fmt_signed, num

    dm = num(summary.get("delta_m"))
    lines = ["Verdict per task: none from one seed (no interval); `mtlkit demo --seeds 3` trains three seeds "
             "and gives a verdict per task."]
    if dm is not None and dm >= 0:
        lines.append(f"At this budget multi-task learning does not help on average (Δm {fmt_signed(dm, 3)} %: the "
                     f"single-task models are better). Search the weighting and the learning rate: "
                     f"mtlkit tune {tune_cfg} --trials 20")
    return lines
