"""Start-up (issue 22): ``mtlkit list`` and a config with a misspelt key never load torch (the
times are ``benchmarks/startup.py``'s to print, not a test's), the listing read from the
method files' source is the registries' own, and the CUDA check exits cleanly without CUDA."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mtlkit import _registry as R
from mtlkit._catalog import PACKAGES, entries, kind_names

ROOT = Path(__file__).resolve().parents[2]

_RUN_CLI = """
import sys
from mtlkit.cli import main
sys.argv = ["mtlkit", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
print("TORCH LOADED" if "torch" in sys.modules else "NO TORCH")
"""


def _cli(*args: str, cwd: Path) -> str:
    res = subprocess.run([sys.executable, "-c", _RUN_CLI, *args], capture_output=True, text=True, cwd=cwd,
                         timeout=300)
    return res.stdout + res.stderr


@pytest.mark.parametrize("args", [["--help"], ["list"], ["list", "aggregators"]])
def test_help_and_list_do_not_load_torch(args, tmp_path):
    out = _cli(*args, cwd=tmp_path)
    assert "NO TORCH" in out, out[-2000:]


def test_a_config_typo_is_reported_without_loading_torch(tmp_path):
    text = (ROOT / "examples" / "yeast.yaml").read_text(encoding="utf-8").replace("epochs:", "epocs:")
    (tmp_path / "c.yaml").write_text(text, encoding="utf-8")
    out = _cli("train", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "run"), cwd=tmp_path)
    assert "training.epocs: unknown key" in out
    assert "NO TORCH" in out, out[-2000:]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command", [["affinity"], ["tune", "--trials", "2"], ["distill", "--teachers", "t1,t2"], ["group", "aff.json",
                                                                                       "--networks", "2", "--train",
                                                                                       "--config"]])
def test_the_other_commands_report_a_misspelt_name_without_loading_torch(tmp_path, command):
    """``affinity``, ``tune``, ``distill`` and ``group --train`` check their config as ``train`` does,
    before torch loads and before anything is written."""
    text = (ROOT / "examples" / "yeast.yaml").read_text(encoding="utf-8").replace("name: equal", "name: equl")
    (tmp_path / "c.yaml").write_text(text, encoding="utf-8")
    cmd = [*command, str(tmp_path / "c.yaml")] if command[-1] == "--config" else [*command[:1], str(tmp_path / "c.yaml"),
                                                                                  *command[1:]]
    out = _cli(*cmd, "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert "Unknown weighting 'equl'. Did you mean 'equal'?" in out, out[-2000:]
    assert "NO TORCH" in out, out[-2000:]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("tasks", [
    "", "tasks:\n  - {name: label_0, kind: binary}\n  - {name: y, kind: regression}\n",
    "tasks:\n  - {name: tags, kind: multilabel, num_labels: 2, loss: bce, columns: [label_0, label_1]}\n"
    "  - {name: y, kind: multiclass, classes: [a, b, c]}\n"])
def test_a_misspelt_name_is_reported_without_loading_torch(tmp_path, tasks):
    """mtlkit.run.precheck: a misspelt component name (with or without the config's own
    plain tasks) is found from the method files' source."""
    text = (ROOT / "examples" / "yeast.yaml").read_text(encoding="utf-8").replace("name: equal", "name: equl")
    assert "equl" in text
    (tmp_path / "c.yaml").write_text(text + tasks, encoding="utf-8")
    out = _cli("train", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "run"), cwd=tmp_path)
    assert "Unknown weighting 'equl'. Did you mean 'equal'?" in out
    assert "NO TORCH" in out, out[-2000:]
    assert not (tmp_path / "run").exists()


def test_the_listing_read_from_source_is_the_registries_own():
    registries = {"architectures": R.ARCHITECTURES, "weightings": R.WEIGHTINGS, "aggregators": R.AGGREGATORS,
                  "samplers": R.SAMPLERS, "schedules": R.SCHEDULES, "auxiliary": R.AUXILIARY, "datasets": R.DATASETS}
    assert set(registries) == set(PACKAGES)
    for section, reg in registries.items():
        expected = [(e.name, e.paper, e.parameters()) for e in reg]
        assert [(e.name, e.paper, e.params) for e in entries(section)] == expected, section
    assert kind_names() == R.KINDS.names()


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CUDA run is the script's job on a GPU machine")
def test_gpu_check_exits_cleanly_without_cuda(tmp_path):
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py")], capture_output=True,
                         text=True, cwd=tmp_path, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "No CUDA device" in res.stdout
