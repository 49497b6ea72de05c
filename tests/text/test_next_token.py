"""The next-token language-model auxiliary: targets, masked loss (by hand), the kind's metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mtlkit import Task
from mtlkit.auxiliary import build_generators
from mtlkit.auxiliary.next_token import NextTokenLM
from mtlkit.auxiliary.text_counts import TextCounts


def test_targets_are_the_shifted_ids_and_padding_is_masked():
    aux = NextTokenLM(weight=0.3).generate(np.array([[2, 5, 6, 7], [2, 4, 0, 0], [2, 0, 0, 0]]))
    assert aux.task.kind == "next_token" and aux.task.out_shape == (4,) and aux.task.weight == 0.3
    assert aux.targets.tolist() == [[5, 6, 7, 0], [4, 0, 0, 0], [0, 0, 0, 0]]
    assert aux.mask.tolist() == [[True, True, True, False], [True, False, False, False], [False] * 4]


def test_loss_ignores_padding_hand_computed():
    aux = NextTokenLM(vocab=3).generate(np.array([[1, 2, 1], [1, 2, 0]]))
    logits = torch.tensor([[[0.0, 1.0, 0.0], [2.0, 0.0, 0.0], [0.0, 0.0, 5.0]],
                           [[1.0, 0.0, 9.0], [0.0, 3.0, -9.0], [0.0, 0.0, 0.0]]])  # (N, V, T)
    # labelled: row 0 t=0 -> 2, t=1 -> 1; row 1 t=0 -> 2 (t=1 is padding, t=2 the last slot)
    def ce(col, k):
        return -math.log(math.exp(col[k]) / sum(math.exp(v) for v in col))

    want = (ce([0.0, 2.0, 0.0], 2) + ce([1.0, 0.0, 0.0], 1) + ce([1.0, 0.0, 0.0], 2)) / 3
    got = aux.task.task_kind.compute_loss(aux.task, logits, aux.targets, aux.mask)
    assert float(got) == pytest.approx(want, rel=1e-6)
    bigger = logits.clone()
    bigger[1, :, 1] = torch.tensor([50.0, -50.0, 7.0])  # change only a padded position's logits
    assert float(aux.task.task_kind.compute_loss(aux.task, bigger, aux.targets, aux.mask)) == pytest.approx(want)


def test_kind_metrics_and_generator_errors():
    t = Task("lm", "next_token", num_classes=3, out_shape=(2,))
    out = torch.tensor([[[5.0, 0.0], [0.0, 5.0], [0.0, 0.0]]])  # argmax: 0, 1
    res = t.task_kind.evaluate(t, out, torch.tensor([[0, 2]]), torch.tensor([[True, False]]))
    assert res["token_accuracy"] == 1.0 and res["perplexity"] == pytest.approx(math.exp(-math.log(
        math.exp(5) / (math.exp(5) + 2))), rel=1e-5)
    with pytest.raises(ValueError, match="'pad_id' parameter of NextTokenLM"):
        NextTokenLM(pad_id=-1)
    with pytest.raises(ValueError, match=r"needs \(N, T\) token IDs"):
        NextTokenLM().generate(np.zeros((2, 3, 4)))
    assert [str(g) for g in build_generators([{"generator": "next_token"}])] == ["NextTokenLM"]


def test_text_counts_hint():
    import pandas as pd

    aux = TextCounts(column="t").generate(pd.DataFrame({"t": ["Great @a #b http://x.y !!", None, "ok"]}))
    assert aux.task.kind == "regression" and aux.targets.shape == (3, 7)
    assert aux.targets[0, 4] == pytest.approx(0.0) and aux.targets[0, 5] == pytest.approx(math.log(3))
    assert not aux.mask[1].any() and aux.mask[2].all()
    with pytest.raises(ValueError, match="'tool' parameter of TextCounts"):
        TextCounts(column="t", tool="nltk")
    try:
        import spacy  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"mtlkit\[nlp\]"):
            TextCounts(column="t", tool="spacy")
