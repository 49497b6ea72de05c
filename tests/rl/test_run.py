"""Whole runs: deterministic with a seed, exact resume, the run folder, the report, the CLI,
broken episodes counted in the summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from mtlkit.cli import get_app
from mtlkit.rl import RLTrainer, parse_rl_config
from mtlkit.rl._run import run_rl, summarise

from ._helpers import register_broken, tiny

runner = CliRunner()


def _numbers(run_dir: Path) -> dict:
    """Everything a run computed (not its timings)."""
    out = {}
    for p in sorted(run_dir.rglob("*.jsonl")):
        out[str(p.relative_to(run_dir))] = p.read_text()
    for p in sorted(run_dir.rglob("result.json")):
        r = json.loads(p.read_text())
        for k in ("train_seconds", "env_steps_per_s"):
            r.pop(k)
        out[str(p.relative_to(run_dir))] = r
    return out


def test_a_seeded_run_gives_the_same_numbers_twice(tmp_path):
    cfg = parse_rl_config(tiny())
    a = run_rl(cfg, tmp_path / "a", report=False)
    b = run_rl(cfg, tmp_path / "b", report=False)
    assert _numbers(tmp_path / "a") == _numbers(tmp_path / "b")
    timings = ("env_steps_per_s", "train_seconds")
    assert {m: {k: v for k, v in r.items() if k not in timings} for m, r in a.summary["results"].items()} == \
        {m: {k: v for k, v in r.items() if k not in timings} for m, r in b.summary["results"].items()}
    # every method learnt something measurable and left its traces
    res = a.summary["results"]
    assert set(res) == {"single", "shared", "distral", "care"}
    assert all(res[m]["tasks"][t]["mean"] is not None for m in res for t in ("a", "b", "c"))
    assert set(res["care"]["attention"]) == {"a", "b", "c"} and set(res["distral"]["kl"]) == {"a", "b", "c"}
    assert res["shared"]["delta_m"]["single"]["mean"] is not None and "shared" not in res["shared"]["delta_m"]


class _Stop(Exception):
    pass


def test_resume_after_an_interruption_gives_the_uninterrupted_numbers(tmp_path):
    cfg = parse_rl_config(tiny(methods=["distral"], budget=128, checkpoint_every=64, log_every=16,
                               evaluation={"episodes": 2, "at_steps": [48, 112]}))
    run_rl(cfg, tmp_path / "full", report=False)

    def stop_after_the_first_checkpoint(msg: str) -> None:
        if "80/" in msg:  # 80 env steps per task: past the checkpoint at 64
            raise _Stop

    with pytest.raises(_Stop):
        run_rl(cfg, tmp_path / "cut", report=False, log=stop_after_the_first_checkpoint)
    assert not (tmp_path / "cut" / "distral" / "seed-0" / "result.json").exists()
    assert (tmp_path / "cut" / "distral" / "seed-0" / "checkpoints" / "manifest.json").exists()
    logs: list[str] = []
    run_rl(cfg, tmp_path / "cut", resume=True, report=False, log=logs.append)
    assert any("resumed at 64" in m for m in logs)
    assert _numbers(tmp_path / "full") == _numbers(tmp_path / "cut")


def test_run_folder_report_and_refusals(tmp_path):
    cfg = parse_rl_config(tiny(methods=["single", "care"], evaluation={"episodes": 2, "at_steps": [64]}))
    run = run_rl(cfg, tmp_path / "r")
    d = tmp_path / "r"
    assert yaml.safe_load((d / "config.yaml").read_text())["kind"] == "rl"
    for m in ("single", "care"):
        seed = d / m / "seed-0"
        for f in ("curves.jsonl", "evaluations.jsonl", "result.json", "policy.safetensors", "policy.json"):
            assert (seed / f).exists(), (m, f)
        rows = [json.loads(x) for x in (seed / "curves.jsonl").read_text().splitlines()]
        assert {r["task"] for r in rows} == {"a", "b", "c"} and rows[-1]["env_steps"] == 96
    suffixes = {p.suffix for p in d.rglob("*") if p.is_file()}
    assert suffixes <= {".json", ".jsonl", ".yaml", ".safetensors", ".html"}
    html = (d / "report.html").read_text()
    for text in ("Learning curves", "CARE: attention weights", "Δm vs single", "Evaluation at fixed budgets",
                 "Dropped episodes", "data:image/png;base64,"):
        assert text in html, text
    assert run.summary["complete"] and "higher is better" in run.summary["delta_m_convention"]
    with pytest.raises(FileExistsError, match="--resume"):
        run_rl(cfg, d)
    other = parse_rl_config(tiny(methods=["single", "care"], budget=200))
    with pytest.raises(ValueError, match="budget"):
        run_rl(other, d, resume=True)


def test_delta_m_is_positive_when_returns_are_higher():
    cfg = parse_rl_config(tiny(methods=["single", "shared"]))
    fake = {}
    for m, rets in (("single", {"a": 100.0, "b": -100.0, "c": 50.0}), ("shared", {"a": 110.0, "b": -80.0, "c": 50.0})):
        fake[(m, 0)] = {"final": {t: {"mean": v} for t, v in rets.items()}, "env_steps_per_task": 96,
                        "env_steps_per_s": 1.0, "train_seconds": 1.0, "parameters": 1,
                        "dropped_episodes": dict.fromkeys(rets, 0), "evaluation_dropped": dict.fromkeys(rets, 0)}
    s = summarise(cfg, fake)
    assert s["results"]["shared"]["delta_m"]["single"]["mean"] == pytest.approx((10 + 20 + 0) / 3)
    assert s["results"]["single"]["delta_m"]["shared"]["mean"] < 0


def test_nan_episodes_are_dropped_and_counted_in_the_summary(tmp_path):
    env_id = register_broken()
    cfg = parse_rl_config(tiny(tasks=[{"name": "broken", "env": env_id, "kwargs": {"what": "reward"}},
                                      {"name": "fine", "env": "CartPole-v1"}], methods=["shared"]))
    run = run_rl(cfg, tmp_path / "nan", report=True)
    r = run.summary["results"]["shared"]
    assert r["dropped_episodes"]["broken"] > 0 and r["dropped_episodes"]["fine"] == 0
    assert r["evaluation_dropped"]["broken"] == 1  # evaluation episode 0 of 2 breaks
    assert r["tasks"]["broken"]["mean"] is not None
    rows = [json.loads(x) for x in (tmp_path / "nan" / "shared" / "seed-0" / "curves.jsonl").read_text().splitlines()]
    assert all(row["policy_loss"] is not None for row in rows)


def test_cli_trains_prints_the_table_and_exports(tmp_path):
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text("# mtlkit rl c.yaml\n" + yaml.safe_dump(tiny(methods=["single", "distral"])))
    out = tmp_path / "run"
    app = get_app()
    res = runner.invoke(app, ["rl", str(cfg_path), "--out", str(out), "-q", "--threads", "1"])
    assert res.exit_code == 0, res.output
    assert "| distral |" in res.output and "Δm vs single" in res.output
    res = runner.invoke(app, ["rl-export", str(out), "--method", "distral", "--distilled", "-o", str(tmp_path / "p.pt")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "p.pt").exists() and (tmp_path / "p.pt.json").exists()
    res = runner.invoke(app, ["rl", "--resume", str(out), "-q"])  # finished: nothing to redo
    assert res.exit_code == 0 and "| single |" in res.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(tiny(tasks=[{"name": "x", "env": "CartPolee-v1"}], methods=["single"])))
    res = runner.invoke(app, ["rl", str(bad), "--out", str(tmp_path / "b")])
    assert res.exit_code == 2 and "did you mean 'CartPole-v1'" in res.output
    res = runner.invoke(app, ["rl-export", str(out), "--method", "single", "--distilled", "-o", str(tmp_path / "x.pt")])
    assert res.exit_code == 2 and "Only Distral has a distilled policy" in res.output


def test_trainer_without_a_folder():
    cfg = parse_rl_config(tiny(methods=["shared"], budget=32))
    result = RLTrainer(cfg, "shared", 3).fit()
    assert result["env_steps_per_task"] == 32 and result["seed"] == 3
