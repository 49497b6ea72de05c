import pytest

from mtlkit import Task, delta_m
from mtlkit.evaluation import delta_m_per_task


def test_sign_convention_hand_made():
    acc = Task("a", "multiclass", num_classes=3)
    reg = Task("r", "regression")
    mtl = {"a": {"accuracy": 0.9, "macro_f1": 0.8}, "r": {"mae": 1.1, "rmse": 2.0, "r2": 0.5}}
    stl = {"a": {"accuracy": 0.8, "macro_f1": 0.8}, "r": {"mae": 1.0, "rmse": 2.0, "r2": 0.5}}
    # a: accuracy +12.5% better -> -12.5 ; macro_f1 0 -> mean -6.25
    # r: mae 10% worse -> +10 ; others 0 -> mean 10/3
    per = delta_m_per_task(mtl, stl, [acc, reg])
    assert per["a"] == pytest.approx(-6.25)
    assert per["r"] == pytest.approx(10 / 3)
    assert delta_m(mtl, stl, [acc, reg]) == pytest.approx((-6.25 + 10 / 3) / 2)


def test_auxiliary_excluded_from_headline():
    main = Task("m", "regression")
    aux = Task("x", "regression", role="auxiliary")
    mtl = {"m": {"mae": 1.0}, "x": {"mae": 100.0}}
    stl = {"m": {"mae": 2.0}, "x": {"mae": 1.0}}
    assert delta_m(mtl, stl, [main, aux], metrics={"m": ["mae"], "x": ["mae"]}) == pytest.approx(-50.0)
    assert delta_m(mtl, stl, [main, aux], primary_only=False, metrics={"m": ["mae"], "x": ["mae"]}) > 0
