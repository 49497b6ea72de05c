"""Task kinds as registered objects: every kind passes one conformance check, a kind is one
file (the ``Count`` kind of the ``mtlkit.kinds._base`` docstring, dropped in as a file, trains
and is accepted by configs), and an unknown kind names the registered ones."""

from __future__ import annotations

import contextlib
import doctest
import importlib
import math
import re
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

import mtlkit.kinds as kinds_pkg
from mtlkit import tasks, tasks_dense
from mtlkit._registry import KINDS
from mtlkit.config import TaskConfig
from mtlkit.kinds import UnknownKindError, get_kind, kind_names
from mtlkit.kinds._base import TaskKind
from mtlkit.tasks import Task, task_from_dict

BUILT_IN = ["binary", "contrastive", "dense_regression", "multiclass", "multilabel", "regression",
            "segmentation", "sequence_labelling"]


def _random_targets(t: Task, n: int, g: torch.Generator) -> torch.Tensor:
    k = t.task_kind
    shape = (n, *t.target_shape)
    if k.has_classes:
        return torch.randint(0, int(t.num_classes or 2), shape, generator=g)
    if k.binary_targets:
        return torch.randint(0, 2, shape, generator=g).float()
    return torch.rand(shape, generator=g) * 3  # non-negative values fit every value kind here


def check_kind(name: str) -> None:
    """The conformance check of one registered kind."""
    k = get_kind(name)
    assert isinstance(k, TaskKind) and k.name == name and get_kind(name) is k
    assert KINDS.get(name) is type(k)
    assert k.main_metric and k.losses and k.default_loss == k.losses[0]
    assert not (k.has_classes and k.binary_targets)
    t = Task("t", name, **k.example)
    assert t.task_kind is k and t.loss_name == k.default_loss
    assert task_from_dict(t.to_dict()) == t
    assert TaskConfig(name="t", kind=name).kind == name  # configs accept every registered kind
    with pytest.raises(ValueError, match="not available"):
        Task("t", name, loss="no-such-loss", **k.example)

    # shapes
    out_shape, target_shape = t.output_shape, t.target_shape
    assert all(isinstance(s, int) and s >= 1 for s in (*out_shape, *target_shape))
    assert t.out_dim == math.prod(out_shape)
    if k.has_classes:
        assert k.width_setting == "num_classes"
    if k.dense:
        assert target_shape == t.out_shape
    if k.multi_column:
        assert len(target_shape) == 1 and not k.dense

    # loss: finite on random outputs, with a gradient; 0 with graph when nothing is labelled
    n = 6
    g = torch.Generator().manual_seed(0)
    flat = torch.randn(n, t.out_dim, generator=g)
    pred = t.shape_output(flat).requires_grad_(True)
    assert tuple(pred.shape) == (n, *out_shape)
    y = _random_targets(t, n, g)
    mask = torch.rand(y.shape, generator=g) > 0.3
    mask.view(-1)[0] = True
    t.task_kind.check_labels(t, y[mask])
    loss = t.compute_loss(pred, y, mask)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all()
    none = t.compute_loss(pred, y, torch.zeros_like(mask))
    assert none.detach().item() == 0.0 and none.requires_grad

    # metrics and decoding
    names = [m.name for m in t.metrics]
    assert len(set(names)) == len(names) and t.main_metric in names
    assert all(isinstance(m.higher_is_better, bool) for m in t.metrics)
    assert [m.name for m in k.metrics()] == names
    res = t.evaluate(pred.detach(), y, mask)
    assert list(res) == names and all(isinstance(v, float) for v in res.values())
    prob = t.predict_transform(pred.detach())
    assert prob.shape == pred.shape and torch.isfinite(prob).all()
    cols = k.prediction_columns(t, pred.detach())
    assert (cols == {}) == (k.dense and not getattr(k, "text_output", False))  # generation: decoded texts
    assert all(len(v) == n for v in cols.values())
    conf = t.confusion_data(pred.detach(), y, mask)
    assert (conf is not None) == k.class_per_sample
    if conf is not None:
        true, predicted, labels = conf
        assert len(true) == len(predicted) == int(mask.sum()) and set(predicted) <= set(labels)
    balance = k.class_balance(t, y, mask)
    assert balance is None or sum(np.ravel(balance)) <= mask.sum()
    report = t.classification_report(pred.detach(), y, mask)
    assert report is None or isinstance(report, dict)

    # targets from a torch Dataset keep the kind's dtype
    yy, mm = k.cast_targets(t, y, mask)
    assert yy.dtype == (torch.long if k.has_classes else torch.float32) and mm.shape == yy.shape


@pytest.mark.parametrize("name", kind_names())
def test_every_registered_kind_passes_the_conformance_check(name):
    check_kind(name)


def test_the_built_in_kinds_are_registered_under_their_file_stems():
    assert set(BUILT_IN) <= set(kind_names())
    for name in BUILT_IN:
        assert type(get_kind(name)).__module__ == f"mtlkit.kinds.{name}"
    assert tuple(kind_names()) == tasks.KINDS
    assert {"dense_regression", "generation", "next_token", "segmentation", "sequence_labelling"} <= set(tasks_dense.DENSE_KINDS)
    assert {n for n in kind_names() if get_kind(n).class_per_sample} >= {"binary", "multiclass"}
    assert [n for n in BUILT_IN if get_kind(n).pairwise] == ["contrastive"]


def test_confusion_data_is_the_experiments_rule():
    """binary: logit >= 0, labels [0, 1]; multiclass: argmax, labels 0..C-1."""
    b = Task("b", "binary")
    true, pred, labels = b.confusion_data(torch.tensor([0.0, -0.1, 3.0]), torch.tensor([1.0, 1.0, 0.0]),
                                          torch.tensor([True, True, True]))
    assert true.tolist() == [1, 1, 0] and pred.tolist() == [1, 0, 1] and labels == [0, 1]
    m = Task("m", "multiclass", num_classes=4)
    out = torch.tensor([[0.0, 2.0, 0.0, 0.0], [5.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
    true, pred, labels = m.confusion_data(out, torch.tensor([1, 2, 3]), torch.tensor([True, False, True]))
    assert true.tolist() == [1, 3] and pred.tolist() == [1, 3] and labels == [0, 1, 2, 3]
    assert Task("r", "regression").confusion_data(out, out, out) is None


# ---------------------------------------------------------------- unknown kinds
def test_an_unknown_kind_names_the_registered_kinds():
    with pytest.raises(ValueError, match=r"Task 'y': unknown kind 'regresion'\. Did you mean 'regression'\?") as e:
        Task("y", "regresion")
    assert all(n in str(e.value) for n in kind_names())
    with pytest.raises(UnknownKindError, match="Did you mean 'multiclass'"):
        get_kind("multiclas")
    with pytest.raises(ValueError, match=r"unknown kind 'classification'\. Known kinds: binary, "):
        Task("y", "classification")


def test_a_config_with_an_unknown_kind_lists_the_registered_kinds():
    with pytest.raises(ValidationError) as e:
        TaskConfig(name="y", kind="segmentaton")
    (err,) = e.value.errors()
    assert err["loc"] == ("kind",) and err["type"] == "literal_error"
    assert all(repr(n) in err["msg"] for n in kind_names())
    assert "did you mean 'segmentation'" in err["msg"]


# ---------------------------------------------------------------- a kind is one file
def _count_source() -> str:
    """The ``Count`` kind of the ``mtlkit.kinds._base`` docstring, as a module."""
    doc = sys.modules["mtlkit.kinds._base"].__doc__ or ""
    block = re.search(r"``@KINDS.register\(\)``::\n\n(.*?)\nIt registers", doc, re.S)
    assert block, "the kinds._base docstring lost its example kind"
    return textwrap.dedent(block.group(1))


@contextlib.contextmanager
def kind_file(tmp: Path, name: str, source: str) -> Iterator[None]:
    """``mtlkit/kinds/<name>.py`` exists for the duration (in a folder added to the package's
    path); the registry finds it as it finds the built-in ones, and is restored afterwards."""
    (tmp / f"{name}.py").write_text(source)
    saved_path, saved_entries = list(kinds_pkg.__path__), dict(KINDS._entries)
    kinds_pkg.__path__.append(str(tmp))
    KINDS._loaded = False  # rescan the package, as on first use
    try:
        yield
    finally:
        kinds_pkg.__path__[:] = saved_path
        KINDS._entries.clear()
        KINDS._entries.update(saved_entries)
        KINDS._loaded = True
        sys.modules.pop(f"mtlkit.kinds.{name}", None)
        for key in [k for k in kinds_pkg._INSTANCES if k[0] == name]:
            del kinds_pkg._INSTANCES[key]
        importlib.invalidate_caches()


def test_adding_a_kind_is_one_file(tmp_path):
    from mtlkit import HardSharing, Trainer, from_arrays
    from mtlkit.architectures.backbones import mlp

    assert "count" not in kind_names()
    with kind_file(tmp_path, "count", _count_source()):
        assert "count" in kind_names() and "count" in tasks.KINDS
        check_kind("count")
        assert TaskConfig(name="visits", kind="count").kind == "count"
        rng = np.random.default_rng(0)
        x = rng.normal(size=(64, 4)).astype("float32")
        visits = rng.poisson(np.exp(0.5 * x[:, 0])).astype(float)
        visits[:5] = np.nan
        task_list = [Task("visits", "count"), Task("up", "binary")]
        data = from_arrays(x, {"visits": visits, "up": (x[:, 1] > 0).astype(float)}, task_list)
        assert data.targets["visits"].shape == (64,) and not bool(data.masks["visits"][:5].any())
        torch.manual_seed(0)
        trainer = Trainer(HardSharing(mlp(4, (8,)), task_list), task_list, epochs=2, batch_size=16,
                          progress=False)
        trainer.fit(data)
        res = trainer.evaluate(data)
        assert set(res["visits"]) == {"mae"} and math.isfinite(res["visits"]["mae"])
    assert "count" not in kind_names() and "count" not in tasks.KINDS
    with pytest.raises(ValueError, match="unknown kind 'count'"):
        Task("visits", "count")


# ---------------------------------------------------------------- docs
@pytest.mark.parametrize("module", ["mtlkit.kinds", "mtlkit.kinds._base", "mtlkit.tasks",
                                    *[f"mtlkit.kinds.{n}" for n in BUILT_IN]])
def test_docstring_examples_run(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
