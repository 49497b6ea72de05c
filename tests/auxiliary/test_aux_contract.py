"""What every registered generator promises: registry key, λ, role, validation, caching."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from _aux_helpers import HAS_DENSE

from mtlkit._registry import AUXILIARY
from mtlkit.auxiliary import AuxiliaryGenerator, AuxTarget, Std, build_generators, with_auxiliary

EXPECTED = ["abs_changes", "autoregressive", "edges", "fourier", "hint", "hog", "kurtosis", "next_token",
            "next_window", "otsu", "privileged", "quantisation", "reconstruction", "sample_entropy", "skewness",
            "std", "text_counts"]
DENSE = {"edges", "otsu", "reconstruction"}

SERIES = np.random.default_rng(0).normal(size=(3, 2, 24))
IMAGES = np.random.default_rng(1).random((3, 1, 16, 16))
TABLE = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [0.5, np.nan, 1.5]})
REQUIRED = {"privileged": {"columns": ["b"]}, "quantisation": {"column": "b"},
            "hint": {"fn": np.abs}, "fourier": {"k": 3},  # a "module:function" string needs allow_code
            "text_counts": {"column": "t"}}
#: inputs of the text generators (token IDs; a table with a text column)
INPUTS = {"next_token": np.array([[2, 5, 6, 0], [2, 7, 0, 0], [2, 4, 4, 9]]),
          "text_counts": pd.DataFrame({"t": ["Hi @a!", None, "#b c"]})}


def example(name: str):
    cls = AUXILIARY.get(name)
    gen = cls(**REQUIRED.get(name, {}))
    x = INPUTS[name] if name in INPUTS else {"series": SERIES, "image": IMAGES, "table": TABLE}.get(cls.input_kind,
                                                                                                   SERIES)
    return gen, x


def test_every_generator_is_registered_under_its_file_stem():
    assert AUXILIARY.names() == EXPECTED
    for entry in AUXILIARY:
        assert issubclass(entry.obj, AuxiliaryGenerator)
        assert entry.paper, f"{entry.name} cites no paper"
        assert ">>>" in (entry.obj.__doc__ or ""), f"{entry.name} has no example"


@pytest.mark.parametrize("name", EXPECTED)
def test_generators_give_an_auxiliary_task_with_its_lambda(name):
    if name in DENSE and not HAS_DENSE:
        pytest.skip("dense task kinds not in mtlkit.tasks yet")
    gen, x = example(name)
    assert gen.weight == 0.1
    aux = gen.generate(x)
    assert isinstance(aux, AuxTarget)
    assert aux.task.role == "auxiliary" and aux.task.weight == 0.1 and aux.task.name == f"aux_{name}"
    assert aux.targets.shape[0] == 3 and aux.mask.shape == aux.targets.shape and aux.mask.dtype == torch.bool
    assert torch.isfinite(aux.targets.float()).all()
    assert aux.targets[~aux.mask].abs().sum() == 0  # masked entries hold 0, never a guess
    (heavier,) = build_generators([{"generator": name, **REQUIRED.get(name, {}), "weight": 0.5,
                                    "name": "helper"}])
    task = heavier.generate(x).task
    assert (task.weight, task.name) == (0.5, "helper")


@pytest.mark.parametrize("name", EXPECTED)
def test_bad_weight_is_rejected_with_the_parameter_named(name):
    cls = AUXILIARY.get(name)
    with pytest.raises(ValueError, match=rf"The 'weight' parameter of {cls.__name__} must be a finite "
                                         r"non-negative float. Got -1.0."):
        cls(**REQUIRED.get(name, {}), weight=-1.0)


def test_results_are_cached_and_deterministic():
    g = Std()
    a = g.generate(SERIES)
    assert g.generate(SERIES.copy()) is a  # same content -> the cached result
    b = g.generate(SERIES + 1.0)
    assert b is not a and torch.equal(b.targets, a.targets)  # std is shift-invariant
    assert torch.equal(Std().generate(SERIES).targets, a.targets)


def test_repr_shows_the_constructor_and_str_is_short():
    assert repr(Std(ddof=1)) == "Std(ddof=1, standardize=False, weight=0.1, name=None)"
    assert str(Std()) == "Std"


def test_build_generators_from_a_yaml_like_list():
    gens = build_generators([{"generator": "fourier", "k": 8, "weight": 0.1},
                             {"generator": "privileged", "columns": ["lab"]}])
    assert [repr(g) for g in gens] == ["Fourier(k=8, include_dc=False, standardize=False, weight=0.1, name=None)",
                                       "Privileged(columns=['lab'], kind='regression', weight=0.1, name=None)"]
    with pytest.raises(ValueError, match="no 'generator' key"):
        build_generators([{"k": 3}])
    with pytest.raises(KeyError, match="Did you mean 'fourier'"):
        build_generators([{"generator": "fourrier"}])
    with pytest.raises(TypeError, match="Cannot build auxiliary generator 'std'"):
        build_generators([{"generator": "std", "kk": 3}])


def test_with_auxiliary_adds_tasks_and_cuts_the_window():
    from mtlkit import Task, from_arrays
    from mtlkit.auxiliary import NextWindow

    x = SERIES.astype("float32")
    data = from_arrays(x, {"y": np.array([0.0, 1.0, 0.0])}, [Task("y", "binary")])
    nw = NextWindow(horizon=4)
    out = with_auxiliary(data, [Std().generate(x[..., :20]), nw.generate(x)])
    assert [t.name for t in out.tasks] == ["y", "aux_std", "aux_next_window"]
    assert out.x.shape == (3, 2, 20) and torch.equal(out.x, torch.as_tensor(x[..., :20]))
    assert out.targets["aux_next_window"].shape == (3, 8)
    with pytest.raises(ValueError, match="clashes"):
        with_auxiliary(out, [Std().generate(x)])


DOC_MODULES = ["mtlkit.auxiliary", "mtlkit.auxiliary._base", "mtlkit.tasks_dense",
               "mtlkit.architectures.decoders"] + [f"mtlkit.auxiliary.{n}" for n in EXPECTED]


@pytest.mark.parametrize("module", DOC_MODULES)
def test_docstring_examples_run(module):
    import doctest
    import importlib

    if module.rsplit(".", 1)[-1] in DENSE and not HAS_DENSE:
        pytest.skip("dense task kinds not in mtlkit.tasks yet")
    res = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert res.failed == 0
