"""Ensembles of teachers (MT-DNN, Liu et al. 2019): the soft target of an ensemble is the
average of its members' temperature-scaled probabilities; run folders of single- and multi-task
models as teachers; a teacher whose task does not match the student's is named."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mtlkit import Task
from mtlkit.distill import (
    TeacherEnsemble,
    ensemble_outputs,
    load_teachers,
    soft_target_loss,
    teacher_predictions,
)

T = 2.5


def _logits(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * 3


@pytest.mark.parametrize("members", [1, 2, 5])
def test_multiclass_soft_target_is_the_average_of_the_members(members):
    task = Task("c", "multiclass", num_classes=4)
    zs = [_logits(6, 4, seed=i) for i in range(members)]
    ens = ensemble_outputs(task, zs, temperature=T)
    want = torch.stack([torch.softmax(z / T, -1) for z in zs]).mean(0)
    torch.testing.assert_close(torch.softmax(ens / T, -1), want, atol=1e-6, rtol=0)
    # the distillation term against the ensemble is T²·KL(average ‖ student), computed by hand
    student = _logits(6, 4, seed=99)
    q = torch.log_softmax(student / T, -1)
    by_hand = (want * (want.log() - q)).sum(-1).mean() * T**2
    torch.testing.assert_close(soft_target_loss(task, student, ens, temperature=T), by_hand, atol=1e-5, rtol=0)


@pytest.mark.parametrize("task", [Task("y", "binary"), Task("m", "multilabel", num_labels=3)])
def test_sigmoid_soft_targets_are_averaged_per_label(task):
    shape = (8,) if task.kind == "binary" else (8, 3)
    zs = [_logits(*shape, seed=i) for i in range(3)]
    ens = ensemble_outputs(task, zs, temperature=T)
    want = torch.stack([torch.sigmoid(z / T) for z in zs]).mean(0)
    torch.testing.assert_close(torch.sigmoid(ens / T), want, atol=1e-6, rtol=0)


def test_regression_averages_values_and_extreme_logits_stay_finite():
    task = Task("v", "regression", dim=2)
    zs = [_logits(5, 2, seed=i) for i in range(3)]
    torch.testing.assert_close(ensemble_outputs(task, zs, temperature=T), torch.stack(zs).mean(0))
    c = Task("c", "multiclass", num_classes=3)
    huge = [torch.tensor([[500.0, -500.0, 0.0]]), torch.tensor([[-500.0, 500.0, 0.0]])]
    ens = ensemble_outputs(c, huge, temperature=1.0)
    assert torch.isfinite(ens).all()
    torch.testing.assert_close(torch.softmax(ens, -1), torch.tensor([[0.5, 0.5, 0.0]]), atol=1e-6, rtol=0)


class _Fixed(nn.Module):
    """A teacher that returns fixed multi-task outputs (a multi-task teacher)."""

    def __init__(self, outs: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.outs = outs
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x):  # x holds the row numbers
        rows = x[:, 0].long()
        return {k: v[rows] for k, v in self.outs.items()}


def test_teacher_predictions_of_a_list_is_the_ensemble_at_the_temperature():
    task = Task("c", "multiclass", num_classes=3)
    a, b = _logits(10, 3, seed=1), _logits(10, 3, seed=2)
    teachers = {"c": [_Fixed({"c": a, "other": torch.zeros(10)}), _Fixed({"c": b})]}
    got = teacher_predictions(teachers, [task], torch.arange(10.0)[:, None], batch_size=4,
                             temperature=T)["c"]
    torch.testing.assert_close(got, ensemble_outputs(task, [a, b], temperature=T))
    at_one = teacher_predictions({"c": TeacherEnsemble(task, teachers["c"])}, [task], torch.arange(10.0)[:, None])["c"]
    torch.testing.assert_close(torch.softmax(at_one, -1), (torch.softmax(a, -1) + torch.softmax(b, -1)) / 2)


def _saveable(tasks, seed):
    from mtlkit.architectures import build_model

    torch.manual_seed(seed)
    return build_model({"name": "hard_sharing", "trunk": {"name": "mlp", "hidden": [4]}}, tasks, (3,))


def test_run_folders_teaching_one_task_form_an_ensemble(tmp_path):
    from mtlkit.run.folder import save_model

    student = [Task("y", "binary"), Task("c", "multiclass", num_classes=3)]
    single = [Task("y", "binary")]
    multi = [Task("y", "binary"), Task("c", "multiclass", num_classes=3), Task("extra", "regression")]
    models = {}
    for name, tasks, seed in (("single", single, 1), ("multi", multi, 2)):
        m = _saveable(tasks, seed)
        save_model(tmp_path / name, m, {"architecture": m.config, "tasks": [t.to_dict() for t in tasks],
                                        "input_shape": [3]})
        models[name] = m.eval()
    teachers, sources = load_teachers([tmp_path / "single", tmp_path / "multi"], student)
    assert isinstance(teachers["y"], TeacherEnsemble) and not isinstance(teachers["c"], TeacherEnsemble)
    assert sources["y"] == f"{tmp_path / 'single'}, {tmp_path / 'multi'}"
    x = torch.randn(9, 3)
    got = teacher_predictions(teachers, student, x, temperature=T)
    with torch.no_grad():
        ys = [models["single"](x)["y"], models["multi"](x)["y"]]
        c = models["multi"](x)["c"]
    want = torch.stack([torch.sigmoid(z / T) for z in ys]).mean(0)
    torch.testing.assert_close(torch.sigmoid(got["y"] / T), want, atol=1e-6, rtol=0)
    torch.testing.assert_close(got["c"], c)  # a single teacher: its own logits, whatever T


def test_a_teacher_whose_task_does_not_match_is_named(tmp_path):
    from mtlkit.run.folder import save_model

    wrong = [Task("y", "multiclass", num_classes=3)]
    m = _saveable(wrong, 0)
    save_model(tmp_path / "wrong", m, {"architecture": m.config, "tasks": [t.to_dict() for t in wrong],
                                       "input_shape": [3]})
    with pytest.raises(ValueError, match=r"Task 'y' is binary.*multiclass.*wrong"):
        load_teachers([tmp_path / "wrong"], [Task("y", "binary")])
    with pytest.raises(ValueError, match=r"task\(s\) \['y'\]; none is a task of the student \(\['z'\]\)"):
        load_teachers([tmp_path / "wrong"], [Task("z", "binary")])
    named = [Task("y", "binary", classes=["no", "yes"])]
    m = _saveable(named, 0)
    save_model(tmp_path / "named", m, {"architecture": m.config, "tasks": [t.to_dict() for t in named],
                                       "input_shape": [3]})
    with pytest.raises(ValueError, match=r"Task 'y' has classes \['yes', 'no'\] in the student"):
        load_teachers([tmp_path / "named"], [Task("y", "binary", classes=["yes", "no"])])


def test_distill_from_an_ensemble_of_module_teachers(tmp_path):
    import numpy as np
    import pandas as pd

    from mtlkit.config import parse_config
    from mtlkit.distill import distill
    from mtlkit.run import prepare_from_config

    r = np.random.default_rng(0)
    df = pd.DataFrame(r.normal(size=(120, 3)), columns=["p", "q", "s"])
    df["a"] = (df["p"] > 0).astype(int)
    df.to_csv(tmp_path / "d.csv", index=False)
    cfg = parse_config({"name": "d", "data": {"path": str(tmp_path / "d.csv"), "features": ["p", "q", "s"]},
                        "tasks": [{"name": "a", "kind": "binary"}],
                        "model": {"trunk": {"name": "mlp", "hidden": [4]}},
                        "training": {"epochs": 1, "batch_size": 32}})
    prepared = prepare_from_config(cfg)
    torch.manual_seed(0)
    members = [nn.Sequential(nn.Linear(3, 1), nn.Flatten(0)), nn.Sequential(nn.Linear(3, 1), nn.Flatten(0))]
    res = distill(cfg, {"a": members}, prepared=prepared, temperature=T, compare=False)
    assert res.summary["teachers"]["a"]["source"] == "module:Sequential, module:Sequential"
    want = ensemble_outputs(prepared.tasks[0], [m(prepared.train.x).detach() for m in members], temperature=T)
    torch.testing.assert_close(res.trainer.teacher_outputs["a"], want)
