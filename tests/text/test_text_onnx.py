"""ONNX export of the BiLSTM and TextCNN text models, checked with onnxruntime against PyTorch on
padded batches of several lengths and sizes.

The BiLSTM runs over packed sequences (``pack_padded_sequence``): the exporter turns them into
the ONNX ``LSTM`` operator with a ``sequence_lens`` input, so the graph skips the padding as
PyTorch does and no separate export path is needed. While tracing, the trunk does not trim the
batch to its longest sequence (:func:`mtlkit.architectures.text.tracing`): the graph always reads
``max_length`` slots, which gives the same outputs because padding never changes them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _text_helpers import text_spec

from mtlkit import Task
from mtlkit.architectures import build_model
from mtlkit.export import export_model

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

TASKS = [Task("a", "binary"), Task("b", "regression"), Task("c", "multiclass", num_classes=3)]
VOCAB, LENGTH = 30, 8
#: token counts per row of each test batch: full rows, empty rows, one row, ties
BATCHES = [[8, 3, 1], [2, 2], [5, 0, 7, 1, 8], [1], [0, 0, 4]]

TRUNKS = {
    "bilstm": {"name": "bilstm", "hidden": 8},
    "bilstm_2_layers_max": {"name": "bilstm", "hidden": 8, "layers": 2, "pooling": "max"},
    "bilstm_token_states": {"name": "bilstm", "hidden": 8, "token_states": True},
    "textcnn": {"name": "textcnn", "hidden": 8, "kernel_sizes": [3, 5]},
    "textcnn_mean": {"name": "textcnn", "hidden": 6, "kernel_sizes": [1, 3], "pooling": "mean"},
}


def _batch(lengths, seed):
    r = np.random.default_rng(seed)
    x = np.zeros((len(lengths), 1 + LENGTH), np.float32)
    x[:, 0] = r.normal(size=len(lengths))
    for i, n in enumerate(lengths):
        x[i, 1: 1 + n] = r.integers(3, VOCAB, size=n)
    return x


@pytest.mark.parametrize("name", list(TRUNKS))
def test_onnx_equals_pytorch_on_padded_batches(name, tmp_path):
    torch.manual_seed(0)
    trunk = {**TRUNKS[name], "input": text_spec(vocab=VOCAB, max_length=LENGTH, dense=1)}
    model = build_model({"name": "hard_sharing", "trunk": trunk}, TASKS, (1 + LENGTH,)).eval()
    path = export_model(model, TASKS, (1 + LENGTH,), tmp_path / "m.onnx", fmt="onnx")
    sess = ort.InferenceSession(str(path))
    for seed, lengths in enumerate(BATCHES):
        x = _batch(lengths, seed)
        got = sess.run(None, {"x": x})
        with torch.no_grad():
            want = model(torch.from_numpy(x))
        for t, g in zip(TASKS, got):
            np.testing.assert_allclose(g, want[t.name].numpy(), rtol=1e-5, atol=1e-5, err_msg=f"{name} {lengths}")


def test_the_exported_bilstm_reads_the_sequence_lengths(tmp_path):
    """The graph's LSTM nodes take each row's length (``sequence_lens``, the 5th input), so they
    stop at the last real token; with PyTorch trimming each batch to its longest row and the graph
    always reading 8 slots, the equality above is that of padding skipped on both sides."""
    import onnx

    torch.manual_seed(1)
    trunk = {**TRUNKS["bilstm"], "input": text_spec(vocab=VOCAB, max_length=LENGTH, dense=1)}
    model = build_model({"name": "hard_sharing", "trunk": trunk}, TASKS, (1 + LENGTH,)).eval()
    path = export_model(model, TASKS, (1 + LENGTH,), tmp_path / "m.onnx", fmt="onnx")
    lstms = [n for n in onnx.load(str(path)).graph.node if n.op_type == "LSTM"]
    assert lstms and all(len(n.input) > 4 and n.input[4] for n in lstms)
