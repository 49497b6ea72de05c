"""``kind: rl`` configs: strict validation, every problem at once, each naming its field."""

from __future__ import annotations

import pytest

from mtlkit.rl import RLConfigError, load_rl_config, parse_rl_config

from ._helpers import tiny


def _error(cfg) -> str:
    with pytest.raises(RLConfigError) as info:
        parse_rl_config(cfg)
    return str(info.value)


def test_tiny_config_is_valid_and_has_the_defaults():
    cfg = parse_rl_config(tiny())
    assert cfg.methods == ["single", "shared", "distral", "care"]
    assert cfg.distral.alpha == 0.5 and cfg.agent.gamma == 0.99 and not cfg.pad


def test_unknown_env_id_suggests_close_names():
    msg = _error(tiny(tasks=[{"name": "x", "env": "CartPol-v1"}], methods=["single"]))
    assert "tasks.0.env" in msg and "'CartPol-v1'" in msg and "did you mean" in msg and "'CartPole-v1'" in msg
    msg = _error(tiny(tasks=[{"name": "x", "env": "acrobot"}], methods=["single"]))
    assert "'Acrobot-v1'" in msg


def test_rejected_kwargs_are_named_with_what_the_env_takes():
    msg = _error(tiny(tasks=[{"name": "x", "env": "mtlkit/CartPole-v1", "kwargs": {"lenght": 0.3, "mass": 1}}],
                      methods=["single"]))
    assert "tasks.0.kwargs" in msg and "'lenght'" in msg and "'mass'" in msg and "length" in msg
    msg = _error(tiny(tasks=[{"name": "x", "env": "mtlkit/CartPole-v1", "kwargs": {"length": -1}}],
                      methods=["single"]))
    assert "tasks.0.kwargs" in msg and "'length' parameter" in msg and "-1" in msg
    msg = _error(tiny(tasks=[{"name": "x", "env": "CartPole-v1", "kwargs": {"length": 0.3}}], methods=["single"]))
    assert "CartPole-v1 does not take" in msg and "sutton_barto_reward" in msg


def test_every_problem_is_reported_at_once_with_its_field():
    msg = _error(tiny(budget=0, seeds=[1, 1], colour="blue", methods=["single", "ppo"],
                      agent={"n_envs": 0, "lr": -1.0, "batch": 3}, distral={"alpha": 2.0}))
    for field in ("budget", "seeds", "colour: unknown key", "methods.1", "agent.n_envs", "agent.lr",
                  "agent.batch: unknown key", "distral.alpha"):
        assert field in msg, (field, msg)


def test_tasks_with_different_spaces_are_named_and_pad_allows_them():
    tasks = [{"name": "pole", "env": "CartPole-v1"}, {"name": "arm", "env": "Acrobot-v1"}]
    msg = _error(tiny(tasks=tasks, methods=["single", "shared"]))
    assert "pole: Box(4,) observations, Discrete(2) actions" in msg
    assert "arm: Box(6,) observations, Discrete(3) actions" in msg and "pad: true" in msg
    parse_rl_config(tiny(tasks=tasks, methods=["shared"], pad=True))
    parse_rl_config(tiny(tasks=tasks, methods=["single"]))  # nothing shared: nothing to match


def test_care_needs_metadata_for_every_task():
    tasks = tiny()["tasks"]
    tasks[1].pop("metadata")
    msg = _error(tiny(tasks=tasks))
    assert "'care' needs a 'metadata'" in msg and "['b']" in msg
    parse_rl_config(tiny(tasks=tasks, methods=["single", "shared", "distral"]))


def test_other_checks():
    assert "duplicate task name" in _error(tiny(tasks=[tiny()["tasks"][0]] * 2))
    assert "evaluation.at_steps" in _error(tiny(evaluation={"at_steps": [10_000]}))
    assert "'kind: rl' is required" in _error({"budget": 10})
    assert "tasks.0.metadata" in _error(tiny(tasks=[{"name": "a", "env": "CartPole-v1", "metadata": " "}]))


def test_yaml_file_with_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("# mtlkit rl c.yaml\nkind: rl\nbudget: 100\ntasks:\n  - {name: a, env: CartPole-v1}\n"
                 "methods: [single]\n")
    cfg = load_rl_config(p, ["budget=300", "agent.n_envs=2"])
    assert cfg.budget == 300 and cfg.agent.n_envs == 2
    with pytest.raises(RLConfigError, match="not found"):
        load_rl_config(tmp_path / "missing.yaml")
