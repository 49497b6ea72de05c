"""The RL example config starts with its command, validates, and trains (with a tiny budget)
through the same code as ``mtlkit rl``."""

from __future__ import annotations

from pathlib import Path

from mtlkit.rl import load_rl_config
from mtlkit.rl._run import run_rl

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "rl" / "cartpole_family.yaml"


def test_example_header_and_config():
    assert EXAMPLE.read_text(encoding="utf-8").splitlines()[0] == "# mtlkit rl examples/rl/cartpole_family.yaml"
    cfg = load_rl_config(EXAMPLE)
    assert cfg.methods == ["single", "shared", "distral", "care"] and len(cfg.tasks) == 4
    assert all(isinstance(t.metadata, str) for t in cfg.tasks)


def test_example_trains_every_method_with_a_tiny_budget(tmp_path):
    cfg = load_rl_config(EXAMPLE, ["budget=64", "agent.n_envs=2", "agent.n_steps=8", "agent.hidden=[8]",
                                   "evaluation.episodes=1", "evaluation.at_steps=[]", "checkpoint_every=64"])
    run = run_rl(cfg, tmp_path / "run")
    assert set(run.summary["results"]) == {"single", "shared", "distral", "care"}
    assert (tmp_path / "run" / "report.html").exists()
