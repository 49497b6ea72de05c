"""The issue-7 reproductions in examples/auxiliary run (``--smoke``) and are wired as documented:
auxiliary tasks come from the YAML configs with role "auxiliary" and their λ, deep supervision
attaches the auxiliary head to the early block, and the tables have their rows."""

from __future__ import annotations

import re
import runpy
import sys
from pathlib import Path

import pytest
import torch

from mtlkit.config import load_config

ROOT = Path(__file__).resolve().parents[2]
EX = ROOT / "examples" / "auxiliary"


def run_script(path: Path, argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
               ) -> str:
    monkeypatch.setattr(sys, "argv", [str(path), *argv])
    threads = torch.get_num_threads()
    try:
        runpy.run_path(str(path), run_name="__main__")
    finally:
        torch.set_num_threads(threads)
    return capsys.readouterr().out


def table_rows(out: str) -> list[list[str]]:
    """Body rows of the markdown table(s) printed by a script."""
    rows = []
    for line in out.splitlines():
        if line.startswith("| ") and not line.startswith("|---"):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows[1:] if rows else rows


def test_yaml_auxiliary_tasks_are_auxiliary_with_their_lambda():
    from mtlkit.run import prepare_from_config

    p = prepare_from_config(load_config(EX / "basic_motions_all.yaml"))
    roles = {t.name: (t.role, t.weight, t.out_dim) for t in p.tasks}
    # 6 channels: std and abs_changes give one target per channel, Fourier k=8 per channel
    assert roles == {"activity": ("primary", 1.0, 4), "aux_std": ("auxiliary", 0.1, 6),
                     "aux_abs_changes": ("auxiliary", 0.1, 6), "aux_fourier": ("auxiliary", 0.1, 48)}
    # standardize=true: z-scored over the 40 official training series (before train/val split)
    z = torch.cat([p.train.targets["aux_fourier"], p.val.targets["aux_fourier"]])
    assert torch.allclose(z.mean(0), torch.zeros(48), atol=1e-5)
    assert torch.allclose(z.std(0, unbiased=False), torch.ones(48), atol=1e-4)
    assert (len(p.train), len(p.val), len(p.test)) == (30, 10, 40)  # the official test split is kept


def test_deep_supervision_config_attaches_the_auxiliary_head_early():
    from mtlkit.datasets import load
    from mtlkit.run import build_model_for, prepare

    cfg = load_config(EX / "deep_supervision_multimnist.yaml", ["data.options={n_train: 20, n_test: 10}"])
    b = load(cfg.data.dataset, **cfg.data.options)
    from mtlkit.run import resolve_tasks

    tasks = resolve_tasks(cfg.tasks, b.tasks)
    p = prepare(b.data, tasks, test=b.test, fractions=(0.8, 0.2, 0.0), seed=0)
    model = build_model_for(cfg, p, tasks)
    assert model.depth == {"left": 2, "right": 0}  # conv1 = block 0, the main task at the end (fc)
    assert [t.role for t in tasks] == ["primary", "auxiliary"] and tasks[1].weight == 0.1
    # the auxiliary head reads conv1 pooled to 4x4 (10 channels x 16 cells)
    assert model.heads["right"][-1].in_features == 10 * 4 * 4


def test_basic_motions_smoke(monkeypatch, capsys):
    out = run_script(EX / "basic_motions_aux.py", ["--smoke"], monkeypatch, capsys)
    rows = table_rows(out)
    assert [r[0] for r in rows] == ["baseline (activity only)", "+ std", "+ sum of abs. changes",
                                    "+ Fourier coefficients (k=8)", "+ all three"]
    for r in rows:
        assert 0.0 <= float(r[2]) <= 1.0  # macro-F1 of one seed


def test_sp500_smoke(monkeypatch, capsys):
    out = run_script(EX / "sp500_related_targets.py", ["--smoke"], monkeypatch, capsys)
    rows = table_rows(out)
    assert [r[0] for r in rows] == ["AAPL", "AMZN", "**mean of 2**"]
    assert re.search(r"Δm on AUC \(%; negative = shared model better\): -?\d", out)


def test_deep_supervision_smoke(monkeypatch, capsys):
    out = run_script(EX / "deep_supervision_multimnist.py", ["--smoke"], monkeypatch, capsys)
    rows = table_rows(out)
    assert len(rows) == 4 and rows[0][0] == "plain LeNet (left only)"
    assert all(0.0 <= float(r[1]) <= 1.0 for r in rows)


def test_ship_step_and_readme_onnx_snippet(tmp_path, monkeypatch):
    """The README's ship step on a 2-epoch run: train from the YAML, export the primary task
    alone as ONNX, then the README's onnxruntime snippet gives the PyTorch model's logits."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from typer.testing import CliRunner

    from mtlkit.cli import get_app
    from mtlkit.inference import load_run
    from mtlkit.run import prepare_from_config, run

    monkeypatch.chdir(tmp_path)
    cfg = load_config(EX / "basic_motions_fourier.yaml", ["training.epochs=2", "training.monitor_conflicts=false"])
    run(cfg, prepare_from_config(cfg), out_dir="runs/basic_motions_fourier", progress=False)
    res = CliRunner().invoke(get_app(), ["export", "runs/basic_motions_fourier", "--primary-only", "--format", "onnx",
                                   "--out", "runs/basic_motions_fourier/activity.onnx"])
    assert res.exit_code == 0, res.output
    assert "Exported 1 task (activity)" in res.output
    blocks = re.findall(r"```python\n(.*?)```", (EX / "README.md").read_text(encoding="utf-8"), re.S)
    assert len(blocks) == 1
    ns: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), ns)
    full = load_run("runs/basic_motions_fourier").model.eval()
    with torch.no_grad():
        ref = full(torch.as_tensor(ns["x"]))
    assert sorted(ref) == ["activity", "aux_fourier"]  # the full model still has the auxiliary head
    assert ns["logits"].shape == (40, 4)
    assert torch.allclose(torch.as_tensor(ns["logits"]), ref["activity"], atol=1e-5)
