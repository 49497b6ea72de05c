"""Text trunks: shapes, masks, padding invariance, the per-token layout, registration, errors."""

from __future__ import annotations

import pytest
import torch
from _text_helpers import text_spec

from mtlkit import Task
from mtlkit.architectures.backbones import TRUNKS, build_trunk
from mtlkit.architectures.hard_sharing import HardSharing
from mtlkit.architectures.text import TokenHead, build_text_trunk

SMALL = {"transformer": {"hidden": 16, "layers": 1, "heads": 2, "dropout": 0.0},
         "bilstm": {"hidden": 16}, "textcnn": {"hidden": 12, "kernel_sizes": [3, 5]}}


def _rows(max_length: int = 8) -> torch.Tensor:
    ids = [[2, 5, 9, 4, 7], [2, 11, 3], [2]]
    x = torch.zeros(len(ids), 1 + max_length)
    x[:, 0] = torch.tensor([0.5, -1.0, 2.0])
    for r, seq in enumerate(ids):
        x[r, 1:1 + len(seq)] = torch.tensor(seq, dtype=torch.float32)
    return x


def _trunk(name: str, max_length: int = 8, **kw):
    torch.manual_seed(0)
    return build_trunk({"name": name, **SMALL[name], **kw, "input": text_spec(max_length=max_length)},
                       (1 + max_length,)).eval()


@pytest.mark.parametrize("name", list(SMALL))
def test_shapes_mask_and_registration(name):
    assert name in TRUNKS
    t = _trunk(name)
    x = _rows()
    out = t(x)
    assert out.shape == (3, t.out_features) and torch.isfinite(out).all()
    st = t.token_states(x)
    assert st.states.shape[:2] == (3, 5)  # trimmed to the longest sequence of the batch
    assert st.mask.tolist() == [[True] * 5, [True] * 3 + [False] * 2, [True] + [False] * 4]
    assert st.pooled.shape == (3, st.states.shape[2])
    assert torch.equal(out[:, -1], x[:, 0])  # the dense column is passed on after the pooled text


@pytest.mark.parametrize("name", list(SMALL))
def test_padding_does_not_change_the_pooled_output(name):
    x = _rows()
    wide = torch.zeros(3, 1 + 20)
    wide[:, :9] = x
    big, small = _trunk(name, max_length=20), _trunk(name)
    small.load_state_dict({k: v[: small.state_dict()[k].shape[0]] for k, v in big.state_dict().items()})
    a = small(x)
    b = big(wide)  # the same weights, 12 more padding slots
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    alone = small(x[2:])  # row 2 alone: trimmed to its own length (1)
    torch.testing.assert_close(alone[0], a[2], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["transformer", "bilstm"])
def test_token_states_layout_is_causal_and_read_by_the_token_head(name):
    t = _trunk(name, token_states=True)
    x = _rows()
    rep = t(x)
    w = rep.shape[1] // 9
    assert rep.shape[1] == w * 9
    states = rep[:, w:].reshape(3, 8, w)
    assert (states[1, 3:] == 0).all()  # padding positions are zero
    x2 = x.clone()
    x2[0, 5] = 13  # change the 5th token of row 0: states before it do not change (causal)
    states2 = t(x2)[:, w:].reshape(3, 8, w)
    torch.testing.assert_close(states[0, :4], states2[0, :4])
    assert not torch.allclose(states[0, 4], states2[0, 4])
    head = TokenHead(rep.shape[1], Task("lm", "next_token", num_classes=30, out_shape=(8,)))
    assert head(rep).shape == (3, 30, 8)


def test_token_states_in_a_hard_sharing_model():
    tasks = [Task("pos", "binary"), Task("lm", "next_token", num_classes=30, out_shape=(8,), role="auxiliary")]
    m = HardSharing.from_config(tasks, (9,), trunk={"name": "transformer", **SMALL["transformer"],
                                                    "token_states": True, "input": text_spec()})
    out = m(_rows())
    assert out["pos"].shape == (3,) and out["lm"].shape == (3, 30, 8)


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"text column.*use a text trunk"):
        build_trunk({"name": "mlp", "input": text_spec()}, (9,))
    with pytest.raises(ValueError, match="data has none"):
        build_text_trunk({"name": "bilstm"}, (9,))
    with pytest.raises(ValueError, match=r"Bad parameters for trunk 'textcnn': \['heads'\]"):
        build_trunk({"name": "textcnn", "heads": 2, "input": text_spec()}, (9,))
    with pytest.raises(ValueError, match="textcnn trunk has no causal per-token states"):
        build_trunk({"name": "textcnn", "token_states": True, "input": text_spec()}, (9,))
    with pytest.raises(ValueError, match=r"reads 9 input columns.*has 7"):
        build_trunk({"name": "bilstm", "input": text_spec()}, (7,))
    with pytest.raises(ValueError, match="token_states: true"):
        TokenHead(10, Task("lm", "next_token", num_classes=30, out_shape=(8,)))
