"""A multi-task RL run: every method of the config with every seed, the summary (per-task
evaluation returns, Δm against ``single`` and ``shared``, CARE's attention, Distral's KL,
dropped episodes, throughput) and the report.

Run folder::

    config.yaml                        the resolved config
    summary.json                       everything below, aggregated over seeds
    report.html                        the report (mtlkit.rl.report)
    <method>/seed-<s>/curves.jsonl     learning curves: one line per task and log point
    <method>/seed-<s>/evaluations.jsonl  evaluations at evaluation.at_steps
    <method>/seed-<s>/result.json      final evaluation and the run's figures
    <method>/seed-<s>/policy.safetensors + policy.json   the trained agent (no pickle)
    <method>/seed-<s>/checkpoints/     checkpoints (safetensors + JSON) for --resume

**Δm for returns** (sign convention: *higher is better*, the opposite of the supervised Δm
of :mod:`mtlkit.evaluation`, whose terms are "how much worse"):

    Δm(method, ref) = (1/T) Σ_t (R̄_method,t − R̄_ref,t) / |R̄_ref,t| × 100

with R̄ the mean evaluation return of task t; tasks whose reference return is 0 are skipped.
Computed per seed against the reference of the same seed, then mean ± sd over seeds.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtlkit._io import atomic_write, write_json
from mtlkit.rl._trainer import RESULT, RLTrainer
from mtlkit.rl.config import RLConfig, RLConfigError, dump_rl_config, load_rl_config

SUMMARY = "summary.json"
CONFIG = "config.yaml"
REFERENCES = ("single", "shared")
DELTA_M_CONVENTION = ("Δm = (1/T) Σ_t (R_method,t − R_ref,t)/|R_ref,t| × 100 over the tasks' mean evaluation "
                      "returns; positive = higher returns than the reference (higher is better)")


def delta_m_returns(method: Mapping[str, float | None], reference: Mapping[str, float | None]) -> float | None:
    """Δm in % of a method's per-task mean returns against a reference's (higher is better).

    >>> delta_m_returns({"a": 110.0, "b": -80.0}, {"a": 100.0, "b": -100.0})
    15.0
    """
    terms = []
    for task, ref in reference.items():
        val = method.get(task)
        if ref is None or val is None or not math.isfinite(ref) or not math.isfinite(val) or ref == 0:
            continue
        terms.append((val - ref) / abs(ref) * 100.0)
    return sum(terms) / len(terms) if terms else None


def _mean_sd(values: Sequence[float | None]) -> dict[str, Any]:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return {"mean": None, "sd": None, "n": 0}
    return {"mean": statistics.fmean(vals), "sd": statistics.stdev(vals) if len(vals) > 1 else None,
            "n": len(vals)}


def seed_dir(run_dir: Path, method: str, seed: int) -> Path:
    return run_dir / method / f"seed-{seed}"


def summarise(cfg: RLConfig, results: Mapping[tuple[str, int], Mapping[str, Any]]) -> dict[str, Any]:
    """The run's summary from the ``result.json`` of each (method, seed) present."""
    tasks = [t.name for t in cfg.tasks]
    spaces = cfg.spaces()
    out: dict[str, Any] = {
        "name": cfg.name, "kind": "rl",
        "tasks": [{"name": t.name, "env": t.env, "kwargs": t.kwargs, "metadata": t.metadata, "space": sp.text}
                  for t, sp in zip(cfg.tasks, spaces)],
        "methods": list(cfg.methods), "seeds": list(cfg.seeds), "budget": cfg.budget,
        "evaluation": cfg.evaluation.model_dump(), "delta_m_convention": DELTA_M_CONVENTION,
        "complete": all((m, s) in results for m in cfg.methods for s in cfg.seeds), "results": {}}
    means = {key: {t: r["final"][t]["mean"] for t in tasks} for key, r in results.items()}
    for method in cfg.methods:
        seeds = [s for s in cfg.seeds if (method, s) in results]
        if not seeds:
            continue
        rs = [results[(method, s)] for s in seeds]
        entry: dict[str, Any] = {
            "seeds": seeds,
            "per_seed": {str(s): means[(method, s)] for s in seeds},
            "tasks": {t: _mean_sd([means[(method, s)][t] for s in seeds]) for t in tasks},
            "env_steps_per_task": rs[0]["env_steps_per_task"],
            "env_steps_per_s": _mean_sd([r["env_steps_per_s"] for r in rs]),
            "train_seconds": _mean_sd([r["train_seconds"] for r in rs]),
            "parameters": rs[0]["parameters"],
            "dropped_episodes": {t: sum(r["dropped_episodes"][t] for r in rs) for t in tasks},
            "evaluation_dropped": {t: sum(r["evaluation_dropped"][t] for r in rs) for t in tasks},
            "delta_m": {}, "at_steps": {}}
        mean_of_tasks = [statistics.fmean([v for v in means[(method, s)].values() if v is not None] or [math.nan])
                         for s in seeds]
        entry["mean_return"] = _mean_sd(mean_of_tasks)
        for ref in (r for r in REFERENCES if r != method):
            per = {str(s): delta_m_returns(means[(method, s)], means[(ref, s)]) for s in seeds if (ref, s) in results}
            if per:
                entry["delta_m"][ref] = {**_mean_sd(list(per.values())), "per_seed": per}
        budgets = sorted({b for r in rs for b in r.get("at_steps", {})}, key=lambda b: int(b))
        for b in budgets:
            entry["at_steps"][b] = {t: _mean_sd([r["at_steps"].get(b, {}).get(t, {}).get("mean") for r in rs])
                                    for t in tasks}
        if all("attention" in r for r in rs):
            k = len(rs[0]["attention"][tasks[0]])
            entry["attention"] = {t: [statistics.fmean(r["attention"][t][j] for r in rs) for j in range(k)]
                                  for t in tasks}
        if all("kl" in r for r in rs):
            entry["kl"] = {t: _mean_sd([r["kl"][t] for r in rs])["mean"] for t in tasks}
            entry["c_kl"], entry["c_ent"] = rs[0]["c_kl"], rs[0]["c_ent"]
        out["results"][method] = entry
    return out


@dataclass
class RLRun:
    run_dir: Path
    summary: dict[str, Any]


def _check_folder(cfg: RLConfig, run_dir: Path, resume: bool) -> None:
    if resume:
        if not (run_dir / CONFIG).exists():
            raise FileNotFoundError(f"Nothing to resume: {str(run_dir)!r} holds no RL run ({CONFIG}).")
        saved = load_rl_config(run_dir / CONFIG)
        diff = _diff(saved.model_dump(mode="json"), cfg.model_dump(mode="json"))
        if diff:
            raise RLConfigError(f"The config differs from the run's own {str(run_dir / CONFIG)!r} in "
                                f"{', '.join(diff)}; resume with the run's config (omit CONFIG) or start a "
                                f"new run with another --out.")
        return
    if run_dir.exists() and any(run_dir.iterdir()):
        raise FileExistsError(f"The run folder {str(run_dir)!r} is not empty; continue it with --resume "
                              f"{str(run_dir)!r} or choose another --out (nothing is deleted).")


def _diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _diff(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


def run_rl(cfg: RLConfig, run_dir: str | Path, *, resume: bool = False, report: bool = True,
           log: Callable[[str], None] | None = None) -> RLRun:
    """Train every (method, seed) of ``cfg`` into ``run_dir`` and write the summary and
    report. With ``resume``, finished (method, seed) pairs are kept and unfinished ones
    continue from their newest checkpoint."""
    import json

    say = log or (lambda msg: None)
    run_dir = Path(run_dir)
    _check_folder(cfg, run_dir, resume)
    run_dir.mkdir(parents=True, exist_ok=True)
    if not resume:
        atomic_write(run_dir / CONFIG, dump_rl_config(cfg))
    results: dict[tuple[str, int], dict[str, Any]] = {}
    for method in cfg.methods:
        for seed in cfg.seeds:
            folder = seed_dir(run_dir, method, seed)
            done = folder / RESULT
            if resume and done.exists():
                results[(method, seed)] = json.loads(done.read_text(encoding="utf-8"))
                say(f"[{method} seed {seed}] already finished")
                continue
            trainer = RLTrainer(cfg, method, seed, folder, log=say)
            results[(method, seed)] = trainer.fit(resume=resume)
            write_json(run_dir / SUMMARY, summarise(cfg, results))
    summary = summarise(cfg, results)
    write_json(run_dir / SUMMARY, summary)
    if report:
        from mtlkit.rl.report import write_rl_report

        write_rl_report(run_dir)
    return RLRun(run_dir, summary)


def load_rl_run(run_dir: str | Path) -> tuple[RLConfig, dict[str, Any]]:
    """The config and summary of a run folder."""
    import json

    run_dir = Path(run_dir)
    if not (run_dir / CONFIG).exists():
        raise FileNotFoundError(f"{str(run_dir)!r} holds no RL run ({CONFIG} is missing).")
    cfg = load_rl_config(run_dir / CONFIG)
    summary = json.loads((run_dir / SUMMARY).read_text(encoding="utf-8")) if (run_dir / SUMMARY).exists() else {}
    return cfg, summary
