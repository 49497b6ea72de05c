"""``mtlkit predict --top-k``: candidates, item-side columns, ranking, the CLI end to end."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mtlkit import Task, fit
from mtlkit.cli import get_app
from mtlkit.evaluation.ranking_topk import candidate_rows, item_side_columns, top_k

TRAIN = pd.DataFrame({"user": [1, 1, 2, 2, 3], "item": [10, 11, 11, 12, 13], "age": [30, 30, 40, 40, 50],
                      "year": [1990, 1991, 1991, 1992, 1993]})


def test_item_side_columns_are_those_constant_per_item():
    assert item_side_columns(TRAIN, "item", ["user", "item", "age", "year"]) == ["item", "year"]


def test_candidates_exclude_the_users_training_items_unless_asked():
    users = pd.DataFrame({"user": [1, 1], "item": [10, 11], "age": [31, 32], "year": [1990, 1991]})
    rows = candidate_rows(users, TRAIN, user_column="user", item_column="item", item_columns=["item", "year"],
                          include_seen=False)
    assert rows["item"].tolist() == [12, 13] and rows["year"].tolist() == [1992, 1993]
    assert rows["age"].tolist() == [32, 32]  # the user's last row is the context
    every = candidate_rows(users, TRAIN, user_column="user", item_column="item", item_columns=["item", "year"],
                           include_seen=True)
    assert every["item"].tolist() == [10, 11, 12, 13]


def test_top_k_orders_by_score_with_deterministic_ties():
    users = TRAIN.groupby("user").tail(1)
    out = top_k(lambda r: -(r["year"].to_numpy() % 2).astype(float), users, TRAIN, k=2, user_column="user",
                item_column="item", item_columns=["item", "year"])
    # user 1: candidates 12 (even year, score 0) and 13 (-1); user 3: 10, 12 score 0 (tie -> smaller id first)
    assert out[out.user == 1]["item"].tolist() == [12, 13]
    assert out[out.user == 3]["item"].tolist() == [10, 12] and out["rank"].tolist()[:2] == [1, 2]
    with pytest.raises(ValueError, match="positive integer"):
        top_k(lambda r: np.zeros(len(r)), users, TRAIN, k=0, user_column="user", item_column="item")
    with pytest.raises(ValueError, match="no column 'uid'"):
        top_k(lambda r: np.zeros(len(r)), users, TRAIN, k=1, user_column="uid", item_column="item")


def test_cli_top_k_on_a_table_run(tmp_path):
    r = np.random.default_rng(0)
    n_users, n_items = 15, 40
    u = r.integers(0, n_users, 200)
    i = r.integers(0, n_items, 200)
    quality = np.linspace(-1, 1, n_items)
    df = pd.DataFrame({"user": u, "item": i, "quality": quality[i], "taste": r.normal(size=n_users)[u]})
    df["click"] = (quality[i] + 0.3 * r.normal(size=200) > 0).astype(int)
    run = tmp_path / "run"
    fit(df, [Task("click", "binary")], features=["user", "item", "quality", "taste"], epochs=2,
        baselines=False, out_dir=run, architecture="shared_bottom", trunk={"name": "mlp", "hidden": [8]})
    df.to_csv(tmp_path / "train.csv", index=False)
    df[df.user < 3].to_csv(tmp_path / "users.csv", index=False)
    args = ["predict", str(run), str(tmp_path / "users.csv"), "--top-k", "3", "--out", str(tmp_path / "top.csv")]
    res = CliRunner().invoke(get_app(), args)  # data passed from Python: the folder cannot rebuild it
    assert res.exit_code != 0 and "--train" in res.output
    res = CliRunner().invoke(get_app(), [*args, "--train", str(tmp_path / "train.csv")])
    assert res.exit_code == 0, res.output
    top = pd.read_csv(tmp_path / "top.csv")
    assert list(top.columns) == ["user", "rank", "item", "score"]
    assert sorted(top.user.unique()) == [0, 1, 2] and (top.groupby("user").size() <= 3).all()
    for user, g in top.groupby("user"):
        assert not set(g.item) & set(df[df.user == user].item)  # seen items excluded
        assert g.score.is_monotonic_decreasing
    res = CliRunner().invoke(get_app(), ["predict", str(run), str(tmp_path / "users.csv"), "--top-k", "2",
                                         "--task", "nope", "--out", str(tmp_path / "t2.csv")])
    assert res.exit_code != 0 and "nope" in res.output
