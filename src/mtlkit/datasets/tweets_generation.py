"""Trump tweets (dslabs) with two text targets derived by rule, for generation tasks."""

from __future__ import annotations

import re

import pandas as pd

from mtlkit._checks import check_int
from mtlkit._registry import DATASETS
from mtlkit.datasets._bundle import DatasetBundle
from mtlkit.datasets.tweets import load_tweets
from mtlkit.tasks import Task

_URL = re.compile(r"(https?://|www\.)\S+", re.IGNORECASE)
_TAG = re.compile(r"(?<![\w@#])[@#]\w+")


def opening(text: str, words: int = 8) -> str:
    """The first ``words`` whitespace-separated words of a text, links removed.

    >>> opening("Thank you Iowa! https://t.co/x Great crowd tonight, see you soon #MAGA", 6)
    'Thank you Iowa! Great crowd tonight,'
    """
    return " ".join(_URL.sub(" ", text).split()[:words])


def tags(text: str) -> str | None:
    """The @mentions and #hashtags of a text in order, space-separated; ``None`` when it has none.

    >>> tags("Thank you @FoxNews! #MAGA #Trump2016"), tags("No tags here.")
    ('@FoxNews #MAGA #Trump2016', None)
    """
    found = _TAG.findall(_URL.sub(" ", text))
    return " ".join(found) if found else None


@DATASETS.register()
def load_tweets_generation(n: int | None = None, seed: int = 0, words: int = 8) -> DatasetBundle:
    """The tweets of :func:`~mtlkit.datasets.tweets.load_tweets` with two text targets derived
    from each tweet by rule, for ``generation`` tasks sharing one decoder:

    * ``opening``: the tweet's first ``words`` words (links removed), a copy-and-stop task;
    * ``tags``: its @mentions and #hashtags in order (missing, so masked, for a tweet without any).

    Tasks: ``source`` (multiclass, as in ``tweets``), ``opening`` (generation, up to 24 tokens)
    and ``tags`` (generation, up to 16 tokens). The columns ``retweets``, ``favourites`` and
    ``reply`` of the table stay available as label columns. The raw table is in
    ``info["frame"]`` (the tokenizer is fitted on the training split by the run).

    Args:
        n: take a seeded random subset of ``n`` rows (default: all).
        seed: seed of the subset.
        words: the number of words of ``opening``.

    >>> b = load_tweets_generation(n=300)
    >>> [(t.name, t.kind) for t in b.tasks], list(b.info["frame"].columns)[-2:]
    ([('source', 'multiclass'), ('opening', 'generation'), ('tags', 'generation')], ['opening', 'tags'])
    """
    check_int("load_tweets_generation", "words", words, low=1)
    base = load_tweets(n=n, seed=seed)
    frame: pd.DataFrame = base.info["frame"].copy()
    frame["opening"] = [opening(t, words) for t in frame["text"]]
    frame["tags"] = pd.Series([tags(t) for t in frame["text"]], index=frame.index, dtype=object)
    source = next(t for t in base.tasks if t.name == "source")
    tasks = [source, Task("opening", "generation", out_shape=(24,)), Task("tags", "generation", out_shape=(16,))]
    data = base.data
    data.tasks = [source]
    return DatasetBundle(
        name="tweets_generation", data=data, tasks=tasks, test=None, input_kind="text",
        default_trunk={"name": "transformer"}, feature_names=["text"],
        description=(f"Trump tweets 2009-2018 (dslabs::trump_tweets): {len(frame)} tweets; text -> source device, "
                     f"its first {words} words and its @mentions/#hashtags (derived by rule) as texts."),
        licence=base.licence,
        info={"frame": frame, "features": {"text": "text"}, "source_classes": base.info.get("source_classes")},
    )


# a literal (as in tweets.py): `mtlkit list` reads it from the source without importing torch
load_tweets_generation.paper = "Irizarry & Gill, dslabs: Data Science Labs (R package), data set trump_tweets"  # type: ignore[attr-defined]
