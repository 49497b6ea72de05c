"""Inter-task affinity: which task's training step helps which other task.

Two measurements, both returning an :class:`AffinityResult` (a K×K matrix, rows = source
task ``i``, columns = target task ``j``):

* ``"tag"`` — the look-ahead affinity of TAG (Fifty et al. 2021). At every ``every``-th
  training step, for each task ``i``: take one SGD step on the *shared* parameters with task
  ``i``'s gradient only, measure every task's loss on the same batch before and after,

      Z_{i→j} = 1 − L_j(θ_s − η ∇_{θ_s} L_i, θ_j) / L_j(θ_s, θ_j),

  then restore the shared parameters bit for bit. Z_{i→j} > 0 means i's update lowered j's
  loss. The step's matrices are averaged over the measured steps.
* ``"cosine"`` — the cheap alternative: the average pairwise cosine similarity of the task
  gradients with respect to the shared representation, as logged by the trainer's conflict
  monitor (``record["conflicts"]["cosine_matrix"]``), averaged over epochs. Symmetric.

Reading the matrix: Z is measured at the current task heads. With separate trainable heads
(hard sharing), a task whose target is the negation of another's is *not* in conflict: its
head learns the opposite sign, both tasks want the same shared features, and TAG reports a
positive affinity once the heads have adapted. Negative affinities come from tasks that need
incompatible shared features, or that read the same output (as the tests plant it).

Choices where the paper leaves room (documented in :func:`lookahead_affinity`): the
look-ahead uses plain SGD with the optimiser's current learning rate (or ``lookahead_lr``),
only the shared parameters move (task heads stay at θ_j, as in the paper's definition), and
the measurement forwards run in eval mode, so dropout draws no random numbers and batch-norm
statistics do not move: training with the measurement is identical to training without it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from mtlkit.jacobian import jacobian
from mtlkit.tasks import Task, check_tasks
from mtlkit.training.callbacks import Callback
from mtlkit.training.trainer import Trainer

if TYPE_CHECKING:
    from mtlkit.config import RunConfig
    from mtlkit.data._dataset import MultiTaskData

METHODS = ("tag", "cosine")
CONVENTION = "matrix[i][j] = affinity of source task i onto target task j (rows: whose step, columns: whose loss)"
MATRIX_JSON = "affinity.json"
MATRIX_CSV = "affinity.csv"
HEATMAP = "affinity.png"


# ---------------------------------------------------------------------------- result
@dataclass
class AffinityResult:
    """A K×K task-affinity matrix: ``matrix[i, j]`` is the affinity of task ``i`` onto task
    ``j`` (row = the task whose gradient step is taken, column = the task whose loss is
    measured). ``counts[i, j]`` is how many measurements were averaged (steps for
    ``"tag"``, epochs for ``"cosine"``); NaN marks a pair never measured.

    >>> r = AffinityResult(np.array([[0.0, 0.2], [0.1, 0.0]]), ["a", "b"], "tag")
    >>> float(r.to_frame().loc["a", "b"]), r.onto("a")
    (0.2, {'b': 0.1})
    """

    matrix: np.ndarray
    task_names: list[str]
    method: str
    counts: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.matrix = np.asarray(self.matrix, dtype=np.float64)
        self.task_names = [str(n) for n in self.task_names]
        k = len(self.task_names)
        if self.matrix.shape != (k, k):
            raise ValueError(f"The affinity matrix must be {k}x{k} for {k} task names. "
                             f"Got shape {self.matrix.shape}.")
        if len(set(self.task_names)) != k:
            raise ValueError(f"Task names must be unique. Got {self.task_names}.")
        if self.counts is not None:
            self.counts = np.asarray(self.counts, dtype=np.float64)
            if self.counts.shape != (k, k):
                raise ValueError(f"'counts' must be {k}x{k}. Got shape {self.counts.shape}.")

    def to_frame(self):
        """The matrix as a pandas DataFrame (index: source task, columns: target task)."""
        import pandas as pd

        df = pd.DataFrame(self.matrix, index=self.task_names, columns=self.task_names)
        df.index.name = "source"
        return df

    def onto(self, task: str) -> dict[str, float]:
        """Affinity of every other task onto ``task`` (a column without its diagonal)."""
        if task not in self.task_names:
            raise KeyError(f"Unknown task {task!r}; the tasks are {self.task_names}.")
        j = self.task_names.index(task)
        return {n: float(self.matrix[i, j]) for i, n in enumerate(self.task_names) if i != j}

    def to_dict(self) -> dict[str, Any]:
        from mtlkit._io import to_jsonable

        return {"method": self.method, "convention": CONVENTION, "task_names": self.task_names,
                "matrix": to_jsonable(self.matrix), "counts": to_jsonable(self.counts),
                "meta": to_jsonable(self.meta)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AffinityResult:
        try:
            names, method = d["task_names"], d.get("method", "unknown")
            mat = np.array([[np.nan if v is None else v for v in row] for row in d["matrix"]], dtype=float)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"Not an affinity matrix record (needs 'task_names' and 'matrix'): {exc}") from None
        counts = d.get("counts")
        cnt = None if counts is None else np.array([[0 if v is None else v for v in r] for r in counts], float)
        return cls(mat, names, method, cnt, dict(d.get("meta") or {}))

    @classmethod
    def load(cls, path: str | Path) -> AffinityResult:
        """Read ``affinity.json``, a CSV matrix (first column = source task names, header =
        target task names) or a folder holding ``affinity.json``."""
        p = Path(path)
        if p.is_dir():
            p = p / MATRIX_JSON
        if not p.exists():
            raise FileNotFoundError(f"No affinity matrix at {str(p)!r}.")
        if p.suffix.lower() == ".json":
            try:
                return cls.from_dict(json.loads(p.read_text(encoding="utf-8")))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{str(p)!r} is not valid JSON: {exc}") from None
        if p.suffix.lower() == ".csv":
            import pandas as pd

            df = pd.read_csv(p, index_col=0)
            names = [str(c) for c in df.columns]
            if [str(i) for i in df.index] != names:
                raise ValueError(f"{str(p)!r}: the row names {list(df.index)} must equal the column "
                                 f"names {names} (a square task-by-task matrix).")
            return cls(df.to_numpy(dtype=float), names, "unknown", None, {"source": str(p)})
        raise ValueError(f"Unknown affinity file type {p.suffix!r} of {str(p)!r}; give a .json or .csv file.")

    def save(self, out_dir: str | Path, *, plot: bool = True) -> dict[str, Path]:
        """Write ``affinity.json``, ``affinity.csv`` and (``plot``) ``affinity.png`` into
        ``out_dir``; with a config in ``meta["config"]`` also ``config.yaml`` (so that
        ``mtlkit group OUT_DIR --train`` finds it). Returns the paths written."""
        import yaml

        from mtlkit._io import atomic_write, write_json

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"json": write_json(out / MATRIX_JSON, self.to_dict()),
                 "csv": atomic_write(out / MATRIX_CSV, self.to_frame().to_csv(float_format="%.8g"))}
        if plot:
            paths["png"] = self.plot(out / HEATMAP)
        cfg = self.meta.get("config")
        if isinstance(cfg, dict):
            paths["config"] = atomic_write(out / "config.yaml", yaml.safe_dump(cfg, sort_keys=False))
        return paths

    def plot(self, path: str | Path, *, title: str | None = None) -> Path:
        """A heatmap PNG (diverging colours centred at 0, the diagonal left out of the colour
        scale; values printed for up to 20 tasks, in a power-of-ten unit when they are tiny; long task
        names replaced by codes that a key under the plot spells out), drawn like the report's
        heatmaps (:func:`mtlkit.report.plots.heatmaps`)."""
        import base64

        from mtlkit.report import plots

        k = len(self.task_names)
        finite = self.matrix[np.isfinite(self.matrix) & ~np.eye(k, dtype=bool)]
        lim = float(np.abs(finite).max()) if finite.size else 1.0
        lim = lim if lim > 0 else 1.0
        label = {"tag": "TAG look-ahead affinity Z(i→j)", "cosine": "gradient cosine (i, j)"}
        spec = {"matrix": self.matrix.tolist(), "title": "", "xticks": self.task_names,
                "yticks": self.task_names, "xlabel": "target task j (whose loss)",
                "ylabel": "source task i (whose step)", "cmap": "RdBu", "vmin": -lim, "vmax": lim,
                "cbar": "affinity" if self.method == "tag" else "cosine"}
        png = plots.heatmaps(title or label.get(self.method, "task affinity"), [spec], ncols=1)
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(base64.b64decode(png or ""))
        return p

    def __str__(self) -> str:
        from mtlkit.analysis._format import text_table

        names = list(self.task_names)
        # long names would make every column wide: the columns get codes, the rows say them
        cols = [f"T{i + 1}" for i in range(len(names))] if max(map(len, names), default=0) > 10 else names
        rows = [[f"{cols[i]} {names[i]}" if cols is not names else names[i], *(_short(v) for v in self.matrix[i])]
                for i in range(len(names))]
        head = f"{self.method} affinity ({CONVENTION})"
        return head + "\n" + text_table(["i \\ j", *cols], rows)


def _short(v: float) -> str:
    if not math.isfinite(v):
        return "n/a"
    if v != 0 and abs(v) < 1e-2:
        return f"{v:.1e}"
    return f"{v:.3f}"


# ---------------------------------------------------------------------------- TAG core
def shared_parameters_of(model: nn.Module) -> list[nn.Parameter]:
    """The trainable shared parameters of an mtlkit-style model (``shared_parameters()``)."""
    fn = getattr(model, "shared_parameters", None)
    if not callable(fn):
        raise ValueError(f"TAG needs the shared parameters: {type(model).__name__} has no "
                         f"shared_parameters() method (mtlkit architectures have one).")
    params = [p for p in fn() if p.requires_grad]
    if not params:
        raise ValueError(f"{type(model).__name__}.shared_parameters() yields no trainable parameter; "
                         f"nothing is shared, so there is no inter-task affinity to measure.")
    return params


def lookahead_affinity(model: nn.Module, tasks: Sequence[Task], batch: tuple[Tensor, dict, dict], *,
                       lr: float) -> Tensor:
    """One TAG measurement on one batch: the K×K matrix Z with
    ``Z[i, j] = 1 − L_j(after i's step) / L_j(before)`` (float64, NaN where undefined:
    task i or j unlabelled in the batch, or L_j = 0).

    Fifty, Amid, Zhao, Yu, Anil, Finn (2021), "Efficiently Identifying Task Groupings for
    Multi-Task Learning", NeurIPS. The step is θ_s ← θ_s − lr·∇_{θ_s} L_i on the shared
    parameters only; the heads keep their values. Choices the paper leaves open: losses are
    the tasks' own (unweighted) losses; the forwards run in eval mode (no dropout noise, no
    batch-norm update, so the measurement leaves no trace); the shared parameters are
    restored by copying saved tensors back, which is exact to the bit.

    >>> import torch
    >>> from mtlkit import HardSharing, Task
    >>> from mtlkit.architectures.backbones import mlp
    >>> _ = torch.manual_seed(0)
    >>> tasks = [Task("a", "regression"), Task("b", "regression")]
    >>> m = HardSharing(mlp(3, (8,)), tasks)
    >>> x = torch.randn(32, 3); y = x[:, :1]
    >>> z = lookahead_affinity(m, tasks, (x, {"a": y, "b": y}, {"a": y == y, "b": y == y}), lr=0.1)
    >>> z.shape, bool(z[0, 0] > 0), bool(z[1, 1] > 0)  # a task's own step lowers its loss
    (torch.Size([2, 2]), True, True)
    """
    if not (isinstance(lr, (int, float)) and not isinstance(lr, bool) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"The 'lr' parameter of lookahead_affinity must be a positive float. Got {lr!r}.")
    tasks = check_tasks(tasks)
    shared = shared_parameters_of(model)
    x, ys, ms = batch
    dev = shared[0].device
    x = x.to(dev)
    k = len(tasks)
    z = torch.full((k, k), float("nan"), dtype=torch.float64)
    saved = [p.detach().clone() for p in shared]
    was_training = model.training
    try:
        model.eval()
        with torch.enable_grad():
            out = model(x)
            losses = [t.compute_loss(out[t.name], ys[t.name].to(dev), ms[t.name].to(dev)) for t in tasks]
        before = torch.stack([loss.detach() for loss in losses]).double().cpu()
        present = [bool(ms[t.name].any()) and math.isfinite(float(before[i])) for i, t in enumerate(tasks)]
        sources = [i for i in range(k) if present[i]]
        targets = [j for j in sources if float(before[j]) > 0]
        if not sources:
            return z
        jac = jacobian([losses[i] for i in sources], shared, retain_graph=False).detach()
        sizes = [p.numel() for p in shared]
        for row, i in enumerate(sources):
            with torch.no_grad():
                for p, s, g in zip(shared, saved, jac[row].split(sizes)):
                    p.copy_(s - lr * g.view_as(p).to(p.dtype))
                out2 = model(x)
                for j in targets:
                    t = tasks[j]
                    after = float(t.compute_loss(out2[t.name], ys[t.name].to(dev), ms[t.name].to(dev)))
                    z[i, j] = 1.0 - after / float(before[j])
    finally:
        with torch.no_grad():
            for p, s in zip(shared, saved):
                p.copy_(s)
        model.train(was_training)
    return z


class AffinityTrainer(Trainer):
    """A :class:`~mtlkit.training.Trainer` that measures the TAG affinity while it trains.

    Before every ``every``-th optimisation step it runs :func:`lookahead_affinity` on the
    step's batch (learning rate: ``lookahead_lr``, default the optimiser's current one) and
    accumulates the matrix; :meth:`affinity` returns the average. The measurement leaves
    parameters, gradients, optimiser state and random numbers untouched, so the trained
    model equals the one a plain :class:`Trainer` produces. Accumulators are part of
    :meth:`state_dict`, so a resumed run continues the average.

    Fifty et al. (2021), "Efficiently Identifying Task Groupings for Multi-Task Learning".

    Args:
        every: measure at steps 0, every, 2·every, ... (cost: K extra forwards and K
            gradient rows per measured step).
        lookahead_lr: the look-ahead SGD learning rate (default: the optimiser's).
        All other arguments are :class:`Trainer`'s.

    >>> import torch
    >>> from mtlkit import HardSharing, Task, from_arrays
    >>> from mtlkit.architectures.backbones import mlp
    >>> _ = torch.manual_seed(0)
    >>> x = torch.randn(200, 4); y = (x[:, 0] > 0).float()
    >>> tasks = [Task("a", "binary"), Task("b", "binary")]
    >>> data = from_arrays(x.numpy(), {"a": y.numpy(), "b": y.numpy()}, tasks)
    >>> tr = AffinityTrainer(HardSharing(mlp(4, (8,)), tasks), tasks, every=2, epochs=2, progress=False)
    >>> _ = tr.fit(data)
    >>> res = tr.affinity()
    >>> res.matrix.shape, tr.affinity_steps, bool((res.matrix.diagonal() > 0).all())
    ((2, 2), 4, True)
    """

    def __init__(self, model: nn.Module, tasks: Sequence[Task], *, every: int = 1,
                 lookahead_lr: float | None = None, **kwargs: Any) -> None:
        super().__init__(model, tasks, **kwargs)
        self.lookahead = Lookahead(self, every=every, lookahead_lr=lookahead_lr)
        self.add_callback(self.lookahead)

    @classmethod
    def from_trainer(cls, trainer: Trainer, *, every: int = 1, lookahead_lr: float | None = None
                     ) -> AffinityTrainer:
        """An AffinityTrainer with the parts and settings of an existing (not yet fitted)
        ``trainer``, e.g. one built by :func:`mtlkit.run.make_trainer`, its communication
        object included (so it runs under torchrun like any training)."""
        if not isinstance(trainer, Trainer):
            raise TypeError(f"Expected a mtlkit Trainer. Got {type(trainer).__name__}.")
        return cls(trainer.model, trainer.tasks, every=every, lookahead_lr=lookahead_lr, **trainer.parts())

    @property
    def every(self) -> int:
        return self.lookahead.every

    @property
    def lookahead_lr(self) -> float | None:
        return self.lookahead.lookahead_lr

    @property
    def affinity_steps(self) -> int:
        return self.lookahead.steps

    def affinity(self, meta: dict[str, Any] | None = None) -> AffinityResult:
        """The average look-ahead affinity over the measured steps so far."""
        look = self.lookahead
        mat = torch.where(look.z_n > 0, look.z_sum / look.z_n.clamp_min(1), torch.full_like(look.z_sum, math.nan))
        info = {"every": look.every, "lookahead_lr": look.lookahead_lr, "steps_measured": look.steps,
                "steps_total": self.step_count}
        info.update(meta or {})
        return AffinityResult(mat.numpy(), list(self.task_names), "tag", look.z_n.numpy(), info)


class Lookahead(Callback):
    """TAG's look-ahead as a trainer hook: before every ``every``-th step,
    :func:`lookahead_affinity` on the step's batch is accumulated. Its sums are checkpointed
    (``state_key = "affinity"``), so a resumed run continues the average. Under torchrun each
    rank measures its shard of the batch and the sums are averaged over ranks (the comm's
    Jacobian average)."""

    state_key = "affinity"

    def __init__(self, trainer: Trainer, *, every: int, lookahead_lr: float | None) -> None:
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ValueError(f"The 'every' parameter of AffinityTrainer must be a positive int. Got {every!r}.")
        if lookahead_lr is not None and not (isinstance(lookahead_lr, (int, float))
                                             and not isinstance(lookahead_lr, bool)
                                             and math.isfinite(lookahead_lr) and lookahead_lr > 0):
            raise ValueError(f"The 'lookahead_lr' parameter of AffinityTrainer must be a positive float "
                             f"or None. Got {lookahead_lr!r}.")
        shared_parameters_of(trainer.model)
        self.every, self.lookahead_lr = every, lookahead_lr
        k = len(trainer.tasks)
        self.z_sum = torch.zeros(k, k, dtype=torch.float64)
        self.z_n = torch.zeros(k, k, dtype=torch.float64)
        self.steps = 0

    def before_step(self, trainer: Trainer, batch: Any) -> None:
        if trainer.optimizer is None or trainer.step_count % self.every != 0:
            return
        lr = self.lookahead_lr if self.lookahead_lr is not None else float(trainer.optimizer.param_groups[0]["lr"])
        z = lookahead_affinity(trainer.model, trainer.tasks, batch, lr=lr)
        z = trainer.comm.sync_jacobian(z, "affinity")  # the mean over ranks (identity in one process)
        ok = torch.isfinite(z)
        self.z_sum += torch.where(ok, z, torch.zeros_like(z))
        self.z_n += ok.double()
        self.steps += 1

    def state_dict(self) -> dict[str, Any]:
        return {"z_sum": self.z_sum.clone(), "z_n": self.z_n.clone(), "steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.z_sum, self.z_n = state["z_sum"].clone(), state["z_n"].clone()
        self.steps = int(state["steps"])


# ---------------------------------------------------------------------------- cosine
def cosine_from_records(records: Sequence[dict[str, Any]], task_names: Sequence[str]) -> AffinityResult:
    """Average the conflict monitor's per-epoch cosine matrices (``record["conflicts"]``).

    >>> recs = [{"conflicts": {"cosine_matrix": [[1, 0.5], [0.5, 1]]}},
    ...         {"conflicts": {"cosine_matrix": [[1, -0.1], [-0.1, 1]]}}]
    >>> round(float(cosine_from_records(recs, ["a", "b"]).matrix[0, 1]), 6)
    0.2
    """
    mats = []
    for r in records:
        c = (r.get("conflicts") or {}).get("cosine_matrix") if isinstance(r, dict) else None
        if c is not None:
            mats.append(np.array([[np.nan if v is None else v for v in row] for row in c], dtype=float))
    k = len(task_names)
    if not mats:
        raise ValueError("No gradient-cosine statistics in the training records: train with "
                         "training.monitor_conflicts: true (the default) and a model with a shared "
                         "representation (every mtlkit architecture), or use method='tag'.")
    bad = [m.shape for m in mats if m.shape != (k, k)]
    if bad:
        raise ValueError(f"Cosine matrices of shape {bad[0]} do not match the {k} tasks {list(task_names)}.")
    stack = np.stack(mats)
    n = np.isfinite(stack).sum(0).astype(float)
    with np.errstate(invalid="ignore"):
        mean = np.where(n > 0, np.nansum(stack, 0) / np.maximum(n, 1), np.nan)
    return AffinityResult(mean, list(task_names), "cosine", n, {"epochs": len(mats)})


def affinity_from_run(run_dir: str | Path) -> AffinityResult:
    """The gradient-cosine affinity of a finished run folder (from its ``metrics.jsonl``),
    or the matrix saved in it (``affinity.json``) when there is one."""
    from mtlkit.run import SUMMARY, read_json

    d = Path(run_dir)
    if (d / MATRIX_JSON).exists():
        return AffinityResult.load(d / MATRIX_JSON)
    metrics = d / "metrics.jsonl"
    if not metrics.exists():
        raise FileNotFoundError(f"{str(d)!r} holds neither an affinity matrix ({MATRIX_JSON}) nor a "
                                f"run's metrics.jsonl.")
    names = None
    if (d / SUMMARY).exists():
        names = [t["name"] for t in read_json(d / SUMMARY).get("tasks", [])]
    if not names and (d / "model.json").exists():
        names = [t["name"] for t in read_json(d / "model.json").get("tasks", [])]
    if not names:
        raise ValueError(f"Cannot tell the task names of the run in {str(d)!r} (no summary.json/model.json).")
    records = [json.loads(line) for line in metrics.read_text(encoding="utf-8").splitlines() if line.strip()]
    res = cosine_from_records(records, names)
    res.meta["source"] = str(d)
    return res


# ---------------------------------------------------------------------------- driver
def compute_affinity(source: RunConfig | str | Path | Trainer, data: MultiTaskData | None = None, *,
                     method: str = "tag", every: int = 1, lookahead_lr: float | None = None,
                     epochs: int | None = None, val: MultiTaskData | None = None,
                     progress: bool = False) -> AffinityResult:
    """Train all tasks together once and measure their affinity.

    Args:
        source: a :class:`~mtlkit.config.RunConfig` or the path of a YAML config (data,
            model and training come from it; the model is trained on its training split
            with early stopping on its validation split), or a not yet fitted
            :class:`~mtlkit.training.Trainer` (then pass ``data`` and optionally ``val``).
        method: ``"tag"`` (look-ahead, Fifty et al. 2021) or ``"cosine"`` (gradient cosine
            from the conflict monitor; needs ``monitor_conflicts``).
        every: TAG measures every ``every``-th step.
        lookahead_lr: TAG's look-ahead learning rate (default: the optimiser's).
        epochs: train this many epochs instead of the config's (TAG's affinities are
            usually stable early; a short run is often enough).

    With a config, the conflict monitor is switched on for ``"cosine"`` and off for
    ``"tag"`` whatever ``training.monitor_conflicts`` says.

    >>> import torch
    >>> from mtlkit import HardSharing, Task, Trainer, from_arrays
    >>> from mtlkit.architectures.backbones import mlp
    >>> _ = torch.manual_seed(0)
    >>> x = torch.randn(200, 4); y = (x[:, 0] > 0).float()
    >>> tasks = [Task("a", "binary"), Task("b", "binary")]
    >>> data = from_arrays(x.numpy(), {"a": y.numpy(), "b": 1 - y.numpy()}, tasks)
    >>> tr = Trainer(HardSharing(mlp(4, (8,)), tasks), tasks, epochs=1, progress=False)
    >>> res = compute_affinity(tr, data, method="tag", every=1)
    >>> res.method, res.task_names, res.meta["steps_measured"]
    ('tag', ['a', 'b'], 4)
    """
    if method not in METHODS:
        raise ValueError(f"The 'method' parameter must be one of {', '.join(METHODS)}. Got {method!r}.")
    if epochs is not None and (not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1):
        raise ValueError(f"The 'epochs' parameter must be a positive int or None. Got {epochs!r}.")
    if isinstance(source, Trainer):
        if data is None:
            raise ValueError("compute_affinity(trainer, data): pass the training data with a Trainer.")
        trainer = source
        if epochs is not None:
            trainer.epochs = epochs
        meta: dict[str, Any] = {"source": "trainer"}
    else:
        from mtlkit.config import RunConfig, load_config
        from mtlkit.run import build_model_for, make_trainer, prepare_from_config, validate
        from mtlkit.training.trainer import seed_everything

        cfg = source if isinstance(source, RunConfig) else load_config(source)
        validate(cfg)  # every problem of the config at once, before the data loads
        cfg = cfg.model_copy(deep=True)
        if epochs is not None:
            cfg.training.epochs = epochs
        # cosine needs the conflict monitor; TAG does not, and the monitor doubles a step's cost
        cfg.training.monitor_conflicts = method == "cosine"
        prepared = prepare_from_config(cfg)
        if len(prepared.tasks) < 2:
            raise ValueError(f"Affinity needs at least 2 tasks; the config has {[t.name for t in prepared.tasks]}.")
        seed_everything(cfg.seed)
        model = build_model_for(cfg, prepared, prepared.tasks)
        trainer = make_trainer(cfg, model, prepared.tasks, run_dir=None, progress=progress)
        data, val = prepared.train, prepared.val
        meta = {"source": prepared.source, "name": cfg.name, "seed": cfg.seed,
                "config": cfg.model_dump(mode="json")}
    if method == "tag":
        if not isinstance(trainer, AffinityTrainer):
            trainer = AffinityTrainer.from_trainer(trainer, every=every, lookahead_lr=lookahead_lr)
        trainer.fit(data, val)
        meta["epochs_run"] = len(trainer.history.records)
        return trainer.affinity(meta)
    if trainer.conflicts is None:
        raise ValueError("method='cosine' needs a trainer built with monitor_conflicts=True and a model "
                         "with a shared representation; or use method='tag'.")
    trainer.fit(data, val)
    res = cosine_from_records(trainer.history.records, trainer.task_names)
    res.meta.update(meta)
    res.meta["epochs_run"] = len(trainer.history.records)
    return res
