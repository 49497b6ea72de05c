"""Generation tasks under soft sharing: one text encoder and one decoder copy per generation
task, the decoder copies tied by the soft-sharing penalty; a YAML run reloaded from its folder."""

from __future__ import annotations

import warnings

import pytest
import torch
from _text_helpers import toy_frame, train_yaml

pytest.importorskip("tokenizers")
pytest.importorskip("sacrebleu")

from mtlkit import Task
from mtlkit.architectures.cross_stitch import CrossStitch
from mtlkit.architectures.soft_sharing import SoftSharing
from mtlkit.architectures.text_decoder import Seq2SeqTrunk, SharedDecoder
from mtlkit.data.tabular import TablePreprocessor
from mtlkit.inference import load_run, predict_frame
from mtlkit.kinds.generation import detokenize

V, L = 9, 6  # [PAD]=0 (also the end token), [UNK]=1, [CLS]=2, symbols 3..8


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _parts() -> tuple[dict, list[Task]]:
    spec = {"dense": 0, "cardinalities": [], "dims": [], "columns": [],
            "text": [{"column": "src", "vocab": V, "max_length": L, "pad_id": 0}],
            "decoder": [{"task": "a", "column": "a", "vocab": V, "max_length": 4, "pad_id": 0},
                        {"task": "b", "column": "b", "vocab": V, "max_length": 3, "pad_id": 0}]}
    tasks = [Task("a", "generation", num_classes=V, out_shape=(4,)),
             Task("b", "generation", num_classes=V, out_shape=(3,)), Task("c", "binary")]
    trunk = {"name": "transformer", "hidden": 16, "layers": 1, "heads": 2, "dropout": 0.0, "input": spec,
             "decoder": {"dropout": 0.0}}
    return trunk, tasks


def _model(penalty: str = "l2") -> SoftSharing:
    torch.manual_seed(0)
    trunk, tasks = _parts()
    return SoftSharing(trunk, tasks, input_shape=(L + 7,), penalty=penalty, strength=0.5)


def _batch() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    x = torch.zeros(3, L + 7)
    x[:, 0] = 2  # [CLS]
    x[:, 1:4] = torch.randint(3, V, (3, 3), generator=g).float()
    x[:, L:] = torch.tensor([3.0, 4, 0, 0, 5, 0, 0])  # the decoder input slots of a (4) and b (3)
    return x


def test_each_generation_task_has_its_own_decoder_tied_by_the_penalty():
    model = _model()
    cols = {t: model.columns[t] for t in "abc"}
    assert all(isinstance(c, Seq2SeqTrunk) for c in cols.values())
    dec_a, dec_b = cols["a"].decoder, cols["b"].decoder
    assert isinstance(dec_a, SharedDecoder) and isinstance(dec_b, SharedDecoder) and dec_a is not dec_b
    assert cols["c"].decoder is None  # the classification column is encoder-only
    assert not {id(p) for p in dec_a.parameters()} & {id(p) for p in dec_b.parameters()}
    assert {id(p) for p in dec_a.parameters()} <= {id(p) for p in model.task_parameters("a")}
    assert not {id(p) for p in dec_a.parameters()} & {id(p) for p in model.task_parameters("b")}
    tied = dict(model._tied)
    dec_names = [f"decoder.{n}" for n, _ in dec_a.named_parameters()]
    assert dec_names and all(tied[n] == ["a", "b"] for n in dec_names)
    enc = [n for n in tied if n.startswith("encoder.")]
    assert enc and all(tied[n] == ["a", "b", "c"] for n in enc)
    # the penalty reaches the decoder copies (and only the generation columns' copies)
    for penalty in ("l2", "trace_norm"):
        m = _model(penalty)
        m.extra_losses()["soft_sharing"].backward()
        other = dict(m.columns["b"].decoder.named_parameters())
        for n, p in m.columns["a"].decoder.named_parameters():
            assert p.grad is not None and other[n].grad is not None, n
            if not torch.equal(p, other[n]):  # LayerNorm starts equal in both copies: no pull yet
                assert p.grad.abs().sum() > 0 and other[n].grad.abs().sum() > 0, n
    # equal decoder copies add nothing to the penalty; moving one copy does
    with torch.no_grad():
        dec_b.load_state_dict(dec_a.state_dict())
        base = float(model.distance())
        dec_b.out.bias += 1.0
    assert float(model.distance()) == pytest.approx(base + V * 0.5, rel=1e-4)  # 2 · (½)² per coordinate


def test_columns_compute_their_own_task_only():
    model = _model().eval()
    x = _batch()
    with torch.no_grad():
        out = model(x)
    assert out["a"].shape == (3, V + 1, 4) and out["b"].shape == (3, V + 1, 3) and out["c"].shape == (3,)
    assert model.columns["a"].head_layout["tasks"].keys() == {"a"}
    assert model.columns["c"].head_layout["tasks"] == {}
    changed = x.clone()
    changed[:, L:L + 4] = torch.tensor([6.0, 7, 8, 0])  # another target of a: b and c do not read it
    with torch.no_grad():
        out2 = model(changed)
    torch.testing.assert_close(out2["b"], out["b"])
    torch.testing.assert_close(out2["c"], out["c"])
    assert not torch.allclose(out2["a"][:, :-1], out["a"][:, :-1])  # teacher forcing reads a's slots
    decoded = out["a"][:, -1]
    assert ((decoded >= -1) & (decoded < V)).all() and torch.equal(decoded, decoded.round())


def test_cross_stitch_mixes_the_encoders_before_each_tasks_own_decoder():
    trunk, tasks = _parts()
    x = _batch()
    outs = {}
    for share in (0.0, 0.3):
        torch.manual_seed(0)
        model = CrossStitch(trunk, tasks, input_shape=(L + 7,), share=share).eval()
        cols = {t: model.columns[t][0] for t in "abc"}
        assert cols["a"].decoder is not cols["b"].decoder and cols["c"].decoder is None
        shared = {id(p) for p in model.shared_parameters()}
        assert {id(p) for p in cols["c"].encoder.parameters()} <= shared
        assert not {id(p) for p in cols["a"].decoder.parameters()} & shared
        assert {id(p) for p in cols["a"].decoder.parameters()} <= {id(p) for p in model.task_parameters("a")}
        with torch.no_grad():
            before = model(x)
            for p in cols["c"].encoder.parameters():  # only the classification column's encoder moves
                p.add_(0.5)
            outs[share] = (before, model(x))
        assert before["a"].shape == (3, V + 1, 4) and before["b"].shape == (3, V + 1, 3)
    before, after = outs[0.0]  # identity units: independent columns
    torch.testing.assert_close(after["a"], before["a"])
    before, after = outs[0.3]  # a's decoder reads c's encoder states through the unit
    assert not torch.allclose(after["a"][:, :-1], before["a"][:, :-1])


@pytest.mark.parametrize("arch", ["soft_sharing", "cross_stitch"])
def test_yaml_run_trains_decodes_and_reloads(tmp_path, arch):
    df = toy_frame(60, seed=2)
    df["first"] = df["text"].map(lambda s: " ".join(s.split()[:2]))
    df["last"] = df["text"].map(lambda s: s.split()[-1])
    df.loc[df.index[:5], "first"] = None  # missing targets are masked
    df.to_csv(tmp_path / "t.csv", index=False)
    cfg = {"name": "gs", "seed": 0,
           "data": {"path": "t.csv", "features": {"text": "text"},
                    "text": {"tokenizer": {"kind": "wordpiece", "vocab_size": 60, "min_frequency": 1},
                             "max_length": 10}},
           "tasks": [{"name": "first", "kind": "generation", "columns": ["first"], "out_shape": [4]},
                     {"name": "last", "kind": "generation", "columns": ["last"], "out_shape": [3]},
                     {"name": "pos", "kind": "binary"}],
           "model": {"architecture": {"name": arch, **({"strength": 0.01} if arch == "soft_sharing" else {})},
                     "trunk": {"name": "transformer", "hidden": 16, "layers": 1, "heads": 2, "dropout": 0.0,
                               "decoder": {"decode": {"method": "beam", "beam_size": 2}}}},
           "training": {"epochs": 1, "batch_size": 32}, "baselines": False}
    run = train_yaml(tmp_path, cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert isinstance(run.model, SoftSharing if arch == "soft_sharing" else CrossStitch)
        col = {t: run.model.columns[t] for t in ("first", "last")}
        if arch == "cross_stitch":
            col = {t: c[0] for t, c in col.items()}
        assert col["first"].decoder is not col["last"].decoder
        feats = df.drop(columns=["first", "last", "pos"]).iloc[:12]
        a, b = predict_frame(run, feats), predict_frame(load_run(tmp_path / "run"), feats)
        pre = TablePreprocessor.from_dict(run.meta["preprocessing"])
        x = torch.as_tensor(pre.transform(feats))
    for name in ("first", "last"):
        assert a[name].tolist() == b[name].tolist() and all(isinstance(s, str) for s in a[name])
    task = next(t for t in run.tasks if t.name == "last")
    with torch.no_grad():
        ids = run.model.eval()(x)["last"][:, -1]
    assert a["last"].tolist() == [detokenize([int(i) for i in r if i >= 0], task.classes) for r in ids]
    metrics = (tmp_path / "run" / "metrics.jsonl").read_text()
    assert "bleu" in metrics and (arch != "soft_sharing" or "soft_sharing" in metrics)
