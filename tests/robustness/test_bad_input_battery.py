"""The bad-input battery: many kinds of bad input through every public entry point — the
Python API (``mtlkit.fit``, ``Trainer``, ``Task``, ``from_dataframe``, ``from_arrays``,
``MultiTaskDataset``), YAML configs (``mtlkit.config.load_config``) and the CLI (typer's
``CliRunner``) — each must fail with a clear error that names the offending
field / column / file / task. A CLI case must exit with code 2 and print ``Error: ...``
without a traceback.

``CASES`` passed from the start; ``NEEDS_FIX`` are the cases that first exposed a missing
check in ``src/`` (fixed since; each keeps the reason it once failed). The foundation's own cases live in
``tests/core/test_bad_input.py`` and are not repeated here (see docs/robustness.md).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from _robust import TASKS, tiny_frame
from torch import nn

from mtlkit import HardSharing, Task, Trainer, fit, from_arrays, from_dataframe
from mtlkit.config import ConfigError, load_config, parse_config
from mtlkit.data.multi import MultiTaskDataset
from mtlkit.run import build_components
from mtlkit.weighting.static import Static


# ---------------------------------------------------------------------------- harness
class Env:
    """What a case may use: a private folder, writers for CSV/YAML, the CLI, a run folder."""

    def __init__(self, tmp: Path, finished_run: Path) -> None:
        self.tmp = tmp
        self._finished = finished_run

    def csv(self, df: pd.DataFrame, name: str = "d.csv") -> Path:
        p = self.tmp / name
        df.to_csv(p, index=False)
        return p

    def yaml(self, cfg: Any, name: str = "c.yaml") -> Path:
        p = self.tmp / name
        p.write_text(yaml.safe_dump(cfg))
        return p

    def text(self, content: str | bytes, name: str) -> Path:
        p = self.tmp / name
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content)
        return p

    def table_config(self, df: pd.DataFrame | None = None, **overrides: Any) -> dict[str, Any]:
        """A valid config on a small CSV; ``overrides`` are merged one level deep."""
        cfg: dict[str, Any] = {"name": "bad", "data": {"path": str(self.csv(tiny_frame() if df is None else df))},
                               "tasks": [t.to_dict() for t in TASKS],
                               "model": {"trunk": {"name": "mlp", "hidden": [4]}},
                               "training": {"epochs": 1, "batch_size": 32}, "baselines": False}
        for k, v in overrides.items():
            cfg[k] = {**cfg[k], **v} if isinstance(v, dict) and isinstance(cfg.get(k), dict) else v
        return cfg

    def cli(self, *args: str):
        from typer.testing import CliRunner

        from mtlkit.cli import get_app

        return CliRunner().invoke(get_app(), [str(a) for a in args])

    def train(self, cfg: dict[str, Any], *extra: str):
        return self.cli("train", self.yaml(cfg), "--out", self.tmp / "run", "--no-progress", *extra)

    def run(self) -> Path:
        dst = self.tmp / "finished"
        if not dst.exists():
            shutil.copytree(self._finished, dst)
        return dst


@dataclass(frozen=True)
class Case:
    """``call(env)`` must raise ``error`` whose message matches ``pattern`` (Python/config);
    for ``entry == "cli"`` it returns the CliRunner result, which must exit 2 and print
    ``Error:`` and ``pattern``."""

    id: str
    entry: str  # "python" | "config" | "cli"
    call: Callable[[Env], Any]
    error: type[BaseException] | tuple[type[BaseException], ...]
    pattern: str


def check(case: Case, env: Env) -> None:
    if case.entry == "cli":
        res = case.call(env)
        out = res.output
        assert res.exit_code == 2, (res.exit_code, out, res.exception)
        assert "Error:" in out and "Traceback" not in out, out
        assert re.search(case.pattern, out, re.S), out
        return
    with pytest.raises(case.error) as e:
        case.call(env)
    msg = str(e.value.args[0]) if isinstance(e.value, KeyError) and e.value.args else str(e.value)
    assert re.search(case.pattern, msg, re.S), msg


# ---------------------------------------------------------------------------- inputs
def _df(**changes: Any) -> pd.DataFrame:
    df = tiny_frame()
    for k, v in changes.items():
        df[k] = v
    return df


def _arrays(n=40, d=3):
    r = np.random.default_rng(0)
    return r.normal(size=(n, d)).astype("float32")


def _mt(x, labels, tasks):
    return from_arrays(x, labels, tasks)


class _Lin(nn.Module):
    """A user model ``x -> {task: output}`` whose outputs are shaped by ``shape``."""

    def __init__(self, shape: Callable[[torch.Tensor], Any]) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 2)
        self.shape = shape

    def forward(self, x):
        return self.shape(self.lin(x))


AB = [Task("a", "binary"), Task("b", "regression")]


def _ab_data():
    x = _arrays()
    return _mt(x, {"a": (x[:, 0] > 0).astype(float), "b": x[:, 1]}, AB)


def _user_model_fit(shape):
    return lambda env: Trainer(_Lin(shape), AB, epochs=1, batch_size=8, progress=False).fit(_ab_data())


def _image_frame(env: Env) -> pd.DataFrame:
    from PIL import Image

    folder = env.tmp / "img"
    folder.mkdir(exist_ok=True)
    Image.new("RGB", (8, 8)).save(folder / "a.png")
    Image.new("RGB", (10, 6)).save(folder / "b.png")
    return pd.DataFrame({"path": ["a.png", "b.png"] * 6, "y": [0, 1, 2] * 4})


def _newer_format(env: Env):
    run = env.run()
    meta = json.loads((run / "model.json").read_text())
    meta["format_version"] = 99
    (run / "model.json").write_text(json.dumps(meta))
    return env.cli("predict", run, env.csv(tiny_frame(5), "in.csv"), "--out", env.tmp / "p.csv")


def _finished_out(env: Env):
    run = env.run()
    return env.cli("train", env.yaml(env.table_config()), "--out", run, "--no-progress")


def _mtd_unlabelled(env):
    x = _arrays()
    return MultiTaskDataset({"rain": _mt(x, {"a": (x[:, 0] > 0).astype(float)}, [AB[0]])}, tasks=AB)


def _mtd_shapes(env):
    a = _mt(_arrays(40, 3), {"a": np.zeros(40)}, [AB[0]])
    b = _mt(_arrays(10, 4), {"b": np.zeros(10)}, [AB[1]])
    return MultiTaskDataset({"rain": a, "wind": b})


def _mtd_label_shapes(env):
    a = _mt(_arrays(40, 3), {"b": np.zeros(40)}, [AB[1]])
    b = _mt(_arrays(10, 3), {"b": np.zeros((10, 2))}, [Task("b", "regression", dim=2)])
    return MultiTaskDataset({"rain": a, "wind": b})


def _all_missing_trainer(env):
    x = _arrays()
    data = _mt(x, {"a": (x[:, 0] > 0).astype(float), "b": np.full(len(x), np.nan)}, AB)
    return Trainer(_Lin(lambda h: {"a": h[:, 0], "b": h[:, 1:]}), AB, epochs=1, progress=False).fit(data)


def _static_unknown_task(env):
    t = Trainer(_Lin(lambda h: {"a": h[:, 0], "b": h[:, 1:]}), AB, weighting=Static(weights={"q": 2.0}),
                epochs=1, progress=False)
    return t.fit(_ab_data())


def _components(cfg):
    return lambda env: build_components(parse_config(cfg))


YEAST = {"dataset": "yeast"}

CASES = [
    # ---- tables and arrays (Python API)
    Case("label-column-of-strings", "python",
         lambda env: from_dataframe(_df(y=["cat", "dog", "emu"] * 20), TASKS), ValueError,
         r"Label column 'y' of task 'y' has non-numeric value 'cat'"),
    Case("feature-column-with-inf", "python",
         lambda env: from_dataframe(_df(f1=np.r_[np.inf, np.zeros(59)]), TASKS), ValueError,
         r"Feature column 'f1' has NaN or infinite values \(first at row 0\)"),
    Case("multiclass-label-not-integer", "python",
         lambda env: from_dataframe(_df(y=np.r_[1.5, np.zeros(59)]), TASKS), ValueError,
         r"Task 'y': multiclass labels must be integers"),
    Case("arrays-label-length", "python",
         lambda env: from_arrays(_arrays(40), {"a": np.zeros(39), "b": np.zeros(40)}, AB), ValueError,
         r"Task 'a' has 39 labels but x has 40 rows"),
    Case("arrays-label-missing-for-task", "python",
         lambda env: from_arrays(_arrays(40), {"a": np.zeros(40)}, AB), KeyError,
         r"No label array for task 'b'"),
    Case("arrays-infinite-regression-target", "python",
         lambda env: from_arrays(_arrays(40), {"a": np.zeros(40), "b": np.r_[np.inf, np.zeros(39)]}, AB),
         ValueError, r"Task 'b': regression targets contain infinite values"),
    Case("image-folder-mixed-sizes", "python",
         lambda env: from_dataframe(_image_frame(env), [TASKS[0]], image_column="path", image_root=env.tmp / "img"),
         ValueError, r"Images have different sizes.*image_size"),
    # ---- tasks and their data
    Case("task-all-labels-missing", "python", _all_missing_trainer, ValueError,
         r"Task\(s\) \['b'\] have no labelled training sample"),
    Case("dataset-task-labelled-nowhere", "python", _mtd_unlabelled, ValueError,
         r"Task\(s\) \['b'\] are not labelled by any of the datasets \['rain'\]"),
    Case("datasets-inconsistent-input-shapes", "python", _mtd_shapes, ValueError,
         r"Inconsistent input shapes: dataset 'rain' .*\(3,\).*dataset 'wind' has \(4,\)"),
    Case("datasets-inconsistent-label-shapes", "python", _mtd_label_shapes, ValueError,
         r"Task 'b' has labels of shape \(1,\) per sample in dataset 'rain' but \(2,\) in dataset 'wind'"),
    Case("task-unknown-kind", "python", lambda env: Task("y", "classification"), ValueError,
         r"Task 'y': unknown kind 'classification'"),
    # ---- loss weights
    Case("task-weight-negative", "python", lambda env: Task("y", "binary", weight=-1.0), ValueError,
         r"Task 'y': the 'weight' must be a finite non-negative float. Got -1.0"),
    Case("task-weight-nan", "python", lambda env: Task("y", "binary", weight=float("nan")), ValueError,
         r"Task 'y': the 'weight' must be a finite non-negative float. Got nan"),
    Case("static-weight-nan", "python", lambda env: Static(weights={"z": float("nan")}), ValueError,
         r"'weights' parameter of Static.*'z': nan"),
    Case("static-weight-negative", "python", lambda env: Static(weights={"z": -0.5}), ValueError,
         r"'weights' parameter of Static.*'z': -0.5"),
    Case("static-weight-unknown-task", "python", _static_unknown_task, ValueError,
         r"Static weights name unknown task\(s\) \['q'\]"),
    Case("config-task-weight-negative", "config",
         lambda env: parse_config(env.table_config(tasks=[{"name": "y", "kind": "binary", "weight": -2}])),
         ConfigError, r"tasks\.0\.weight"),
    Case("config-task-weight-nan", "config",
         lambda env: load_config(env.text("data: {path: d.csv}\ntasks:\n  - {name: y, kind: binary, weight: .nan}\n",
                                          "nan.yaml")), ConfigError, r"tasks\.0\.weight"),
    # ---- user trunks and models
    Case("user-trunk-wrong-input-width", "python",
         lambda env: fit(tiny_frame(), TASKS, trunk=nn.Linear(5, 8), epochs=1, baselines=False), ValueError,
         r"The trunk cannot process inputs of shape \(2,\)"),
    Case("user-model-wrong-batch-size", "python", _user_model_fit(lambda h: {"a": h[:1, 0], "b": h[:1, 1:]}),
         ValueError, r"output for task 'a' has shape \(1,\); expected \(8,\) for a binary task"),
    Case("user-model-missing-task", "python", _user_model_fit(lambda h: {"a": h[:, 0]}), KeyError,
         r"The model returned no output for task 'b'; it returned \['a'\]"),
    # ---- names with a suggestion
    Case("unknown-weighting", "python",
         lambda env: fit(tiny_frame(), TASKS, weighting="dwaa", epochs=1, baselines=False), ValueError,
         r"training\.weighting: Unknown weighting 'dwaa'\. Did you mean 'dwa'\?"),
    Case("unknown-aggregator", "python",
         lambda env: fit(tiny_frame(), TASKS, aggregator="pcgard", epochs=1, baselines=False), ValueError,
         r"training\.aggregator: Unknown aggregator 'pcgard'\. Did you mean 'pcgrad'\?"),
    Case("unknown-architecture", "python",
         lambda env: fit(tiny_frame(), TASKS, architecture="hard_shraing", epochs=1, baselines=False), KeyError,
         r"Unknown architecture 'hard_shraing'\. Did you mean 'hard_sharing'\?"),
    Case("unknown-sampler", "config", _components({"data": {**YEAST, "sampler": {"name": "temprature"}}}),
         ValueError, r"data\.sampler: Unknown sampler 'temprature'\. Did you mean 'temperature'\?"),
    Case("unknown-schedule", "config", _components({"data": YEAST, "training": {"schedule": {"name": "alternat"}}}),
         ValueError, r"training\.schedule: Unknown schedule 'alternat'\. Did you mean 'alternate'\?"),
    Case("aggregator-bad-hyperparameter", "config",
         _components({"data": YEAST, "training": {"aggregator": {"name": "cagrad", "c": -1}}}), ValueError,
         r"training\.aggregator: The 'c' parameter of CAGrad must be a non-negative float\. Got -1"),
    Case("architecture-unknown-parameter", "python",
         lambda env: fit(tiny_frame(), TASKS, architecture="mmoe", architecture_params={"num_expertz": 3},
                         epochs=1, baselines=False), ValueError, r"model\.architecture 'mmoe'.*'num_expertz'"),
    # ---- contradictory options
    Case("representation-level-without-shared-representation", "python",
         lambda env: fit(tiny_frame(), TASKS, architecture="mmoe", aggregator="pcgrad", level="representation",
                         epochs=1, baselines=False), ValueError,
         r"level='representation' needs a model with a shared representation; MMoE has none"),
    Case("weighting-not-aggregator-compatible", "python",
         lambda env: fit(tiny_frame(), TASKS, weighting="great", aggregator="pcgrad", epochs=1, baselines=False),
         ValueError, r"The weighting GREAT cannot be combined with a gradient-space aggregator \(PCGrad\)"),
    Case("split-stratify-unknown-task", "python",
         lambda env: fit(tiny_frame(), TASKS, stratify="q", epochs=1, baselines=False), ValueError,
         r"split\.stratify names unknown task 'q'"),
    Case("split-fractions", "python",
         lambda env: fit(tiny_frame(), TASKS, split=(0.5, 0.5, 0.5), epochs=1, baselines=False), ValueError,
         r"split fractions must be three non-negative numbers summing to 1"),
    Case("learning-rate-negative", "python",
         lambda env: fit(tiny_frame(), TASKS, lr=-1.0, epochs=1, baselines=False), ConfigError,
         r"training\.optimizer\.lr"),
    Case("trainer-level-typo", "python",
         lambda env: Trainer(_Lin(lambda h: h), AB, level="rep"), ValueError,
         r"The 'level' must be 'parameters' or 'representation'\. Got 'rep'"),
    Case("trainer-unknown-optimizer", "python",
         lambda env: Trainer(_Lin(lambda h: {"a": h[:, 0], "b": h[:, 1:]}), AB, optimizer="adamm", epochs=1,
                             progress=False).fit(_ab_data()), ValueError, r"Unknown optimizer 'adamm'"),
    Case("trainer-weighting-as-string", "python", lambda env: Trainer(_Lin(lambda h: h), AB, weighting="dwa"),
         TypeError, r"weighting must be a mtlkit Weighting\. Got str"),
    # ---- YAML files and overrides
    Case("yaml-not-a-mapping", "config", lambda env: load_config(env.text("- a\n- b\n", "list.yaml")),
         ConfigError, r"list\.yaml.*top level must be a mapping, got list"),
    Case("yaml-scalar", "config", lambda env: load_config(env.text("just words\n", "scalar.yaml")),
         ConfigError, r"scalar\.yaml.*top level must be a mapping, got str"),
    Case("yaml-empty", "config", lambda env: load_config(env.text("", "empty.yaml")), ConfigError,
         r"Config file '.*empty\.yaml' is empty"),
    Case("yaml-tab-indentation", "config",
         lambda env: load_config(env.text("data:\n\tdataset: yeast\n", "tab.yaml")), ConfigError,
         r"Config file '.*tab\.yaml' is not valid YAML.*line 2"),
    Case("yaml-both-sources", "config",
         lambda env: load_config(env.text("data: {dataset: yeast, path: x.csv}\n", "two.yaml")), ConfigError,
         r"two\.yaml.*data: .*exactly one of 'dataset'"),
    Case("yaml-wrong-type", "config",
         lambda env: load_config(env.text("data: {dataset: yeast}\ntraining: {epochs: three}\n", "t.yaml")),
         ConfigError, r"training\.epochs: Input should be a valid integer"),
    Case("yaml-split-sum", "config",
         lambda env: load_config(env.text("data: {dataset: yeast, split: {train: 0.5}}\n", "s.yaml")),
         ConfigError, r"data\.split: .*sum to 1 \(got 0\.9\)"),
    Case("yaml-auxiliary-without-generator", "config",
         lambda env: load_config(env.text("data: {dataset: yeast}\nauxiliary: [{k: 3}]\n", "a.yaml")),
         ConfigError, r"auxiliary: .*entry 0 needs a 'generator' key"),
    Case("yaml-tasks-missing-for-file", "config",
         lambda env: load_config(env.text("data: {path: d.csv}\n", "nt.yaml")), ConfigError,
         r"'tasks' is required when data comes from a file"),
    Case("config-file-not-found", "config", lambda env: load_config(env.tmp / "nope.yaml"), ConfigError,
         r"Config file not found: '.*nope\.yaml'"),
    # ---- the CLI
    Case("cli-set-without-equals", "cli",
         lambda env: env.train(env.table_config(), "--set", "training.epochs"), SystemExit,
         r"Override 'training\.epochs' must look like key\.sub=value"),
    Case("cli-config-not-found", "cli", lambda env: env.cli("train", env.tmp / "missing.yaml"), SystemExit,
         r"Config file not found: '.*missing\.yaml'"),
    Case("cli-csv-zero-rows", "cli",
         lambda env: env.train({**env.table_config(), "data": {"path": str(env.text("f1,f2,y,z\n", "zero.csv"))}}),
         SystemExit, r"'.*zero\.csv' is empty: it has no rows"),
    Case("cli-data-file-not-found", "cli",
         lambda env: env.train({**env.table_config(), "data": {"path": str(env.tmp / "gone.csv")}}), SystemExit,
         r"Data file not found: '.*gone\.csv'"),
    Case("cli-label-column-of-strings", "cli",
         lambda env: env.train(env.table_config(_df(z=["a", "b", "c"] * 20))), SystemExit,
         r"Label column 'z' of task 'z' has non-numeric value 'a'"),
    Case("cli-missing-label-column", "cli",
         lambda env: env.train(env.table_config(tiny_frame().drop(columns=["z"]))), SystemExit,
         r"Label column\(s\) \['z'\] for task 'z' not found in '.*d\.csv'"),
    Case("cli-image-folder-mixed-sizes", "cli",
         lambda env: env.train({**env.table_config(), "tasks": [TASKS[0].to_dict()],
                                "data": {"path": str(env.csv(_image_frame(env), "img.csv")),
                                         "image_column": "path", "image_root": str(env.tmp / "img")}}),
         SystemExit, r"Images have different sizes"),
    Case("cli-stratify-unknown-task", "cli",
         lambda env: env.train(env.table_config(), "--set", "data.split.stratify=q"), SystemExit,
         r"split\.stratify names unknown task 'q'"),
    Case("cli-unknown-weighting", "cli",
         lambda env: env.train(env.table_config(), "--set", "training.weighting={name: equl}"), SystemExit,
         r"Unknown weighting 'equl'\. Did you mean 'equal'\?"),
    Case("cli-unknown-dataset", "cli",
         lambda env: env.train({"data": {"dataset": "yeest"}, "training": {"epochs": 1}}), SystemExit,
         r"Unknown dataset 'yeest'\. Did you mean 'yeast'\?"),
    Case("cli-representation-level-mmoe", "cli",
         lambda env: env.train(env.table_config(), "--set", "model.architecture.name=mmoe",
                               "--set", "training.aggregator={name: pcgrad}",
                               "--set", "training.level=representation"), SystemExit,
         r"needs a model with a shared representation; MMoE has none"),
    Case("cli-monitor-unknown-task", "cli",
         lambda env: env.train(env.table_config(), "--set", "training.monitor=q:accuracy"), SystemExit,
         r"monitor.*names unknown task 'q'"),
    Case("cli-resume-nothing", "cli",
         lambda env: env.cli("train", env.yaml(env.table_config()), "--resume", env.tmp / "none"), SystemExit,
         r"Nothing to resume: '.*none' holds no run"),
    Case("cli-out-holds-finished-run", "cli", _finished_out, SystemExit,
         r"already holds a finished run; choose another --out or pass --overwrite"),
    Case("cli-predict-newer-format", "cli", _newer_format, SystemExit,
         r"model\.json' has format_version 99; this mtlkit reads up to 1"),
    Case("cli-predict-missing-feature", "cli",
         lambda env: env.cli("predict", env.run(), env.csv(tiny_frame(5).drop(columns=["f2"]), "in.csv"),
                             "--out", env.tmp / "p.csv"), SystemExit,
         r"Feature column\(s\) \['f2'\] not found"),
    Case("cli-predict-no-run", "cli",
         lambda env: env.cli("predict", env.tmp / "norun", env.csv(tiny_frame(5), "in.csv")), SystemExit,
         r"Run folder not found: '.*norun'"),
    Case("cli-evaluate-missing-label", "cli",
         lambda env: env.cli("evaluate", env.run(), "--data", env.csv(tiny_frame(9).drop(columns=["y"]), "e.csv")),
         SystemExit, r"Label column\(s\) \['y'\] for task 'y' not found"),
]


# ---------------------------------------------------------------------------- needs a fix in src/
class _DictTrunk(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 4)

    def forward(self, x):
        return {"features": self.lin(x)}


class _ScalarTrunk(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 4)

    def forward(self, x):
        return self.lin(x).sum()


def _dup_columns(env):
    df = tiny_frame()
    df = pd.concat([df, df[["z"]]], axis=1)
    return from_dataframe(df, TASKS)


# a "billion laughs" config: 10**7 values once the aliases of data.options are expanded
_BOMB = "data:\n  dataset: yeast\n  options:\n    a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
    f"    {c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n" for p, c in zip("abcdef", "bcdefg"))


def _fix(case: Case, reason: str):
    """A case that once needed a fix in src/ (``reason`` says what was wrong); now fixed."""
    return pytest.param(case, id=case.id)


NEEDS_FIX = [
    _fix(Case("monitor-unknown-metric", "python",
              lambda env: Trainer(_Lin(lambda h: h), AB, monitor="a:nope"), ValueError,
              r"monitor.*'nope'.*\['accuracy'"),
         "Trainer accepts an unknown monitor metric and fails after the first epoch with KeyError('nope')"),
    _fix(Case("cli-monitor-unknown-metric", "cli",
              lambda env: env.train(env.table_config(), "--set", "training.monitor=y:nope"), SystemExit,
              r"monitor.*'nope'.*accuracy"),
         "the CLI prints only 'Error: nope' after training an epoch"),
    _fix(Case("yaml-not-utf8", "config", lambda env: load_config(env.text(b"\x80\x81 data: x\n", "bin.yaml")),
              ConfigError, r"bin\.yaml"),
         "load_config lets UnicodeDecodeError escape without naming the file"),
    _fix(Case("yaml-bad-timestamp", "config",
              lambda env: load_config(env.text("data: {dataset: yeast}\nname: !!timestamp x\n", "ts.yaml")),
              ConfigError, r"ts\.yaml.*not valid YAML"),
         "yaml constructor errors (AttributeError/ValueError) escape load_config"),
    _fix(Case("yaml-impossible-date", "config",
              lambda env: load_config(env.text("data: {dataset: yeast}\nname: 2001-02-30\n", "date.yaml")),
              ConfigError, r"date\.yaml.*not valid YAML"),
         "'day is out of range for month' (ValueError) escapes load_config without the file"),
    _fix(Case("yaml-deeply-nested", "config",
              lambda env: load_config(env.text("x: " + "[" * 1200 + "]" * 1200 + "\n", "deep.yaml")), ConfigError,
              r"deep\.yaml.*not valid YAML"),
         "RecursionError from the YAML constructor escapes load_config"),
    _fix(Case("yaml-recursive-alias", "config",
              lambda env: load_config(env.text("data: &a {dataset: yeast, options: {x: *a}}\n", "rec.yaml")),
              ConfigError, r"rec\.yaml.*recursive"),
         "a self-referencing alias loads; config_hash later fails with 'Circular reference detected'"),
    _fix(Case("yaml-alias-bomb", "config", lambda env: load_config(env.text(_BOMB, "bomb.yaml")), ConfigError,
              r"bomb\.yaml.*too large"),
         "a 'billion laughs' config (10^7 values via aliases) is accepted; dumping or hashing it explodes"),
    _fix(Case("yaml-list-with-override", "cli",
              lambda env: env.cli("train", env.text("- a\n", "l.yaml"), "--set", "training.epochs=1"), SystemExit,
              r"l\.yaml.*mapping"),
         "apply_overrides indexes a non-mapping config: 'list indices must be integers or slices'"),
    _fix(Case("cli-csv-zero-bytes", "cli",
              lambda env: env.train({**env.table_config(), "data": {"path": str(env.text("", "blank.csv"))}}),
              SystemExit, r"blank\.csv"),
         "read_table lets pandas' 'No columns to parse from file' escape without the file"),
    _fix(Case("dataframe-duplicate-column", "python", _dup_columns, ValueError, r"'z'.*(twice|duplicate)"),
         "a duplicated column name gives AttributeError: 'DataFrame' object has no attribute 'dtype'"),
    _fix(Case("user-trunk-returns-dict", "python",
              lambda env: HardSharing(_DictTrunk(), TASKS, input_shape=(2,)), TypeError,
              r"trunk.*_DictTrunk.*dict"),
         "infer_out_features calls .reshape on the dict: AttributeError"),
    _fix(Case("user-trunk-drops-batch-dim", "python",
              lambda env: HardSharing(_ScalarTrunk(), TASKS, input_shape=(2,)), ValueError,
              r"trunk.*_ScalarTrunk.*batch"),
         "infer_out_features: IndexError 'tuple index out of range'"),
    _fix(Case("user-model-returns-tensor", "python", _user_model_fit(lambda h: h), TypeError,
              r"_Lin.*dict.*Tensor"),
         "Trainer._losses does 'name in tensor': RuntimeError from torch"),
    _fix(Case("user-model-integer-output", "python",
              _user_model_fit(lambda h: {"a": h[:, 0].long(), "b": h[:, 1:]}), TypeError,
              r"task 'a'.*floating"),
         "an integer output reaches the loss: NotImplementedError 'log_sigmoid_cpu not implemented for Long'"),
    _fix(Case("arrays-string-inputs", "python",
              lambda env: from_arrays(np.array([["a", "b", "c"]] * 4), {"a": [0, 1, 0, 1]}, [AB[0]]), TypeError,
              r"x.*numeric.*<U1"),
         "torch.as_tensor on a string array: TypeError from torch that does not name x"),
    _fix(Case("arrays-string-labels", "python",
              lambda env: from_arrays(np.zeros((4, 3)), {"a": ["x", "y", "x", "y"]}, [AB[0]]), ValueError,
              r"task 'a'.*numeric"),
         "np.asarray(labels, float) raises 'could not convert string to float' without the task"),
    _fix(Case("arrays-binary-with-two-columns", "python",
              lambda env: from_arrays(np.zeros((4, 3)), {"a": np.zeros((4, 2))}, [AB[0]]), ValueError,
              r"Task 'a' \(binary\) expects 1 label column"),
         "a 2-column label array for a binary task ends in a confusing KeyError about 'a[0]'/'a[1]'"),
    _fix(Case("static-weights-not-a-mapping", "python", lambda env: Static(weights=[1.0, 2.0]), TypeError,
              r"'weights' parameter of Static must be a mapping"),
         "dict([1.0, 2.0]) raises 'cannot convert dictionary update sequence element'"),
    _fix(Case("trainer-max-nonfinite-steps-zero", "python",
              lambda env: Trainer(_Lin(lambda h: h), AB, max_nonfinite_steps=0), ValueError,
              r"max_nonfinite_steps.*Got 0"),
         "max_nonfinite_steps=0 is accepted (the config requires >= 1)"),
]


# ---------------------------------------------------------------------------- tests
@pytest.fixture
def env(tmp_path, finished_run, no_report, monkeypatch) -> Env:
    monkeypatch.chdir(tmp_path)  # relative paths in configs resolve in the private folder
    return Env(tmp_path, finished_run)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gets_a_clear_error(case, env):
    check(case, env)


@pytest.mark.parametrize("case", NEEDS_FIX)
def test_bad_input_needing_a_fix(case, env):
    check(case, env)


def test_battery_size_and_coverage():
    """At least 25 kinds, through each entry point, with unique ids."""
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 25
    entries = {c.entry for c in CASES}
    assert entries == {"python", "config", "cli"}
    assert sum(c.entry == "cli" for c in CASES) >= 10
