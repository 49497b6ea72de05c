"""Ranking metrics against hand-computed values and a reference implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mtlkit.evaluation.ranking import auc, gauc, hit_rate_at_k, log_loss, ndcg_at_k, ranking_metrics


def test_gauc_by_hand():
    # user 0: 4 rows, positives 0.9 and 0.4, negatives 0.5 and 0.1 -> pairs won 3 of 4: AUC 0.75
    # user 1: 2 rows, the positive below the negative -> AUC 0
    # user 2: only positives -> left out
    s = [0.9, 0.5, 0.4, 0.1, 0.2, 0.7, 0.3]
    y = [1, 0, 1, 0, 1, 0, 1]
    g = [0, 0, 0, 0, 1, 1, 2]
    assert gauc(s, y, g) == pytest.approx((0.75 * 4 + 0.0 * 2) / 6)
    assert auc([0.1, 0.1], [0, 1]) == 0.5  # ties count one half
    assert math.isnan(auc([0.1, 0.2], [1, 1]))
    assert ranking_metrics(s, y, g)["groups_without_both_classes"] == 1


def test_auc_and_log_loss_match_scikit_learn():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    s, y = rng.random(200).round(2), rng.integers(0, 2, 200)
    assert auc(s, y) == pytest.approx(sk.roc_auc_score(y, s))
    assert log_loss(s.clip(0.01, 0.99), y) == pytest.approx(sk.log_loss(y, s.clip(0.01, 0.99)))


def _reference_ndcg(scores, labels, k):
    """Straight from the definition, one group."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    dcg = sum(labels[i] / math.log2(r + 2) for r, i in enumerate(order[:k]))
    ideal = sum(1 / math.log2(r + 2) for r in range(min(sum(labels), k)))
    return dcg / ideal


@pytest.mark.parametrize("k", [1, 3, 5, 10])
def test_ndcg_and_hr_on_a_toy_ranking(k):
    # leave-one-out: one positive among 8 candidates per user, no ties
    s = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2] * 3)
    y = np.zeros(24)
    y[[0, 8 + 3, 16 + 7]] = 1  # ranks 0, 3, 7
    g = np.repeat([0, 1, 2], 8)
    want = np.mean([1 / math.log2(r + 2) if r < k else 0.0 for r in (0, 3, 7)])
    assert ndcg_at_k(s, y, g, k) == pytest.approx(want)
    assert hit_rate_at_k(s, y, g, k) == pytest.approx(np.mean([r < k for r in (0, 3, 7)]))
    # several positives per group: the definition, and scikit-learn's ndcg_score
    rng = np.random.default_rng(k)
    s2, y2 = rng.random((4, 9)), (rng.random((4, 9)) < 0.3).astype(int)
    y2[:, 0] = 1
    got = ndcg_at_k(s2.ravel(), y2.ravel(), np.repeat(np.arange(4), 9), k)
    assert got == pytest.approx(np.mean([_reference_ndcg(list(a), list(b), k) for a, b in zip(s2, y2)]))
    sk = pytest.importorskip("sklearn.metrics")
    assert got == pytest.approx(sk.ndcg_score(y2, s2, k=k))


def test_ties_are_pessimistic_and_bad_k_is_named():
    assert hit_rate_at_k([0.5, 0.5], [1, 0], [0, 0], 1) == 0.0
    with pytest.raises(ValueError, match="'k'"):
        ndcg_at_k([0.5], [1], [0], 0)
