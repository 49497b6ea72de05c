"""The ``contrastive`` task kind, the ``mnist_pairs`` dataset and the siamese architecture from
YAML/CLI: single-task baseline, Δm, gradient methods, primary-only export."""

import json
import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from mtlkit import Task
from mtlkit.architectures import build_model
from mtlkit.architectures.siamese import Siamese
from mtlkit.cli import get_app
from mtlkit.config import ConfigError, load_config
from mtlkit.data import MultiTaskData
from mtlkit.datasets import load
from mtlkit.run import load_model
from mtlkit.tasks import task_from_dict

runner = CliRunner()
SPEC = {"name": "mlp", "hidden": [8]}


# --------------------------------------------------------------------------- the task kind
def test_contrastive_task_margin_loss_and_shapes():
    t = Task("same", "contrastive", margin=2.0)
    assert (t.out_dim, t.output_shape, t.target_shape, t.main_metric) == (1, (), (), "roc_auc")
    assert Task("same", "contrastive").margin == 1.0
    assert tuple(t.shape_output(torch.zeros(5, 1)).shape) == (5,)
    d = torch.tensor([0.0, 1.0, 0.5, 3.0, 9.0])
    y = torch.tensor([1.0, 1.0, 0.0, 0.0, 1.0])
    m = torch.tensor([True, True, True, True, False])
    # ½·0², ½·1², ½·(2 − 0.5)², ½·max(0, 2 − 3)², and the masked pair does not count
    want = (0.0 + 0.5 + 0.5 * 1.5**2 + 0.0) / 4
    assert float(t.compute_loss(d, y, m)) == pytest.approx(want)
    # Hadsell et al.'s gradient: similar pairs are pulled in (∂L/∂d = d), dissimilar pushed out
    d = torch.tensor([0.5, 0.5], requires_grad=True)
    Task("s", "contrastive", margin=2.0).compute_loss(d, torch.tensor([1.0, 0.0]), torch.ones(2, dtype=torch.bool)
                                                      ).backward()
    torch.testing.assert_close(d.grad, torch.tensor([0.5 / 2, -(2.0 - 0.5) / 2]))


def test_contrastive_task_serialises_its_margin_and_other_kinds_do_not():
    t = Task("same", "contrastive", margin=2.5, role="primary")
    d = t.to_dict()
    assert d["margin"] == 2.5 and task_from_dict(d) == t
    assert "margin" not in Task("y", "binary").to_dict()


@pytest.mark.parametrize("margin", [0, -1.0, float("nan"), "wide"])
def test_contrastive_task_rejects_bad_margins(margin):
    with pytest.raises(ValueError, match="'margin' of a contrastive task"):
        Task("same", "contrastive", margin=margin)


def test_margin_on_another_kind_is_refused():
    with pytest.raises(ValueError, match="'margin' is for the contrastive kind"):
        Task("y", "binary", margin=1.0)


def test_contrastive_labels_must_be_0_or_1():
    t = Task("same", "contrastive")
    with pytest.raises(ValueError, match="'same': contrastive labels must be 0 or 1"):
        MultiTaskData(torch.zeros(3, 2, 4), {"same": torch.tensor([0.0, 1.0, 2.0])}, None, [t])


def test_yaml_task_accepts_margin(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("data: {dataset: mnist_pairs}\n"
                 "tasks: [{name: same, kind: contrastive, margin: 3.0}]\n"
                 "model: {architecture: {name: siamese}}\n")
    cfg = load_config(f)
    assert cfg.tasks[0].margin == 3.0
    f.write_text("data: {dataset: mnist_pairs}\ntasks: [{name: same, kind: contrastive, margin: -1}]\n")
    with pytest.raises(ConfigError, match="margin"):
        load_config(f)


def test_contrastive_task_needs_the_siamese_architecture():
    tasks = [Task("same", "contrastive"), Task("d", "multiclass", num_classes=3)]
    for arch in ("hard_sharing", "mmoe", "cross_stitch"):
        with pytest.raises(ValueError, match="only the 'siamese' architecture"):
            build_model({"name": arch, "trunk": SPEC}, tasks, (4,))


def test_siamese_finds_its_contrastive_task_and_refuses_ambiguity():
    tasks = [Task("d", "multiclass", num_classes=3), Task("pair", "contrastive")]
    assert Siamese(SPEC, tasks, input_shape=(2, 4)).contrastive_task == "pair"
    with pytest.raises(ValueError, match="are all kind 'contrastive'"):
        Siamese(SPEC, [Task("a", "contrastive"), Task("b", "contrastive")], input_shape=(2, 4))
    with pytest.raises(ValueError, match="must be of kind 'contrastive'"):
        Siamese(SPEC, tasks, input_shape=(2, 4), contrastive_task="d")


def test_single_task_config_keeps_pairs_and_the_embedding_side():
    params = {"embedding_dim": 6, "pair_index": {"a": 0, "b": 1}}
    spec = Siamese.single_task_config(params, Task("b", "multiclass", num_classes=3))
    m = build_model({**spec, "trunk": SPEC}, [Task("b", "multiclass", num_classes=3)], (2, 4))
    assert isinstance(m, Siamese) and m.pair_index == {"b": 1} and m.contrastive_task is None
    x = torch.randn(3, 2, 4)
    torch.testing.assert_close(m(x)["b"], m.heads["b"](m.embed(x[:, 1])))
    spec = Siamese.single_task_config(params, Task("s", "contrastive"))
    m = build_model({**spec, "trunk": SPEC}, [Task("s", "contrastive")], (2, 4))
    assert m.contrastive_task == "s" and len(m.heads) == 0


# --------------------------------------------------------------------------- the dataset
def test_mnist_pairs_labels_agree_and_are_seeded():
    b = load("mnist_pairs", n_train=60, n_test=30, same_fraction=0.3)
    assert tuple(b.data.x.shape) == (60, 2, 1, 28, 28) and tuple(b.test.x.shape) == (30, 2, 1, 28, 28)
    assert [(t.name, t.kind, t.role) for t in b.tasks] == [
        ("same", "contrastive", "primary"), ("digit_a", "multiclass", "auxiliary"),
        ("digit_b", "multiclass", "auxiliary")]
    for part in (b.data, b.test):
        same = (part.targets["digit_a"] == part.targets["digit_b"]).float()
        assert torch.equal(part.targets["same"], same)
        assert not any(torch.equal(a[0], a[1]) for a in part.x)  # two different images
    assert int(b.data.targets["same"].sum()) == 18  # round(60 · 0.3)
    assert float(b.data.x.min()) >= 0.0 and float(b.data.x.max()) <= 1.0
    assert not set(b.info["train_pool"]) & set(b.info["test_pool"])
    again = load("mnist_pairs", n_train=60, n_test=30, same_fraction=0.3)
    assert torch.equal(again.data.x, b.data.x) and torch.equal(again.test.x, b.test.x)
    other = load("mnist_pairs", n_train=60, n_test=30, same_fraction=0.3, seed=1)
    assert not torch.equal(other.data.x, b.data.x)


@pytest.mark.parametrize("kw, match", [({"same_fraction": 1.5}, "same_fraction"),
                                       ({"n_train": 0}, "n_train"), ({"margin": 0.0}, "margin")])
def test_mnist_pairs_bad_options(kw, match):
    with pytest.raises(ValueError, match=match):
        load("mnist_pairs", **{"n_train": 10, "n_test": 10, **kw})


# --------------------------------------------------------------------------- CLI end to end
def _config(tmp_path, extra_training=""):
    f = tmp_path / "siamese.yaml"
    f.write_text(
        "name: siamese_pairs\nseed: 0\n"
        "data: {dataset: mnist_pairs, options: {n_train: 240, n_test: 120}, "
        "split: {train: 0.8, val: 0.2, test: 0.0}}\n"
        "model: {trunk: {name: lenet}, architecture: {name: siamese, embedding_dim: 16, "
        "pair_index: {digit_a: 0, digit_b: 1}}}\n"
        f"training: {{epochs: 2, batch_size: 64, optimizer: {{lr: 0.002}}{extra_training}}}\n")
    return f


def test_siamese_run_from_yaml_with_baseline_and_export(tmp_path):
    out = tmp_path / "run"
    res = runner.invoke(get_app(), ["train", str(_config(tmp_path)), "--out", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    s = json.loads((out / "summary.json").read_text())
    assert set(s["mtl"]["test"]) == {"same", "digit_a", "digit_b"}
    assert set(s["baselines"]) == {"same"}  # auxiliary tasks need no reference
    assert s["delta_m"] is not None and math.isfinite(s["delta_m"])
    assert 0.5 < s["mtl"]["test"]["same"]["roc_auc"] <= 1.0
    # the reference is the siamese model of `same` alone (a plain trunk cannot read pairs)
    base, meta = load_model(out / "baselines" / "same")
    assert meta["architecture"]["name"] == "siamese" and isinstance(base, Siamese)
    assert [t["name"] for t in meta["tasks"]] == ["same"] and len(base.heads) == 0
    model, meta = load_model(out)
    assert meta["tasks"][0]["margin"] == 2.0  # the dataset's default margin
    # primary-only export: the classifier heads are gone, the distances are unchanged
    res = runner.invoke(get_app(), ["export", str(out), "--out", str(tmp_path / "ship"), "--primary-only"])
    assert res.exit_code == 0, res.output
    small, small_meta = load_model(tmp_path / "ship")
    assert [t["name"] for t in small_meta["tasks"]] == ["same"] and len(small.heads) == 0
    x = load("mnist_pairs", n_train=5, n_test=5).test.x
    model.eval()
    small.eval()
    with torch.no_grad():
        torch.testing.assert_close(small(x)["same"], model(x)["same"])


def test_siamese_with_a_gradient_method_at_the_representation(tmp_path):
    out = tmp_path / "run"
    cfg = _config(tmp_path, ", aggregator: {name: upgrad}, level: representation")
    res = runner.invoke(get_app(), ["train", str(cfg), "--out", str(out), "--no-progress",
                                    "--set", "baselines=false", "--set", "training.epochs=1"])
    assert res.exit_code == 0, res.output
    s = json.loads((out / "summary.json").read_text())
    assert np.isfinite(s["mtl"]["test"]["same"]["roc_auc"])


def test_pairs_with_a_plain_architecture_is_a_clear_error(tmp_path):
    cfg = _config(tmp_path)
    res = runner.invoke(get_app(), ["train", str(cfg), "--out", str(tmp_path / "r"), "--no-progress",
                                    "--set", "model.architecture.name=hard_sharing"])
    assert res.exit_code != 0
    assert "only the 'siamese' architecture" in res.output
