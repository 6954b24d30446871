"""A checkpoint whose vocabulary is only in a Hugging Face tokenizer.json (m3e-small's layout): found beside
the weights, read as the WordPiece vocab, and written as vocab.txt wherever the project stores one."""
import json

import numpy as np
import pytest

from albert_ner.data.features import Featurizer
from albert_ner.data.vocab import Vocab, read_tokenizer_json, vocab_file_bytes
from albert_ner.weights.convert import convert, pretrained_encoder_config
from albert_ner.weights.sources import locate_source
from tests.pretrained.test_wheel import CONFIG, TOKENS, tokenizer_json


def bert_state(torch, config):
    """A random state dict with bare Hugging Face BERT names (embeddings.*, encoder.layer.N.*, a pooler)."""
    g = torch.Generator().manual_seed(0)
    h, f = config["hidden_size"], config["intermediate_size"]

    def rand(*shape):
        return torch.randn(*shape, generator=g)

    state = {"embeddings.word_embeddings.weight": rand(config["vocab_size"], h),
             "embeddings.position_embeddings.weight": rand(config["max_position_embeddings"], h),
             "embeddings.token_type_embeddings.weight": rand(config["type_vocab_size"], h),
             "embeddings.LayerNorm.weight": rand(h), "embeddings.LayerNorm.bias": rand(h),
             "embeddings.position_ids": torch.arange(config["max_position_embeddings"]).unsqueeze(0)}
    for n in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{n}."
        for name, shape in (("attention.self.query", (h, h)), ("attention.self.key", (h, h)),
                            ("attention.self.value", (h, h)), ("attention.output.dense", (h, h)),
                            ("intermediate.dense", (f, h)), ("output.dense", (h, f))):
            state[f"{p}{name}.weight"], state[f"{p}{name}.bias"] = rand(*shape), rand(shape[0])
        for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
            state[f"{p}{ln}.weight"], state[f"{p}{ln}.bias"] = rand(h), rand(h)
    state["pooler.dense.weight"], state["pooler.dense.bias"] = rand(h, h), rand(h)
    return state


@pytest.fixture
def snapshot(tmp_path):
    """A Hugging Face snapshot without vocab.txt: config.json, tokenizer.json, tokenizer_config.json."""
    d = tmp_path / "snapshot"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(CONFIG))
    (d / "tokenizer.json").write_text(tokenizer_json(), encoding="utf-8")
    (d / "tokenizer_config.json").write_text('{"do_lower_case": false}')
    (d / "pytorch_model.bin").write_bytes(b"")
    return d


def test_tokenizer_json_is_the_vocabulary_only_when_no_vocab_txt_or_spm_model_is_there(snapshot):
    assert locate_source(snapshot).vocab_file == snapshot / "tokenizer.json"
    assert pretrained_encoder_config(snapshot)[1] == snapshot / "tokenizer.json"
    (snapshot / "spiece.model").write_bytes(b"")
    assert locate_source(snapshot).vocab_file is None and pretrained_encoder_config(snapshot)[1].name == "spiece.model"
    (snapshot / "vocab.txt").write_text("\n".join(TOKENS) + "\n")
    assert locate_source(snapshot).vocab_file == snapshot / "vocab.txt"


def test_tokenizer_json_reads_like_the_same_vocab_txt(snapshot, tmp_path):
    (tmp_path / "vocab.txt").write_text("\n".join(TOKENS) + "\n", encoding="utf-8")
    from_json, from_txt = Vocab.from_file(snapshot / "tokenizer.json"), Vocab.from_file(tmp_path / "vocab.txt")
    assert from_json.tokens == from_txt.tokens == tuple(TOKENS)
    assert (from_json.pad_id, from_json.unk_id, from_json.cls_id, from_json.sep_id) == (0, 2, 3, 4)
    chars = list("中国人，的 A?")
    np.testing.assert_array_equal(from_json.encode(chars), from_txt.encode(chars))
    assert vocab_file_bytes(snapshot / "tokenizer.json") == (tmp_path / "vocab.txt").read_bytes()
    assert vocab_file_bytes(tmp_path / "vocab.txt") == (tmp_path / "vocab.txt").read_bytes()  # others as they are


def test_featurizer_saves_a_tokenizer_json_vocabulary_as_vocab_txt(snapshot, tmp_path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    vocab = Vocab.from_file(snapshot / "tokenizer.json")
    Featurizer(vocab).save(model_dir, snapshot / "tokenizer.json")
    assert (model_dir / "vocab.txt").read_text(encoding="utf-8") == "\n".join(TOKENS) + "\n"
    assert Featurizer.load(model_dir, lexicon=False, bigrams=False).vocab.tokens == tuple(TOKENS)


def test_added_tokens_join_the_vocabulary(tmp_path):
    data = json.loads(tokenizer_json(TOKENS[:-1]))
    data["added_tokens"].append({"id": len(TOKENS) - 1, "content": TOKENS[-1], "special": False})
    (tmp_path / "tokenizer.json").write_text(json.dumps(data), encoding="utf-8")
    assert read_tokenizer_json(tmp_path / "tokenizer.json") == {t: i for i, t in enumerate(TOKENS)}


def _edited(tmp_path, edit):
    data = json.loads(tokenizer_json())
    edit(data)
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["model"].update(type="BPE"), r"the tokenizer's model is 'BPE'; only a WordPiece vocabulary"),
    (lambda d: d.pop("model"), r"not a Hugging Face tokenizer.json \(no 'model' object\)"),
    (lambda d: d["model"]["vocab"].update({"国": 7}), r"model.vocab: id 7 is given to both '的' and '国'"),
    (lambda d: d["model"]["vocab"].update({"中": "8"}), r"model.vocab: id '8' of '中' is not a non-negative integer"),
    (lambda d: d["added_tokens"].append({"id": 40, "content": "[CLS]"}),
     r"added_tokens\[5\]: '\[CLS\]' has id 40, but model.vocab gives it 3"),
    (lambda d: (d["model"]["vocab"].pop("[SEP]"), d.update(added_tokens=[])), r"lacks required special token"),
])
def test_bad_tokenizer_json_is_an_error_naming_the_file_and_entry(tmp_path, edit, message):
    path = _edited(tmp_path, edit)
    with pytest.raises(ValueError, match=message) as err:
        Vocab.from_file(path)
    assert str(path) in str(err.value)


def test_a_vocabulary_with_gaps_reads_but_cannot_become_vocab_txt(tmp_path):
    path = _edited(tmp_path, lambda d: d["model"]["vocab"].update({"##b": 20}))
    assert len(Vocab.from_file(path)) == 21  # ids 12..19 unused
    with pytest.raises(ValueError, match=r"tokenizer.json: no token has id 12 \(ids run to 20\)"):
        vocab_file_bytes(path)


def test_duplicate_tokens_in_the_json_are_an_error(tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_text(tokenizer_json().replace('"的": 7', '"的": 7, "的": 9'), encoding="utf-8")
    with pytest.raises(ValueError, match=r"key '的' appears twice"):
        Vocab.from_file(path)


def test_convert_writes_vocab_txt_and_loads_every_weight(snapshot, tmp_path):
    torch = pytest.importorskip("torch")
    torch.save(bert_state(torch, CONFIG), snapshot / "pytorch_model.bin")
    report = convert(snapshot, tmp_path / "converted")
    assert report.left_random == [] and report.not_used == []
    assert sorted(report.expected_leftovers) == ["embeddings.position_ids", "pooler.dense.bias", "pooler.dense.weight"]
    assert (tmp_path / "converted/vocab.txt").read_text(encoding="utf-8") == "\n".join(TOKENS) + "\n"
    assert pretrained_encoder_config(tmp_path / "converted")[1] == tmp_path / "converted/vocab.txt"
