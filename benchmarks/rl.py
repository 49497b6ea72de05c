"""Multi-task RL: single vs shared vs Distral vs CARE on two task families, at fixed budgets.

    python benchmarks/rl.py                      # CartPole ×4 and Acrobot ×4, 3 seeds, 10k/20k/30k steps per task
    python benchmarks/rl.py --quick              # smoke run: 1 seed, 2,000 steps per task (about a minute)
    python benchmarks/rl.py --solve              # the single-task baseline on CartPole-v1 (threshold 475)

For each family, method and seed one agent is trained (A2C, the same settings for every
method: 4 environments per task, 16-step rollouts, Adam 1e-3, [64, 64] tanh) with the same
number of environment steps per task, and evaluated at each budget on 10 episodes per task
(greedy actions, sub-environment i reset with seed 10000 + i: the same start states for every
method). The tables give the mean evaluation return per task, mean ± sd over seeds, the Δm
against ``single`` (in %, higher is better: positive = higher returns than one agent per
task) and the environment steps per second of training (all tasks together, one torch thread;
evaluation excluded). Runs are sequential.

``--solve`` trains ``single`` on the standard CartPole-v1 alone for ``--solve-budget`` env
steps (default 100,000), evaluating every 10,000 steps, and says whether and when the mean
greedy return reaches the environment's threshold (475).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from typing import Any

import torch

FAMILIES: dict[str, list[dict[str, Any]]] = {
    "cartpole": [
        {"name": "standard", "env": "mtlkit/CartPole-v1", "kwargs": {"length": 0.5, "masspole": 0.1},
         "metadata": [0.5, 0.1]},
        {"name": "short_light", "env": "mtlkit/CartPole-v1", "kwargs": {"length": 0.25, "masspole": 0.05},
         "metadata": [0.25, 0.05]},
        {"name": "long", "env": "mtlkit/CartPole-v1", "kwargs": {"length": 1.0, "masspole": 0.1},
         "metadata": [1.0, 0.1]},
        {"name": "long_heavy", "env": "mtlkit/CartPole-v1", "kwargs": {"length": 1.0, "masspole": 0.5},
         "metadata": [1.0, 0.5]},
    ],
    "acrobot": [
        {"name": "standard", "env": "mtlkit/Acrobot-v1", "kwargs": {}, "metadata": [1.0, 1.0, 1.0]},
        {"name": "light_link2", "env": "mtlkit/Acrobot-v1", "kwargs": {"link_mass_2": 0.5},
         "metadata": [1.0, 1.0, 0.5]},
        {"name": "long_link1", "env": "mtlkit/Acrobot-v1", "kwargs": {"link_length_1": 1.3},
         "metadata": [1.3, 1.0, 1.0]},
        {"name": "heavy_link1", "env": "mtlkit/Acrobot-v1", "kwargs": {"link_mass_1": 2.0},
         "metadata": [1.0, 2.0, 1.0]},
    ],
}
METHODS = ["single", "shared", "distral", "care"]


def _pm(values: list[float | None], digits: int = 1) -> str:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return "–"
    if len(vals) == 1:
        return f"{vals[0]:.{digits}f}"
    return f"{statistics.fmean(vals):.{digits}f} ± {statistics.stdev(vals):.{digits}f}"


def _train(family: str, method: str, seed: int, budgets: list[int], episodes: int) -> dict[str, Any]:
    from mtlkit.rl import RLTrainer, parse_rl_config

    cfg = parse_rl_config({"kind": "rl", "name": f"{family}-{method}", "tasks": FAMILIES[family],
                           "methods": [method], "seeds": [seed], "budget": max(budgets),
                           "evaluation": {"episodes": episodes, "at_steps": budgets}})
    return RLTrainer(cfg, method, seed).fit()


def family_tables(family: str, methods: list[str], seeds: list[int], budgets: list[int],
                  episodes: int) -> dict[str, Any]:
    tasks = [t["name"] for t in FAMILIES[family]]
    results: dict[tuple[str, int], dict[str, Any]] = {}
    for method in methods:
        for seed in seeds:
            start = time.perf_counter()
            results[(method, seed)] = r = _train(family, method, seed, budgets, episodes)
            print(f"  {family} {method} seed {seed}: {time.perf_counter() - start:.0f} s, "
                  f"{r['env_steps_per_s']:,.0f} env steps/s", flush=True)
    out: dict[str, Any] = {"family": family, "tasks": tasks, "budgets": {}}
    for b in budgets:
        print(f"\n### {family} ×{len(tasks)} — {b:,} env steps per task, seeds {seeds}, {episodes} evaluation "
              f"episodes per task\n")
        head = ["method", *tasks, "mean", "Δm vs single % (↑)", "env steps/s"]
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        rows = {}
        for method in methods:
            per_task = {t: [results[(method, s)]["at_steps"][str(b)][t]["mean"] for s in seeds] for t in tasks}
            mean = [statistics.fmean(results[(method, s)]["at_steps"][str(b)][t]["mean"] for t in tasks)
                    for s in seeds]
            dms = []
            for s in seeds:
                if ("single", s) in results:
                    ref = results[("single", s)]["at_steps"][str(b)]
                    mine = results[(method, s)]["at_steps"][str(b)]
                    terms = [(mine[t]["mean"] - ref[t]["mean"]) / abs(ref[t]["mean"]) * 100
                             for t in tasks if ref[t]["mean"]]
                    dms.append(statistics.fmean(terms) if terms else None)
            rate = [results[(method, s)]["env_steps_per_s"] for s in seeds]
            cells = [method, *[_pm(per_task[t]) for t in tasks], _pm(mean),
                     "reference" if method == "single" else _pm(dms), _pm(rate, 0)]
            print("| " + " | ".join(cells) + " |")
            rows[method] = {"tasks": per_task, "mean": mean, "delta_m_vs_single": dms, "env_steps_per_s": rate}
        out["budgets"][b] = rows
    if "care" in methods:
        att = {t: [round(statistics.fmean(results[("care", s)]["attention"][t][j] for s in seeds), 2)
                   for j in range(len(results[("care", seeds[0])]["attention"][t]))] for t in tasks}
        print(f"\nCARE attention (mean over seeds): {att}")
        out["care_attention"] = att
    if "distral" in methods:
        kl = {t: round(statistics.fmean(results[("distral", s)]["kl"][t] for s in seeds), 4) for t in tasks}
        print(f"Distral KL(π_i ‖ π̂₀), last window (mean over seeds): {kl}")
        out["distral_kl"] = kl
    return out


def solve_check(seeds: list[int], budget: int, episodes: int) -> dict[str, Any]:
    from mtlkit.rl import RLTrainer, parse_rl_config

    every = list(range(10_000, budget + 1, 10_000))
    print(f"\n### single-task A2C on CartPole-v1: {budget:,} env steps, evaluation every 10,000 steps "
          f"({episodes} greedy episodes), threshold 475\n")
    print("| seed | return at the end | first budget with mean return ≥ 475 | env steps/s |")
    print("|---|---|---|---|")
    out = {}
    for seed in seeds:
        cfg = parse_rl_config({"kind": "rl", "name": "cartpole", "tasks": [{"name": "cartpole", "env": "CartPole-v1"}],
                               "methods": ["single"], "seeds": [seed], "budget": budget,
                               "evaluation": {"episodes": episodes, "at_steps": every}})
        r = RLTrainer(cfg, "single", seed).fit()
        first = next((int(b) for b in sorted(r["at_steps"], key=int)
                      if r["at_steps"][b]["cartpole"]["mean"] >= 475), None)
        final = r["final"]["cartpole"]["mean"]
        print(f"| {seed} | {final:.1f} | {'not reached' if first is None else f'{first:,}'} | "
              f"{r['env_steps_per_s']:,.0f} |", flush=True)
        out[seed] = {"final": final, "first_solved_at": first}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 seed, 2,000 steps per task, 3 evaluation episodes")
    ap.add_argument("--families", nargs="+", choices=sorted(FAMILIES), default=["cartpole", "acrobot"])
    ap.add_argument("--methods", nargs="+", choices=METHODS, default=METHODS)
    ap.add_argument("--seeds", nargs="+", type=int, default=None)
    ap.add_argument("--budgets", nargs="+", type=int, default=None, help="env steps per task")
    ap.add_argument("--episodes", type=int, default=None)
    ap.add_argument("--solve", action="store_true", help="only the single-task CartPole-v1 check")
    ap.add_argument("--solve-budget", type=int, default=100_000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    seeds = args.seeds or ([0] if args.quick else [0, 1, 2])
    budgets = sorted(args.budgets or ([2_000] if args.quick else [10_000, 20_000, 30_000]))
    episodes = args.episodes or (3 if args.quick else 10)
    start = time.perf_counter()
    figures: dict[str, Any] = {}
    if args.solve:
        figures["solve"] = solve_check(seeds, args.solve_budget if not args.quick else 10_000, episodes)
    else:
        for family in args.families:
            figures[family] = family_tables(family, args.methods, seeds, budgets, episodes)
    print(f"\ntotal wall time {time.perf_counter() - start:.0f} s (torch threads: {args.threads})")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(figures, fh, indent=2, default=str)


if __name__ == "__main__":
    main()
