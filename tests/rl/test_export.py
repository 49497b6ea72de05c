"""Export round trip: the TorchScript (and ONNX) policy gives the trained policy's
action probabilities."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from mtlkit.rl import RLTrainer, parse_rl_config
from mtlkit.rl.export import export_policy, load_policy, policy_module

from ._helpers import tiny

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Distral and a padded shared agent, trained for a few updates, saved as a run would."""
    root = tmp_path_factory.mktemp("policies")
    cfg = parse_rl_config(tiny(methods=["distral"], budget=32))
    RLTrainer(cfg, "distral", 0, root / "distral").fit()
    padded = parse_rl_config(tiny(tasks=[{"name": "pole", "env": "CartPole-v1"},
                                         {"name": "arm", "env": "Acrobot-v1"}],
                                  methods=["shared"], pad=True, budget=16, evaluation={"episodes": 1}))
    agent_dir = root / "shared"
    trainer = RLTrainer(padded, "shared", 0, agent_dir)
    trainer.n_updates = 1  # one update is enough for weights that are not the initial ones
    trainer.fit()
    return root


def _reference(folder, task=None, distilled=False):
    agent, meta = load_policy(folder)
    mod, _, _ = policy_module(agent, meta["tasks"], task=task, distilled=distilled)
    return agent, mod


@pytest.mark.parametrize("kind", ["all", "task", "distilled"])
def test_torchscript_round_trip_equals_the_policy(trained, tmp_path, kind):
    folder = trained / "distral"
    task = "b" if kind == "task" else None
    agent, ref = _reference(folder, task=task, distilled=kind == "distilled")
    path = export_policy(folder, tmp_path / "p.pt", task=task, distilled=kind == "distilled")
    loaded = torch.jit.load(str(path))
    obs = torch.randn(7, 4)
    ids = torch.tensor([0, 1, 2, 0, 1, 2, 1])
    args = (obs, ids) if kind == "all" else (obs,)
    with torch.no_grad():
        got, want = loaded(*args), ref(*args)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(got.sum(-1), torch.ones(7))
    with torch.no_grad():  # and these are the agent's own probabilities
        full = torch.softmax(agent(obs.unsqueeze(0).expand(3, -1, -1)).logits, -1)
        if kind == "all":
            torch.testing.assert_close(got, full[ids, torch.arange(7)])
        elif kind == "task":
            torch.testing.assert_close(got, full[1])
        else:
            torch.testing.assert_close(got, agent.distilled_log_probs(obs).exp())


def test_padded_task_policy_takes_its_own_observation(trained, tmp_path):
    folder = trained / "shared"
    _, ref = _reference(folder, task="pole")
    loaded = torch.jit.load(str(export_policy(folder, tmp_path / "pole.pt", task="pole")))
    obs = torch.randn(3, 4)  # CartPole: 4 numbers (the agent itself sees 6, zero-padded)
    with torch.no_grad():
        got = loaded(obs)
    assert got.shape == (3, 2)
    torch.testing.assert_close(got, ref(obs))
    loaded_all = torch.jit.load(str(export_policy(folder, tmp_path / "all.pt")))
    with torch.no_grad():
        probs = loaded_all(torch.nn.functional.pad(obs, (0, 2)), torch.zeros(3, dtype=torch.long))
    assert probs.shape == (3, 3) and (probs[:, 2] == 0).all()  # CartPole has no third action
    torch.testing.assert_close(probs[:, :2], got)


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnx") is None,
                    reason="onnx and onnxruntime (the export extra) are not installed")
def test_onnx_round_trip_equals_the_policy(trained, tmp_path):
    import onnxruntime as ort

    folder = trained / "distral"
    _, ref = _reference(folder)
    path = export_policy(folder, tmp_path / "p.onnx", fmt="onnx")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    obs = torch.randn(5, 4)
    ids = torch.tensor([2, 1, 0, 0, 2])
    (got,) = sess.run(["probs"], {"obs": obs.numpy(), "task": ids.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(got), ref(obs, ids), rtol=1e-4, atol=1e-6)


def test_export_errors(trained, tmp_path):
    with pytest.raises(ValueError, match="Unknown task 'zz'"):
        export_policy(trained / "distral", tmp_path / "x.pt", task="zz")
    with pytest.raises(ValueError, match="Only Distral"):
        export_policy(trained / "shared", tmp_path / "x.pt", distilled=True)
    with pytest.raises(ValueError, match="'fmt' parameter"):
        export_policy(trained / "distral", tmp_path / "x.pt", fmt="pickle")
    with pytest.raises(FileNotFoundError, match="No trained policy"):
        export_policy(tmp_path, tmp_path / "x.pt")
