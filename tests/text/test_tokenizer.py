"""Text columns: tokenizer fit/round trip, padding, truncation, bad values, JSON reload."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from _text_helpers import toy_frame

pytest.importorskip("tokenizers")

from mtlkit.data.tabular import TableOptions, TablePreprocessor, infer_types
from mtlkit.data.text import TextOptions, encode_texts, fit_tokenizer, load_tokenizer, pad_id_of

TEXTS = ["Hello world, this is a test!", "another Test of words", "hello again", "words words and more words"]


@pytest.mark.parametrize("kind", ["bpe", "wordpiece"])
def test_round_trip_and_padding(kind):
    tok = fit_tokenizer(TEXTS * 5, TextOptions(kind=kind, vocab_size=300, min_frequency=1))
    pad = pad_id_of(tok)
    assert pad == 0 and tok.token_to_id("[CLS]") == 2
    ids = encode_texts(tok, ["hello world!", "", "another test"], max_length=12, pad_id=pad)
    assert ids.shape == (3, 12) and (ids[:, 0] == 2).all()  # [CLS] first
    assert (ids[1, 1:] == pad).all()  # an empty text: [CLS] then padding
    n = int((ids[0] != pad).sum())
    assert (ids[0, n:] == pad).all() and (ids[0, :n] != pad).all()  # padding only at the end
    decoded = tok.decode([int(i) for i in ids[0]])
    assert decoded.replace(" ", "") == "helloworld!"
    if kind == "bpe":  # byte-level BPE: exact round trip of the (lowercased) text
        assert decoded == "hello world!"


def test_fitting_is_deterministic():
    # byte-level BPE (the default): the same texts give the same tokenizer, even with many
    # merges of equal count
    r = np.random.default_rng(0)
    words = ["".join(r.choice(list("abcdefghijklmnopqrstuvwxyzäéß"), size=int(r.integers(2, 9))))
             for _ in range(400)]
    texts = [" ".join(r.choice(words, size=12)) for _ in range(300)] + TEXTS
    fitted = [fit_tokenizer(texts, TextOptions(vocab_size=400, min_frequency=1)).to_str() for _ in range(4)]
    assert all(t == fitted[0] for t in fitted)


def test_wordpiece_ids_do_not_depend_on_the_trainers_order():
    from tokenizers import Tokenizer, models

    from mtlkit.data.text import _stable_wordpiece

    tokens = ["[PAD]", "[UNK]", "[CLS]", "b", "a", "##a", "ab", "##ba"]
    shuffled = [tokens[:3] + p for p in (tokens[3:], tokens[3:][::-1], tokens[4:] + tokens[3:4])]
    vocabs = [Tokenizer(_stable_wordpiece({t: i for i, t in enumerate(order)}, models)).get_vocab()
              for order in shuffled]
    assert all(v == vocabs[0] for v in vocabs)
    assert [vocabs[0][t] for t in ("[PAD]", "[UNK]", "[CLS]")] == [0, 1, 2]


def test_truncation_is_counted_in_one_warning_or_refused():
    tok = fit_tokenizer(TEXTS, TextOptions(kind="wordpiece", vocab_size=100, min_frequency=1))
    texts = ["hello", "hello world this is a test", "words words and more words", "test"]
    lengths = [len(tok.encode(t).ids) for t in texts]
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        ids = encode_texts(tok, texts, max_length=4, pad_id=0, column="tweet")
    msgs = [str(x.message) for x in w]
    assert len(msgs) == 1 and f"{sum(n > 4 for n in lengths)} of 4 text(s)" in msgs[0] and "'tweet'" in msgs[0]
    assert ids.shape == (4, 4)
    with pytest.raises(ValueError, match=r"'tweet'.*longer than max_length=4"):
        encode_texts(tok, texts, max_length=4, pad_id=0, truncation="error", column="tweet")


def _pre(text=None, types=None):
    return TablePreprocessor(types or {"text": "text", "num": "numeric"},
                             TableOptions(text=text or {"tokenizer": {"kind": "wordpiece", "vocab_size": 120,
                                                                      "min_frequency": 1}, "max_length": 12}))


def test_preprocessor_layout_json_reload_and_spec():
    df = toy_frame(40)
    pre = _pre().fit(df)
    x = pre.transform(df)
    assert x.shape == (40, 1 + 12) and pre.width == 13
    assert pre.feature_names[:2] == ["num", "text#token0"]
    spec = pre.input_spec
    assert spec["dense"] == 1 and spec["text"][0]["max_length"] == 12 and spec["text"][0]["pad_id"] == 0
    again = TablePreprocessor.from_dict(json.loads(json.dumps(pre.to_dict())))  # JSON only: no pickle
    np.testing.assert_array_equal(again.transform(df), x)


def test_non_string_and_empty_values():
    df = toy_frame(30)
    pre = _pre().fit(df)
    bad = df.copy()
    bad["text"] = bad["text"].astype(object)
    bad.loc[7, "text"] = 42
    with pytest.raises(ValueError, match=r"Text column 'text'.*non-string value 42 \(int\) at row 7"):
        pre.transform(bad)
    empty = df.copy()
    empty.loc[3, "text"] = ""
    empty.loc[5, "text"] = None
    with pytest.warns(UserWarning, match=r"2 missing or empty value\(s\).*first at row 3"):
        x = pre.transform(empty)
    assert (x[3, 2:] == 0).all() and x[3, 1] == 2  # [CLS] only


def test_tokenizer_file_errors_and_use(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_tokenizer(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text('{"not": "a tokenizer"}')
    with pytest.raises(ValueError, match="is not a tokenizer file"):
        load_tokenizer(tmp_path / "bad.json")
    tok = fit_tokenizer(TEXTS, TextOptions(kind="wordpiece", vocab_size=100, min_frequency=1))
    tok.save(str(tmp_path / "tok.json"))
    df = toy_frame(20)
    pre = _pre({"tokenizer": {"file": str(tmp_path / "tok.json")}, "max_length": 6}).fit(df)
    assert pre.text[0].tokenizer == load_tokenizer(tmp_path / "tok.json").to_str()


def test_bad_options_are_named():
    with pytest.raises(ValueError, match=r"'max_length' parameter of data.text"):
        TextOptions(max_length=0)
    with pytest.raises(ValueError, match=r"data.text.tokenizer.vocab"):
        TextOptions.from_mapping({"tokenizer": {"vocab": 10}})


def test_free_text_is_never_inferred_silently():
    df = pd.DataFrame({"t": [f"this is tweet number {i} about things" for i in range(30)]})
    with pytest.warns(UserWarning, match=r"free text.*Declare it text"):
        assert infer_types(df) == {"t": "id"}
