"""AdaShare's second phase: a fixed ``policy`` parameter (validated, kept in the config) and
``retrain: true`` through the runner (search, fix the policy, retrain a fresh network)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from mtlkit import Task
from mtlkit.architectures import build_model
from mtlkit.architectures.adashare import AdaShare
from mtlkit.cli import get_app
from mtlkit.run import load_model, save_model

SPEC = {"name": "mlp", "hidden": [8, 8, 8]}
TASKS = [Task("a", "binary"), Task("b", "multiclass", num_classes=3)]
runner = CliRunner()


def _model(**kw) -> AdaShare:
    return AdaShare(SPEC, TASKS, input_shape=(4,), **kw)


def _set_probabilities(m: AdaShare, p: dict[str, list[float]]) -> None:
    """Set the policy logits so that the select probabilities are ``p``."""
    with torch.no_grad():
        for name, probs in p.items():
            q = torch.tensor(probs)
            m.logits[name].copy_(torch.stack([torch.log(q), torch.log1p(-q)], dim=1) / m.policy_lr_scale)


# ------------------------------------------------------------------ the policy parameter
def test_policy_parameter_fixes_the_policy_and_is_used():
    policy = {"a": [1, 0, 1], "b": [1, 1, 0]}
    m = _model(policy=policy)
    assert bool(m.policy_fixed) and m.current_policy() == policy
    assert m.config["policy"] == policy and m.config["retrain"] is False
    assert m.extra_losses() == {}  # nothing learned: no regulariser
    s = m.sharing_summary()
    assert s == {"policy": policy, "policy_blocks": m.block_names, "policy_fixed": True}
    # the forward pass follows the policy: task a skips block 2, so it equals a hand-run path
    x = torch.randn(5, 4)
    m.train()  # a fixed policy is not sampled even in training
    h = m.skips[1](m.blocks[0](x))
    h = m.blocks[2](h)
    assert torch.allclose(m(x)["a"], m.heads["a"](h).reshape(-1))


def test_policy_round_trips_through_model_json(tmp_path):
    policy = {"a": [0, 1, 1], "b": [1, 0, 0]}
    m = _model(policy=policy)
    rebuilt = build_model(json.loads(json.dumps(m.config)), TASKS, (4,))  # config alone, no weights
    assert bool(rebuilt.policy_fixed) and rebuilt.current_policy() == policy
    save_model(tmp_path, m, {"architecture": m.config, "tasks": [t.to_dict() for t in TASKS],
                             "input_shape": [4]})
    loaded, meta = load_model(tmp_path)
    assert meta["architecture"]["policy"] == policy
    assert bool(loaded.policy_fixed) and loaded.current_policy() == policy
    x = torch.randn(3, 4)
    m.eval()
    assert all(torch.equal(m(x)[k], loaded(x)[k]) for k in ("a", "b"))


@pytest.mark.parametrize(("kw", "message"), [
    ({"policy": {"a": [1, 1, 1]}}, "has no entry for task 'b'"),
    ({"policy": {"a": [1, 1, 1], "b": [1, 1, 1], "c": [1, 1, 1]}}, "names unknown task(s) ['c']"),
    ({"policy": {"a": [1, 1], "b": [1, 1, 1]}}, "must give task 'a' a list of 3 actions"),
    ({"policy": {"a": [1, 1, 1], "b": [1, 2, 1]}}, "only 0 (skip) and 1 (select); task 'b' has 2"),
    ({"policy": {"a": [1, 0.5, 1], "b": [1, 1, 1]}}, "task 'a' has 0.5"),
    ({"policy": {"a": "111", "b": [1, 1, 1]}}, "must give task 'a' a list of 3 actions"),
    ({"policy": [[1, 1, 1], [1, 1, 1]]}, "must map each task"),
    ({"policy": {"a": [1, 1, 1], "b": [1, 1, 1]}, "retrain": True}, "'retrain' parameter of AdaShare needs"),
    ({"retrain": "yes"}, "The 'retrain' parameter of AdaShare must be a bool. Got 'yes'"),
    ({"policy_sampling": "max"}, "The 'policy_sampling' parameter of AdaShare must be one of"),
])
def test_bad_policy_parameters_are_rejected_clearly(kw, message):
    with pytest.raises(ValueError) as err:
        _model(**kw)
    assert message in str(err.value)


def test_set_policy_uses_the_same_checks():
    m = _model()
    with pytest.raises(ValueError, match="has no entry for task 'b'"):
        m.set_policy({"a": [1, 1, 1]})
    with pytest.raises(ValueError, match="not fixed yet"):
        m.retrain_config()


# ------------------------------------------------------------------ fixing the learned policy
def test_argmax_takes_the_most_probable_action():
    m = _model(policy_sampling="argmax")
    _set_probabilities(m, {"a": [0.9, 0.3, 0.6], "b": [0.2, 0.7, 0.45]})
    assert torch.allclose(m.select_probabilities(), torch.tensor([[0.9, 0.3, 0.6], [0.2, 0.7, 0.45]]), atol=1e-5)
    assert m.fix_policy() == {"a": [1, 0, 1], "b": [0, 1, 0]}


def test_sampling_draws_each_action_with_its_probability_and_is_seeded():
    m = _model()  # policy_sampling="sample" (the paper)
    probs = {"a": [0.9, 0.3, 0.6], "b": [0.2, 0.7, 0.05]}
    _set_probabilities(m, probs)
    g = torch.Generator().manual_seed(0)
    draws = []
    for _ in range(600):
        draws.append([m.fix_policy(generator=g)[t] for t in ("a", "b")])
        m.unfix_policy()
    freq = np.asarray(draws, dtype=float).mean(axis=0)
    assert np.abs(freq - np.array([probs["a"], probs["b"]])).max() < 0.07  # ~3.5 standard errors
    first = m.fix_policy(generator=torch.Generator().manual_seed(3))
    m.unfix_policy()
    assert m.fix_policy(generator=torch.Generator().manual_seed(3)) == first


def test_retrain_model_is_a_fresh_network_with_the_policy():
    m = _model(retrain=True, sparsity_weight=0.1)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(1.0)  # "trained" weights
    policy = {"a": [1, 0, 1], "b": [1, 1, 1]}
    cfg = m.retrain_config(policy)
    assert cfg == {**m.config, "policy": policy, "retrain": False}
    fresh = m.retrain_model(policy)
    assert isinstance(fresh, AdaShare) and fresh is not m and fresh.current_policy() == policy
    assert fresh.config == cfg and fresh.sparsity_weight == 0.1
    for (name, p), q in zip(m.named_parameters(), fresh.parameters()):
        assert not torch.equal(p, q), name


def test_retrain_model_with_a_user_trunk_reinitialises_a_copy():
    trunk = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8))
    m = AdaShare(trunk, TASKS, input_shape=(4,), retrain=True)
    with torch.no_grad():
        trunk[0].weight.fill_(0.5)
    fresh = m.retrain_model({"a": [1, 1, 0], "b": [1, 0, 1]})
    assert fresh.blocks[0] is not trunk[0] and bool(fresh.policy_fixed)
    assert not torch.equal(fresh.blocks[0].weight, trunk[0].weight)
    assert bool((trunk[0].weight == 0.5).all())  # the search model is untouched


# ------------------------------------------------------------------ through the runner
@pytest.fixture(scope="module")
def table(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ada")
    r = np.random.default_rng(0)
    n = 300
    df = pd.DataFrame(r.normal(size=(n, 4)), columns=["f1", "f2", "f3", "f4"])
    df["up"] = (df["f1"] + df["f2"] > 0).astype(int)
    df["level"] = np.digitize(df["f1"] - df["f3"], [-0.7, 0.7])
    df.to_csv(tmp / "data.csv", index=False)
    return tmp


def _config(tmp, sampling: str) -> str:
    path = tmp / f"cfg_{sampling}.yaml"
    path.write_text(
        "# mtlkit train cfg.yaml\n"
        f"name: ada_{sampling}\n"
        f"data: {{path: {tmp / 'data.csv'}, features: [f1, f2, f3, f4]}}\n"
        "tasks:\n"
        "  - {name: up, kind: binary}\n"
        "  - {name: level, kind: multiclass, num_classes: 3}\n"
        "model:\n"
        "  trunk: {name: mlp, hidden: [16, 16, 16]}\n"
        "  architecture: {name: adashare, warmup_steps: 4, decay_every: 4, retrain: true,\n"
        f"                 policy_sampling: {sampling}}}\n"
        "training: {epochs: 3, batch_size: 32, optimizer: {lr: 0.01}}\n"
        "baselines: false\n")
    return str(path)


@pytest.fixture(scope="module")
def retrained(table):
    out = table / "run"
    res = runner.invoke(get_app(), ["train", _config(table, "sample"), "--out", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    return out, res.output


def test_retrain_run_makes_the_retrained_model_the_runs_model(retrained):
    out, output = retrained
    summary = json.loads((out / "summary.json").read_text())
    sp = summary["search_phase"]
    assert set(sp) >= {"test", "policy", "probabilities", "fit_time_s", "epochs_run"}
    assert sp["epochs_run"] == 3 and summary["mtl"]["epochs_run"] == 3
    assert set(sp["test"]) == {"up", "level"} and set(sp["probabilities"]) == {"up", "level"}
    assert "Fixed policy" in output and str(sp["policy"]) in output
    model, meta = load_model(out)
    assert bool(model.policy_fixed) and model.current_policy() == sp["policy"]
    assert meta["architecture"]["policy"] == sp["policy"] and meta["architecture"]["retrain"] is False
    # phase 1 is kept apart: its own records and weights; the final weights are not its weights
    search, _ = load_model(out / "search")
    assert not bool(search.policy_fixed)
    for (name, p), q in zip(model.named_parameters(), search.parameters()):
        if not name.startswith("logits"):  # the retrained model never updates its (unused) logits
            assert not torch.equal(p, q), name
    final_lines = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines()]
    search_lines = [json.loads(s) for s in (out / "search" / "metrics.jsonl").read_text().splitlines()]
    assert len(final_lines) == len(search_lines) == 3
    assert all(r["sharing"]["policy_fixed"] for r in final_lines)
    assert not any(r["sharing"]["policy_fixed"] for r in search_lines)
    html = (out / "report.html").read_text()
    assert "Search phase" in html and "Learned select probabilities" in html


def test_resume_of_a_retrain_run_gives_the_same_numbers(table, retrained):
    out, _ = retrained
    before = json.loads((out / "summary.json").read_text())
    # lose phase 2's checkpoints: phase 1 resumes as finished, phase 2 reruns from scratch
    shutil.rmtree(out / "checkpoints" / "mtl-retrain")
    res = runner.invoke(get_app(), ["train", _config(table, "sample"), "--resume", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "Resumed the multi-task model" in res.output  # the search is not retrained
    after = json.loads((out / "summary.json").read_text())
    assert after["mtl"]["test"] == before["mtl"]["test"]
    for key in ("test", "policy", "probabilities", "epochs_run"):
        assert after["search_phase"][key] == before["search_phase"][key]
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 3
    assert len((out / "search" / "metrics.jsonl").read_text().splitlines()) == 3


def test_retrain_run_with_argmax_fixes_the_most_probable_policy(table):
    out = table / "run_argmax"
    res = runner.invoke(get_app(), ["train", _config(table, "argmax"), "--out", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    sp = json.loads((out / "summary.json").read_text())["search_phase"]
    assert sp["policy_sampling"] == "argmax"
    assert sp["policy"] == {t: [int(p >= 0.5) for p in ps] for t, ps in sp["probabilities"].items()}


def test_fit_and_a_passed_in_model_run_both_phases(two_task_data):
    from mtlkit import fit
    from mtlkit.config import parse_config
    from mtlkit.run import prepare, run

    data, tasks = two_task_data
    res = fit(data, tasks, trunk={"name": "mlp", "hidden": [8, 8]}, architecture="adashare",
              architecture_params={"retrain": True, "warmup_steps": 2}, epochs=2, baselines=False)
    assert bool(res.model.policy_fixed) and "search_phase" in res.summary
    assert res.model.current_policy() == res.summary["search_phase"]["policy"]
    # a model built in Python around a user trunk (no stock spec)
    prepared = prepare(data, tasks, seed=0)
    trunk = torch.nn.Sequential(torch.nn.Linear(10, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8))
    search = AdaShare(trunk, tasks, input_shape=(10,), retrain=True, policy_sampling="argmax")
    cfg = parse_config({"name": "py", "data": {"in_memory": True}, "tasks": [t.to_dict() for t in tasks],
                        "model": {"architecture": {"name": "adashare"}},
                        "training": {"epochs": 2, "batch_size": 64}, "baselines": False}, source="test")
    res = run(cfg, prepared, out_dir=None, progress=False, model=search)
    assert res.model is not search and bool(res.model.policy_fixed) and bool(search.policy_fixed)
    assert res.model.current_policy() == search.current_policy() == res.summary["search_phase"]["policy"]
    assert res.trainer.model is res.model


def test_docs_python_examples_run():
    import re
    from pathlib import Path

    doc = Path(__file__).resolve().parents[2] / "docs" / "adashare.md"
    blocks = re.findall(r"```python\n(.*?)```", doc.read_text(encoding="utf-8"), re.S)
    assert blocks
    ns: dict = {}
    for code in blocks:
        exec(compile(code, str(doc), "exec"), ns)


def test_primary_only_export_keeps_the_primary_tasks_policy():
    from mtlkit.export import primary_only

    tasks = [Task("y", "binary"), Task("aux", "regression", role="auxiliary")]
    m = AdaShare({"name": "mlp", "hidden": [8, 8, 8]}, tasks, input_shape=(5,),
                 policy={"y": [0, 1, 1], "aux": [1, 1, 0]})
    small, primary = primary_only(m, tasks, (5,))  # checks the primary outputs are unchanged
    assert [t.name for t in primary] == ["y"] and list(small.heads) == ["y"]
    assert small.current_policy() == {"y": [0, 1, 1]}
