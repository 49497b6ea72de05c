"""Hypothesis fuzzing of config parsing and table ingestion: random junk either works or
fails with one of our clear error types (ValueError, KeyError, TypeError,
FileNotFoundError, ConfigError), with a message, raised by mtlkit's own code — never an
IndexError/AttributeError/ZeroDivisionError or an exception from deep inside
pandas/torch/yaml.

Runs are derandomised (same examples every run) and small (≈150 examples per property).
The ``*_needs_fix`` properties widen the domain to inputs that still escape today; each
carries pinned ``@example``s so that it fails deterministically until ``src/`` is fixed.
"""

from __future__ import annotations

import math
import traceback
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import mtlkit
from mtlkit import Task, from_dataframe
from mtlkit.config import ConfigError, RunConfig, apply_overrides, load_config, parse_config

OURS = (ValueError, KeyError, TypeError, FileNotFoundError, ConfigError)
MTLKIT_DIR = str(Path(mtlkit.__file__).resolve().parent)
FUZZ = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def assert_ours(exc: BaseException) -> None:
    """One of our error types, with a message, raised by mtlkit itself."""
    assert isinstance(exc, OURS), f"{type(exc).__name__}: {exc}"
    msg = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    assert msg.strip(), f"{type(exc).__name__} without a message"
    innermost = traceback.extract_tb(exc.__traceback__)[-1].filename
    assert str(Path(innermost).resolve()).startswith(MTLKIT_DIR), \
        f"{type(exc).__name__}({msg!r}) raised inside a dependency: {innermost}"


# ---------------------------------------------------------------------------- config strategies
KEYS = ["data", "tasks", "model", "training", "name", "seed", "baselines", "auxiliary", "dataset", "path",
        "split", "train", "val", "test", "stratify", "kind", "weight", "epochs", "batch_size", "weighting",
        "aggregator", "architecture", "trunk", "optimizer", "lr", "monitor", "sampler", "in_memory",
        "columns", "num_classes", "options", "image_size", "level", "generator", "role", "patience"]
scalars = (st.none() | st.booleans() | st.integers(-3, 10**9) | st.floats() | st.text(max_size=8)
           | st.sampled_from(["yeast", "binary", "regression", "pcgrad", "dwa", "hard_sharing", "mlp", "x.csv",
                              "parameters", "representation", "nan", "-1", ""]))
keys = st.sampled_from(KEYS) | st.text(max_size=6)
junk = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5),
                    max_leaves=30)

VALID = {"name": "ok", "seed": 1, "data": {"dataset": "yeast", "split": {"train": 0.6, "val": 0.2, "test": 0.2}},
         "tasks": [{"name": "a", "kind": "binary"}, {"name": "b", "kind": "regression", "weight": 0.5}],
         "model": {"trunk": {"name": "mlp", "hidden": [8]}, "architecture": {"name": "hard_sharing"}},
         "training": {"epochs": 2, "batch_size": 8, "optimizer": {"name": "adam", "lr": 0.01},
                      "weighting": {"name": "dwa"}, "monitor": "a:accuracy"},
         "auxiliary": [], "baselines": True}


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


PATHS = [p for p in _paths(VALID) if p]


def _set(cfg, path, value):
    import copy

    out = copy.deepcopy(cfg)
    node = out
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    return out


def _parse(data) -> None:
    try:
        cfg = parse_config(data)
    except BaseException as exc:
        assert_ours(exc)
        assert isinstance(exc, ConfigError) and "Invalid config" in str(exc)
    else:
        assert isinstance(cfg, RunConfig)


@FUZZ
@given(junk)
def test_parse_config_on_junk(data):
    _parse(data)


@FUZZ
@given(st.sampled_from(PATHS), junk)
def test_parse_config_on_a_valid_config_with_one_junk_value(path, value):
    _parse(_set(VALID, path, value))


override_keys = st.lists(st.sampled_from(KEYS[:20]) | st.text("abc_", min_size=0, max_size=4),
                         min_size=0, max_size=4).map(".".join)
override_values = (st.sampled_from(["3", "-1", "[1, 2", "{name: dwa}", "{", "null", "'x'", "1e999", ".nan",
                                    "[a, {b: c}]", "yes", "x=y", ""]) | st.text(max_size=6))
overrides = st.lists(st.builds(lambda k, v: f"{k}={v}", override_keys, override_values)
                     | st.text(max_size=10).filter(lambda s: "!" not in s), max_size=4)


@FUZZ
@given(st.sampled_from([VALID, {}, {"data": {"dataset": "yeast"}}]), overrides)
def test_apply_overrides_then_parse(base, items):
    try:
        data = apply_overrides(base, items)
    except BaseException as exc:
        assert_ours(exc)
        assert isinstance(exc, ConfigError)
        return
    _parse(data)


YAML_TOKENS = ["data:", " dataset: yeast", "\n", "  ", "\t", "- ", "&a ", "*a", "? ", ": ", "{", "}", "[", "]",
               "'", '"', "training:", " epochs: ", "1e999", ".nan", "---\n", "...", "~", "yes", "0o17", "1_000",
               "!!str ", "!!float 'y'", "!!int 'x'", "!!timestamp x", "2001-02-30", "!!binary", "!!set",
               "!!python/object/apply:os.system ['touch PWNED']"]
yaml_text = st.lists(st.sampled_from(YAML_TOKENS) | st.text(max_size=3), max_size=16).map("".join)


def _load(tmp_path: Path, text: str | bytes, items: list[str]) -> None:
    p = tmp_path / "c.yaml"
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text, encoding="utf-8")
    try:
        load_config(p, items)
    except BaseException as exc:
        assert_ours(exc)
        assert isinstance(exc, ConfigError)
    assert not (tmp_path / "PWNED").exists()


@FUZZ
@given(yaml_text.filter(lambda s: "!!" not in s and "20" not in s))
def test_load_config_on_random_yaml_text(tmp_path, text):
    """Untagged YAML text, no overrides: always a ConfigError naming the problem."""
    _load(tmp_path, text, [])


@FUZZ
@given(yaml_text | st.binary(max_size=12), st.lists(st.sampled_from(["training.epochs=2", "a=1", "b"]), max_size=2))
@example("name: !!timestamp x\n", [])
@example("name: 2001-02-30\n", [])
@example(b"\x80\x81", [])
@example("- a\n", ["a=1"])
@example("[" * 1200 + "]" * 1200, [])
def test_load_config_on_random_yaml_needs_fix(tmp_path, text, items):
    _load(tmp_path, text, items)


# ---------------------------------------------------------------------------- table strategies
CELLS = (st.none() | st.booleans() | st.integers(-3, 5) | st.integers() | st.floats() | st.text(max_size=4)
         | st.sampled_from(["", " ", "nan", "1", "0", "inf", "-inf", "1e400", "-1", "0x1", "1,5", "2"])
         | st.complex_numbers(max_magnitude=3) | st.just(pd.NA) | st.just(pd.NaT)
         | st.just(pd.Timestamp("2020-01-01")) | st.binary(max_size=2))
COLUMNS = ["f", "g", "y", "z", "m", "a", "b"]
TASK_POOL = [Task("y", "binary"), Task("z", "regression"), Task("m", "multiclass", num_classes=3),
             Task("ml", "multilabel", num_labels=2, columns=("a", "b")),
             Task("z", "regression", missing_value=-1), Task("y", "binary", missing_value=2)]


@st.composite
def frames(draw, unique=True):
    n = draw(st.integers(0, 7))
    names = draw(st.lists(st.sampled_from(COLUMNS), max_size=6, unique=unique))
    cols = [pd.Series(draw(st.lists(CELLS, min_size=n, max_size=n)), dtype=object) for _ in names]
    df = pd.concat(cols, axis=1) if cols else pd.DataFrame(index=range(n))
    df.columns = names
    for i in range(len(names)):
        kind = draw(st.sampled_from(["object", "numeric", "string", "category", "bool", "float32"]))
        s = df.iloc[:, i]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                if kind == "numeric":
                    s = pd.to_numeric(s, errors="coerce")
                elif kind == "string":
                    s = s.astype("string")
                elif kind == "category":
                    s = s.astype(str).astype("category")
                elif kind == "bool":
                    s = s.astype(bool)
                elif kind == "float32":
                    s = pd.to_numeric(s, errors="coerce").astype("float32")
            except (TypeError, ValueError, OverflowError):
                pass
        df.isetitem(i, s)
    return df


task_lists = st.lists(st.sampled_from(TASK_POOL), min_size=1, max_size=3, unique_by=lambda t: t.name)
feature_choices = st.sampled_from([None, ["f"], ["f", "g"], [], ["y"]])


def _ingest(df, tasks, features) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            data, feats = from_dataframe(df, tasks, features)
        except BaseException as exc:
            assert_ours(exc)
            return
    # what comes out is usable: finite float inputs, labels of the right shape, boolean masks
    assert data.x.dtype == torch.float32 and torch.isfinite(data.x).all()
    assert data.x.shape == (len(df), len(feats))
    for t in tasks:
        y, m = data.targets[t.name], data.masks[t.name]
        assert m.dtype == torch.bool and y.shape[0] == len(df) and m.shape == y.shape
        vals = y[m].double()
        assert torch.isfinite(vals).all()
        if t.kind in ("binary", "multilabel"):
            assert set(vals.tolist()) <= {0.0, 1.0}
        if t.kind == "multiclass":
            assert all(0 <= v < 3 and v == math.floor(v) for v in vals.tolist())


@FUZZ
@given(frames(), task_lists, feature_choices)
def test_from_dataframe_on_random_frames(df, tasks, features):
    _ingest(df, tasks, features)


@FUZZ
@given(frames(unique=False), task_lists, feature_choices)
@example(pd.DataFrame([[1.0, 0.0, 0.5]], columns=["f", "z", "z"]), [Task("z", "regression")], None)
@example(pd.DataFrame([[1.0, 0.0, 1.0]], columns=["f", "f", "y"]), [Task("y", "binary")], ["f"])
def test_from_dataframe_with_duplicate_columns_needs_fix(df, tasks, features):
    _ingest(df, tasks, features)


@FUZZ
@given(st.lists(st.sampled_from(["f,y,z", "\n", "1", ",", "2.5", "a", "nan", "", " ", ";", '"', "\t", "-1",
                                 "1e400", "inf"]), max_size=30).map("".join).filter(lambda s: s.strip()))
def test_csv_text_through_the_table_reader(tmp_path, text):
    """Random CSV text through read_table + from_dataframe. (pandas' own parser errors are
    pinned by test_unparseable_csv_is_named until read_table names the file.)"""
    from mtlkit.data._table import read_table

    p = tmp_path / "t.csv"
    p.write_text(text)
    try:
        df = read_table(p)
    except BaseException as exc:
        if not isinstance(exc, pd.errors.ParserError | pd.errors.EmptyDataError):
            assert_ours(exc)
        return
    _ingest(df, [Task("y", "binary"), Task("z", "regression")], None)


@pytest.mark.parametrize("text", ["", "\n\n", 'f,y\n"1,2\n'], ids=["empty", "blank-lines", "open-quote"])
def test_unparseable_csv_is_named(tmp_path, text):
    from mtlkit.data._table import read_table

    p = tmp_path / "bad.csv"
    p.write_text(text)
    with pytest.raises(ValueError, match=r"bad\.csv"):
        read_table(p)


def test_random_arrays_never_crash_from_arrays():
    """A deterministic sweep of odd array inputs through from_arrays."""
    from mtlkit import from_arrays

    r = np.random.default_rng(0)
    tasks = [Task("a", "binary"), Task("b", "regression", dim=2)]
    inputs = [r.normal(size=(6, 3)), r.normal(size=(6, 2, 2)), np.full((6, 3), np.nan), np.zeros((0, 3)),
              r.integers(0, 5, size=(6, 3)), np.zeros((6, 3), dtype=bool), r.normal(size=(6, 3)).astype("float16")]
    labels = [{"a": r.integers(0, 2, 6), "b": r.normal(size=(6, 2))},
              {"a": np.r_[np.nan, np.ones(5)], "b": np.full((6, 2), np.nan)},
              {"a": r.integers(0, 3, 6), "b": r.normal(size=(6, 2))},
              {"a": np.ones(6), "b": r.normal(size=(6, 3))},
              {"a": np.ones(5), "b": r.normal(size=(6, 2))},
              {"b": r.normal(size=(6, 2))}]
    for x in inputs:
        for lab in labels:
            try:
                from_arrays(x, lab, tasks)
            except BaseException as exc:
                assert_ours(exc)
