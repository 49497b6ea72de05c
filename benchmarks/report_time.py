"""Time to write ``report.html`` for runs of different sizes.

    .venv/bin/python benchmarks/report_time.py                 # build the runs if missing (~1 min)
    .venv/bin/python benchmarks/report_time.py --rebuild       # train them again
    .venv/bin/python benchmarks/report_time.py --run big=/path/to/run_folder   # add a run

Run types (built once under ``--runs-dir``, default ``runs/report_bench``, then reused):

* ``demo``: ``mtlkit demo --quick``: MultiMNIST, 2 tasks of 10 classes, 2 epochs, with the
  single-task baselines: per-task curves, a bar chart, two 10×10 confusion-matrix pairs,
  gradient-conflict heatmaps and curves.
* ``yeast``: ``mtlkit train examples/yeast.yaml --set training.epochs=8``: 14 binary tasks
  with baselines: 14-panel curve grids, 3 bar panels of 14 groups, 14 confusion matrices,
  14×14 conflict heatmaps.

For each run the script writes the report in this process: once right away ("first", which
for the first run also pays matplotlib's import and font setup, as ``mtlkit train`` does),
then ``--repeats`` times; it prints the best wall-clock and process-CPU time of the repeats
(CPU time is not inflated by other jobs on a shared machine), the report's size and number of
plots. Speed is never asserted in the tests; this script only prints.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BUILD = {
    "demo": ["demo", "--quick", "--no-progress", "--threads", "1", "--out", "{out}"],
    "yeast": ["train", str(ROOT / "examples" / "yeast.yaml"), "--set", "training.epochs=8",
              "--no-progress", "--threads", "1", "--overwrite", "--out", "{out}"],
}


def build(name: str, out: Path, rebuild: bool) -> Path:
    if (out / "summary.json").exists() and not rebuild:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "mtlkit", *(a.format(out=out) for a in BUILD[name])]
    print(f"building {name}: {' '.join(cmd[2:])}", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    print(f"  built in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    return out


def describe(run: Path) -> tuple[int, int]:
    import json

    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    epochs = sum(1 for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip())
    return len(summary.get("tasks") or []), epochs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs-dir", type=Path, default=ROOT / "runs" / "report_bench")
    parser.add_argument("--rebuild", action="store_true", help="train the runs again")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", nargs="*", choices=sorted(BUILD), default=sorted(BUILD))
    parser.add_argument("--run", action="append", default=[], metavar="NAME=PATH",
                        help="also time an existing run folder")
    args = parser.parse_args()

    runs = {name: build(name, args.runs_dir / name, args.rebuild) for name in args.only}
    for spec in args.run:
        name, _, path = spec.partition("=")
        runs[name or Path(path).name] = Path(path)

    import torch

    torch.set_num_threads(1)
    from mtlkit.report import write_report

    rows = []
    for name, run in runs.items():
        tasks, epochs = describe(run)
        t0 = time.perf_counter()
        path = write_report(run)
        first = time.perf_counter() - t0
        walls, cpus = [], []
        for _ in range(args.repeats):
            w0, c0 = time.perf_counter(), time.process_time()
            write_report(run)
            walls.append(time.perf_counter() - w0)
            cpus.append(time.process_time() - c0)
        html = path.read_text(encoding="utf-8")
        rows.append((name, tasks, epochs, len(re.findall(r"<img ", html)), len(html) / 1024, first,
                     min(walls), min(cpus)))

    load = os.getloadavg()
    print(f"\nreport.html write time (best of {args.repeats}; load average "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {os.cpu_count()} cores)\n")
    print("| run | tasks | epochs | plots | report KB | first write s | wall s | CPU s |")
    print("|---|---|---|---|---|---|---|---|")
    for name, tasks, epochs, plots, kb, first, wall, cpu in rows:
        print(f"| {name} | {tasks} | {epochs} | {plots} | {kb:,.0f} | {first:.2f} | {wall:.2f} | {cpu:.2f} |")


if __name__ == "__main__":
    main()
