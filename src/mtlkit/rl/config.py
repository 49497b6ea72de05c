"""``kind: rl`` configs: pydantic models, validated strictly (unknown keys rejected, every
problem reported at once with its field), environment ids checked against Gymnasium's
registry (with "did you mean"), keyword arguments checked by building the environment.

>>> cfg = parse_rl_config({"kind": "rl", "budget": 1000, "methods": ["single", "shared"],
...                        "tasks": [{"name": "a", "env": "CartPole-v1"},
...                                  {"name": "b", "env": "mtlkit/CartPole-v1", "kwargs": {"length": 1.0}}]})
>>> cfg.methods, cfg.agent.n_envs
(['single', 'shared'], 4)
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from mtlkit._text import plural
from mtlkit.config import ConfigError

MethodName = Literal["single", "shared", "distral", "care"]
METHODS: tuple[MethodName, ...] = ("single", "shared", "distral", "care")


class RLConfigError(ConfigError):
    """An RL config is invalid; the message lists every problem with its field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class RLTaskConfig(_Strict):
    """One task: a Gymnasium environment id, its keyword arguments, optional metadata."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    env: str = Field(min_length=1, description="a Gymnasium id, e.g. CartPole-v1 or mtlkit/CartPole-v1")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of the environment")
    metadata: str | list[float] | None = Field(
        default=None, description="CARE's context: a short text or a vector describing the task")

    @field_validator("env")
    @classmethod
    def _known_env(cls, v: str) -> str:
        from mtlkit.rl._envs import check_env_id

        check_env_id(v)
        return v

    @field_validator("kwargs")
    @classmethod
    def _accepted_kwargs(cls, v: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        from mtlkit.rl._envs import probe

        env = info.data.get("env")
        if env is not None:  # (an unknown id is reported on 'env')
            probe(env, v)
        return v

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, v: str | list[float] | None) -> str | list[float] | None:
        if isinstance(v, str) and not v.strip():
            raise ValueError("an empty text; give a few words describing the task, or leave it out")
        if isinstance(v, list):
            if not v:
                raise ValueError("an empty vector")
            if not all(math.isfinite(x) for x in v):
                raise ValueError(f"the vector must be finite, got {v}")
        return v


class A2CConfig(_Strict):
    """The actor-critic shared by all methods."""

    n_envs: int = Field(default=4, ge=1, le=512, description="environments per task stepped together")
    n_steps: int = Field(default=16, ge=1, le=10_000, description="rollout length per update")
    gamma: float = Field(default=0.99, gt=0, le=1)
    gae_lambda: float = Field(default=0.95, ge=0, le=1)
    lr: float = Field(default=1e-3, gt=0, le=1)
    optimizer: Literal["adam", "rmsprop"] = "adam"
    hidden: list[int] = Field(default_factory=lambda: [64, 64], min_length=1)
    activation: Literal["tanh", "relu"] = "tanh"
    ent_coef: float = Field(default=0.01, ge=0)
    vf_coef: float = Field(default=0.5, ge=0)
    max_grad_norm: float | None = Field(default=0.5, gt=0)

    @field_validator("hidden")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if any(h < 1 for h in v):
            raise ValueError(f"layer widths must be positive, got {v}")
        return v


class DistralConfig(_Strict):
    """α = c_KL/(c_KL + c_Ent) and β = 1/(c_KL + c_Ent), as in the paper."""

    alpha: float = Field(default=0.5, ge=0, le=1)
    beta: float = Field(default=5.0, gt=0)


class CAREConfig(_Strict):
    encoders: int = Field(default=4, ge=1, le=64, description="k, the number of state encoders")
    encoder_dim: int = Field(default=32, ge=1)
    context_dim: int = Field(default=16, ge=1)
    hash_buckets: int = Field(default=256, ge=1, description="rows of the hashed bag-of-words embedding")
    temperature: float = Field(default=1.0, gt=0)


class EvaluationConfig(_Strict):
    episodes: int = Field(default=10, ge=1, le=1000, description="episodes per task")
    seed: int = Field(default=10_000, ge=0, description="sub-environment i of each task is reset with seed + i")
    deterministic: bool = Field(default=True, description="greedy actions (else sampled)")
    at_steps: list[int] = Field(default_factory=list, description="also evaluate at these env steps per task")


class RLConfig(_Strict):
    """A multi-task RL run: every method of ``methods`` with every seed of ``seeds``."""

    kind: Literal["rl"]
    name: str = Field(default="rl", min_length=1)
    tasks: list[RLTaskConfig] = Field(min_length=1)
    methods: list[MethodName] = Field(default_factory=lambda: list(METHODS), min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    budget: int = Field(ge=1, description="environment steps per task (the same for every method)")
    pad: bool = Field(default=False, description="zero-pad observations and mask actions when tasks' spaces differ")
    agent: A2CConfig = Field(default_factory=A2CConfig)
    distral: DistralConfig = Field(default_factory=DistralConfig)
    care: CAREConfig = Field(default_factory=CAREConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    checkpoint_every: int | None = Field(default=None, ge=1, description="env steps per task between checkpoints; "
                                         "the environments are reset there, so a resumed run is exact")
    log_every: int | None = Field(default=None, ge=1, description="env steps per task between learning-curve points")
    device: str = "cpu"

    @field_validator("methods", "seeds")
    @classmethod
    def _unique(cls, v: list[Any]) -> list[Any]:
        dup = sorted({str(x) for x in v if v.count(x) > 1})
        if dup:
            raise ValueError(f"listed more than once: {', '.join(dup)}")
        return v

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if v != "cpu" and v != "cuda" and not v.startswith("cuda:"):
            raise ValueError(f"'cpu', 'cuda' or 'cuda:N', got {v!r}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> RLConfig:
        problems = []
        names = [t.name for t in self.tasks]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            problems.append(f"tasks: duplicate task name(s) {dup}")
        late = [s for s in self.evaluation.at_steps if s < 1 or s > self.budget]
        if late:
            problems.append(f"evaluation.at_steps: {late} outside 1..budget ({self.budget})")
        if "care" in self.methods:
            missing = [t.name for t in self.tasks if t.metadata is None]
            if missing:
                problems.append(f"tasks: method 'care' needs a 'metadata' text or vector for every task; "
                                f"missing for {missing}")
            elif len({isinstance(t.metadata, str) for t in self.tasks}) > 1:
                problems.append("tasks: the metadata must be texts for every task or vectors for every task")
            elif not isinstance(self.tasks[0].metadata, str) and \
                    len({len(t.metadata or []) for t in self.tasks}) > 1:
                problems.append(f"tasks: the metadata vectors have different lengths "
                                f"{ {t.name: len(t.metadata or []) for t in self.tasks} }")
        sharing = [m for m in self.methods if m != "single"]
        if sharing and not self.pad:
            spaces = self.spaces()
            groups: dict[str, list[str]] = {}
            for t, sp in zip(self.tasks, spaces):
                groups.setdefault(sp.text, []).append(t.name)
            if len(groups) > 1:
                detail = "; ".join(f"{', '.join(v)}: {k}" for k, v in groups.items())
                problems.append(f"tasks: methods {sharing} share parameters across tasks and need equal "
                                f"observation and action spaces, but the tasks differ ({detail}). Set "
                                f"'pad: true' to zero-pad observations and mask missing actions, or use "
                                f"only 'single'")
        if problems:
            raise ValueError("\n  - ".join(problems))
        return self

    def spaces(self) -> list[Any]:
        """The :class:`~mtlkit.rl._envs.Space` of each task (builds each environment once)."""
        from mtlkit.rl._envs import probe

        return [probe(t.env, t.kwargs) for t in self.tasks]

    def method_hash(self, method: str, seed: int) -> str:
        """What a checkpoint of (method, seed) depends on: tasks, agent, method settings, seed,
        budget, checkpoint and log intervals, evaluation."""
        d = self.model_dump(mode="json")
        keep = {k: d[k] for k in ("tasks", "agent", "budget", "pad", "evaluation", "checkpoint_every",
                                  "log_every")}
        keep.update(method=method, seed=seed, settings=d.get(method))
        return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:16]


def _format_errors(exc: ValidationError, source: str) -> str:
    lines = [f"Invalid RL config {source}: {plural(exc.error_count(), 'problem')}"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling)"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        lines.append(f"  - {loc}: {msg}")
    return "\n".join(lines)


def parse_rl_config(data: Any, *, source: str = "(dict)") -> RLConfig:
    """Validate a config mapping; a :class:`RLConfigError` lists every problem."""
    if not isinstance(data, dict):
        raise RLConfigError(f"Invalid RL config {source}: the top level must be a mapping, got "
                            f"{type(data).__name__}.")
    if data.get("kind") != "rl":
        raise RLConfigError(f"Invalid RL config {source}: 'kind: rl' is required (got kind "
                            f"{data.get('kind')!r}); supervised configs run with `mtlkit train`.")
    try:
        return RLConfig.model_validate(data)
    except ValidationError as exc:
        raise RLConfigError(_format_errors(exc, source)) from None


def load_rl_config(path: str | Path, overrides: list[str] | None = None) -> RLConfig:
    """Read a YAML file (``yaml.safe_load``), apply ``key.sub=value`` overrides, validate."""
    from mtlkit.config import apply_overrides

    p = Path(path)
    if not p.exists():
        raise RLConfigError(f"Config file not found: {str(p)!r}.")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, ValueError, TypeError, AttributeError, RecursionError) as exc:
        raise RLConfigError(f"Config file {str(p)!r} is not valid YAML: {type(exc).__name__}: {exc}") from None
    if data is None:
        raise RLConfigError(f"Config file {str(p)!r} is empty.")
    if isinstance(data, dict) and overrides:
        data = apply_overrides(data, overrides)
    return parse_rl_config(data, source=repr(str(p)))


def dump_rl_config(cfg: RLConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
