"""YAML run configs validated by pydantic: unknown keys rejected, every error reported at
once, each naming its field.

A config names components (architecture, weighting, aggregator, sampler, schedule) by their
registry key plus keyword parameters, e.g. ``weighting: {name: dwa, temperature: 2.0}``.

Types are strict: an integer field takes an integer (``epochs: true`` or ``epochs: 2.5`` is
an error, not one or two epochs), a boolean field ``true``/``false`` (not ``1``), a float field
a number (not ``true``). YAML is read with the safe loader, which builds plain values only
(a ``!!python/...`` tag is an error naming the file), and ``1e-3`` reads as the float it means
(PyYAML alone reads it as a string). Task and run names become folder names: a name with a
path separator, ``..`` or an absolute path is refused.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from mtlkit._io import path_component_problem
from mtlkit._text import plural
from mtlkit.kinds import KindName


class ConfigError(ValueError):
    """A config file or value is invalid; the message lists every problem with its field."""


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads ``1e-3`` / ``2E5`` as floats (YAML 1.2; PyYAML's
    YAML 1.1 resolver needs a dot, ``1.0e-3``, and reads ``1e-3`` as a string)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def safe_yaml(text: str) -> Any:
    """Plain values from YAML text (the safe loader: no tags that build objects)."""
    loader = _Loader(text)  # what yaml.safe_load does, with the float resolver above
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def read_yaml_file(path: str | Path, *, what: str = "Config file") -> Any:
    """The YAML file's content; anything unreadable is a :class:`ConfigError` that names the
    file: not UTF-8 or binary, truncated or invalid YAML, a ``!!python/...`` tag, nesting too
    deep, a missing file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{what} not found: {str(p)!r}.") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} {str(p)!r} is not UTF-8 text (binary or corrupted?): {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{what} {str(p)!r} cannot be read: {exc.strerror or exc}.") from None
    try:
        return safe_yaml(text)
    except (yaml.YAMLError, ValueError, TypeError, AttributeError, RecursionError) as exc:
        # ValueError: a tagged scalar that cannot be built (!!int 'x', 2001-02-30);
        # AttributeError/TypeError: PyYAML constructor failures (!!timestamp x); YAMLError:
        # invalid or truncated YAML, or a tag the safe loader does not build (!!python/object);
        # RecursionError: nesting deeper than Python's recursion limit
        raise ConfigError(f"{what} {str(p)!r} is not valid YAML: {type(exc).__name__}: {exc}") from None


def _path_name(value: str, what: str) -> str:
    """A name that becomes a folder name (a task's baseline folder, ``runs/<name>``)."""
    problem = path_component_problem(value)
    if problem is not None:
        raise ValueError(f"{what} {value!r} {problem}")
    return value


class _Strict(BaseModel):
    # strict: YAML gives typed values, and a value of another type is a mistake (epochs: true)
    model_config = ConfigDict(extra="forbid", validate_assignment=True, strict=True)


class Component(BaseModel):
    """``{name: <registry key>, ...keyword parameters}``."""

    model_config = ConfigDict(extra="allow")
    name: str

    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class TaskConfig(_Strict):
    name: str
    kind: KindName  # a name registered in mtlkit._registry.KINDS (one file of mtlkit/kinds each)
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
    classes: list[str | int | float | bool] | None = Field(
        default=None, description="binary/multiclass: the class names in index order (default: from the data)")
    positive_class: str | int | float | bool | None = Field(
        default=None, description="binary: the positive one of the label column's two values")
    standardize: bool | None = Field(
        default=None, description="regression: standardise the targets on the training split (default yes)")
    given: str | None = Field(
        default=None, description="binary: the funnel step before this one (conversion given click)")

    @field_validator("name")
    @classmethod
    def _name_is_a_folder_name(cls, v: str) -> str:
        return _path_name(v, "the task name")


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


ColumnType = Literal["numeric", "categorical", "boolean", "datetime", "text", "id"]


class CategoricalConfig(_Strict):
    """How a table's categorical columns are encoded (mtlkit.data.tabular.TableOptions)."""

    onehot_max: int = Field(default=16, ge=0, description="one-hot up to this many categories, else an embedding")
    min_count: int = Field(default=5, ge=1, description="rarer categories share the embedding's unknown bucket")
    embedding_dim: int | None = Field(default=None, ge=1, description="embedding width (default from the cardinality)")
    max_categories: int = Field(default=1_000_000, ge=1, description="refuse a column with more distinct values")


class DataConfig(_Strict):
    dataset: str | None = Field(None, description="a built-in dataset (mtlkit list datasets)")
    options: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of the dataset loader")
    path: str | None = Field(None, description="CSV or Parquet file with features and label columns")
    features: list[str] | dict[str, ColumnType | None] | None = Field(
        None, description="feature columns: a list (types inferred) or {column: numeric|categorical|boolean|"
                          "datetime|id}; default: every column that is not a label")
    categorical: CategoricalConfig = Field(default_factory=CategoricalConfig)
    text: dict[str, Any] | None = Field(
        None, description="text columns: {tokenizer: {kind: bpe|wordpiece, vocab_size} | {file} | {huggingface}, "
                          "max_length, truncation: warn|error} (mtlkit.data.text.TextOptions)")
    image_column: str | None = None
    image_root: str | None = None
    image_size: list[int] | None = None
    grayscale: bool = False
    inputs: dict[str, Literal["all"] | list[int] | list[str] | dict[str, Any]] | None = Field(
        None, description="several named inputs (a multimodal model): {name: channel/column indices or names | "
                          "all | {derive: pooled|stats, size: k}} (mtlkit.run.data.named_inputs)")
    standardize: bool = True
    split: SplitConfig = Field(default_factory=SplitConfig)
    sampler: Component | None = None
    user_column: str | None = Field(None, description="the user ID column: ranking metrics per user (GAUC, "
                                                      "HR@K, NDCG@K) of the binary tasks")
    candidates: str | None = Field(None, description="what each user's test rows are (e.g. 'the held-out item + "
                                                     "99 sampled unseen items'), stated with HR@K/NDCG@K")
    funnel_violations: Literal["error", "mask"] = Field(
        "error", description="a funnel task (given) positive where its parent is negative: refuse or mask")
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


def _optimizer_fields() -> dict[str, Any]:
    """``optimizer:`` keys, from the optimiser fields of the trainer settings."""
    from mtlkit.training.settings import yaml_fields

    f = yaml_fields(include_hidden=True)
    return {"name": f["optimizer"], "lr": f["lr"], "weight_decay": f["weight_decay"], "momentum": f["momentum"]}


if TYPE_CHECKING:
    class OptimizerConfig(_Strict):
        name: str
        lr: float
        weight_decay: float
        momentum: float
else:
    OptimizerConfig = create_model("OptimizerConfig", __base__=_Strict, **_optimizer_fields())


def _training_fields() -> dict[str, Any]:
    """The ``training:`` keys: every YAML field of :class:`~mtlkit.training.TrainerSettings`
    (same types, defaults and bounds: a new trainer option is one field there) plus the
    components and the nested optimizer, in the order configs show them."""
    from mtlkit.training.settings import yaml_fields

    settings = yaml_fields()
    extra: dict[str, Any] = {
        "optimizer": (OptimizerConfig, Field(default_factory=OptimizerConfig)),  # type: ignore[arg-type]
        "weighting": (Component | None, None),
        "aggregator": (Component | None, None),
        "schedule": (Component | None, None),
    }
    order = ["epochs", "batch_size", "optimizer", "scheduler", "clip_grad_norm", "patience", "monitor",
             "weighting", "aggregator", "level", "jacobian_engine", "schedule"]
    out = {k: extra[k] if k in extra else settings.pop(k) for k in order}
    out.update(settings)  # the rest, and any option added later, in declaration order
    return out


class _TrainingBase(_Strict):
    @field_validator("device", check_fields=False)
    @classmethod
    def _device_name(cls, v: str) -> str:
        import re

        if not re.fullmatch(r"cpu|auto|mps|cuda(:\d+)?", v):
            raise ValueError(f"must be cpu, cuda, cuda:N, mps or auto; got {v!r}")
        return v

    def to_settings(self, **runtime: Any) -> Any:
        """The :class:`~mtlkit.training.TrainerSettings` of this section (``runtime``: the
        options that are not YAML keys, e.g. ``seed``, ``progress``)."""
        from mtlkit.training.settings import TrainerSettings

        names = TrainerSettings.__dataclass_fields__
        values = {k: v for k, v in self.model_dump().items() if k in names}
        opt: Any = getattr(self, "optimizer")  # noqa: B009 (a generated field)
        values.update(optimizer=opt.name, lr=opt.lr, weight_decay=opt.weight_decay, momentum=opt.momentum)
        return TrainerSettings(**{**values, **runtime})


if TYPE_CHECKING:  # the fields are generated: type checkers see attribute access as Any
    class TrainingConfig(_TrainingBase):
        def __getattr__(self, name: str) -> Any: ...

        def __setattr__(self, name: str, value: Any) -> None: ...
else:
    TrainingConfig = create_model("TrainingConfig", __base__=_TrainingBase, **_training_fields())


class TrackingConfig(_Strict):
    """Where the run is logged besides its folder (:mod:`mtlkit.tracking`): a TensorBoard log
    directory and/or an MLflow tracking URI (a local folder, ``file:...`` or ``sqlite:///...``)."""

    tensorboard: str | None = Field(None, description="TensorBoard log directory (one sub-folder per run)")
    mlflow: str | None = Field(None, description="MLflow tracking URI: a folder, file:/path or sqlite:///path.db")
    experiment: str | None = Field(None, description="MLflow experiment name (default: the run's name)")


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
    baselines: bool | list[Literal["neural", "gbdt"]] = Field(
        True, description="true: neural single-task baselines; or a list of neural, gbdt")
    seeds: list[int] | None = Field(
        None, description="train the run once per seed (seed-<s>/ sub-runs) and report intervals and verdicts")
    tracking: TrackingConfig | None = Field(None, description="{tensorboard: DIR} and/or {mlflow: URI}")
    search: dict[str, Any] | None = Field(
        None, description="mtlkit tune: {dotted.path: {choices: [...]} or {low: L, high: H, log: true}} "
                          "(checked by mtlkit.tune.SearchSpace)")
    tune: dict[str, Any] | None = Field(
        None, description="mtlkit tune: {metric: TASK/METRIC, direction: maximize|minimize}; default Δm")

    @field_validator("seeds")
    @classmethod
    def _seeds_distinct(cls, v: list[int] | None) -> list[int] | None:
        if v is not None:
            if not v:
                raise ValueError("give at least one seed (e.g. seeds: [0, 1, 2])")
            dup = sorted({s for s in v if v.count(s) > 1})
            if dup:
                raise ValueError(f"duplicate seed(s) {dup}")
            neg = [s for s in v if s < 0]
            if neg:
                raise ValueError(f"seeds must be non-negative integers; got {neg}")
        return v

    @field_validator("name")
    @classmethod
    def _name_is_a_folder_name(cls, v: str) -> str:
        return _path_name(v, "the run name")

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


def _format_errors(exc: ValidationError, source: str, data: dict[str, Any]) -> str:
    """The schema's errors, and with them the misspelt component names
    (:func:`mtlkit.run.precheck.unknown_names`, read from source without torch), so that one
    error lists both."""
    from mtlkit.run.precheck import unknown_names

    found = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling)"
        found.append((loc, msg))
    found += unknown_names(data, skip=[loc for loc, _ in found])
    lines = [f"Invalid config {source}: {plural(len(found), 'problem')}"]
    lines += [f"  - {loc}: {msg}" for loc, msg in found]
    return "\n".join(lines)


def parse_config(data: dict[str, Any], *, source: str = "(dict)") -> RunConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"Invalid config {source}: the top level must be a mapping, got {type(data).__name__}.")
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, source, data)) from None


def load_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML config (the safe loader: :func:`read_yaml_file`), apply ``key.sub=value`` overrides, validate."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"Config file not found: {str(p)!r}.")
    data = read_yaml_file(p)
    if data is None:
        raise ConfigError(f"Config file {str(p)!r} is empty.")
    if not isinstance(data, dict):
        raise ConfigError(f"Invalid config {str(p)!r}: the top level must be a mapping, got {type(data).__name__}.")
    data = apply_overrides(data, overrides or [])
    _resolve_data_path(data, p.parent)
    _check_tree(data, repr(str(p)))
    return parse_config(data, source=repr(str(p)))


def _resolve_data_path(data: dict[str, Any], base: Path) -> None:
    """``data.path`` (and ``data.image_root``) relative to the YAML file's folder; a path
    that exists only relative to the working directory is kept as it is."""
    section = data.get("data")
    if not isinstance(section, dict):
        return
    for key in ("path", "image_root"):
        value = section.get(key)
        if not isinstance(value, str) or not value or Path(value).is_absolute():
            continue
        beside = base / value
        if beside.exists():
            section[key] = str(beside.resolve())  # the run's config.yaml then reads from anywhere
        elif not Path(value).exists():
            section[key] = str(beside)


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
            value = safe_yaml(raw)
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


def code_references(cfg: RunConfig | dict[str, Any]) -> list[str]:
    """The ``"module:function"`` references to user code in a config (a hint's ``fn``), in
    order: what a run may import only when the user allowed it (:mod:`mtlkit.code`)."""
    specs = cfg.auxiliary if isinstance(cfg, RunConfig) else (cfg.get("auxiliary") or [])
    out = []
    for spec in specs if isinstance(specs, list) else []:
        fn = spec.get("fn") if isinstance(spec, dict) else None
        if isinstance(fn, str) and fn not in out:
            out.append(fn)
    return out


def config_hash(cfg: RunConfig) -> str:
    import hashlib
    import json

    dumped = cfg.model_dump(mode="json")
    dumped.get("training", {}).pop("device", None)  # a checkpoint may resume on another device
    # an optional section left unset does not count: adding a new one keeps every hash
    dumped = {k: v for k, v in dumped.items() if v is not None}
    return hashlib.sha256(json.dumps(dumped, sort_keys=True).encode()).hexdigest()[:16]
