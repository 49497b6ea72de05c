"""``training.device``: validated names, a clear error for a device this torch build cannot use,
``auto`` falling back to the CPU, and resuming on another device."""

import numpy as np
import pandas as pd
import pytest
import torch

from mtlkit import Task, fit
from mtlkit.config import ConfigError, config_diff, config_hash, parse_config
from mtlkit.run import resolve_device


def _cfg(device):
    return parse_config({"data": {"dataset": "yeast"}, "training": {"device": device}}, source="test")


@pytest.mark.parametrize("name", ["cpu", "auto", "cuda", "cuda:1", "mps"])
def test_device_names_are_accepted(name):
    assert _cfg(name).training.device == name


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "CPU", ""])
def test_bad_device_names_are_config_errors(name):
    with pytest.raises(ConfigError, match=r"training\.device"):
        _cfg(name)


def test_auto_is_the_best_available_and_cpu_is_cpu():
    want = "cuda" if torch.cuda.is_available() else None
    assert resolve_device("cpu") == torch.device("cpu")
    if want is None and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        assert resolve_device("auto") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_an_unavailable_device_is_a_clear_error_not_a_silent_cpu_run(tmp_path):
    r = np.random.default_rng(0)
    df = pd.DataFrame(r.normal(size=(60, 3)), columns=list("abc"))
    df["y"] = (df["a"] > 0).astype(int)
    with pytest.raises(ValueError, match=r"training.device is 'cuda'.*no CUDA GPU"):
        fit(df, [Task("y", "binary")], epochs=1, baselines=False, device="cuda", out_dir=tmp_path / "r")
    assert not (tmp_path / "r" / "model.safetensors").exists()


def test_device_is_not_part_of_what_a_run_computes():
    a, b = _cfg("cpu"), _cfg("auto")
    assert config_hash(a) == config_hash(b) and config_diff(a, b) == []
    old = a.model_dump(mode="json")
    del old["training"]["device"]  # a run folder written before the key existed
    assert config_diff(old, a) == []


def test_a_cpu_run_records_its_device():
    r = np.random.default_rng(0)
    df = pd.DataFrame(r.normal(size=(80, 3)), columns=list("abc"))
    df["y"] = (df["a"] > 0).astype(int)
    res = fit(df, [Task("y", "binary")], epochs=1, baselines=False, device="auto")
    assert res.summary["environment"]["device"] in ("cpu", "cuda", "mps")
    assert next(res.model.parameters()).device.type == "cpu"  # returned on the CPU
