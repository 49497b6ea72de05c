"""Generation tasks: the shared decoder, teacher forcing, greedy and beam decoding, the masked
loss, BLEU, and a YAML run reloaded from its folder."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest
import torch
from _text_helpers import toy_frame, train_yaml
from torch import nn

pytest.importorskip("tokenizers")
pytest.importorskip("sacrebleu")

import sacrebleu

from mtlkit import Task
from mtlkit.architectures.backbones import build_trunk
from mtlkit.architectures.hard_sharing import HardSharing
from mtlkit.architectures.text_decoder import SharedDecoder
from mtlkit.data.tabular import TablePreprocessor
from mtlkit.data.text import TextOptions, fit_tokenizer, generation_targets
from mtlkit.inference import load_run, predict_frame
from mtlkit.kinds.generation import corpus_bleu, detokenize, require_sacrebleu

V, L = 9, 6  # tiny vocabulary: [PAD]=0 (also the end token), [UNK]=1, [CLS]=2, symbols 3..8


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models: one thread is fastest (and the same on every machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _decoder(seed: int = 0, **kw) -> SharedDecoder:
    torch.manual_seed(seed)
    return SharedDecoder(V, 8, n_tasks=2, max_length=L, hidden=8, heads=2, layers=2, dropout=0.0, **kw).eval()


def _memory(b: int = 4, s: int = 5, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    pad = torch.zeros(b, s, dtype=torch.bool)
    pad[0, 3:] = True  # padded encoder slots are never attended to
    return torch.randn(b, s, 8, generator=g), pad


def test_teacher_forced_logits_equal_a_hand_unrolled_decoder():
    dec = _decoder()
    memory, pad = _memory()
    target = torch.randint(3, V, (4, L), generator=torch.Generator().manual_seed(2))
    forced = dec.teacher_forced(memory, pad, 1, target)  # (B, V, L), one pass with the causal mask
    mem = dec.project(memory)
    cache: list[list[torch.Tensor]] = [[] for _ in dec.decoder.layers]  # each layer's inputs at past steps
    for t in range(L):  # feed the gold prefix one token at a time; each step only sees the cached past
        token = dec.starts.weight[1].expand(4, -1) if t == 0 else dec.tokens(target[:, t - 1])
        h = (token + dec.positions.weight[t])[:, None]  # (B, 1, H): the new position only
        for layer, past in zip(dec.decoder.layers, cache, strict=True):
            past.append(h)
            keys = layer.norm1(torch.cat(past, dim=1))
            h = h + layer.self_attn(layer.norm1(h), keys, keys, need_weights=False)[0]
            q = layer.norm2(h)
            h = h + layer.multihead_attn(q, mem, mem, key_padding_mask=pad, need_weights=False)[0]
            h = h + layer.linear2(torch.relu(layer.linear1(layer.norm3(h))))
        step = dec.out(dec.norm(h))[:, 0]
        torch.testing.assert_close(forced[:, :, t], step, rtol=1e-5, atol=1e-5)
    # the padded encoder slots do not matter
    other = memory.clone()
    other[0, 3:] = 100.0
    torch.testing.assert_close(dec.teacher_forced(other, pad, 1, target), forced)
    # the task's start token conditions the decoder
    assert not torch.allclose(dec.teacher_forced(memory, pad, 0, target), forced)


def test_beam_of_one_is_greedy_and_a_wider_beam_scores_at_least_as_high():
    dec = _decoder(seed=3)
    memory, pad = _memory(b=6, seed=4)
    greedy, steps = dec.greedy(memory, pad, 0, L)
    assert steps.shape == (6, V, L)
    assert torch.equal(dec.beam(memory, pad, 0, L, 1), greedy)
    wide = dec.beam(memory, pad, 0, L, 4)
    lp_greedy = dec.sequence_log_prob(memory, pad, 0, greedy)
    lp_beam = dec.sequence_log_prob(memory, pad, 0, wide)
    assert (lp_beam >= lp_greedy - 1e-5).all()
    # greedy's log-probability is the sum of its own steps' log-probabilities, up to the end token
    logp = torch.log_softmax(steps, dim=1)
    filled = torch.where(greedy >= 0, greedy, 0)
    keep = (greedy < 0).long().cumsum(1) <= 1
    torch.testing.assert_close((logp.gather(1, filled[:, None]).squeeze(1) * keep).sum(1), lp_greedy)


def test_the_loss_masks_the_padding_after_the_end_token():
    t = Task("g", "generation", num_classes=4, out_shape=(4,))
    g = torch.Generator().manual_seed(0)
    pred = torch.randn(2, 5, 4, generator=g)  # (N, V + 1, L): the last channel is the decoded IDs
    slots = torch.tensor([[3, 2, 0, 0], [-1, -1, -1, -1]])  # "3 2" then the end token; a missing target
    spec = {"decoder": [{"task": "g", "column": "g", "vocab": 4, "max_length": 4, "pad_id": 0}]}
    target, mask = generation_targets(torch.cat([torch.zeros(2, 3), slots.float()], 1), spec, "g")
    assert mask.tolist() == [[True, True, True, False], [False] * 4]
    assert target.tolist() == [[3, 2, 0, 0], [0, 0, 0, 0]]
    logp = torch.log_softmax(pred[0, :4], dim=0)
    hand = -(logp[3, 0] + logp[2, 1] + logp[0, 2]) / 3  # the end token counts once, the padding never
    torch.testing.assert_close(t.compute_loss(pred, target, mask), hand)
    changed = pred.clone()
    changed[0, :4, 3] += 50.0  # the padding position
    changed[1] += 50.0  # the missing target
    changed[:, 4] = 7.0  # the decoded-ID channel is not a logit
    torch.testing.assert_close(t.compute_loss(changed, target, mask), hand)


def _wordpiece(texts, size=80):
    return fit_tokenizer(texts, TextOptions(kind="wordpiece", vocab_size=size, min_frequency=1))


def test_detokenize_is_the_tokenizers_decode_and_bleu_is_sacrebleus():
    texts = ["great rally today", "fake news media", "thank you america", "big win today", "bad media news"]
    for tok in (_wordpiece(texts), fit_tokenizer(texts, TextOptions(kind="bpe", vocab_size=300, min_frequency=1))):
        vocab = tok.get_vocab()
        classes = tuple(sorted(vocab, key=vocab.get))
        for s in texts:
            ids = tok.encode(s).ids
            assert detokenize(ids, classes) == tok.decode(ids) == s
    tok = _wordpiece(texts)
    vocab = tok.get_vocab()
    classes = tuple(sorted(vocab, key=vocab.get))
    refs = ["great rally today with you", "fake news media is bad", "thank you america"]
    hyps = ["great rally today with them", "fake news is bad", ""]
    n = len(refs)
    target = torch.zeros(n, 12, dtype=torch.long)
    mask = torch.zeros(n, 12, dtype=torch.bool)
    out = torch.zeros(n, len(classes) + 1, 12)
    out[:, -1] = -1
    for i, (r, h) in enumerate(zip(refs, hyps, strict=True)):
        rid = tok.encode(r, add_special_tokens=False).ids
        target[i, : len(rid)] = torch.tensor(rid)
        mask[i, : len(rid) + 1] = True  # the tokens and the end token
        hid = tok.encode(h, add_special_tokens=False).ids
        out[i, -1, : len(hid)] = torch.tensor(hid, dtype=torch.float)
        out[i, : len(classes), :].scatter_(0, target[i][None], 1.0)  # teacher-forced arg-max = the target
    t = Task("g", "generation", classes=classes, out_shape=(12,))
    res = t.evaluate(out, target, mask)
    want = sacrebleu.corpus_bleu([tok.decode(tok.encode(h).ids) for h in hyps], [refs]).score
    assert res["bleu"] == pytest.approx(want) and 0 < want < 100
    assert res["token_accuracy"] == 1.0
    assert corpus_bleu(refs, refs) == pytest.approx(100.0)
    assert np.isnan(corpus_bleu(["a"], [""]))  # no reference text: no score


def test_a_missing_sacrebleu_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sacrebleu", None)
    with pytest.raises(ImportError, match=r"sacrebleu.*pip install 'mtlkit\[text\]'"):
        require_sacrebleu()
    with pytest.raises(ImportError, match=r"mtlkit\[text\]"):
        corpus_bleu(["a b"], ["a b"])


def _copy_spec(length: int = L) -> dict:
    return {"dense": 0, "cardinalities": [], "dims": [], "columns": [],
            "text": [{"column": "src", "vocab": V, "max_length": length, "pad_id": 0}],
            "decoder": [{"task": "copy", "column": "tgt", "vocab": V, "max_length": length, "pad_id": 0}]}


def _copy_batch(n: int, g: torch.Generator) -> torch.Tensor:
    """Rows ``[CLS s_1..s_k pad.. | s_1..s_k end pad..]`` with k in 1..4."""
    x = torch.zeros(n, 2 * L)
    for i in range(n):
        k = int(torch.randint(1, 5, (1,), generator=g))
        s = torch.randint(3, V, (k,), generator=g).float()
        x[i, 0], x[i, 1: 1 + k], x[i, L: L + k] = 2, s, s
    return x


def _copy_model(seed: int = 0) -> tuple[HardSharing, Task]:
    torch.manual_seed(seed)
    task = Task("copy", "generation", num_classes=V, out_shape=(L,))
    trunk = build_trunk({"name": "transformer", "hidden": 32, "layers": 1, "heads": 2, "dropout": 0.0,
                         "input": _copy_spec(), "decoder": {"layers": 1, "heads": 2, "dropout": 0.0}}, (2 * L,))
    return HardSharing(trunk, [task], input_shape=(2 * L,)), task


def test_greedy_decoding_of_a_model_trained_to_copy_copies_held_out_sequences():
    model, task = _copy_model()
    spec = _copy_spec()
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    g = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(150):
        x = _copy_batch(32, g)
        y, m = generation_targets(x, spec, "copy")
        loss = task.compute_loss(model(x)["copy"], y, m)
        opt.zero_grad()
        loss.backward()
        opt.step()
    held = _copy_batch(50, torch.Generator().manual_seed(99))
    blind = held.clone()
    blind[:, L:] = -1  # prediction: no target in the input
    with torch.no_grad():
        out = model.eval()(blind)["copy"]
    decoded = out[:, -1].long()
    want = torch.where(held[:, L:] > 0, held[:, L:], -1).long()
    assert torch.equal(decoded, want), (decoded[:5], want[:5])


def test_the_decoder_is_shared_and_other_heads_read_the_text_part_only():
    torch.manual_seed(0)
    spec = {**_copy_spec(), "decoder": [{"task": "a", "column": "a", "vocab": V, "max_length": 4, "pad_id": 0},
                                         {"task": "b", "column": "b", "vocab": V, "max_length": 3, "pad_id": 0}]}
    tasks = [Task("a", "generation", num_classes=V, out_shape=(4,)),
             Task("b", "generation", num_classes=V, out_shape=(3,)), Task("c", "binary")]
    trunk = build_trunk({"name": "transformer", "hidden": 16, "layers": 1, "heads": 2, "dropout": 0.0, "input": spec,
                         "decoder": {"dropout": 0.0}}, (L + 7,))
    model = HardSharing(trunk, tasks, input_shape=(L + 7,))
    dec = {id(p) for p in trunk.decoder.parameters()}
    assert dec <= {id(p) for p in model.shared_parameters()}
    assert not list(model.task_parameters("a")) and not list(model.task_parameters("b"))
    assert not dec & {id(p) for p in model.task_parameters("c")}
    x = torch.cat([_copy_batch(3, torch.Generator().manual_seed(1))[:, :L], torch.zeros(3, 7)], dim=1)
    x[:, L:] = torch.tensor([3.0, 4, 0, 0, 5, 0, 0])
    out = model.train()(x)
    assert out["a"].shape == (3, V + 1, 4) and out["b"].shape == (3, V + 1, 3) and out["c"].shape == (3,)
    changed = x.clone()
    changed[:, L:] = torch.tensor([6.0, 0, 0, 0, 7, 8, 0])  # other targets: the classification head is blind to them
    torch.testing.assert_close(model(changed)["c"], out["c"])
    assert not torch.allclose(model(changed)["a"], out["a"])


def test_decoder_settings_are_checked():
    with pytest.raises(ValueError, match=r"'method' of model\.trunk\.decoder\.decode"):
        build_trunk({"name": "transformer", "hidden": 16, "heads": 2, "input": _copy_spec(),
                     "decoder": {"decode": {"method": "sample"}}}, (2 * L,))
    with pytest.raises(ValueError, match=r"Unknown setting\(s\) \['width'\] of model.trunk.decoder"):
        build_trunk({"name": "transformer", "hidden": 16, "heads": 2, "input": _copy_spec(),
                     "decoder": {"width": 3}}, (2 * L,))
    with pytest.raises(ValueError, match="decoder shared by the generation tasks"):
        HardSharing(nn.Linear(4, 4), [Task("g", "generation", num_classes=V, out_shape=(3,))], trunk_out=4)


def test_yaml_run_reloads_and_predicts_the_same_texts(tmp_path):
    df = toy_frame(60, seed=2)
    df["first"] = df["text"].map(lambda s: " ".join(s.split()[:2]))
    df.loc[df.index[:5], "first"] = None  # missing targets are masked
    df.to_csv(tmp_path / "t.csv", index=False)
    cfg = {"name": "g", "seed": 0,
           "data": {"path": "t.csv", "features": {"text": "text"},
                    "text": {"tokenizer": {"kind": "wordpiece", "vocab_size": 60, "min_frequency": 1},
                             "max_length": 10}},
           "tasks": [{"name": "first", "kind": "generation", "columns": ["first"], "out_shape": [5]},
                     {"name": "pos", "kind": "binary"}],
           "model": {"trunk": {"name": "transformer", "hidden": 16, "layers": 1, "heads": 2, "dropout": 0.0,
                               "decoder": {"decode": {"method": "beam", "beam_size": 2}}}},
           "training": {"epochs": 1, "batch_size": 32}, "baselines": False}
    run = train_yaml(tmp_path, cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        task = next(t for t in run.tasks if t.name == "first")
        assert task.kind == "generation" and task.out_shape == (5,) and task.classes[0] == "[PAD]"
        feats = df.drop(columns=["first", "pos"]).iloc[:12]
        a, b = predict_frame(run, feats), predict_frame(load_run(tmp_path / "run"), feats)
        pre = TablePreprocessor.from_dict(run.meta["preprocessing"])
        x = torch.as_tensor(pre.transform(feats))
    assert a["first"].tolist() == b["first"].tolist() and all(isinstance(s, str) for s in a["first"])
    assert (x[:, -5:] == -1).all()  # no target column at prediction time: every decoder slot is -1
    with torch.no_grad():
        ids = run.model.eval()(x)["first"][:, -1]
    assert a["first"].tolist() == [detokenize([int(i) for i in r if i >= 0], task.classes) for r in ids]
    metrics = (tmp_path / "run" / "metrics.jsonl").read_text()
    assert "bleu" in metrics and "token_accuracy" in metrics
