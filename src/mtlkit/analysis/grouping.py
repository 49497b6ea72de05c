"""Choose which tasks share a network, given their affinities and a budget of networks.

The network-selection step of TAG (Fifty et al. 2021, "Efficiently Identifying Task
Groupings for Multi-Task Learning", NeurIPS; the same formulation as Standley et al. 2020,
"Which Tasks Should Be Learned Together in Multi-task Learning?", ICML, with affinities in
place of trained networks' losses):

* a *group* is a set of tasks trained together in one network; a task may belong to several
  groups (a "helper" in one, served by another);
* the score of task ``j`` in group ``g`` is the affinity onto ``j`` from its group-mates.
  ``aggregate="mean"`` (default) averages it, ``(1/(|g|−1)) Σ_{i∈g, i≠j} Z[i, j]``, as the
  public network-selection code for TAG does (each task's summed affinity divided by its
  number of group-mates); ``aggregate="sum"`` keeps the total. A task alone in a group has
  no group-mates: its score is ``singleton_score`` (default 0, "no transfer"; that code
  scores singletons −10^6 when tasks may overlap, i.e. forbids them, which
  ``singleton_score=float("-inf")`` reproduces);
* each task is *served* by the chosen group (containing it) that gives it the highest
  score; choose at most ``networks`` groups covering every task so that the total of the
  served scores is maximal.

Exact search (``search="exact"``, default up to 12 tasks): the optimum splits the tasks into
at most G disjoint *served sets*; the best group for a served set S is the superset g ⊇ S
maximising Σ_{j∈S} score_j(g). Both steps are solved exactly by dynamic programming over
subsets (3^K work each), so the result equals brute force over all choices of G groups
(the tests check this). Beam search (``search="beam"``, default above 12 tasks) is a
documented heuristic: a beam over partitions of the tasks into at most G blocks (tasks
added in order of decreasing total |affinity|, a state scored by Σ_blocks Σ_{j∈block}
score_j(block)), then a local search that adds/removes helper tasks to/from groups and
moves tasks between groups while the objective improves. It returns a feasible grouping,
never better than the exact one.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mtlkit._text import plural
from mtlkit.analysis.affinity import AffinityResult

if TYPE_CHECKING:
    from mtlkit.config import RunConfig
    from mtlkit.run import PreparedData, RunResult

AGGREGATES = ("mean", "sum")
SEARCHES = ("auto", "exact", "beam")
EXACT_MAX_TASKS = 12
GROUPING_JSON = "grouping.json"


@dataclass
class Grouping:
    """The chosen groups: ``groups[k]`` is the task tuple of network ``k``; ``serving[t]``
    the index of the group that serves task ``t``; ``task_scores[t]`` its predicted
    (affinity) score there; ``total`` their sum."""

    groups: list[tuple[str, ...]]
    serving: dict[str, int]
    task_scores: dict[str, float]
    total: float
    networks: int
    aggregate: str = "mean"
    search: str = "exact"
    singleton_score: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def task_names(self) -> list[str]:
        return list(self.serving)

    def served_by(self, k: int) -> list[str]:
        """The tasks that group ``k`` serves."""
        return [t for t, g in self.serving.items() if g == k]

    def to_dict(self) -> dict[str, Any]:
        from mtlkit._io import to_jsonable

        return to_jsonable({
            "groups": [list(g) for g in self.groups], "serving": self.serving,
            "task_scores": self.task_scores, "total": self.total, "networks": self.networks,
            "aggregate": self.aggregate, "search": self.search, "singleton_score": self.singleton_score,
            "group_scores": [sum(self.task_scores[t] for t in self.served_by(k)) for k in range(len(self.groups))],
            "meta": self.meta})

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Grouping:
        ss = d.get("singleton_score", 0.0)
        return cls([tuple(g) for g in d["groups"]], {k: int(v) for k, v in d["serving"].items()},
                   {k: float("nan") if v is None else float(v) for k, v in d["task_scores"].items()},
                   float(d["total"]) if d.get("total") is not None else float("nan"), int(d["networks"]),
                   d.get("aggregate", "mean"), d.get("search", "exact"),
                   float("-inf") if ss is None else float(ss), dict(d.get("meta") or {}))

    def save(self, path: str | Path) -> Path:
        """Write the grouping as JSON (a folder gets ``grouping.json``)."""
        from mtlkit._io import write_json

        p = Path(path)
        if p.suffix.lower() != ".json":
            p = p / GROUPING_JSON
        return write_json(p, self.to_dict())

    def __str__(self) -> str:
        from mtlkit.analysis._format import fnum, text_table

        rows = []
        for k, g in enumerate(self.groups):
            served = self.served_by(k)
            helpers = [t for t in g if t not in served]
            score = sum(self.task_scores[t] for t in served)
            rows.append([f"group {k}", ", ".join(served) or "-", ", ".join(helpers) or "-", fnum(score)])
        head = (f"Task grouping: {plural(len(self.groups), 'network')} (budget {self.networks}), {self.search} search, "
                f"score = {self.aggregate} affinity onto each task from its group-mates")
        return (head + "\n" + text_table(["group", "serves", "helpers (also trained, not served)",
                                          "predicted score"], rows)
                + f"\ntotal predicted score: {fnum(self.total)}")


# ---------------------------------------------------------------------------- scores
def _as_matrix(affinity: AffinityResult | np.ndarray | Any, task_names: Sequence[str] | None
               ) -> tuple[np.ndarray, list[str]]:
    if isinstance(affinity, AffinityResult):
        z, names = affinity.matrix, list(affinity.task_names)
    elif hasattr(affinity, "to_numpy") and hasattr(affinity, "columns"):  # a DataFrame
        z, names = affinity.to_numpy(dtype=float), [str(c) for c in affinity.columns]
    else:
        z = np.asarray(affinity, dtype=float)
        names = None
    if task_names is not None:
        names = [str(t) for t in task_names]
    z = np.asarray(z, dtype=float)
    if z.ndim != 2 or z.shape[0] != z.shape[1] or z.shape[0] == 0:
        raise ValueError(f"The affinity must be a non-empty square K x K matrix. Got shape {z.shape}.")
    k = z.shape[0]
    if names is None:
        names = [f"task{i}" for i in range(k)]
    if len(names) != k or len(set(names)) != k:
        raise ValueError(f"Need {k} unique task names for a {k}x{k} matrix. Got {names}.")
    off = ~np.eye(k, dtype=bool)
    if not np.isfinite(z[off]).all():
        i, j = np.argwhere(~np.isfinite(z) & off)[0]
        raise ValueError(f"The affinity of {names[i]!r} onto {names[j]!r} is not finite ({z[i, j]}); the "
                         f"pair was never measured together. Fill it (e.g. np.nan_to_num) before grouping.")
    return z, names


def task_score(z: np.ndarray, group: Sequence[int], j: int, *, aggregate: str = "mean",
               singleton_score: float = 0.0) -> float:
    """Affinity onto task ``j`` from its group-mates in ``group`` (task indices).

    >>> z = np.array([[0, 1.0, 3.0], [2.0, 0, 0.5], [0.0, 4.0, 0]])
    >>> task_score(z, [0, 1, 2], 1), task_score(z, [0, 1, 2], 1, aggregate="sum"), task_score(z, [2], 2)
    (2.5, 5.0, 0.0)
    """
    mates = [i for i in group if i != j]
    if not mates:
        return float(singleton_score)
    s = float(sum(z[i, j] for i in mates))
    return s / len(mates) if aggregate == "mean" else s


def evaluate_groups(affinity: AffinityResult | np.ndarray, groups: Sequence[Sequence[str | int]], *,
                    task_names: Sequence[str] | None = None, aggregate: str = "mean",
                    singleton_score: float = 0.0, networks: int | None = None) -> Grouping:
    """Score given groups: each task is served by its best group. Every task must be covered.

    >>> z = np.array([[0, 0.9, -0.5], [0.8, 0, -0.4], [-0.3, -0.2, 0]])
    >>> g = evaluate_groups(z, [["a", "b"], ["c"]], task_names=["a", "b", "c"])
    >>> g.serving, round(g.total, 6)
    ({'a': 0, 'b': 0, 'c': 1}, 1.7)
    """
    _check_options(aggregate, singleton_score)
    z, names = _as_matrix(affinity, task_names)
    idx_groups = []
    for g in groups:
        ids = []
        for t in g:
            if isinstance(t, (int, np.integer)) and not isinstance(t, bool):
                ids.append(int(t))
            elif t in names:
                ids.append(names.index(t))
            else:
                raise KeyError(f"Unknown task {t!r} in a group; the tasks are {names}.")
        if not ids:
            raise ValueError("A group must hold at least one task.")
        idx_groups.append(sorted(set(ids)))
    return _finish(z, names, idx_groups, aggregate, singleton_score,
                   networks if networks is not None else len(idx_groups), "given")


def _finish(z: np.ndarray, names: list[str], groups: list[list[int]], aggregate: str, singleton_score: float,
            networks: int, search: str) -> Grouping:
    # dedupe, order groups by their first task, then serve each task by its best group
    uniq: list[list[int]] = []
    for g in groups:
        if g not in uniq:
            uniq.append(g)
    uniq.sort(key=lambda g: (g[0], len(g), g))
    serving: dict[str, int] = {}
    scores: dict[str, float] = {}
    for j, name in enumerate(names):
        best, arg = -math.inf, -1
        for k, g in enumerate(uniq):
            if j in g:
                s = task_score(z, g, j, aggregate=aggregate, singleton_score=singleton_score)
                if arg < 0 or s > best + 1e-12 or (abs(s - best) <= 1e-12 and len(g) < len(uniq[arg])):
                    best, arg = s, k
        if arg < 0:
            raise ValueError(f"Task {name!r} is in no group; every task must be covered.")
        serving[name], scores[name] = arg, best
    total = float(sum(scores.values()))
    return Grouping([tuple(names[i] for i in g) for g in uniq], serving, scores, total, networks,
                    aggregate, search, float(singleton_score))


def _check_options(aggregate: str, singleton_score: float) -> None:
    if aggregate not in AGGREGATES:
        raise ValueError(f"The 'aggregate' parameter must be one of {', '.join(AGGREGATES)}. Got {aggregate!r}.")
    if not isinstance(singleton_score, (int, float)) or isinstance(singleton_score, bool) or \
            math.isnan(singleton_score) or singleton_score == math.inf:
        raise ValueError(f"The 'singleton_score' parameter must be a float (or -inf to forbid singletons). "
                         f"Got {singleton_score!r}.")


# ---------------------------------------------------------------------------- search
def select_groups(affinity: AffinityResult | np.ndarray | Any, networks: int, *,
                  task_names: Sequence[str] | None = None, aggregate: str = "mean",
                  singleton_score: float = 0.0, search: str = "auto", beam_width: int = 32) -> Grouping:
    """Choose at most ``networks`` groups maximising the total served affinity (see the
    module docstring for the objective, the exact algorithm and the beam heuristic).

    Args:
        affinity: an :class:`~mtlkit.analysis.AffinityResult`, a K×K array or a DataFrame
            (``[i, j]`` = affinity of task i onto task j; the diagonal is ignored).
        networks: the budget G ≥ 1 of networks.
        task_names: names for an array's rows/columns.
        aggregate: ``"mean"`` (TAG's normalisation) or ``"sum"`` of the group-mates'
            affinities onto a task.
        singleton_score: the score of a task alone in its group.
        search: ``"exact"``, ``"beam"`` or ``"auto"`` (exact up to 12 tasks).
        beam_width: states kept by the beam search.

    Fifty et al. (2021), "Efficiently Identifying Task Groupings for Multi-Task Learning".

    >>> z = np.array([[0, .9, .8, -.5], [.9, 0, .7, -.6], [.8, .6, 0, -.4], [-.5, -.4, -.6, 0]])
    >>> g = select_groups(z, 2, task_names=["a", "b", "c", "d"])
    >>> g.groups, g.serving["d"]
    ([('a', 'b', 'c'), ('d',)], 1)
    """
    if not isinstance(networks, int) or isinstance(networks, bool) or networks < 1:
        raise ValueError(f"The 'networks' parameter must be a positive int. Got {networks!r}.")
    if search not in SEARCHES:
        raise ValueError(f"The 'search' parameter must be one of {', '.join(SEARCHES)}. Got {search!r}.")
    if not isinstance(beam_width, int) or isinstance(beam_width, bool) or beam_width < 1:
        raise ValueError(f"The 'beam_width' parameter must be a positive int. Got {beam_width!r}.")
    _check_options(aggregate, singleton_score)
    z, names = _as_matrix(affinity, task_names)
    k = len(names)
    if k == 1 and singleton_score == -math.inf:
        raise ValueError("One task alone cannot be grouped with singleton_score=-inf.")
    mode = search if search != "auto" else ("exact" if k <= EXACT_MAX_TASKS else "beam")
    if mode == "exact":
        groups = _exact(z, networks, aggregate, float(singleton_score))
    else:
        groups = _beam(z, networks, aggregate, float(singleton_score), beam_width)
    out = _finish(z, names, groups, aggregate, float(singleton_score), networks, mode)
    if not math.isfinite(out.total):
        raise ValueError(f"No grouping with {networks} network(s) gives every task a finite score "
                         f"(singleton_score={singleton_score}).")
    return out


def _bit_table(m: int) -> np.ndarray:
    """(2^m, m) 0/1 matrix: row r holds the bits of r."""
    r = np.arange(1 << m)
    return ((r[:, None] >> np.arange(m)) & 1).astype(np.int64)


def _exact(z: np.ndarray, networks: int, aggregate: str, singleton_score: float) -> list[list[int]]:
    k = z.shape[0]
    n = 1 << k
    tables = [_bit_table(m) for m in range(k + 1)]
    bits = tables[k].astype(float)                      # (n, k): membership of mask g
    pop = bits.sum(1)
    off = z - np.diag(np.diag(z))
    col = bits @ off                                    # Σ_{i∈g, i≠j} Z[i, j]
    s = col / np.maximum(pop - 1, 1)[:, None] if aggregate == "mean" else col
    s[pop == 1] = singleton_score
    # best[S] = max over groups g ⊇ S of Σ_{j∈S} score_j(g); groups visited small first, so ties
    # keep the smallest group
    best = np.full(n, -np.inf)
    best[0] = 0.0
    arg = np.zeros(n, dtype=np.int64)
    for g in sorted(range(1, n), key=lambda m: (int(pop[m]), m)):
        members = np.flatnonzero(bits[g])
        tb = tables[len(members)]
        subs = tb @ (1 << members)
        sg = s[g, members]
        vals = np.where(tb > 0, sg[None, :], 0.0).sum(1)
        better = vals > best[subs] + 1e-12
        better[0] = False
        best[subs[better]] = vals[better]
        arg[subs[better]] = g
    # F_l[mask]: best total of serving `mask` with at most l served sets
    f_prev = best.copy()
    choices: list[np.ndarray] = []
    for _ in range(2, min(networks, k) + 1):
        f = np.full(n, -np.inf)
        f[0] = 0.0
        ch = np.zeros(n, dtype=np.int64)
        for mask in range(1, n):
            low = mask & -mask
            rest = mask ^ low
            members = np.flatnonzero(bits[rest])
            subs = (tables[len(members)] @ (1 << members)) | low
            vals = best[subs] + f_prev[mask ^ subs]
            a = int(np.argmax(vals))
            f[mask], ch[mask] = vals[a], subs[a]
        choices.append(ch)
        f_prev = f
    blocks, mask = [], n - 1
    for ch in reversed(choices):
        if mask == 0:
            break
        sel = int(ch[mask])
        blocks.append(sel)
        mask ^= sel
    if mask:
        blocks.append(mask)
    return [sorted(np.flatnonzero(bits[int(arg[b])]).tolist()) for b in blocks]


def _total(z: np.ndarray, groups: list[list[int]], aggregate: str, singleton_score: float) -> float:
    k = z.shape[0]
    tot = 0.0
    for j in range(k):
        vals = [task_score(z, g, j, aggregate=aggregate, singleton_score=singleton_score) for g in groups if j in g]
        if not vals:
            return -math.inf
        tot += max(vals)
    return tot


def _beam(z: np.ndarray, networks: int, aggregate: str, singleton_score: float, width: int
          ) -> list[list[int]]:
    k = z.shape[0]
    off = np.abs(z - np.diag(np.diag(z)))
    order = sorted(range(k), key=lambda j: (-(off[j].sum() + off[:, j].sum()), j))

    def block_value(b: tuple[int, ...]) -> float:
        return sum(task_score(z, b, j, aggregate=aggregate, singleton_score=singleton_score) for j in b)

    states: list[tuple[tuple[int, ...], ...]] = [()]
    for j in order:
        cand: dict[tuple[tuple[int, ...], ...], float] = {}
        for st in states:
            options = [(*st[:b], tuple(sorted((*st[b], j))), *st[b + 1:]) for b in range(len(st))]
            if len(st) < networks:
                options.append((*st, (j,)))
            for o in options:
                key = tuple(sorted(o))
                if key not in cand:
                    cand[key] = sum(block_value(b) for b in key)
        states = [s for s, _ in sorted(cand.items(), key=lambda kv: (-kv[1], kv[0]))[:width]]
    best_groups, best_total = None, -math.inf
    for st in states:
        groups = [list(b) for b in st]
        groups, tot = _local_search(z, groups, networks, aggregate, singleton_score)
        if tot > best_total + 1e-12:
            best_groups, best_total = groups, tot
    assert best_groups is not None
    return best_groups


def _local_search(z: np.ndarray, groups: list[list[int]], networks: int, aggregate: str,
                  singleton_score: float) -> tuple[list[list[int]], float]:
    k = z.shape[0]
    cur = _total(z, groups, aggregate, singleton_score)
    while True:
        best_move, best_val = None, cur
        for gi in range(len(groups)):
            for t in range(k):
                trial = [list(g) for g in groups]
                if t in trial[gi]:
                    if len(trial[gi]) == 1:
                        continue
                    trial[gi].remove(t)  # drop a member (helper) from this group
                    moves = [trial]
                    for gj in range(len(groups)):  # ... or move it to another group
                        if gj != gi and t not in groups[gj]:
                            mv = [list(g) for g in trial]
                            mv[gj] = sorted((*mv[gj], t))
                            moves.append(mv)
                else:
                    trial[gi] = sorted((*trial[gi], t))  # add t as a member
                    moves = [trial]
                for mv in moves:
                    val = _total(z, mv, aggregate, singleton_score)
                    if val > best_val + 1e-12:
                        best_move, best_val = mv, val
        if best_move is None:
            return groups, cur
        groups, cur = best_move, best_val


# ---------------------------------------------------------------------------- training
def restrict_prepared(prepared: PreparedData, names: Sequence[str]) -> PreparedData:
    """The same splits and preprocessing with only the tasks ``names`` (no data copied)."""
    keep = [t for t in prepared.tasks if t.name in set(names)]
    missing = sorted(set(names) - {t.name for t in keep})
    if missing:
        raise KeyError(f"Task(s) {missing} are not in the data; its tasks are {[t.name for t in prepared.tasks]}.")
    kn = [t.name for t in keep]

    def cut(d):
        out = copy.copy(d)
        out.targets = {k: d.targets[k] for k in kn}
        out.masks = {k: d.masks[k] for k in kn}
        out.tasks = list(keep)
        return out

    return dataclasses.replace(prepared, train=cut(prepared.train), val=cut(prepared.val),
                               test=cut(prepared.test), tasks=list(keep))


def restrict_config(cfg: RunConfig, prepared: PreparedData, names: Sequence[str], *, name: str) -> RunConfig:
    """A copy of ``cfg`` whose tasks are ``names`` (no baselines; a monitor naming another
    task is dropped)."""
    from mtlkit.config import TaskConfig

    out = cfg.model_copy(deep=True)
    out.name = name
    out.baselines = False
    # fitted statistics (a standardised target's mean/std) are refitted when the group trains
    keys = set(TaskConfig.model_fields)
    out.tasks = [TaskConfig(**{k: v for k, v in t.to_dict().items() if k in keys})
                 for t in prepared.tasks if t.name in set(names)]
    mon = out.training.monitor
    if mon and mon.partition(":")[0] not in set(names):
        out.training.monitor = None
    return out


@dataclass
class GroupTrainingResult:
    """Per-task test metrics of the grouped networks, the all-in-one model and the
    single-task baselines, with Δm's (negative = better than the reference)."""

    summary: dict[str, Any]

    def table(self, metric: str | None = None) -> str:
        """One row per task: the metric (default: each task's main metric) for STL,
        all-in-one and the grouped network serving the task; then the Δm lines."""
        from mtlkit.analysis._format import fnum, text_table

        s = self.summary
        rows = []
        for t in s["tasks"]:
            name = t["name"]
            m = metric or s["main_metric"][name]
            rows.append([name, f"group {s['serving'][name]}", m, fnum(s["stl"][name].get(m)),
                         fnum(s["all_in_one"]["test"][name].get(m)), fnum(s["grouped"]["test"][name].get(m))])
        dm = s["delta_m"]
        lines = [text_table(["task", "served by", "metric", "single-task", "all-in-one", "grouped"], rows), "",
                 f"Δm all-in-one vs single-task: {fnum(dm['all_in_one_vs_stl'], 2)} %",
                 f"Δm grouped    vs single-task: {fnum(dm['grouped_vs_stl'], 2)} %",
                 f"Δm grouped    vs all-in-one:  {fnum(dm['grouped_vs_all_in_one'], 2)} %",
                 "(Δm over every metric of every primary task; negative = better than the reference)",
                 f"parameters: grouped {s['params']['grouped']:,} ({plural(len(s['groups']), 'network')}), all-in-one "
                 f"{s['params']['all_in_one']:,}, single-task {s['params']['stl']:,}"]
        return "\n".join(lines)


def train_groups(cfg: RunConfig, grouping: Grouping, *, prepared: PreparedData | None = None,
                 out_dir: str | Path | None = None, progress: bool = False,
                 log: Callable[[str], None] | None = None, overwrite: bool = False,
                 all_in_one: RunResult | None = None) -> GroupTrainingResult:
    """Train one multi-task network per group (the config's settings, its tasks restricted
    to the group, the same data split), the all-in-one model and the single-task baselines;
    evaluate each task with the network that serves it and report Δm against the baselines
    and against all-in-one.

    ``all_in_one``: a finished :func:`mtlkit.run.run` of the same config and
    ``prepared`` data, with baselines, to reuse instead of training it again.
    Run folders go to ``out_dir/all_in_one`` and ``out_dir/group_<k>`` when ``out_dir`` is
    given; the comparison to ``out_dir/groups_comparison.json``."""
    from mtlkit._io import write_json
    from mtlkit.evaluation.delta_m import delta_m, delta_m_per_task
    from mtlkit.run import prepare_from_config, run, validate

    say = log or (lambda s: None)
    validate(cfg)  # every problem of the config at once, before the data loads
    cfg = cfg.model_copy(deep=True)
    cfg.baselines = True
    prepared = prepared if prepared is not None else prepare_from_config(cfg)
    names = [t.name for t in prepared.tasks]
    if set(grouping.serving) != set(names):
        raise ValueError(f"The grouping covers tasks {sorted(grouping.serving)} but the config has "
                         f"{sorted(names)}; compute the affinity with the same config.")
    out = Path(out_dir) if out_dir is not None else None
    if all_in_one is None:
        say(f"All-in-one model on {plural(len(names), 'task')}, with single-task baselines ...")
        aio = run(cfg, prepared, out_dir=out / "all_in_one" if out else None, progress=progress, log=say,
                  overwrite=overwrite)
    else:
        aio = all_in_one
        if not aio.summary.get("baselines") or set(aio.summary["mtl"]["test"]) != set(names):
            raise ValueError("all_in_one must be a run of the same tasks with single-task baselines.")
    stl = {k: v["test"] for k, v in (aio.summary.get("baselines") or {}).items()}
    group_summaries = []
    for k, g in enumerate(grouping.groups):
        say(f"Group {k}: {', '.join(g)} ...")
        cfg_k = restrict_config(cfg, prepared, g, name=f"{cfg.name}-group{k}")
        res = run(cfg_k, restrict_prepared(prepared, g), out_dir=out / f"group_{k}" if out else None,
                  progress=progress, log=say, overwrite=overwrite)
        group_summaries.append(res.summary["mtl"])
    grouped = {t: group_summaries[grouping.serving[t]]["test"][t] for t in names}
    aio_test = aio.summary["mtl"]["test"]
    tasks = prepared.tasks
    summary = {
        "name": cfg.name, "tasks": [t.to_dict() for t in tasks],
        "main_metric": {t.name: t.main_metric for t in tasks},
        "groups": [list(g) for g in grouping.groups], "serving": grouping.serving,
        "predicted_scores": grouping.task_scores, "grouping": grouping.to_dict(),
        "stl": stl, "all_in_one": {"test": aio_test, "params": aio.summary["mtl"]["params"]},
        "group_runs": [{"tasks": list(g), "test": s["test"], "params": s["params"]}
                       for g, s in zip(grouping.groups, group_summaries)],
        "grouped": {"test": grouped},
        "delta_m": {"all_in_one_vs_stl": delta_m(aio_test, stl, tasks),
                    "grouped_vs_stl": delta_m(grouped, stl, tasks),
                    "grouped_vs_all_in_one": delta_m(grouped, aio_test, tasks)},
        "delta_m_per_task": {"all_in_one_vs_stl": delta_m_per_task(aio_test, stl, tasks),
                             "grouped_vs_stl": delta_m_per_task(grouped, stl, tasks)},
        "params": {"grouped": int(sum(s["params"] for s in group_summaries)),
                   "all_in_one": int(aio.summary["mtl"]["params"]),
                   "stl": int(aio.summary.get("stl_params_total") or 0)},
        "sign_convention": "Δm in %, negative means better than the reference.",
    }
    if out is not None:
        write_json(out / "groups_comparison.json", summary)
    return GroupTrainingResult(summary)
