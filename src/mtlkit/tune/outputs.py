"""The files of a tuning run: the trials table, the best config, the parameter importances
and the retrain of the best config over seeds."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mtlkit.config import RunConfig
    from mtlkit.run.seeds import SeedsResult

__all__ = ["BEST_CONFIG", "best_config", "importances", "retrain", "write_trials"]

BEST_CONFIG = "best_config.yaml"
Log = Callable[[str], None]


def write_trials(out: Path, rows: Sequence[dict[str, Any]]) -> None:
    """``trials.json`` (every field) and ``trials.csv`` (one column per parameter)."""
    from mtlkit._io import atomic_write, write_json

    write_json(out / "trials.json", list(rows))
    names: list[str] = []
    for r in rows:
        names += [k for k in r["params"] if k not in names]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["number", "state", "value", *names, "epochs_run", "best_epoch", "fit_time_s"])
    for r in rows:
        params = [_cell(r["params"].get(n)) for n in names]
        w.writerow([r["number"], r["state"], _cell(r["value"]), *params, _cell(r["epochs_run"]),
                    _cell(r["best_epoch"]), _cell(r["fit_time_s"])])
    atomic_write(out / "trials.csv", buf.getvalue())


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, (dict, list)):
        return json.dumps(v, sort_keys=True)
    return str(v)


def best_config(job: Any, values: dict[str, Any], out: Path) -> RunConfig:
    """The base config with the best trial's values, written to ``best_config.yaml`` (a plain
    ``mtlkit train`` config: without its search)."""
    from mtlkit._io import atomic_write
    from mtlkit.config import dump_config, parse_config

    data, _ = job.space.apply(job.base, lambda p: values[p.path])
    cfg = parse_config(data, source="(the best trial)")
    header = ["# mtlkit train best_config.yaml --seeds 3",
              f"# The best trial of `mtlkit tune` ({job.objective.label}, {job.objective.direction}d); "
              f"tuned values:"]
    header += [f"#   {k}: {json.dumps(v)}" for k, v in values.items()]
    atomic_write(out / BEST_CONFIG, "\n".join(header) + "\n" + dump_config(cfg))
    return cfg


def importances(optuna: Any, study: Any, seed: int) -> dict[str, Any] | None:
    """Optuna's fANOVA importances (Hutter et al. 2014; seeded) of the parameters over the
    complete trials, or ``None`` with the reason when there are too few trials to say."""
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    varied = {n for t in complete for n in t.params if len({json.dumps(u.params.get(n)) for u in complete}) > 1}
    if len(complete) < 3 or not varied:
        return {"values": None, "note": f"{len(complete)} complete trial(s) with varied parameters: too few to "
                                        f"estimate importances (3 or more needed)."}
    try:
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
        values = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except Exception as exc:  # a degenerate study (e.g. a constant objective)
        return {"values": None, "note": f"importances could not be computed: {exc}"}
    clean = {k: float(v) for k, v in values.items() if math.isfinite(float(v))}
    return {"values": clean, "method": "fANOVA (optuna.importance.FanovaImportanceEvaluator, seeded)"}


def retrain(cfg: RunConfig, seeds: list[int], out: Path, say: Log, progress: bool, report: bool = True, *,
            cache_dir: Path | None = None) -> SeedsResult:
    """The best config over ``seeds`` into ``out/best`` (intervals and verdicts, references
    from the study's cache); a retrain of this very config already there is reused."""
    from mtlkit.config import dump_config
    from mtlkit.run.seeds import SEEDS_FILE, SeedsResult, run_seeds

    folder = out / "best"
    text = dump_config(cfg)
    stamp = folder / "tuned_config.yaml"
    record_path = folder / SEEDS_FILE
    if record_path.exists() and stamp.exists() and stamp.read_text(encoding="utf-8") == text:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        if record.get("seeds") == seeds:
            say(f"The best config was already retrained over seeds {seeds} in {str(folder)!r}; reused.")
            return SeedsResult(folder, seeds, [], record)
    say(f"Retraining the best config over seeds {seeds} into {str(folder)!r} ...")
    result = run_seeds(cfg, seeds, out_dir=folder, progress=progress, log=say, cache_dir=cache_dir or out / ".references",
                       overwrite=True, report=report)
    from mtlkit._io import atomic_write

    atomic_write(stamp, text)
    return result
