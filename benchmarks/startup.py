"""Start-up of the command line: ``mtlkit --help``, ``mtlkit list`` and a config with a typo.

    .venv/bin/python benchmarks/startup.py              # 7 runs of each
    .venv/bin/python benchmarks/startup.py --runs 3

Each command runs in a fresh process (``.venv/bin/mtlkit`` next to this interpreter), in turn,
``--runs`` times after one untimed run of each (which writes the bytecode cache, as installing
the package does); the table shows the median elapsed time and the median CPU time (user +
system) of the child process. On a machine shared with other work the elapsed time is
inflated by waiting for a core; the CPU time of these single-threaded commands is what the
elapsed time is on an idle machine. Goals (issue 22): ``--help`` <= 0.5 s, ``list`` <= 1.5 s,
a typo in a config reported <= 1.5 s.

The typo configs are ``examples/yeast.yaml`` with ``epochs`` misspelt (a key: caught by the
config's schema, before torch loads), with the weighting's name misspelt and with a value
out of range (``dwa`` with ``temperature: -1``; both found from the method files' source
before torch loads, :mod:`mtlkit.run.precheck`), with both the key and the name misspelt
(the schema's error lists the misspelt name too), and with the name misspelt in a config that
lists its own tasks (binary specs, as a table's config does; then a multilabel spec with its
loss and label columns next to a regression one of two outputs). The last row is a typo the
check without torch leaves to the full one (a task spec it does not vouch for, a segmentation
task: the task kinds are torch code; shown for information). ``mtlkit affinity``, ``tune``,
``distill`` and ``group --train`` check their config the same way (one row for ``affinity``).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


#: the children write their bytecode cache (as ``pip install`` does for an installed package):
#: with ``PYTHONDONTWRITEBYTECODE`` set, a source file changed since its last cache entry would
#: be compiled again at every start
_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(cmd: list[str]) -> tuple[float, float, int]:
    """Elapsed and CPU seconds of one run of ``cmd``, and its exit code."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT, env=_ENV)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, res.returncode


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    exe = str(Path(sys.executable).with_name("mtlkit"))
    tmp = Path(tempfile.mkdtemp(prefix="mtlkit-startup-"))
    text = (ROOT / "examples" / "yeast.yaml").read_text(encoding="utf-8")
    (tmp / "key.yaml").write_text(text.replace("epochs:", "epocs:"), encoding="utf-8")
    (tmp / "name.yaml").write_text(text.replace("name: equal", "name: equl"), encoding="utf-8")
    (tmp / "value.yaml").write_text(text.replace("{name: equal}", "{name: dwa, temperature: -1}"), encoding="utf-8")
    (tmp / "both.yaml").write_text(text.replace("epochs:", "epocs:").replace("name: equal", "name: equl"),
                                   encoding="utf-8")
    tasks = "".join(f"  - {{name: label_{i}, kind: binary}}\n" for i in range(14))
    (tmp / "tasks.yaml").write_text(text.replace("name: equal", "name: equl") + f"tasks:\n{tasks}",
                                    encoding="utf-8")
    cols = ", ".join(f"label_{i}" for i in range(12))
    mixed = (f"  - {{name: labels, kind: multilabel, num_labels: 12, loss: bce, columns: [{cols}]}}\n"
             "  - {name: last, kind: regression, dim: 2, loss: huber, columns: [label_12, label_13]}\n")
    (tmp / "mixed.yaml").write_text(text.replace("name: equal", "name: equl") + f"tasks:\n{mixed}",
                                    encoding="utf-8")
    other = "  - {name: labels, kind: segmentation, num_classes: 3, out_shape: [8, 8]}\n"
    (tmp / "full.yaml").write_text(text.replace("name: equal", "name: equl") + f"tasks:\n{other}",
                                   encoding="utf-8")
    cases = {
        "mtlkit --help": ([exe, "--help"], 0.5),
        "mtlkit list": ([exe, "list"], 1.5),
        "config typo (key)": ([exe, "train", str(tmp / "key.yaml"), "--out", str(tmp / "run")], 1.5),
        "config typo (component name)": ([exe, "train", str(tmp / "name.yaml"), "--out", str(tmp / "run")], 1.5),
        "config typo (parameter value)": ([exe, "train", str(tmp / "value.yaml"), "--out", str(tmp / "run")], 1.5),
        "config typo (key and component name)": ([exe, "train", str(tmp / "both.yaml"), "--out", str(tmp / "run")],
                                                 1.5),
        "config typo, with tasks:": ([exe, "train", str(tmp / "tasks.yaml"), "--out", str(tmp / "run")], 1.5),
        "config typo, with multilabel and regression tasks:": ([exe, "train", str(tmp / "mixed.yaml"), "--out",
                                                                str(tmp / "run")], 1.5),
        "mtlkit affinity, config typo (component name)": ([exe, "affinity", str(tmp / "name.yaml"), "--out",
                                                           str(tmp / "aff")], 1.5),
        "config typo, segmentation task (full check)": ([exe, "train", str(tmp / "full.yaml"), "--out",
                                                        str(tmp / "run")], None),
    }
    times: dict[str, list[tuple[float, float, int]]] = {k: [] for k in cases}
    for cmd, _goal in cases.values():  # one untimed run each: the bytecode cache, the file cache
        timed(cmd)
    for _ in range(args.runs):
        for name, (cmd, _goal) in cases.items():
            times[name].append(timed(cmd))
    load = os.getloadavg()
    print(f"{os.cpu_count()} CPUs, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}; "
          f"median of {args.runs} runs; command: python benchmarks/startup.py --runs {args.runs}\n")
    print("| command | elapsed s | CPU s | goal s | holds (CPU) | exit code |")
    print("|---|---:|---:|---:|---|---:|")
    for name, (_cmd, goal) in cases.items():
        wall = statistics.median(t[0] for t in times[name])
        cpu = statistics.median(t[1] for t in times[name])
        codes = sorted({t[2] for t in times[name]})
        holds = "—" if goal is None else ("yes" if cpu <= goal else "no")
        print(f"| {name} | {wall:.2f} | {cpu:.2f} | {goal if goal is not None else '—'} | {holds} | "
              f"{','.join(map(str, codes))} |")


if __name__ == "__main__":
    main()
