"""Table generators: privileged columns, quantisation smoothing and hints."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from mtlkit import Task, from_dataframe
from mtlkit.auxiliary import Hint, Privileged, Quantisation, split_privileged


@pytest.fixture
def admissions() -> pd.DataFrame:
    return pd.DataFrame({
        "age": [50.0, 61.0, 72.0, 45.0],
        "heart_rate": [80.0, 95.0, 70.0, 110.0],
        "lab_result": [1.2, np.nan, 3.4, 0.7],        # arrives after admission
        "discharge": ["home", "care", "home", "died"],  # known only at the end of the stay
        "readmitted": [0, 1, 0, 1],                    # the primary task
    })


def test_privileged_columns_leave_the_inputs_and_become_masked_targets(admissions):
    aux = Privileged(columns=["lab_result"]).generate(admissions)
    assert "lab_result" not in aux.inputs.columns
    assert list(aux.inputs.columns) == ["age", "heart_rate", "discharge", "readmitted"]
    np.testing.assert_allclose(aux.targets.numpy()[:, 0], [1.2, 0.0, 3.4, 0.7], rtol=1e-6)
    assert aux.mask[:, 0].tolist() == [True, False, True, True]
    assert aux.task.kind == "regression" and aux.task.columns == ("lab_result",)
    assert aux.task.role == "auxiliary" and aux.task.weight == 0.1


def test_privileged_columns_are_absent_from_the_models_features(admissions):
    features, aux = split_privileged(admissions, ["lab_result", "discharge"])
    data, used = from_dataframe(features, [Task("readmitted", "binary")])
    assert used == ["age", "heart_rate"]
    assert not {"lab_result", "discharge"} & set(used)
    assert data.x.shape == (4, 2)
    assert [(a.task.name, a.task.kind) for a in aux] == [("aux_lab_result", "regression"),
                                                        ("aux_discharge", "multiclass")]
    # sorted levels: care 0, died 1, home 2
    assert aux[1].targets.tolist() == [2, 0, 2, 1] and aux[1].task.num_classes == 3


def test_privileged_kinds(admissions):
    df = admissions.assign(icu=[True, False, None, True])
    b = Privileged(columns=["icu"], kind="binary").generate(df)
    assert b.targets.dtype == torch.float32 and b.targets.tolist() == [1.0, 0.0, 0.0, 1.0]
    assert b.mask.tolist() == [True, True, False, True]
    ml = Privileged(columns=["readmitted"], kind="multilabel").generate(admissions)
    assert ml.task.kind == "multilabel" and ml.targets.shape == (4, 1)
    _, aux = split_privileged(df, ["icu"], kinds={"icu": "binary"})
    assert aux[0].task.kind == "binary"


def test_privileged_from_an_array_with_column_names():
    x = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    aux = Privileged(columns=["b"]).generate(x, columns=["a", "b", "c"])
    assert list(aux.inputs.columns) == ["a", "c"] and aux.targets[:, 0].tolist() == [2.0, 5.0]


def test_privileged_errors(admissions):
    with pytest.raises(KeyError, match="'nope'"):
        Privileged(columns=["nope"]).generate(admissions)
    with pytest.raises(ValueError, match="The 'columns' parameter of Privileged must be a non-empty list"):
        Privileged(columns=[])
    with pytest.raises(ValueError, match="takes exactly one column"):
        Privileged(columns=["a", "b"], kind="multiclass")
    with pytest.raises(ValueError, match="at most 2"):
        Privileged(columns=["discharge"], kind="binary").generate(admissions)


def test_quantisation_regresses_the_score_behind_the_class_and_drops_it():
    score = np.array([0.12, 0.55, 0.91, np.nan])
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "risk_score": score,
                       "risk_class": [0, 1, 2, 1]})
    aux = Quantisation(column="risk_score").generate(df)
    assert list(aux.inputs.columns) == ["x", "risk_class"]
    np.testing.assert_allclose(aux.targets.numpy()[:3, 0], score[:3], rtol=1e-6)
    assert aux.mask[:, 0].tolist() == [True, True, True, False]
    assert aux.task.kind == "regression" and aux.task.dim == 1 and aux.names == ("risk_score",)
    kept = Quantisation(column="risk_score", drop=False).generate(df)
    assert kept.inputs is None
    direct = Quantisation().generate(score[:3])
    np.testing.assert_allclose(direct.targets.numpy()[:, 0], score[:3], rtol=1e-6)


def test_hint_regression_binary_and_multiclass():
    x = np.array([[1.0, -3.0], [2.0, 0.5], [0.0, 0.0]])
    reg = Hint(fn=lambda a: a ** 2).generate(x)
    np.testing.assert_allclose(reg.targets.numpy(), x ** 2)
    assert reg.task.dim == 2
    b = Hint(fn=lambda a: a.sum(1) > 0, kind="binary", name="positive").generate(x)
    assert b.task.name == "positive" and b.targets.tolist() == [0.0, 1.0, 0.0]
    mc = Hint(fn=lambda a: np.sign(a[:, 0]), kind="multiclass").generate(x)
    assert mc.task.num_classes == 2 and mc.targets.tolist() == [1, 1, 0]  # levels 0.0, 1.0


def test_hint_from_an_import_string_and_with_undefined_values():
    x = np.array([[-2.0, 1.0], [4.0, 0.0]])
    from mtlkit.user_code import allowed_code

    with allowed_code("numpy"):  # a config's "module:function" runs only code the user allowed
        aux = Hint(fn="numpy:sign").generate(x)
    np.testing.assert_array_equal(aux.targets.numpy(), np.sign(x))
    half = Hint(fn=lambda a: np.where(a[:, 0] > 0, a[:, 0], np.nan)).generate(x)
    assert half.mask[:, 0].tolist() == [False, True]
    with pytest.raises(ValueError, match="The 'fn' parameter of Hint"):
        Hint(fn="not_a_module_xyz:f")
    with pytest.raises(ValueError, match=r"expected \(2,\) or \(2, D\)"):
        Hint(fn=lambda a: np.zeros(3)).generate(x)
