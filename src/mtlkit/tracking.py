"""Experiment tracking: TensorBoard and MLflow as trainer callbacks.

A run config's ``tracking:`` section names where to log, besides the run folder::

    tracking:
      tensorboard: runs/tb          # a log directory: one sub-folder per run
      mlflow: runs/mlflow           # a tracking URI: a folder, file:/path or sqlite:///path.db
      experiment: my-study          # MLflow experiment (default: the run's name)

Every epoch record of the multi-task model is logged (per-task losses ``train_loss/<task>``,
weights ``weights/<task>``, validation metrics ``val/<task>/<metric>``, the aggregator's
weights, the learning rate and the conflict statistics ``conflicts/...``), the config at the
start and the final summary (test metrics, Δm) at the end. Where to log is checked before the
run trains anything (:func:`check_tracking`): a location that cannot be written is an error.

The libraries are optional (``pip install 'mtlkit[tracking]'``) and imported here only.

>>> TensorBoardCallback("tb-logs").log_dir.name
'tb-logs'
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from mtlkit.training.callbacks import Callback

if TYPE_CHECKING:
    from mtlkit.training.trainer import Trainer

__all__ = ["MLflowCallback", "TensorBoardCallback", "TrackingError", "amend_summary", "check_tracking",
           "flat_scalars", "trackers_for"]

#: what the run's final summary still lacks when the trackers log it (see :func:`amend_summary`)
_AMEND: ContextVar[Callable[[dict[str, Any]], dict[str, Any]] | None] = ContextVar("mtlkit_tracking_amend",
                                                                                   default=None)


@contextlib.contextmanager
def amend_summary(fn: Callable[[dict[str, Any]], dict[str, Any]]) -> Iterator[None]:
    """Within the block, the trackers log ``fn(summary)`` rather than the run's summary.

    For a summary completed after the run: a run over seeds that reuses cached single-task
    references trains none, so the run's own summary has no baselines and no Δm; the
    references (and Δm against them) are added afterwards (:mod:`mtlkit.run.seeds`). Without
    this the tracking run would log a summary without Δm."""
    token = _AMEND.set(fn)
    try:
        yield
    finally:
        _AMEND.reset(token)


def _final(summary: Mapping[str, Any]) -> dict[str, Any]:
    fn = _AMEND.get()
    return fn(dict(summary)) if fn is not None else dict(summary)


class TrackingError(ValueError):
    """A tracking destination that cannot be used (not writable, library missing)."""


def flat_scalars(obj: Any, prefix: str = "") -> dict[str, float]:
    """The finite numbers of a nested record as ``{"a/b/c": value}`` (lists and text left out).

    >>> flat_scalars({"train_loss": {"y": 0.5}, "conflicts": {"mean_cosine": 0.1, "cosine_matrix": [[1]]},
    ...               "lr": 0.01, "flag": True, "val_score": float("nan")})
    {'train_loss/y': 0.5, 'conflicts/mean_cosine': 0.1, 'lr': 0.01}
    """
    out: dict[str, float] = {}
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            out.update(flat_scalars(v, f"{prefix}{k}/"))
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool) and math.isfinite(obj):
        out[prefix[:-1]] = float(obj)
    return out


def _summary_scalars(summary: Mapping[str, Any]) -> dict[str, float]:
    """What the final summary contributes: test metrics of both models, Δm and Δm_t."""
    out = flat_scalars((summary.get("mtl") or {}).get("test") or {}, "test/")
    for task, res in (summary.get("baselines") or {}).items():
        out.update(flat_scalars((res or {}).get("test") or {}, f"stl_test/{task}/"))
    out.update(flat_scalars({"delta_m": summary.get("delta_m"), "delta_m_per_task": summary.get("delta_m_per_task")}))
    return out


def _probe_dir(path: Path, what: str) -> None:
    """Create ``path`` and write (then remove) a file in it, or a :class:`TrackingError`."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".mtlkit-probe-{time.time_ns()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise TrackingError(f"{what} {str(path)!r} cannot be written: {exc.strerror or exc}. Nothing was "
                            f"trained; choose a writable location.") from None


def _mlflow_local_dir(uri: str) -> Path | None:
    """The local folder an MLflow URI writes into (the store, or a SQLite file's folder)."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file") or re.fullmatch(r"[A-Za-z]", parsed.scheme or ""):  # C:\ paths too
        return Path(parsed.path if parsed.scheme == "file" else uri)
    if parsed.scheme == "sqlite":
        db = uri.split("sqlite:///", 1)[-1] if uri.startswith("sqlite:///") else parsed.path
        return Path(db).parent if db and db != ":memory:" else None
    return None  # a server: reachable or not, it is MLflow's to say


def check_tracking(tracking: Any) -> None:
    """Refuse, before anything trains, a ``tracking:`` section whose library is missing or
    whose location cannot be written."""
    if tracking is None:
        return
    if tracking.tensorboard:
        _require("torch.utils.tensorboard", "tensorboard")
        _probe_dir(Path(tracking.tensorboard), "The TensorBoard log directory (tracking.tensorboard)")
    if tracking.mlflow:
        _require("mlflow", "mlflow")
        local = _mlflow_local_dir(tracking.mlflow)
        if local is not None:
            _probe_dir(local, "The MLflow store (tracking.mlflow)")


def _require(module: str, package: str) -> None:
    import importlib

    try:
        importlib.import_module(module)
    except ImportError:
        raise TrackingError(f"Tracking with {package} needs the package {package!r}: pip install "
                            f"'mtlkit[tracking]' (or pip install {package}).") from None


def trackers_for(cfg: Any, *, run_name: str | None = None) -> list[Any]:
    """The tracking callbacks a run config asks for (checked first: :func:`check_tracking`)."""
    tracking = getattr(cfg, "tracking", None)
    if tracking is None:
        return []
    check_tracking(tracking)
    name = run_name or f"{cfg.name}-seed-{cfg.seed}"
    config = cfg.model_dump(mode="json")
    out: list[Any] = []
    if tracking.tensorboard:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        out.append(TensorBoardCallback(Path(tracking.tensorboard) / f"{name}-{stamp}", config=config))
    if tracking.mlflow:
        out.append(MLflowCallback(tracking.mlflow, experiment=tracking.experiment or cfg.name, run_name=name,
                                  config=config))
    return out


class TensorBoardCallback(Callback):
    """Writes each epoch's record as TensorBoard scalars to ``log_dir`` (step = epoch), the
    config as text at the start and the final summary (:meth:`log_summary`) at the end."""

    def __init__(self, log_dir: str | Path, *, config: Mapping[str, Any] | None = None) -> None:
        self.log_dir = Path(log_dir)
        self.config = dict(config or {})
        self._writer: Any = None
        self._last_epoch = 0

    def _open(self) -> Any:
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.log_dir))
        return self._writer

    def on_fit_start(self, trainer: Trainer) -> None:
        if trainer.comm.is_writer and self.config:
            self._open().add_text("config", "```\n" + json.dumps(self.config, indent=2, default=str) + "\n```", 0)

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        if not trainer.comm.is_writer:
            return
        w = self._open()
        step = int(record.get("epoch", 0))
        self._last_epoch = step
        for key, value in flat_scalars(record).items():
            if key != "epoch":
                w.add_scalar(key, value, step)
        w.flush()

    def on_fit_end(self, trainer: Trainer) -> None:
        if self._writer is not None:
            self._writer.flush()

    def log_summary(self, summary: Mapping[str, Any]) -> None:
        summary = _final(summary)
        w = self._open()
        for key, value in _summary_scalars(summary).items():
            w.add_scalar(f"summary/{key}", value, self._last_epoch)
        w.add_text("summary", "```\n" + json.dumps(dict(summary), indent=2, default=str)[:100_000] + "\n```",
                   self._last_epoch)

    def close(self, status: str = "FINISHED") -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


_MLFLOW_KEY = re.compile(r"[^A-Za-z0-9_\-. /]")


class MLflowCallback(Callback):
    """Logs to an MLflow run (through ``MlflowClient``: no global state): the config as
    parameters (flattened) and as ``config.json``, each epoch's record as metrics (step =
    epoch), and the final summary as metrics and ``summary.json``; :meth:`close` ends the run."""

    def __init__(self, tracking_uri: str, *, experiment: str = "mtlkit", run_name: str | None = None,
                 config: Mapping[str, Any] | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.run_name = run_name
        self.config = dict(config or {})
        self.run_id: str | None = None
        self._client: Any = None
        self._last_epoch = 0

    def _start(self) -> str:
        if self.run_id is None:
            from mlflow.tracking import MlflowClient

            client = MlflowClient(tracking_uri=self.tracking_uri)
            exp = client.get_experiment_by_name(self.experiment)
            if exp is not None:
                exp_id = exp.experiment_id
            else:  # a database store keeps its artifacts beside the database, not in ./mlruns
                local = _mlflow_local_dir(self.tracking_uri) if self.tracking_uri.startswith("sqlite") else None
                exp_id = client.create_experiment(
                    self.experiment, artifact_location=(local / "artifacts").resolve().as_uri() if local else None)
            run = client.create_run(exp_id, run_name=self.run_name)
            self._client, self.run_id = client, run.info.run_id
            if self.config:
                from mtlkit.config import flat_items

                params = {k: json.dumps(v) if not isinstance(v, str) else v for k, v in flat_items(self.config).items()}
                self._log_params(params)
                client.log_dict(self.run_id, self.config, "config.json")
        return self.run_id

    def _log_params(self, params: Mapping[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(_MLFLOW_KEY.sub("_", k)[:250], v[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self._client.log_batch(self.run_id, params=items[i:i + 100])

    def _log_metrics(self, values: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        run_id = self._start()
        now = int(time.time() * 1000)
        items = [Metric(_MLFLOW_KEY.sub("_", k)[:250], v, now, step) for k, v in values.items()]
        for i in range(0, len(items), 500):
            self._client.log_batch(run_id, metrics=items[i:i + 500])

    def on_fit_start(self, trainer: Trainer) -> None:
        if trainer.comm.is_writer:
            self._start()

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        if not trainer.comm.is_writer:
            return
        step = int(record.get("epoch", 0))
        self._last_epoch = step
        self._log_metrics({k: v for k, v in flat_scalars(record).items() if k != "epoch"}, step)

    def log_summary(self, summary: Mapping[str, Any]) -> None:
        summary = _final(summary)
        self._log_metrics({f"summary/{k}": v for k, v in _summary_scalars(summary).items()}, self._last_epoch)
        self._client.log_dict(self.run_id, json.loads(json.dumps(dict(summary), default=str)), "summary.json")

    def close(self, status: str = "FINISHED") -> None:
        if self.run_id is not None and self._client is not None:
            self._client.set_terminated(self.run_id, status=status)
            self._client = None
