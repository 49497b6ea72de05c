"""Task grouping (TAG network selection): exact search = brute force, planted blocks."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from mtlkit.analysis import AffinityResult, Grouping, evaluate_groups, select_groups, task_score


def brute_force(z, networks, aggregate, singleton_score):
    """Independent reference: every choice of at most G non-empty groups; each task takes
    its best group; the best total over choices covering every task."""
    k = z.shape[0]

    def score(g, j):
        mates = [i for i in g if i != j]
        if not mates:
            return singleton_score
        s = sum(z[i, j] for i in mates)
        return s / len(mates) if aggregate == "mean" else s

    subsets = [c for m in range(1, k + 1) for c in itertools.combinations(range(k), m)]
    best = -math.inf
    for n in range(1, networks + 1):
        for choice in itertools.combinations(subsets, n):
            tot = 0.0
            for j in range(k):
                vals = [score(g, j) for g in choice if j in g]
                if not vals:
                    tot = -math.inf
                    break
                tot += max(vals)
            best = max(best, tot)
    return best


def planted(k_per_block=(3, 3), within=1.0, across=-1.0, noise=0.1, seed=0):
    r = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(k_per_block)), k_per_block)
    z = np.where(labels[:, None] == labels[None, :], within, across) + noise * r.normal(size=(len(labels),) * 2)
    perm = r.permutation(len(labels))  # hide the blocks behind a shuffled task order
    z = z[np.ix_(perm, perm)]
    names = [f"t{i}" for i in range(len(labels))]
    blocks = {frozenset(names[i] for i in range(len(labels)) if labels[perm[i]] == b)
              for b in range(len(k_per_block))}
    return z, names, blocks


@pytest.mark.parametrize("case", range(24))
def test_exact_search_equals_brute_force(case):
    r = np.random.default_rng(100 + case)
    k = int(r.integers(2, 6))
    networks = int(r.integers(1, 4))
    aggregate = ("mean", "sum")[case % 2]
    singleton = (0.0, -math.inf, 0.25)[case % 3]
    z = r.normal(size=(k, k))
    ref = brute_force(z, networks, aggregate, singleton)
    g = select_groups(z, networks, aggregate=aggregate, singleton_score=singleton, search="exact")
    assert g.total == pytest.approx(ref, abs=1e-9)
    assert len(g.groups) <= networks and set(g.serving) == {f"task{i}" for i in range(k)}
    # the reported total is the served scores' sum, recomputed independently
    again = evaluate_groups(z, g.groups, task_names=list(g.serving), aggregate=aggregate,
                            singleton_score=singleton)
    assert again.total == pytest.approx(g.total)
    beam = select_groups(z, networks, aggregate=aggregate, singleton_score=singleton, search="beam")
    assert beam.total <= g.total + 1e-9


@pytest.mark.parametrize("search", ["exact", "beam"])
def test_planted_blocks_are_recovered(search):
    z, names, blocks = planted((3, 3))
    g = select_groups(AffinityResult(z, names, "tag"), 2, search=search)
    assert {frozenset(x) for x in g.groups} == blocks
    z, names, blocks = planted((2, 3, 2), seed=1)
    g = select_groups(z, 3, task_names=names, search=search)
    assert {frozenset(x) for x in g.groups} == blocks


def test_beam_search_recovers_blocks_beyond_exact_size():
    z, names, blocks = planted((5, 5, 4), seed=2)
    g = select_groups(z, 3, task_names=names)  # 14 tasks: auto -> beam
    assert g.search == "beam" and {frozenset(x) for x in g.groups} == blocks


def test_tasks_may_serve_in_one_group_and_help_in_another():
    # c helps a and b a lot but is hurt by them; d is neutral to everyone
    names = ["a", "b", "c", "d"]
    z = np.zeros((4, 4))
    z[2, 0] = z[2, 1] = 1.0   # c -> a, c -> b
    z[0, 1] = z[1, 0] = 0.2
    z[0, 2] = z[1, 2] = -1.0  # a, b -> c
    z[3, 2] = 0.3             # d -> c
    g = select_groups(z, 2, task_names=names)
    assert g.total == pytest.approx(brute_force(z, 2, "mean", 0.0))
    in_groups = [t for t in names if sum(t in grp for grp in g.groups) > 1]
    assert in_groups == ["c"]  # c is a helper in a's group and served in its own
    assert g.groups[g.serving["c"]] == ("c", "d")
    assert g.serving["a"] == g.serving["b"] and "c" in g.groups[g.serving["a"]]


def test_task_score_follows_the_mean_and_sum_definitions():
    z = np.array([[9.0, 0.3, -0.6], [0.1, 9.0, 0.9], [0.5, 0.2, 9.0]])
    assert task_score(z, [0, 1, 2], 0) == pytest.approx((0.1 + 0.5) / 2)  # onto task 0: column 0
    assert task_score(z, [0, 1, 2], 2, aggregate="sum") == pytest.approx(-0.6 + 0.9)
    assert task_score(z, [1], 1, singleton_score=-2.0) == -2.0
    assert task_score(z, [0, 1], 1) == pytest.approx(0.3)  # the diagonal is never used


def test_grouping_roundtrip_and_text(tmp_path):
    z, names, _ = planted((2, 2))
    g = select_groups(z, 2, task_names=names)
    path = g.save(tmp_path)
    assert path.name == "grouping.json"
    back = Grouping.from_dict(__import__("json").loads(path.read_text()))
    assert back.groups == g.groups and back.serving == g.serving
    assert back.total == pytest.approx(g.total)
    text = str(g)
    assert "group 0" in text and "total predicted score" in text


def test_bad_inputs_name_the_problem():
    z = np.zeros((3, 3))
    with pytest.raises(ValueError, match=r"'networks' parameter must be a positive int\. Got 0"):
        select_groups(z, 0)
    with pytest.raises(ValueError, match="'aggregate' parameter"):
        select_groups(z, 1, aggregate="max")
    with pytest.raises(ValueError, match="'search' parameter"):
        select_groups(z, 1, search="random")
    with pytest.raises(ValueError, match="square"):
        select_groups(np.zeros((2, 3)), 1)
    bad = z.copy()
    bad[0, 1] = np.nan
    with pytest.raises(ValueError, match="'task0' onto 'task1' is not finite"):
        select_groups(bad, 2)
    with pytest.raises(KeyError, match="Unknown task 'q'"):
        evaluate_groups(z, [["q"]], task_names=["a", "b", "c"])
