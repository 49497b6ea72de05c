"""The typed record of a run: :class:`Summary` (``summary.json``), :class:`ModelResult` (one
trained model's results in it) and :class:`EpochRecord` (one line of ``metrics.jsonl``).

``to_dict`` writes exactly the JSON the run format has always had (same keys, same order);
``from_dict`` reads it back. Reading is lenient, because the report must render any run
folder, old or damaged: unknown keys are kept in ``extra`` (and written back), keys that were
absent read as ``None`` and stay absent in ``to_dict``, and a part of the wrong kind
(``"mtl": "oops"``) reads as missing. Values are not converted: a summary is a record, not a
validator (hence every field may be ``None``).

>>> s = Summary.from_dict({"name": "r", "mtl": {"test": {"y": {"mae": 0.5}}, "params": 10}})
>>> s.mtl.test["y"]["mae"], s.mtl.params
(0.5, 10)
>>> s.to_dict()
{'name': 'r', 'mtl': {'test': {'y': {'mae': 0.5}}, 'params': 10}}

This module imports nothing heavy: the report reads runs through it without torch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = ["SIGN_CONVENTION", "EpochRecord", "ModelResult", "Summary"]

FORMAT_VERSION = 1
SIGN_CONVENTION = ("Δm = (1/T) Σ_t (1/|M_t|) Σ_m (−1)^{h_m} (M_mtl − M_stl)/M_stl × 100 over "
                   "primary tasks; negative means the multi-task model is better.")
INFERENCE_UNIT = "ms per 1000 samples"

R = TypeVar("R", bound="_Record")
Metrics = dict[str, dict[str, float]]


#: the metadata of a key that a record built in Python writes only when it is not ``None``
OPTIONAL = {"optional": True}


@dataclass
class _Record:
    """Shared ``from_dict``/``to_dict`` of the run's JSON records (see the module docstring)."""

    extra: dict[str, Any] = field(default_factory=dict, repr=False, kw_only=True)
    #: keys that were not in the dict this record was read from (None: built in Python)
    absent: frozenset[str] | None = field(default=None, repr=False, compare=False, kw_only=True)

    @classmethod
    def _names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls) if f.name not in ("extra", "absent")]

    @classmethod
    def from_dict(cls: type[R], data: Mapping[str, Any]) -> R:
        names = cls._names()
        kwargs: dict[str, Any] = dict.fromkeys(names)  # absent: None, whatever the default
        absent = set()
        for name in names:
            value = cls._read(name, data[name]) if name in data else _SKIP
            if value is _SKIP:
                absent.add(name)
            else:
                kwargs[name] = value
        extra = {k: v for k, v in data.items() if k not in names}
        return cls(**kwargs, extra=extra, absent=frozenset(absent))

    @classmethod
    def _read(cls, name: str, value: Any) -> Any:
        return value

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name in ("extra", "absent"):
                continue
            value = getattr(self, f.name)
            if self.absent is not None and f.name in self.absent:
                continue  # read from a dict that did not have it
            if self.absent is None and f.metadata.get("optional") and value is None:
                continue  # built in Python: optional parts only when present
            out[f.name] = value.to_dict() if isinstance(value, _Record) else value
        out.update(self.extra)
        return out


_SKIP = object()


@dataclass
class ModelResult(_Record):
    """One trained model in ``summary.json``: the multi-task model (``summary["mtl"]``, with
    ``val`` and ``epochs_run``) or a single-task baseline (``summary["baselines"][task]``)."""

    #: test metrics: ``{task: {metric: value}}`` (multi-task) or ``{metric: value}`` (baseline)
    test: dict[str, Any] | None = field(default_factory=dict)
    val: Metrics | None = field(default=None, metadata=OPTIONAL)
    params: int | None = None
    inference_ms: float | None = None
    fit_time_s: float | None = None
    best_epoch: int | None = None
    epochs_run: int | None = field(default=None, metadata=OPTIONAL)


@dataclass
class Summary(_Record):
    """``summary.json``: what a run produced, in the order the file has always had."""

    format_version: int | None = FORMAT_VERSION
    name: str | None = "run"
    seed: int | None = None
    source: str | None = ""
    created: str | None = ""
    tasks: list[dict[str, Any]] | None = field(default_factory=list)
    higher_is_better: dict[str, dict[str, bool]] | None = field(default_factory=dict)
    main_metric: dict[str, str] | None = field(default_factory=dict)
    mtl: ModelResult | None = None
    baselines: dict[str, ModelResult] | None = None
    delta_m: float | None = None
    delta_m_per_task: dict[str, float] | None = field(default_factory=dict)
    delta_m_all_tasks: float | None = None
    sign_convention: str | None = SIGN_CONVENTION
    confusion: dict[str, Any] | None = field(default_factory=dict)
    classification_report: dict[str, Any] | None = field(default_factory=dict)
    nonfinite_skipped: int | None = 0
    sizes: dict[str, int] | None = field(default_factory=dict)
    inference_unit: str | None = INFERENCE_UNIT
    environment: dict[str, Any] | None = field(default_factory=dict)
    search_phase: dict[str, Any] | None = field(default=None, metadata=OPTIONAL)
    stl_params_total: int | None = field(default=None, metadata=OPTIONAL)
    stl_inference_ms_total: float | None = field(default=None, metadata=OPTIONAL)
    resumed: list[dict[str, Any]] | None = field(default=None, metadata=OPTIONAL)
    #: the boosted-tree single-task references (``baselines: [neural, gbdt]``), by task
    gbdt: dict[str, ModelResult] | None = field(default=None, metadata=OPTIONAL)
    #: Δm of the multi-task model against the GBDT references (primary tasks)
    delta_m_gbdt: float | None = field(default=None, metadata=OPTIONAL)
    warnings: list[dict[str, Any]] | None = field(default_factory=list)

    @classmethod
    def _read(cls, name: str, value: Any) -> Any:
        if name == "mtl":
            return ModelResult.from_dict(value) if isinstance(value, Mapping) else _SKIP
        if name in ("baselines", "gbdt"):
            if value is None:
                return None
            if not isinstance(value, Mapping):
                return _SKIP
            return {str(k): ModelResult.from_dict(v) for k, v in value.items() if isinstance(v, Mapping)}
        return value

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        if isinstance(self.baselines, dict) and "baselines" in out:
            out["baselines"] = {k: v.to_dict() for k, v in self.baselines.items()}
        if isinstance(self.gbdt, dict) and "gbdt" in out:
            out["gbdt"] = {k: v.to_dict() for k, v in self.gbdt.items()}
        return out

    # ------------------------------------------------------------------ reading helpers
    def task(self, name: str) -> dict[str, Any] | None:
        """The task spec named ``name`` (``tasks`` entry), if the summary has it."""
        for t in self.tasks if isinstance(self.tasks, list) else []:
            if isinstance(t, Mapping) and t.get("name") == name:
                return dict(t)
        return None

    def task_names(self) -> list[str]:
        return [str(t["name"]) for t in (self.tasks if isinstance(self.tasks, list) else [])
                if isinstance(t, Mapping) and "name" in t]

    @classmethod
    def coerce(cls, summary: Summary | Mapping[str, Any]) -> Summary:
        """``summary`` as a :class:`Summary` (a mapping is read with :meth:`from_dict`)."""
        return summary if isinstance(summary, Summary) else cls.from_dict(summary)


@dataclass
class EpochRecord(_Record):
    """One line of ``metrics.jsonl``: one epoch of one model, in the order the trainer writes
    it (optional parts only when the run has them)."""

    epoch: int | None = 0
    train_loss: dict[str, float | None] | None = field(default_factory=dict)
    weights: dict[str, float] | None = field(default_factory=dict)
    steps: int | None = 0
    task_steps: dict[str, float] | None = field(default_factory=dict)
    lr: float | None = None
    time_s: float | None = 0.0
    nonfinite_skipped: int | None = 0
    nonfinite_tasks: dict[str, int] | None = field(default=None, metadata=OPTIONAL)
    penalties: dict[str, float] | None = field(default=None, metadata=OPTIONAL)
    aggregator_weights: dict[str, float] | None = field(default=None, metadata=OPTIONAL)
    conflicts: dict[str, Any] | None = field(default=None, metadata=OPTIONAL)
    sampling: dict[str, Any] | None = field(default=None, metadata=OPTIONAL)
    schedule: dict[str, Any] | None = field(default=None, metadata=OPTIONAL)
    sharing: dict[str, Any] | None = field(default=None, metadata=OPTIONAL)
    val: Metrics | None = field(default=None, metadata=OPTIONAL)
    val_loss: dict[str, float] | None = field(default=None, metadata=OPTIONAL)
    val_score: float | None = field(default=None, metadata=OPTIONAL)
