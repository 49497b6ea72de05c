"""The foundation's bad inputs: each gets a clear error naming the offending thing."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch

from mtlkit import HardSharing, Task, fit, from_dataframe, split
from mtlkit.config import ConfigError, load_config, parse_config
from mtlkit.data import MultiTaskData
from mtlkit.inference import load_run
from mtlkit.run import RunFolderError


def _df(n=60):
    r = np.random.default_rng(0)
    df = pd.DataFrame({"f1": r.normal(size=n), "f2": r.normal(size=n)})
    df["y"] = r.integers(0, 3, n)
    df["z"] = r.normal(size=n)
    return df


TASKS = [Task("y", "multiclass", num_classes=3), Task("z", "regression")]


def test_missing_label_column():
    with pytest.raises(KeyError, match="'nope'"):
        from_dataframe(_df(), [Task("nope", "binary")])


def test_missing_feature_column():
    with pytest.raises(KeyError, match="'f9'"):
        from_dataframe(_df(), TASKS, ["f1", "f9"])


def test_multiclass_label_out_of_range():
    df = _df()
    df.loc[5, "y"] = 3
    with pytest.raises(ValueError, match=r"'y'.*outside \[0, 3\)"):
        from_dataframe(df, TASKS)


def test_non_numeric_feature():
    df = _df()
    df["colour"] = "red"
    with pytest.raises(ValueError, match="'colour' is not numeric"):
        from_dataframe(df, TASKS)


def test_nan_in_features():
    df = _df()
    df.loc[7, "f2"] = np.nan
    with pytest.raises(ValueError, match="'f2' has NaN"):
        from_dataframe(df, TASKS)


def test_empty_dataset():
    with pytest.raises(ValueError, match="empty"):
        from_dataframe(_df().iloc[:0], TASKS)


def test_split_without_labelled_validation_sample():
    df = _df(40)
    df["z"] = np.nan
    df.loc[0, "z"] = 1.0  # a single labelled sample cannot be in train and validation
    data, _ = from_dataframe(df, TASKS)
    with pytest.raises(ValueError, match=r"validation split has no labelled sample for task\(s\) \['z'\]"):
        split(data, seed=0)


def test_task_with_all_labels_missing():
    df = _df()
    df["z"] = np.nan
    with pytest.raises(ValueError, match="'z'"):
        fit(df, TASKS, epochs=1, baselines=False)


def test_duplicate_task_names():
    with pytest.raises(ValueError, match="Duplicate task name 'y'"):
        fit(_df(), [TASKS[0], TASKS[0]], epochs=1)
    with pytest.raises(ConfigError, match="duplicate task name"):
        parse_config({"data": {"path": "x.csv"}, "tasks": [TASKS[1].to_dict(), TASKS[1].to_dict()]})


def test_unknown_and_mistyped_config_keys_all_reported(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("data: {dataset: yeast}\ntraining: {epochz: 3, batch_size: -1}\nmodle: {}\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert "training.epochz: unknown key" in msg
    assert "training.batch_size" in msg
    assert "modle: unknown key" in msg
    assert "3 problems" in msg


def test_unknown_weighting_name_suggests(tmp_path):
    from mtlkit.run import build_components

    cfg = parse_config({"data": {"dataset": "yeast"}, "training": {"weighting": {"name": "equl"}}})
    with pytest.raises(ValueError, match=r"training\.weighting.*Did you mean 'equal'"):
        build_components(cfg)


def test_trunk_width_mismatch():
    trunk = torch.nn.Linear(4, 6)
    with pytest.raises(ValueError, match="output width is 6 but trunk_out says 8"):
        HardSharing(trunk, TASKS, input_shape=(4,), trunk_out=8)


def test_user_trunk_wrong_output_shape_named():
    class Bad(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(2, 3)

        def forward(self, x):
            h = self.lin(x)
            return {"y": h[:, :2], "z": h[:, :1]}

    from mtlkit import Trainer

    data, _ = from_dataframe(_df(), TASKS)
    with pytest.raises(ValueError, match=r"output for task 'y' has shape \(\d+, 2\); expected \(\d+, 3\)"):
        Trainer(Bad(), TASKS, epochs=1, progress=False).fit(data)


def test_missing_image_path(tmp_path):
    df = pd.DataFrame({"path": ["nope.png"], "y": [0]})
    with pytest.raises(FileNotFoundError, match=r"nope\.png"):
        from_dataframe(df, [TASKS[0]], image_column="path", image_root=tmp_path)


def test_predict_without_weights(tmp_path):
    (tmp_path / "model.json").write_text(json.dumps({"format_version": 1}))
    with pytest.raises(RunFolderError, match="has no weights"):
        load_run(tmp_path)


def test_newer_run_format_refused(tmp_path):
    res = fit(_df(), TASKS, epochs=1, baselines=False, out_dir=tmp_path / "r")
    meta = json.loads((tmp_path / "r" / "model.json").read_text())
    meta["format_version"] = 99
    (tmp_path / "r" / "model.json").write_text(json.dumps(meta))
    with pytest.raises(RunFolderError, match=r"format_version 99"):
        load_run(tmp_path / "r")
    assert res.model is not None


def test_failed_training_keeps_previous_good_files(tmp_path):
    out = tmp_path / "run"
    fit(_df(), TASKS, epochs=1, baselines=False, out_dir=out)
    good = (out / "model.safetensors").read_bytes(), (out / "summary.json").read_bytes()
    with pytest.raises(FileExistsError):
        fit(_df(), TASKS, epochs=1, baselines=False, out_dir=out)
    bad = _df()
    bad["z"] = bad["z"] * 1e30  # the loss overflows: training stops with a clear error
    # (targets are standardised by default, which would tame them: keep z in its own units)
    raw = [dataclasses.replace(t, standardize=False) if t.name == "z" else t for t in TASKS]
    with pytest.raises(RuntimeError, match="Non-finite"):
        fit(bad, raw, epochs=50, baselines=False, out_dir=out, overwrite=True, lr=10.0)
    assert (out / "model.safetensors").read_bytes() == good[0]
    assert (out / "summary.json").read_bytes() == good[1]
    assert not list(out.glob(".*.tmp"))


def test_inconsistent_label_length():
    with pytest.raises(ValueError, match="'z' has 3 targets but there are 4 inputs"):
        MultiTaskData(torch.zeros(4, 2), {"z": torch.zeros(3, 1)})
