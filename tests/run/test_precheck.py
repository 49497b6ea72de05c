"""The check without torch (mtlkit.run.precheck, issue 22: a config typo reported <= 1.5 s)
gives the full check's error word for word whenever it answers, answers for the common
mistakes, and stands aside where only the full check can vouch for every problem."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import yaml

from mtlkit import _registry as R
from mtlkit.config import ConfigError, TaskConfig, parse_config
from mtlkit.run import validate
from mtlkit.run.precheck import (
    _PLAIN_LOSSES,
    _PLAIN_TASKS,
    UnknownNamesError,
    plain_task_spec,
    problems_without_torch,
)
from mtlkit.tasks import Task

ROOT = Path(__file__).resolve().parents[2]
BASE = {"name": "p", "data": {"dataset": "yeast"}, "training": {"epochs": 1}}
BAD_VALUES = (-1, 0, -0.5, 1.5, 10**9, "x", True, None, [1, 2])


def _with(training: dict | None = None, data: dict | None = None, model: dict | None = None) -> dict:
    cfg = {**BASE, "training": {**BASE["training"], **(training or {})}, "data": {**BASE["data"], **(data or {})}}
    if model:
        cfg["model"] = model
    return cfg


def _corpus() -> list[tuple[str, dict]]:
    """Configs with one or two mistakes of every kind (``"name"``, ``"key"``, ``"value"``),
    for every registered component."""
    out: list[tuple[str, dict]] = []
    sections = (("weighting", R.WEIGHTINGS, "training"), ("aggregator", R.AGGREGATORS, "training"),
                ("schedule", R.SCHEDULES, "training"), ("sampler", R.SAMPLERS, "data"))
    for key, reg, part in sections:
        for entry in reg:
            spots: list[tuple[str, dict]] = [("name", {"name": entry.name[:-1] + "q"}),
                                             ("key", {"name": entry.name, "paramx": 1})]
            for param in entry.parameters():
                spots += [("value", {"name": entry.name, param: v}) for v in BAD_VALUES]
                spots.append(("key", {"name": entry.name, param + "s": 1}))
            for kind, spot in spots:
                out.append((kind, _with(**{part: {key: spot}})))
                out.append((kind, _with(**{part: {key: spot}}, model={"architecture": {"name": "mmo"}})))
                if key != "aggregator":  # with a misspelt aggregator
                    data = {key: spot} if part == "data" else None
                    training = {"aggregator": {"name": "pcgrd"}, **({key: spot} if part == "training" else {})}
                    out.append((kind, _with(training=training, data=data)))
    out += [("key", _with(data={"options": {"n_trian": 3}})), ("name", _with(data={"dataset": "yaest"})),
            ("name", _with(model={"trunk": {"name": "mpl"}})),
            ("key", _with(model={"trunk": {"name": "mlp", "hiden": [3]}})),
            ("fit", _with(training={"level": "representation", "aggregator": {"name": "upgrad"}},
                          model={"architecture": {"name": "mmoe"}, "trunk": {"name": "mlp", "widths": 1}})),
            ("fit", _with(training={"jacobian_engine": "two-stage"},
                          model={"architecture": {"name": "cross_stitch"}, "trunk": {"name": "mlp", "widths": 1}})),
            ("other", _with(training={"device": "cuda:7", "weighting": {"name": "equl"}})),
            ("tasks", {**_with(training={"weighting": {"name": "equl"}}),
                       "tasks": [{"name": "y", "kind": "multilabel", "num_labels": 3}]}),
            ("other", {**_with(training={"weighting": {"name": "equl"}}),
                       "tasks": [{"name": "y", "kind": "segmentation", "num_classes": 3, "out_shape": [8, 8]}]})]
    # a table's own tasks (plain specs): with a misspelt name, architecture key, monitor, split
    plain = [{"name": "y", "kind": "binary", "positive_class": "yes"}, {"name": "z", "kind": "regression"},
             {"name": "c", "kind": "multiclass", "num_classes": 3, "role": "auxiliary", "weight": 0.1}]
    table = {"data": {"path": str(ROOT / "pyproject.toml")}}
    for extra in ({"training": {"weighting": {"name": "equl"}}},
                  {"model": {"architecture": {"name": "mmoe", "num_expertz": 2}}},
                  {"training": {"monitor": "w", "aggregator": {"name": "pcgrd"}}},
                  {"training": {"monitor": "y:auc", "aggregator": {"name": "pcgrd"}}},
                  {"training": {"monitor": "y", "aggregator": {"name": "pcgrd"}}},
                  {"data": {**table["data"], "split": {"stratify": "q"}}, "training": {"weighting": {"name": "equl"}}},
                  {"data": {"path": "no/such.csv"}}):
        out.append(("tasks", {**BASE, **table, "tasks": plain, **extra}))
    out.append(("tasks", {**BASE, **table, "tasks": [*plain, {"name": "m", "kind": "multilabel", "num_labels": 2,
                                                              "loss": "bce", "columns": ["p", "q"]}],
                          "training": {"weighting": {"name": "equl"}}}))
    out.append(("tasks", {**BASE, **table, "tasks": [
        {"name": "r", "kind": "regression", "dim": 2, "loss": "huber"},
        {"name": "c", "kind": "multiclass", "classes": ["lo", "mid", "hi"]},
        {"name": "b", "kind": "binary", "classes": ["no", "yes"], "positive_class": "yes"},
        {"name": "s", "kind": "contrastive", "margin": 2.0}],
        "training": {"aggregator": {"name": "pcgrd"}}}))
    out.append(("tasks", {**BASE, **table, "tasks": [{"name": "s", "kind": "contrastive"}],
                          "model": {"architecture": {"name": "siamese"}}, "training": {"weighting": {"name": "equl"}}}))
    # a binary funnel step: whether 'given' names a binary task of the config is checked by torch code
    out.append(("other", {**BASE, **table, "tasks": [*plain, {"name": "v", "kind": "binary", "given": "y"}],
                          "training": {"weighting": {"name": "equl"}}}))
    return out


def _full(cfg) -> ConfigError | None:
    try:
        validate(cfg)
    except ConfigError as exc:
        return exc
    return None


def test_whenever_it_answers_it_gives_the_full_checks_error():
    answered: dict[str, list[bool]] = {}
    for kind, raw in _corpus():
        cfg = parse_config(raw)
        fast = problems_without_torch(cfg)
        answered.setdefault(kind, []).append(fast is not None)
        if fast is None:
            continue
        with pytest.raises(ConfigError) as fast_error:
            fast.raise_all()
        full = _full(cfg)
        assert full is not None, raw
        assert str(fast_error.value) == str(full), raw
        assert type(fast_error.value) is type(full), raw
    # every misspelt name or key (without tasks ...) is found without torch; the values where
    # the constructor checks them with mtlkit._checks (a third of these, many bad on purpose)
    assert all(answered["name"]) and all(answered["key"])
    assert sum(answered["value"]) > len(answered["value"]) / 4, (sum(answered["value"]), len(answered["value"]))
    assert all(answered["fit"])
    assert sum(answered["tasks"]) >= len(answered["tasks"]) - 1  # all but "y:auc" (metrics: torch code)
    assert not any(answered["other"])


@pytest.mark.parametrize("kind", sorted(_PLAIN_TASKS))
def test_every_task_spec_it_vouches_for_builds(kind):
    """The table of plain task specs never lets through a spec the task kinds reject."""
    values = {"positive_class": ["yes", 1, True, None], "standardize": [True, False, None],
              "num_classes": [0, 1, 2, 3, None], "num_labels": [0, 1, 2, None], "dim": [0, 1, 2],
              "classes": [None, ["no", "yes"], [0, 1, 2], ["a", "a"], [1, "1"], ["x"]],
              "loss": [None, "bce", "mse", "huber", "cross_entropy", "contrastive", "focal"],
              "margin": [None, 0.5, float("inf")],
              "role": ["primary", "auxiliary"], "weight": [None, 0.0, 0.5, 3],
              "missing_value": [None, -1.0], "columns": [None, ["a"], ["a", "b"]]}
    keys = ["role", "weight", "missing_value", "columns", *_PLAIN_TASKS[kind]]
    vouched = 0
    for combo in itertools.product(*(values[k] for k in keys)):
        spec = {**TaskConfig(name="t", kind=kind).model_dump(), **dict(zip(keys, combo))}
        if plain_task_spec(spec):
            vouched += 1
            Task(**{k: tuple(v) if k == "columns" and v is not None else v for k, v in spec.items()})
    assert vouched > 0


@pytest.mark.parametrize("kind", sorted(_PLAIN_TASKS))
def test_the_losses_it_accepts_are_the_kinds_own(kind):
    from mtlkit.kinds import get_kind

    assert _PLAIN_LOSSES[kind] == tuple(get_kind(kind).losses)


@pytest.mark.parametrize("raw", [
    _with(training={"weighting": {"name": "dwa", "temperature": -1.0}, "aggregator": {"name": "pcgrd"}}),
    _with(training={"weighting": {"name": "equl"}}),
    _with(training={"weighting": {"name": "dwa", "temperatur": 2}}),
    _with(data={"options": {"n_trian": 3}}, model={"trunk": {"name": "mlp", "hiden": [3]}}),
    _with(data={"dataset": "yaest"}),
    _with(model={"architecture": {"name": "hard_sharng"}}),
])
def test_the_common_mistakes_are_found_without_torch(raw):
    found = problems_without_torch(parse_config(raw))
    assert found is not None and found.items
    full = str(_full(parse_config(raw)))
    assert all(f"{where}: {message}" in full for where, message in found.items)


@pytest.mark.parametrize("raw", [
    # tasks other than plain ones, a GPU device and auxiliary generators are checked by torch code
    {**_with(training={"weighting": {"name": "equl"}}), "tasks": [{"name": "y", "kind": "binary", "given": "z"}]},
    {**_with(training={"weighting": {"name": "equl"}}), "tasks": [{"name": "y", "kind": "segmentation"}]},
    {**_with(training={"weighting": {"name": "equl"}}), "tasks": [{"name": "y", "kind": "multiclass"}]},
    _with(training={"device": "cuda:7", "weighting": {"name": "equl"}}),
    {**_with(training={"weighting": {"name": "equl"}}), "auxiliary": [{"generator": "fourier", "k": 8}]},
    # two built components: whether they fit needs them built
    _with(training={"weighting": {"name": "dwa"}, "aggregator": {"name": "pcgrad"}, "schedule": {"name": "jont"}}),
    # a constructor that checks its value in its own code
    _with(training={"weighting": {"name": "great", "hidden": 0}, "aggregator": {"name": "pcgrd"}}),
    # no problem: the full check builds the components
    _with(training={"weighting": {"name": "dwa"}}),
])
def test_it_stands_aside_where_only_the_full_check_can_vouch(raw):
    assert problems_without_torch(parse_config(raw)) is None


def test_all_unknown_names_is_a_key_error_as_the_full_check_says():
    found = problems_without_torch(parse_config(_with(training={"weighting": {"name": "equl"}})))
    assert found is not None
    with pytest.raises(UnknownNamesError):
        found.raise_all()


def test_a_config_file_read_as_yaml_is_checked_the_same(tmp_path):
    raw = _with(training={"weighting": {"name": "dwa", "temperature": -1.0}, "aggregator": {"name": "pcgrd"}})
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    from mtlkit.config import load_config

    found = problems_without_torch(load_config(tmp_path / "c.yaml"))
    assert found is not None and [w for w, _ in found.items] == ["training.weighting", "training.aggregator"]


# --------------------------------------------------------------- schema errors with names
@pytest.mark.parametrize(("where", "raw"), [
    ("model.architecture", _with(model={"architecture": {"name": "hard_sharng"}})),
    ("model.trunk.name", _with(model={"trunk": {"name": "mpl"}})),
    ("training.weighting", _with(training={"weighting": {"name": "equl"}})),
    ("training.aggregator", _with(training={"aggregator": {"name": "pcgrd"}})),
    ("training.schedule", _with(training={"schedule": {"name": "jont"}})),
    ("data.sampler", _with(data={"sampler": {"name": "temprature"}})),
    ("data.dataset", _with(data={"dataset": "yaest"})),
])
def test_a_schema_error_is_reported_with_the_misspelt_names(where, raw):
    """The schema's error does not hide a misspelt component (found once the schema is fixed,
    before): one error lists both, the name's message word for word as the full check's."""
    alone = str(_full(parse_config(raw)))
    line = next(x for x in alone.splitlines() if x.startswith(f"  - {where}: "))
    broken = {**raw, "training": {**raw["training"], "epochs": -3}}
    with pytest.raises(ConfigError) as err:
        parse_config(broken)
    text = str(err.value)
    assert "2 problems" in text and "training.epochs" in text and line in text.splitlines()


def test_a_field_with_its_own_schema_error_is_not_reported_twice():
    raw = _with(training={"epochs": -3, "aggregator": {"name": 3}}, model={"architecture": {"name": "mmo"}})
    with pytest.raises(ConfigError) as err:
        parse_config(raw)
    lines = [x for x in str(err.value).splitlines() if x.startswith("  - ")]
    assert [x.split(":")[0] for x in lines] == ["  - training.epochs", "  - training.aggregator.name",
                                                "  - model.architecture"]


def test_the_names_of_every_example_config_are_known():
    from mtlkit.run.precheck import unknown_names

    configs = sorted((ROOT / "examples").rglob("*.yaml"))
    assert len(configs) > 10
    for path in configs:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        if isinstance(raw, dict):
            assert unknown_names(raw) == [], path
