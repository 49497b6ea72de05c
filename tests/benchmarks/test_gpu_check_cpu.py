"""The CUDA check's counting of host synchronisations (``benchmarks/gpu_check.py``), exercised
on the CPU: a stand-in for ``torch.cuda.set_sync_debug_mode`` warns at every host read of a
tensor (what a synchronisation is on a GPU), and the helper must count the documented reads of
the training step (1 for a plain step, 2 for an exact one, whatever K)."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import gpu_check
import peers

from mtlkit import HardSharing
from mtlkit.architectures.backbones import mlp

_READS = ("item", "tolist", "__bool__", "__float__", "__int__")


class _WarnOnHostRead:
    """``set_mode("warn")`` / ``set_mode(0)`` as CUDA's sync debug mode: while on, every host
    read of a tensor warns "called a synchronizing CUDA operation"."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.monkeypatch = monkeypatch
        self.modes: list[object] = []

    def __call__(self, mode: object) -> None:
        self.modes.append(mode)
        if mode == "warn":
            for name in _READS:
                original = getattr(torch.Tensor, name)

                def warned(t, *a, _original=original, **k):
                    warnings.warn("called a synchronizing CUDA operation", UserWarning, stacklevel=2)
                    return _original(t, *a, **k)

                self.monkeypatch.setattr(torch.Tensor, name, warned)
        else:
            self.monkeypatch.undo()


def _small(k: int) -> peers.Problem:
    p = peers.make_problem(k, batch=32)
    torch.manual_seed(0)
    p.model = HardSharing(mlp(64, (8,)), p.tasks)
    return p


@pytest.mark.parametrize("k", [2, 7])
def test_the_sync_counter_counts_the_documented_reads_of_a_step(k, monkeypatch):
    p = _small(k)
    mode = _WarnOnHostRead(monkeypatch)
    counted = {
        "plain": gpu_check.syncs_per_step(peers.ours(p, None), set_mode=mode, synchronize=lambda: None),
        "mean": gpu_check.syncs_per_step(peers.ours(p, "mean"), set_mode=mode, synchronize=lambda: None),
        "hand": gpu_check.syncs_per_step(peers.hand(p), set_mode=mode, synchronize=lambda: None),
    }
    assert counted == {"plain": 1.0, "mean": 2.0, "hand": 0.0}
    assert mode.modes == ["warn", 0] * 3  # the mode is switched off again after each count


def test_the_sync_counter_restores_the_mode_when_the_step_fails(monkeypatch):
    mode = _WarnOnHostRead(monkeypatch)
    calls = []

    def step() -> None:
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        gpu_check.syncs_per_step(step, set_mode=mode, synchronize=lambda: None)
    assert mode.modes == ["warn", 0]
    assert torch.Tensor.item is not None and torch.ones(1).sum().item() == 1.0


@pytest.mark.parametrize("method", ["upgrad", "mgda"])
def test_the_layer_gramian_adds_no_host_read(method, monkeypatch):
    p = _small(6)
    mode = _WarnOnHostRead(monkeypatch)

    def count(engine: str) -> float:
        return gpu_check.syncs_per_step(peers.ours(p, method, gramian_engine=engine), set_mode=mode,
                                        synchronize=lambda: None)

    assert count("layerwise") == count("jacobian")


def test_the_gpu_tables_namespace_works_with_the_peers_tables(capsys):
    ns = gpu_check.table_namespace("fp32", rounds=1, steps=1, device="cpu")
    lines = peers.table_for(2, ns, ["upgrad"], peers.CLOCKS["cpu"])
    assert any("gramian_engine: jacobian" in line for line in lines)
    assert any(line.startswith("| upgrad |") for line in lines)
