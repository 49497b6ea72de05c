"""YAML run configs validated by pydantic: unknown keys rejected, every error reported at
once, each naming its field.

A config names components (architecture, weighting, aggregator, sampler, schedule) by their
registry key plus keyword parameters, e.g. ``weighting: {name: dwa, temperature: 2.0}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class ConfigError(ValueError):
    """A config file or value is invalid; the message lists every problem with its field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Component(BaseModel):
    """``{name: <registry key>, ...keyword parameters}``."""

    model_config = ConfigDict(extra="allow")
    name: str

    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class TaskConfig(_Strict):
    name: str
    kind: Literal["binary", "multiclass", "multilabel", "regression", "contrastive", "segmentation",
                  "dense_regression", "sequence_labelling"]
    num_classes: int | None = None
    num_labels: int | None = None
    dim: int = 1
    loss: str | None = None
    weight: float | None = Field(default=None, ge=0, description="λ; default 1 (primary) or 0.1 (auxiliary)")
    role: Literal["primary", "auxiliary"] = "primary"
    missing_value: float | None = None
    columns: list[str] | None = None
    out_shape: list[int] | None = None
    margin: float | None = Field(default=None, gt=0, description="contrastive tasks: the loss margin (default 1)")


class SplitConfig(_Strict):
    train: float = Field(default=0.6, ge=0, le=1)
    val: float = Field(default=0.25, ge=0, le=1)
    test: float = Field(default=0.15, ge=0, le=1)
    stratify: str | None = None

    @model_validator(mode="after")
    def _sum_to_one(self) -> SplitConfig:
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + val + test must sum to 1 (got {total:g})")
        return self


class DataConfig(_Strict):
    dataset: str | None = Field(None, description="a built-in dataset (mtlkit list datasets)")
    options: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of the dataset loader")
    path: str | None = Field(None, description="CSV or Parquet file with features and label columns")
    features: list[str] | None = None
    image_column: str | None = None
    image_root: str | None = None
    image_size: list[int] | None = None
    grayscale: bool = False
    standardize: bool = True
    split: SplitConfig = Field(default_factory=SplitConfig)
    sampler: Component | None = None
    in_memory: bool = Field(False, description="set by mtlkit.fit for data passed from Python")

    @model_validator(mode="after")
    def _one_source(self) -> DataConfig:
        if self.in_memory:
            return self
        if (self.dataset is None) == (self.path is None):
            raise ValueError("give exactly one of 'dataset' (built-in) or 'path' (a file)")
        return self


class ModelConfig(_Strict):
    trunk: dict[str, Any] | None = Field(default=None, description="{name: mlp|cnn1d|lenet, ...}; default from the data")
    architecture: Component = Field(default_factory=lambda: Component(name="hard_sharing"))

    @field_validator("trunk")
    @classmethod
    def _trunk_named(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is not None and "name" not in v:
            raise ValueError("trunk needs a 'name' (mlp, cnn1d or lenet)")
        return v


class OptimizerConfig(_Strict):
    name: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = Field(default=1e-3, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    momentum: float = Field(default=0.9, ge=0)


class TrainingConfig(_Strict):
    epochs: int = Field(default=10, ge=1)
    batch_size: int = Field(default=64, ge=1)
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    scheduler: Literal["none", "cosine", "step"] = "none"
    clip_grad_norm: float | None = Field(default=None, gt=0)
    patience: int | None = Field(default=None, ge=1)
    monitor: str | None = None
    weighting: Component | None = None
    aggregator: Component | None = None
    level: Literal["parameters", "representation"] = "parameters"
    jacobian_engine: Literal["loop", "batched", "two-stage"] = Field(
        default="loop", description="how the parameter-level Jacobian is computed: loop (K backward passes, "
        "fastest on CPU), batched (vmapped) or two-stage (through the shared representation)")
    schedule: Component | None = None
    monitor_conflicts: bool = True
    max_nonfinite_steps: int = Field(default=20, ge=1)
    checkpoint_every: int | None = Field(default=None, ge=1, description="also checkpoint every N steps")
    keep_checkpoints: int = Field(default=2, ge=1)
    device: str = Field(default="cpu", description="cpu, cuda, cuda:N, mps or auto (the first of cuda, mps, cpu "
                                                   "that this torch build can use)")
    sync_batch_norm: bool | None = Field(
        default=None, description="under torchrun: batch norm with the global batch's statistics, so that N "
        "processes compute what one does (null: on, except with GREAT)")

    @field_validator("device")
    @classmethod
    def _device_name(cls, v: str) -> str:
        import re

        if not re.fullmatch(r"cpu|auto|mps|cuda(:\d+)?", v):
            raise ValueError(f"must be cpu, cuda, cuda:N, mps or auto; got {v!r}")
        return v


class RunConfig(_Strict):
    """The whole run. ``tasks`` may be omitted for built-in datasets (they bring theirs)."""

    name: str = "run"
    seed: int = 0
    data: DataConfig
    tasks: list[TaskConfig] | None = None
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    auxiliary: list[dict[str, Any]] = Field(
        default_factory=list, description="auxiliary-target generators: [{generator: fourier, k: 8, weight: 0.1}]")
    baselines: bool = True

    @field_validator("auxiliary")
    @classmethod
    def _aux_named(cls, v: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for i, spec in enumerate(v):
            if not isinstance(spec, dict) or "generator" not in spec:
                raise ValueError(f"entry {i} needs a 'generator' key (e.g. {{generator: fourier, k: 8}})")
        return v

    @model_validator(mode="after")
    def _tasks_for_files(self) -> RunConfig:
        if (self.data.path is not None or self.data.in_memory) and not self.tasks:
            raise ValueError("'tasks' is required when data comes from a file ('data.path')")
        if self.tasks:
            names = [t.name for t in self.tasks]
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise ValueError(f"duplicate task name(s) {dup}")
        return self


def _format_errors(exc: ValidationError, source: str) -> str:
    lines = [f"Invalid config {source}: {exc.error_count()} problem(s)"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling)"
        lines.append(f"  - {loc}: {msg}")
    return "\n".join(lines)


def parse_config(data: dict[str, Any], *, source: str = "(dict)") -> RunConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"Invalid config {source}: the top level must be a mapping, got {type(data).__name__}.")
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, source)) from None


def load_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML config (``yaml.safe_load``), apply ``key.sub=value`` overrides, validate."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"Config file not found: {str(p)!r}.")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, ValueError, TypeError, AttributeError, RecursionError) as exc:
        # ValueError: not UTF-8, or a tagged scalar that cannot be built (!!int 'x', 2001-02-30);
        # AttributeError/TypeError: PyYAML constructor failures (!!timestamp x);
        # RecursionError: nesting deeper than Python's recursion limit
        raise ConfigError(f"Config file {str(p)!r} is not valid YAML: {type(exc).__name__}: {exc}") from None
    if data is None:
        raise ConfigError(f"Config file {str(p)!r} is empty.")
    if not isinstance(data, dict):
        raise ConfigError(f"Invalid config {str(p)!r}: the top level must be a mapping, got {type(data).__name__}.")
    data = apply_overrides(data, overrides or [])
    _check_tree(data, repr(str(p)))
    return parse_config(data, source=repr(str(p)))


def _check_tree(data: Any, source: str, *, limit: int = 100_000) -> None:
    """Refuse YAML aliases that make a config recursive or blow it up in size (a
    "billion laughs" file): at most ``limit`` values once aliases are expanded."""
    count = 0
    stack: list[tuple[Any, frozenset[int]]] = [(data, frozenset())]
    while stack:
        node, ancestors = stack.pop()
        count += 1
        if count > limit:
            raise ConfigError(f"Config {source} is too large: more than {limit} values once its YAML aliases "
                              f"(*name) are expanded.")
        if isinstance(node, (dict, list)):
            if id(node) in ancestors:
                raise ConfigError(f"Config {source} is recursive: a YAML alias refers to a mapping or list "
                                  f"that contains it.")
            inner = ancestors | {id(node)}
            stack.extend((v, inner) for v in (node.values() if isinstance(node, dict) else node))


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``training.epochs=3`` style overrides; values parsed as YAML scalars/lists/maps."""
    import copy

    if overrides and not isinstance(data, dict):
        raise ConfigError(f"Cannot apply the overrides {list(overrides)}: the config's top level must be a "
                          f"mapping, got {type(data).__name__}.")
    data = copy.deepcopy(data) if isinstance(data, dict) else data
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"Override {item!r} must look like key.sub=value.")
        key, raw = item.split("=", 1)
        parts = [k for k in key.strip().split(".") if k]
        if not parts:
            raise ConfigError(f"Override {item!r} has an empty key.")
        try:
            value = yaml.safe_load(raw)
        except (yaml.YAMLError, ValueError, TypeError, AttributeError, RecursionError):
            value = raw
        node = data
        for k in parts[:-1]:
            if not isinstance(node.get(k), dict):
                node[k] = {}
            node = node[k]
        node[parts[-1]] = value
    return data


def dump_config(cfg: RunConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json", exclude_none=False), sort_keys=False)


def flat_items(d: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists kept as values)."""
    out: dict[str, Any] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(flat_items(v, f"{prefix}{k}."))
    else:
        out[prefix[:-1]] = d
    return out


#: keys that say where a run computes, not what it computes: a run may resume on another device
RUNTIME_KEYS = frozenset({"training.device"})


def config_diff(a: RunConfig | dict[str, Any], b: RunConfig | dict[str, Any]) -> list[str]:
    """Dotted keys whose values differ between two configs (``RUNTIME_KEYS`` aside)."""
    fa = flat_items(a.model_dump(mode="json") if isinstance(a, RunConfig) else a)
    fb = flat_items(b.model_dump(mode="json") if isinstance(b, RunConfig) else b)
    return sorted(k for k in set(fa) | set(fb) if fa.get(k) != fb.get(k) and k not in RUNTIME_KEYS)


def config_hash(cfg: RunConfig) -> str:
    import hashlib
    import json

    dumped = cfg.model_dump(mode="json")
    dumped.get("training", {}).pop("device", None)  # a checkpoint may resume on another device
    return hashlib.sha256(json.dumps(dumped, sort_keys=True).encode()).hexdigest()[:16]
