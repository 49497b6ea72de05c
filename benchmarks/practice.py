"""The source articles' practice cases, re-done over seeds with intervals and a verdict each.

    OMP_NUM_THREADS=1 python benchmarks/practice.py                 # all four cases, 5 seeds
    OMP_NUM_THREADS=1 python benchmarks/practice.py --only siamese  # one case
    python benchmarks/practice.py --tiny                            # smoke: 2 seeds, 1 epoch

Each case is one config in ``examples/practice/`` (the same YAML that ``mtlkit train CONFIG
--seeds 5`` runs) trained with :func:`mtlkit.run.run_seeds`: the multi-task model and its
single-task reference(s) on seeds 0..N-1 (the seed draws the train/validation split, the
initialisation and the batch order; each dataset's test set is fixed). The script prints the
markdown table pasted into ``docs/evidence.md``: per primary task the test metric of both
models as mean and 95 % Student-t interval over the seeds, Δm_t with its interval, the paired
t-test p and the verdict of :func:`mtlkit.evaluation.stats.verdict`, with the settings
(λ, epochs, sizes) next to the numbers and the CPU seconds each case took.

The siamese case first chooses λ of its auxiliary digit classifiers on the VALIDATION split
(on unless ``--no-choose-lambda``): the multi-task model alone is trained for each
λ of ``LAMBDA_GRID`` on the validation seeds ``VAL_SEEDS`` (disjoint from the test seeds) and the
λ with the best mean validation ROC AUC of ``same`` is used for the seeds table (ties: the
smaller λ). The test split plays no part in that choice.

Determinism: the same arguments print the same numbers (every run is seeded).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "practice"
LAMBDA_GRID = (0.1, 0.3, 1.0)
VAL_SEEDS = (100, 101, 102)


@dataclass(frozen=True)
class Case:
    key: str
    title: str
    config: str
    tiny: tuple[str, ...] = ()
    choose_lambda: bool = False
    notes: dict[str, str] = field(default_factory=dict)


CASES = (
    Case("deep_supervision", "Deep supervision: aux. head on conv1 (MultiMNIST)", "deep_supervision_multimnist.yaml",
         tiny=("training.epochs=1", "data.options={n_train: 80, n_test: 40}")),
    Case("timeseries", "Series statistics + Fourier aux. (JapaneseVowels)", "japanese_vowels_aux.yaml",
         tiny=("training.epochs=1",)),
    Case("siamese", "Siamese + aux. digit classifiers (MNIST pairs)", "siamese_mnist_aux.yaml",
         tiny=("training.epochs=1", "data.options={n_train: 80, n_test: 40}"), choose_lambda=True),
    Case("sp500", "10 related targets, one shared layer (SP500)", "sp500_targets.yaml",
         tiny=("training.epochs=1",)),
)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _fmt(d: dict[str, Any] | None, digits: int = 3) -> str:
    """``mean [lo, hi]`` of a :func:`describe` dict."""
    if not d or d.get("mean") is None:
        return "n/a"
    m = f"{d['mean']:.{digits}f}"
    if d.get("ci_low") is None:
        return m
    return f"{m} [{d['ci_low']:.{digits}f}, {d['ci_high']:.{digits}f}]"


def _fmt_dm(d: dict[str, Any] | None) -> str:
    if not d or d.get("mean") is None:
        return "n/a"
    if d.get("ci_low") is None:
        return f"{d['mean']:+.2f}"
    return f"{d['mean']:+.2f} [{d['ci_low']:+.2f}, {d['ci_high']:+.2f}]"


def _set_aux_weight(cfg: Any, lam: float) -> Any:
    """A copy of ``cfg`` whose auxiliary tasks all have weight ``lam``."""
    out = cfg.model_copy(deep=True)
    for t in out.tasks or []:
        if t.role == "auxiliary":
            t.weight = lam
    return out


def _aux_weights(cfg: Any) -> list[float]:
    weights = [t.weight for t in cfg.tasks or [] if t.role == "auxiliary"]
    weights += [a.get("weight", 0.1) if isinstance(a, dict) else getattr(a, "weight", 0.1)
                for a in cfg.auxiliary or []]
    return [float(w if w is not None else 0.1) for w in weights]


def choose_lambda(cfg: Any, out: Path, seeds: tuple[int, ...], grid: tuple[float, ...]) -> tuple[float, list[str]]:
    """λ with the best mean validation ROC AUC of the primary task (multi-task model only,
    no references), and the markdown lines of the choice table."""
    from mtlkit.run import prepare_from_config, run

    primary = next(t.name for t in cfg.tasks if t.role == "primary")
    lines = [f"λ chosen on the validation split (primary task {primary!r}, multi-task model only, seeds "
             f"{', '.join(map(str, seeds))}):", "", "| λ (each auxiliary head) | validation ROC AUC, mean ± sd |",
             "|---|---|"]
    scores: dict[float, float] = {}
    for lam in grid:
        vals = []
        for s in seeds:
            c = _set_aux_weight(cfg, lam)
            c.seed, c.baselines = s, False
            _log(f"  λ = {lam}, validation seed {s} ...")
            res = run(c, prepare_from_config(c), out_dir=out / f"lambda-{lam}" / f"seed-{s}", progress=False,
                      overwrite=True, report=False)
            vals.append(float(res.summary["mtl"]["val"][primary]["roc_auc"]))
        scores[lam] = statistics.fmean(vals)
        sd = f"{statistics.stdev(vals):.4f}" if len(vals) > 1 else "n/a"
        lines.append(f"| {lam:g} | {scores[lam]:.4f} ± {sd} |")
    best = max(grid, key=lambda lam: (scores[lam], -lam))
    lines += ["", f"Chosen: λ = {best:g}."]
    return best, lines


def run_case(case: Case, seeds: list[int], out: Path, *, tiny: bool, choose: bool) -> dict[str, Any]:
    """Train one case over ``seeds``; its rows and settings for the tables."""
    from mtlkit.config import load_config
    from mtlkit.run import run_seeds

    cfg = load_config(EXAMPLES / case.config, list(case.tiny) if tiny else None)
    t0 = time.process_time()
    extra: list[str] = []
    if case.choose_lambda and choose:
        grid = LAMBDA_GRID[:2] if tiny else LAMBDA_GRID
        vseeds = VAL_SEEDS[:1] if tiny else VAL_SEEDS
        lam, extra = choose_lambda(cfg, out / case.key / "choose-lambda", vseeds, grid)
        if lam not in _aux_weights(cfg) or len(set(_aux_weights(cfg))) != 1:
            extra.append(f"(the YAML {case.config} has λ = {_aux_weights(cfg)}; this table uses λ = {lam:g})")
        cfg = _set_aux_weight(cfg, lam)
    _log(f"{case.key}: {len(seeds)} seeds ...")
    res = run_seeds(cfg, seeds, out_dir=out / case.key, cache_dir=out / ".references", overwrite=True,
                    report=False, log=lambda m: _log("  " + m))
    cpu = time.process_time() - t0
    first = res.runs[0].summary
    sizes = first.get("sizes") or {}
    stopped = [r.summary.get("mtl", {}).get("best_epoch") for r in res.runs]
    settings = (f"λ = {', '.join(f'{w:g}' for w in sorted(set(_aux_weights(cfg))) ) or '1 (equal)'}; "
                f"{cfg.training.epochs} epochs{' (patience ' + str(cfg.training.patience) + ')' if cfg.training.patience else ''}; "
                f"train/val/test {sizes.get('train')}/{sizes.get('val')}/{sizes.get('test')}")
    return {"case": case, "record": res.record, "settings": settings, "cpu": cpu, "extra": extra,
            "best_epochs": stopped}


def _task_row(title: str, settings: str, rec: dict[str, Any], task: str, metric: str | None = None) -> str:
    """One row: the task's ``metric`` (default its main metric) for both models; Δm_t, p and the
    verdict only on the main metric's row (the verdict is the task's, from Δm_t over all the
    metrics that enter Δm and the paired test of the main one)."""
    main = rec["main_metric"][task]
    metric = metric or main
    m = rec["metrics"][task][metric]
    p = (m.get("paired") or {}).get("p")
    p_text = "n/a" if p is None else f"{p:.2g}"
    if metric != main:
        return (f"| {title} | {settings} | {task}: {metric} | {_fmt(m['mtl'])} | {_fmt(m.get('stl'))} | "
                f"(in Δm_t above) | {p_text} | |")
    v = rec["verdicts"].get(task, {})
    return (f"| {title} | {settings} | {task}: {metric} | {_fmt(m['mtl'])} | {_fmt(m.get('stl'))} | "
            f"{_fmt_dm(rec['delta_m_per_task'].get(task))} | {p_text} | {v.get('verdict', 'n/a')} |")


def print_tables(results: list[dict[str, Any]], seeds: list[int]) -> None:
    n = len(seeds)
    print(f"Practice cases, {n} seeds ({seeds[0]}–{seeds[-1]}); mean [95 % t-interval] over seeds; "
          "Δm_t in %, negative = multi-task better; p = paired t-test across seeds\n")
    print("| case | settings | task: test metric | multi-task | single-task | Δm_t % | p | verdict |")
    print("|---|---|---|---|---|---|---|---|")
    details = []
    for r in results:
        rec, case = r["record"], r["case"]
        primary = list(rec["verdicts"])
        if len(primary) <= 3:
            for t in primary:
                print(_task_row(case.title, r["settings"], rec, t))
                for metric in (rec.get("delta_m_metrics") or {}).get(t, []):
                    if metric != rec["main_metric"][t]:
                        print(_task_row(case.title, r["settings"], rec, t, metric))
            continue
        tally = {v: sum(1 for x in rec["verdicts"].values() if x["verdict"] == v) for v in
                 ("multi-task helps", "multi-task hurts", "no evidence at this budget")}
        print(f"| {case.title} | {r['settings']} | Δm over {len(primary)} tasks ({', '.join(rec['delta_m_metrics'][primary[0]])}) "
              f"| | | {_fmt_dm(rec['delta_m'])} | | {tally['multi-task helps']} helps / {tally['multi-task hurts']} "
              f"hurts / {tally['no evidence at this budget']} no evidence |")
        details.append(r)
    for r in details:
        rec = r["record"]
        print(f"\n{r['case'].title}, per target:\n")
        print("| target | settings | task: test metric | multi-task | single-task | Δm_t % | p | verdict |")
        print("|---|---|---|---|---|---|---|---|")
        for t in rec["verdicts"]:
            print(_task_row(t, "as above", rec, t).replace(f"| {t} | as above | {t}: ", f"| {t} | as above | "))
    for r in results:
        if r["extra"]:
            print(f"\n{r['case'].title}: " + "\n".join(r["extra"]))
    print("\nCPU seconds per case (one torch thread; references included): "
          + ", ".join(f"{r['case'].key} {r['cpu']:.0f}" for r in results))
    print("Best-validation epochs kept by the multi-task model, per seed: "
          + "; ".join(f"{r['case'].key} {r['best_epochs']}" for r in results))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=5, help="number of seeds (0..N-1); default 5")
    ap.add_argument("--only", action="append", choices=[c.key for c in CASES], help="run only this case (repeatable)")
    ap.add_argument("--out", type=Path, default=None, help="folder for the runs (default: a temporary folder)")
    ap.add_argument("--tiny", action="store_true", help="smoke mode: 2 seeds, 1 epoch, tiny data")
    ap.add_argument("--no-choose-lambda", action="store_true", help="siamese: use the YAML's λ instead of choosing it")
    args = ap.parse_args(argv)
    if isinstance(args.seeds, bool) or args.seeds < 2:
        ap.error(f"--seeds must be at least 2 (an interval needs two seeds). Got {args.seeds}.")
    import torch

    torch.set_num_threads(1)
    seeds = list(range(2 if args.tiny else args.seeds))
    cases = [c for c in CASES if not args.only or c.key in args.only]
    tmp = None
    if args.out is None:
        tmp = tempfile.TemporaryDirectory(prefix="mtlkit-practice-")
        out = Path(tmp.name)
    else:
        out = args.out
    try:
        results = [run_case(c, seeds, out, tiny=args.tiny, choose=not args.no_choose_lambda) for c in cases]
        print_tables(results, seeds)
    finally:
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    main()
