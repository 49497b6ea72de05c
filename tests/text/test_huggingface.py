"""The huggingface trunk and tokenizer, with a tiny randomly initialised BERT saved locally."""

from __future__ import annotations

import pytest
import torch
from _text_helpers import toy_frame

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from mtlkit.architectures.backbones import build_trunk
from mtlkit.data.tabular import TableOptions, TablePreprocessor
from mtlkit.data.text import TextOptions, fit_tokenizer


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    path = tmp_path_factory.mktemp("tiny_bert")
    tok = fit_tokenizer(toy_frame(60)["text"].tolist(), TextOptions(kind="wordpiece", vocab_size=60, min_frequency=1))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]")
    fast.save_pretrained(str(path))
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=32, pad_token_id=0)
    BertModel(cfg).save_pretrained(str(path))
    return path


def test_model_tokenizer_and_trunk(tiny_bert):
    df = toy_frame(30)
    pre = TablePreprocessor({"text": "text"}, TableOptions(text={"tokenizer": {"huggingface": str(tiny_bert)},
                                                                 "max_length": 12})).fit(df)
    x = torch.as_tensor(pre.transform(df))
    trunk = build_trunk({"name": "huggingface", "model": str(tiny_bert), "input": pre.input_spec}, (12,)).eval()
    out = trunk(x)
    assert out.shape == (30, 16) and torch.isfinite(out).all()
    wide = torch.zeros(30, 20)
    wide[:, :12] = x
    spec = {**pre.input_spec, "text": [{**pre.input_spec["text"][0], "max_length": 20}]}
    same = build_trunk({"name": "huggingface", "model": str(tiny_bert), "input": spec}, (20,)).eval()
    torch.testing.assert_close(same(wide), out, atol=1e-5, rtol=1e-5)  # padding changes nothing


def test_errors(tiny_bert, tmp_path):
    spec = {"dense": 0, "cardinalities": [], "dims": [], "columns": [],
            "text": [{"column": "t", "vocab": 10_000, "max_length": 4, "pad_id": 0}]}
    with pytest.raises(ValueError, match="model's own tokenizer"):
        build_trunk({"name": "huggingface", "model": str(tiny_bert), "input": spec}, (4,))
    with pytest.raises(FileNotFoundError, match="local model folder"):
        build_trunk({"name": "huggingface", "model": str(tmp_path / "none"), "input": spec}, (4,))
