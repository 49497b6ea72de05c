"""Ranking metrics in a run (summary, terminal table, report) and funnel tasks from YAML."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from mtlkit import Task
from mtlkit.config import parse_config
from mtlkit.evaluation.ranking import gauc
from mtlkit.evaluation.ranking_run import ranking_table, task_ranking, user_groups


def funnel_frame(n_users: int = 12, per_user: int = 8, seed: int = 0) -> pd.DataFrame:
    r = np.random.default_rng(seed)
    user = np.repeat(np.arange(n_users), per_user)
    a, b = r.normal(size=len(user)), r.normal(size=len(user))
    click = (a + 0.5 * r.normal(size=len(user)) > 0.3).astype(int)
    buy = click * (b > 0).astype(int)
    return pd.DataFrame({"user": [f"u{u}" for u in user], "a": a, "b": b, "click": click, "buy": buy})


def config(path: str, **data: object) -> dict:
    return {"name": "rank", "seed": 0,
            "data": {"path": path, "features": ["a", "b"], "user_column": "user",
                     "candidates": "the user's 8 rows", "split": {"train": 0.5, "val": 0.2, "test": 0.3}, **data},
            "tasks": [{"name": "click", "kind": "binary"}, {"name": "buy", "kind": "binary", "given": "click"}],
            "model": {"trunk": {"name": "mlp", "hidden": [8]}, "architecture": {"name": "esmm"}},
            "training": {"epochs": 1, "batch_size": 32}, "baselines": True}


def test_task_ranking_matches_the_pure_functions_and_skips_other_kinds():
    tasks = [Task("click", "binary"), Task("buy", "binary", given="click"), Task("r", "regression")]
    g = np.array([0, 0, 0, 1, 1, 1])
    out = {"click": torch.tensor([2.0, -1.0, 0.0, 1.0, 3.0, -2.0]), "buy": torch.tensor([1.0, 0, 0, 0, 2, 0]),
           "r": torch.zeros(6, 1)}
    y = {"click": torch.tensor([1.0, 0, 1, 0, 1, 0]), "buy": torch.tensor([1.0, 0, 0, 0, 1, 0]),
         "r": torch.zeros(6, 1)}
    m = {k: torch.ones(6, dtype=torch.bool) for k in y}
    r = task_ranking(tasks, out, y, m, g, ks=(1,), candidates="toy")
    assert set(r) == {"click", "buy"}
    p = torch.sigmoid(out["click"]).numpy()
    assert r["click"]["gauc"] == pytest.approx(gauc(p, y["click"].numpy(), g))
    # user 0: scores 2, -1, 0 with positives at 2 and 0 -> AUC 1; user 1: 1, 3, -2, positive at 3 -> AUC 1
    assert r["click"]["gauc"] == 1.0 and r["click"]["hr@1"] == 1.0
    assert r["buy"]["conditional_auc"] == pytest.approx(1.0)  # on the clicked rows only
    assert r["buy"]["candidates"] == "toy"


def test_user_groups_by_name_by_index_and_errors():
    x = torch.tensor([[3.0, 0.1], [4.0, 0.2]])
    assert user_groups("user", features=["user", "f"], x=x).tolist() == [3.0, 4.0]
    assert user_groups(1, features=None, x=x).tolist() == pytest.approx([0.1, 0.2])
    with pytest.raises(ValueError, match=r"no column 'uid'.*\['user', 'f'\]"):
        user_groups("uid", features=["user", "f"], x=x)
    with pytest.raises(ValueError, match=r"data\.user_column"):
        user_groups(None, features=None, x=x)


def test_run_writes_ranking_for_mtl_and_single_task_on_the_same_rows(tmp_path):
    from mtlkit.report import write_report
    from mtlkit.run import prepare_from_config, run

    path = tmp_path / "t.csv"
    funnel_frame().to_csv(path, index=False)
    cfg = parse_config(config(str(path)))
    prepared = prepare_from_config(cfg)
    res = run(cfg, prepared, out_dir=tmp_path / "run", progress=False, log=lambda *_: None)
    rk = json.loads((tmp_path / "run" / "summary.json").read_text())["ranking"]
    assert rk["user_column"] == "user" and rk["candidates"] == "the user's 8 rows" and rk["users"] == 12
    for task in ("click", "buy"):
        assert set(rk["tasks"][task]) == {"mtl", "stl"}
        assert rk["tasks"][task]["stl"]["auc"] is not None and 0 <= rk["tasks"][task]["mtl"]["auc"] <= 1
    assert "conditional_auc" in rk["tasks"]["buy"]["mtl"]
    # the table's AUC is the run's test roc_auc of the same model and rows
    assert rk["tasks"]["click"]["mtl"]["auc"] == pytest.approx(res.summary["mtl"]["test"]["click"]["roc_auc"], abs=1e-6)
    table = ranking_table(res.summary)
    assert table is not None and "ndcg@10" in table and "stl" in table
    write_report(tmp_path / "run")
    html = (tmp_path / "run" / "report.html").read_text()
    assert 'id="ranking"' in html
    assert "the user&#x27;s 8 rows" in html or "the user's 8 rows" in html


def test_funnel_violations_refused_or_masked_and_unknown_parent_named(tmp_path):
    from mtlkit.run import prepare_from_config

    df = funnel_frame()
    bad = df.index[(df["click"] == 0)][:3]
    df.loc[bad, "buy"] = 1
    path = tmp_path / "t.csv"
    df.to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"'buy' \(given 'click'\) has 3 positive label"):
        prepare_from_config(parse_config(config(str(path))))
    p = prepare_from_config(parse_config(config(str(path), funnel_violations="mask")))
    masked = sum(int((~part.masks["buy"]).sum()) for part in (p.train, p.val, p.test))
    assert masked == 3
    assert next(t for t in p.tasks if t.name == "buy").given == "click"
    c = config(str(path))
    c["tasks"][1]["given"] = "clik"
    with pytest.raises(ValueError, match="no task 'clik'"):
        prepare_from_config(parse_config(c))
