import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from mtlkit import Task, fit
from mtlkit.cli import get_app
from mtlkit.export import export_model, primary_only
from mtlkit.inference import load_run, predict_frame


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    r = np.random.default_rng(0)
    df = pd.DataFrame(r.normal(size=(200, 3)), columns=["a", "b", "c"])
    df["main"] = (df["a"] > 0).astype(int)
    df["aux"] = df["a"] * 2 + df["b"]
    tasks = [Task("main", "binary"), Task("aux", "regression", role="auxiliary", weight=0.1)]
    out = tmp_path_factory.mktemp("exp") / "run"
    fit(df, tasks, epochs=2, baselines=False, out_dir=out)
    return out, df


def test_primary_only_has_no_auxiliary_parameters(run_dir):
    run = load_run(run_dir[0])
    small, tasks = primary_only(run.model, run.tasks, run.meta["input_shape"])
    assert [t.name for t in tasks] == ["main"]
    assert not any("aux" in k for k in small.state_dict())
    n_full = sum(p.numel() for p in run.model.parameters())
    n_small = sum(p.numel() for p in small.parameters())
    assert n_full - n_small == 64 + 1  # the auxiliary head: Linear(64 -> 1)
    x = torch.randn(5, 3)
    assert torch.equal(small(x)["main"], run.model.eval()(x)["main"])


def test_onnx_export_matches_pytorch(run_dir, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    run = load_run(run_dir[0])
    small, tasks = primary_only(run.model, run.tasks, run.meta["input_shape"])
    path = export_model(small, tasks, run.meta["input_shape"], tmp_path / "m.onnx", fmt="onnx")
    x = np.random.default_rng(1).normal(size=(7, 3)).astype("float32")
    sess = ort.InferenceSession(str(path))
    (onnx_main,) = sess.run(None, {"x": x})
    torch_main = small(torch.from_numpy(x))["main"].detach().numpy()
    np.testing.assert_allclose(onnx_main, torch_main, rtol=1e-5, atol=1e-6)


def test_torchscript_and_safetensors_export(run_dir, tmp_path):
    run = load_run(run_dir[0])
    p = export_model(run.model, run.tasks, run.meta["input_shape"], tmp_path / "m.pt", fmt="torchscript")
    loaded = torch.jit.load(str(p))
    x = torch.randn(3, 3)
    assert torch.allclose(loaded(x)[0], run.model(x)["main"])
    res = CliRunner().invoke(get_app(), ["export", str(run_dir[0]), "--primary-only", "--out",
                                         str(tmp_path / "ship")])
    assert res.exit_code == 0, res.output
    shipped = load_run(tmp_path / "ship")
    assert [t.name for t in shipped.tasks] == ["main"]


def test_predict_outputs_primary_only_by_default(run_dir):
    run = load_run(run_dir[0])
    df = run_dir[1].drop(columns=["main", "aux"])
    assert list(predict_frame(run, df).columns) == ["main", "main_proba"]
    assert "aux" in predict_frame(run, df, all_tasks=True).columns
