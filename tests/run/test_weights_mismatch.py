"""A run folder whose weights do not fit the model its model.json describes (e.g. saved by an
mtlkit whose model of that architecture named or shaped its layers differently): the error
names the missing, unexpected and mis-shaped tensors and says what to do."""

from __future__ import annotations

import pytest
import torch

from mtlkit import Task
from mtlkit.architectures import build_model
from mtlkit.run.folder import RunFolderError, load_model, save_model

TASKS = [Task("a", "regression"), Task("b", "binary")]
ARCH = {"name": "hard_sharing", "trunk": {"name": "mlp", "hidden": [4]}}


class _Renamed(torch.nn.Module):
    """Holds the given tensors under the given names (what an older layout would have saved)."""

    def __init__(self, state: dict[str, torch.Tensor]) -> None:
        super().__init__()
        for k, v in state.items():
            self.register_buffer(k.replace(".", "__"), v.clone())

    def state_dict(self, *args, **kwargs):  # the names with their dots
        return {k.replace("__", "."): v for k, v in super().state_dict(*args, **kwargs).items()}


def _folder(tmp_path, change):
    torch.manual_seed(0)
    model = build_model(ARCH, TASKS, (3,))
    state = change(dict(model.state_dict()))
    save_model(tmp_path, _Renamed(state), {"architecture": model.config, "tasks": [t.to_dict() for t in TASKS],
                                           "input_shape": [3]})
    return tmp_path


def test_a_folder_that_fits_loads(tmp_path):
    model, _ = load_model(_folder(tmp_path, lambda s: s))
    torch.manual_seed(0)
    want = build_model(ARCH, TASKS, (3,))
    for (k, a), (_, b) in zip(model.state_dict().items(), want.state_dict().items()):
        assert torch.equal(a, b), k


def test_renamed_tensors_are_named(tmp_path):
    def rename(s):
        name = next(k for k in s if k.endswith("weight"))
        s["old_" + name] = s.pop(name)
        return s

    with pytest.raises(RunFolderError) as err:
        load_model(_folder(tmp_path, rename))
    msg = str(err.value)
    assert "1 missing from the file:" in msg and "1 in the file but not in the model: old_" in msg
    assert "another version of mtlkit" in msg


def test_a_tensor_of_another_shape_is_named_with_both_shapes(tmp_path):
    def reshape(s):
        name = next(k for k in s if k.endswith("weight"))
        s[name] = torch.zeros(s[name].shape[0] + 1, s[name].shape[1])
        return s

    with pytest.raises(RunFolderError, match=r"1 of another shape: .*weight \(\d+, 3\) \(the model's is \(4, 3\)\)"):
        load_model(_folder(tmp_path, reshape))
