"""Repeated seeds: "does multi-task learning help on my data?" answered with intervals.

:func:`run_seeds` trains the run once per seed, each seed a complete run folder
``<out>/seed-<s>/`` written by :func:`mtlkit.run.run` (the seed drives the split, the
initialisation and the batch order), then aggregates the seeds into ``<out>/seeds.json`` and
``<out>/report.html``: mean ± sd and the 95 % t-interval of every test metric (multi-task and
single-task), of Δm and of each Δm_t, a paired test across seeds per task and metric
(:func:`mtlkit.evaluation.stats.paired_test`), and a verdict per task
(:func:`mtlkit.evaluation.stats.verdict`) with the negative-transfer tasks named.

The single-task references do not depend on the multi-task method, so they are cached
(:class:`ReferenceCache`, default ``<out>/../.references/``) under a hash of everything they
do depend on (:func:`reference_key`: the data and its split, the tasks, the trunk and the
reference's architecture, the training budget and optimiser, the seed, the mtlkit version)
and a sweep that changes only the multi-task config (weighting, aggregator, schedule,
sampler, architecture, task weights) reuses them instead of training them again.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from mtlkit.evaluation.stats import HURTS, describe, paired_test, verdict

if TYPE_CHECKING:  # torch loads only when a run starts (a bad --seeds is reported without it)
    from mtlkit.config import RunConfig
    from mtlkit.run.data import PreparedData

__all__ = ["SEEDS_FILE", "ReferenceCache", "SeedsResult", "aggregate_seeds", "check_seeds", "reference_key",
           "run_seeds", "seeds_from_count"]

SEEDS_FILE = "seeds.json"
Log = Callable[[str], None]

#: training keys that only the multi-task model reads (a single-task reference has no
#: balancing method, no schedule, no early-stopping monitor, no conflict monitor), and
#: keys that say where, not what (the device)
_MTL_ONLY_TRAINING = ("weighting", "aggregator", "schedule", "level", "jacobian_engine", "jacobian_block_size",
                      "gramian_engine",
                      "monitor", "monitor_conflicts", "device", "checkpoint_every", "keep_checkpoints")


def seeds_from_count(count: Any, start: int = 0) -> list[int]:
    """``count`` consecutive seeds from ``start``; a count that is not a positive integer is
    a :class:`ValueError` that names it.

    >>> seeds_from_count(3, start=7)
    [7, 8, 9]
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"The number of seeds (--seeds) must be a positive integer. Got {count!r}.")
    return list(range(start, start + count))


def check_seeds(seeds: Sequence[Any]) -> list[int]:
    """``seeds`` as a list of distinct non-negative integers, or a :class:`ValueError`."""
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence):
        raise ValueError(f"The 'seeds' parameter of run_seeds must be a list of integers. Got {seeds!r}.")
    out = list(seeds)
    if not out:
        raise ValueError("The 'seeds' parameter of run_seeds must hold at least one seed. Got [].")
    bad = [s for s in out if isinstance(s, bool) or not isinstance(s, int) or s < 0]
    if bad:
        raise ValueError(f"The 'seeds' parameter of run_seeds must hold non-negative integers. Got {bad!r}.")
    dup = sorted({s for s in out if out.count(s) > 1})
    if dup:
        raise ValueError(f"The 'seeds' parameter of run_seeds holds duplicates: {dup}.")
    return out


# ---------------------------------------------------------------------------------- cache
def reference_inputs(cfg: RunConfig, prepared: PreparedData) -> dict[str, Any]:
    """Everything the single-task references of ``cfg`` on ``prepared`` depend on (and
    nothing that only the multi-task model reads)."""
    from mtlkit import __version__
    from mtlkit.run.folder import data_fingerprint

    dumped = cfg.model_dump(mode="json")
    data = dict(dumped["data"])
    data.pop("sampler", None)
    training = {k: v for k, v in dumped["training"].items() if k not in _MTL_ONLY_TRAINING}
    primary = [t.to_dict() for t in prepared.tasks if t.role == "primary"]
    for t in primary:
        t.pop("weight", None)  # a reference trains its task alone, at weight 1
    arch = cfg.model.architecture
    from mtlkit._registry import ARCHITECTURES

    own = ARCHITECTURES.get(arch.name) if arch.name in ARCHITECTURES else None
    # the reference is hard sharing with the trunk, unless the architecture builds its own
    reference_arch = (dumped["model"]["architecture"]
                      if arch.name == "hard_sharing" or getattr(own, "single_task_config", None) else None)
    auxiliary = [{k: v for k, v in spec.items() if k != "weight"} for spec in dumped.get("auxiliary") or []]
    return {"data": data, "fingerprint": data_fingerprint(prepared), "tasks": primary,
            "trunk": cfg.model.trunk or prepared.default_trunk, "reference_architecture": reference_arch,
            "auxiliary": auxiliary, "training": training, "seed": cfg.seed, "mtlkit": __version__}


def reference_key(cfg: RunConfig, prepared: PreparedData) -> str:
    """The hash of :func:`reference_inputs` (24 hex digits)."""
    text = json.dumps(reference_inputs(cfg, prepared), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


class ReferenceCache:
    """Single-task results by :func:`reference_key`, one JSON file each in ``directory``
    (the results as in ``summary["baselines"]``, with the inputs that were hashed)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        p = self.path(key)
        try:
            entry = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(entry, dict) or entry.get("key") != key or not isinstance(entry.get("baselines"), dict):
            return None
        return entry

    def put(self, key: str, baselines: dict[str, Any], inputs: dict[str, Any], run_dir: Path | None) -> None:
        from mtlkit._io import write_json

        self.directory.mkdir(parents=True, exist_ok=True)
        write_json(self.path(key), {"key": key, "created": time.strftime("%Y-%m-%d %H:%M:%S"),
                                    "trained_in": str(run_dir) if run_dir else None, "inputs": inputs,
                                    "baselines": baselines})


# ---------------------------------------------------------------------------------- runs
@dataclass
class SeedsResult:
    """What :func:`run_seeds` produced: the parent folder, the seeds, each seed's
    :class:`~mtlkit.run.execute.RunResult` and the aggregate (the content of ``seeds.json``)."""

    run_dir: Path
    seeds: list[int]
    runs: list[Any] = field(default_factory=list)
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def verdicts(self) -> dict[str, str]:
        return {t: v["verdict"] for t, v in (self.record.get("verdicts") or {}).items()}


def run_seeds(cfg: RunConfig, seeds: Sequence[int], *, out_dir: str | Path,
              data: PreparedData | Callable[[RunConfig], PreparedData] | None = None, progress: bool = False,
              log: Log | None = None, cache_dir: str | Path | None = None, overwrite: bool = False,
              report: bool = True, confidence: float = 0.95) -> SeedsResult:
    """Train ``cfg`` once per seed into ``out_dir/seed-<s>/`` and aggregate them into
    ``out_dir/seeds.json`` (and ``report.html``).

    ``data``: the prepared data of every seed (a fixed split), or a function of the seed's
    config; default :func:`~mtlkit.run.prepare_from_config` of the seed's config (the seed
    draws the split too). Single-task references come from the cache in ``cache_dir``
    (default ``out_dir/../.references``) when an identical one was trained before."""
    from mtlkit.run.execute import baseline_kinds

    seeds = check_seeds(seeds)
    say = log or (lambda s: None)
    parent = Path(out_dir)
    if (parent / SEEDS_FILE).exists() and not overwrite:
        raise FileExistsError(f"{str(parent)!r} already holds a run over seeds ({SEEDS_FILE}); pass overwrite "
                              f"(--overwrite) to replace it or choose another folder.")
    cache = ReferenceCache(cache_dir if cache_dir is not None else parent.parent / ".references")
    neural = "neural" in baseline_kinds(cfg)
    results, refs = [], {}
    for i, seed in enumerate(seeds):
        say(f"Seed {seed} ({i + 1} of {len(seeds)}) ...")
        cfg_s = cfg.model_copy(deep=True)
        cfg_s.seed, cfg_s.seeds = seed, None
        prepared = data(cfg_s) if callable(data) else data if data is not None else _prepare(cfg_s)
        key = reference_key(cfg_s, prepared) if neural else None
        hit = cache.get(key) if key is not None else None
        if hit is not None:
            kinds = sorted(baseline_kinds(cfg) - {"neural"})
            cfg_s.baselines = cast(Any, kinds) if kinds else False
            say(f"Reusing the single-task references of seed {seed} from the cache ({cache.path(key or '')}).")
        res = _run_seed(cfg_s, prepared, parent / f"seed-{seed}", hit, progress=progress, log=log,
                        overwrite=overwrite)
        if hit is not None:
            _patch_references(res, hit)
        elif key is not None and res.summary.get("baselines"):
            cache.put(key, res.summary["baselines"], reference_inputs(cfg_s, prepared), res.run_dir)
        refs[str(seed)] = {"key": key, "cache": "hit" if hit is not None else ("stored" if key else None)}
        if report and res.run_dir is not None:
            from mtlkit.run.execute import write_report_safely

            write_report_safely(res.run_dir, say)
        results.append(res)
    record = aggregate_seeds([r.summary for r in results], seeds, confidence=confidence)
    record.update(name=cfg.name, references=refs, runs={str(s): f"seed-{s}" for s in seeds})
    _write_record(parent, record, report=report, say=say)
    return SeedsResult(parent, seeds, results, record)


def _write_record(parent: Path, record: dict[str, Any], *, report: bool, say: Log) -> None:
    """``seeds.json`` and, when asked, the report over the seeds (a broken report never loses
    the runs)."""
    from mtlkit._io import write_json

    parent.mkdir(parents=True, exist_ok=True)
    write_json(parent / SEEDS_FILE, record)
    if report:
        try:
            from mtlkit.report.seeds import write_seeds_report

            write_seeds_report(parent)
        except Exception as exc:
            say(f"warning: the seeds report could not be written: {exc}")


def _prepare(cfg: RunConfig) -> PreparedData:
    from mtlkit.run.data import prepare_from_config

    return prepare_from_config(cfg)


def _run_seed(cfg: RunConfig, prepared: PreparedData, out: Path, hit: dict[str, Any] | None, *,
              progress: bool, log: Log | None, overwrite: bool) -> Any:
    """One seed's run; with cached references (``hit``), its trackers log the summary
    completed with them (Δm included), as :func:`_patch_references` writes it afterwards."""
    from mtlkit.run.execute import run

    if hit is None:
        return run(cfg, prepared, out_dir=out, progress=progress, log=log, overwrite=overwrite, report=False)
    from mtlkit.tracking import amend_summary

    with amend_summary(lambda summary: with_references(summary, hit, prepared.tasks)):
        return run(cfg, prepared, out_dir=out, progress=progress, log=log, overwrite=overwrite, report=False)


def with_references(summary: dict[str, Any], hit: dict[str, Any], tasks: Sequence[Any]) -> dict[str, Any]:
    """``summary`` (a ``summary.json`` dict) completed with the cached single-task results of
    ``hit`` (a :class:`ReferenceCache` entry): the baselines, Δm and Δm_t against them, their
    totals, and the cache key."""
    from mtlkit.run.execute import set_delta_m
    from mtlkit.run.summary import ModelResult, Summary

    typed = Summary.from_dict(summary)
    typed.absent = None
    baselines = {k: ModelResult.from_dict(v) for k, v in hit["baselines"].items() if isinstance(v, dict)}
    typed.baselines = baselines
    mtl_test = (typed.mtl.test if typed.mtl is not None else None) or {}
    set_delta_m(typed, mtl_test, {k: v.test or {} for k, v in baselines.items()}, list(tasks))
    typed.stl_params_total = sum(v.params or 0 for v in baselines.values())
    typed.stl_inference_ms_total = sum(v.inference_ms or 0.0 for v in baselines.values())
    typed.extra["references_from_cache"] = hit.get("key")
    return typed.to_dict()


def _patch_references(res: Any, hit: dict[str, Any]) -> None:
    """Put the cached single-task results into the seed's summary (and Δm against them)."""
    from mtlkit.run.folder import RunFolder

    res.summary = with_references(res.summary, hit, res.tasks)
    if res.run_dir is not None:
        RunFolder(res.run_dir).write_summary(res.summary)


# ---------------------------------------------------------------------------------- aggregate
def aggregate_seeds(summaries: Sequence[dict[str, Any]], seeds: Sequence[int], *, confidence: float = 0.95
                    ) -> dict[str, Any]:
    """The content of ``seeds.json`` from the seeds' ``summary.json`` dicts (same order as
    ``seeds``): per task and metric the multi-task and single-task statistics and their
    paired test, Δm and Δm_t statistics, and the verdict per primary task."""
    first = summaries[0] if summaries else {}
    tasks = [t for t in first.get("tasks") or [] if isinstance(t, dict)]
    hib: dict[str, dict[str, bool]] = first.get("higher_is_better") or {}
    main: dict[str, str] = first.get("main_metric") or {}
    metrics: dict[str, Any] = {}
    for t in tasks:
        name = t["name"]
        per: dict[str, Any] = {}
        for metric in hib.get(name, {}):
            mtl = [_get(s, "mtl", "test", name, metric) for s in summaries]
            stl = [_get(s, "baselines", name, "test", metric) for s in summaries]
            entry: dict[str, Any] = {"mtl": describe(mtl, confidence=confidence)}
            if any(v is not None for v in stl):
                entry["stl"] = describe(stl, confidence=confidence)
                entry["paired"] = paired_test(mtl, stl)
            per[metric] = entry
        metrics[name] = per
    dm = describe([s.get("delta_m") for s in summaries], confidence=confidence)
    dm_t = {t["name"]: describe([(s.get("delta_m_per_task") or {}).get(t["name"]) for s in summaries],
                                confidence=confidence) for t in tasks}
    verdicts: dict[str, Any] = {}
    for t in tasks:
        name = t["name"]
        if t.get("role", "primary") != "primary" or dm_t[name]["n"] == 0:
            continue
        m = main.get(name)
        test = (metrics.get(name, {}).get(m) or {}).get("paired") if m else None
        v = verdict(dm_t[name], test, higher_is_better=bool(hib.get(name, {}).get(m or "", True)))
        verdicts[name] = {"verdict": v, "main_metric": m, "delta_m_t": dm_t[name],
                          "p": test.get("p") if test else None, "reason": _reason(v, dm_t[name], test, len(seeds))}
    return {
        "format_version": 1, "seeds": list(seeds), "n": len(seeds), "confidence": confidence,
        "tasks": tasks, "higher_is_better": hib, "main_metric": main,
        "delta_m_metrics": first.get("delta_m_metrics"),
        "delta_m": dm, "delta_m_per_task": dm_t, "metrics": metrics, "verdicts": verdicts,
        "negative_transfer": [n for n, v in verdicts.items() if v["verdict"] == HURTS],
        # which epoch's weights each seed kept (its best validation epoch), and by which score
        "best_epoch": [(s.get("mtl") or {}).get("best_epoch") for s in summaries],
        "epochs_run": [(s.get("mtl") or {}).get("epochs_run") for s in summaries],
        "selection": (first.get("mtl") or {}).get("selection"),
        "test": "paired t-test across seeds (scipy.stats.ttest_rel), Wilcoxon signed-rank from 6 seeds",
    }


def _reason(v: str, dm: dict[str, Any], test: dict[str, Any] | None, n: int) -> str:
    if n < 2:
        return "one seed gives no interval: run with --seeds 3 or more"
    lo, hi = dm.get("ci_low"), dm.get("ci_high")
    ci = f"Δm_t {dm['mean']:+.2f} %, {round(dm['confidence'] * 100)} % CI [{lo:+.2f}, {hi:+.2f}]" \
        if lo is not None and hi is not None else "Δm_t without interval"
    p = test.get("p") if test else None
    return f"{ci}; paired test p = {p:.3g}" if p is not None else ci


def _get(d: Any, *path: str) -> float | None:
    for p in path:
        if not isinstance(d, dict):
            return None
        d = d.get(p)
    return float(d) if isinstance(d, (int, float)) and not isinstance(d, bool) and math.isfinite(d) else None
