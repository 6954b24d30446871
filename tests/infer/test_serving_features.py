"""The handler's featurizer and windows (plain Python, from serving.json) give exactly what the training side's
Featurizer and windows give: the same ids for every character (both lookup orders, every plane, characters
the running Python has no Unicode data for), the same jieba word-boundary, POS and bigram ids, the same
window spans and merge."""
import copy
import json
import types
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from albert_ner.data.bigrams import BigramVocab
from albert_ner.data.corpus import Sentence, read_corpus
from albert_ner.data.features import Featurizer
from albert_ner.data.vocab import Vocab
from albert_ner.data.windows import merge_spans, window_spans as data_window_spans
from albert_ner.infer.serving import merge_windows, window_spans
from albert_ner.infer.serving_features import ServingFeatures, TablesError
from albert_ner.infer.serving_tables import build_tables
from albert_ner.infer.windowed import inference_buckets

CONFIG = types.SimpleNamespace(labels=("O", "B-LOC", "I-LOC", "B-PER", "I-PER"), max_seq_len=64)
ODD_TEXTS = ["", " ", "ＡＢＣ　ａｂｃ Ｉ’m “张三”—在北京…工作。", "Ärger İstanbul ﬁ ß Σσς", "\t\n\r\x00\u200b\u2028\ufeff",
             "\U00020000\U0002a6d6\ue000\U000f0000\U0010fffd\u0378\ud800x\udfff", "12.5%的GDP增长，ABC公司CEO张三说",
             "a" * 5 + "中" * 70]


def round_trip(tables):
    """serving.json as the handler reads it (ASCII JSON)."""
    return ServingFeatures(json.loads(json.dumps(tables, ensure_ascii=True)))


@pytest.fixture(scope="module")
def msra_texts(msra_dir):
    sentences, _ = read_corpus(msra_dir / "test.txt")
    return [s.text for s in sentences[:300]]


def featurizer(vocab_path, texts, char_lookup, lexicon, pos, bigrams):
    vocab = Vocab.from_file(vocab_path, char_lookup)
    return Featurizer(vocab, lexicon, BigramVocab.build((tuple(t) for t in texts), min_count=2) if bigrams else None,
                      pos)


def training_side(feat, text):
    enc = feat.encode([Sentence(tuple(text), None, "<t>", 1)])
    out = {"token_ids": enc.token_ids[0].tolist()}
    out.update({name: values[0].tolist() for name, values in enc.features.items()})
    return out


@pytest.mark.parametrize("char_lookup,lexicon,pos,bigrams", [("fold", True, False, True), ("exact_first", True, True, True),
                                                             ("fold", False, True, False), ("exact_first", False, False, False)])
def test_serving_features_equal_the_featurizer(vocab_path, msra_texts, char_lookup, lexicon, pos, bigrams):
    feat = featurizer(vocab_path, msra_texts, char_lookup, lexicon, pos, bigrams)
    served = round_trip(build_tables(CONFIG, feat))
    for text in msra_texts + ODD_TEXTS:
        assert served.encode(text) == training_side(feat, text), text
    assert served.window_overlap == (CONFIG.max_seq_len - 2) // 4
    assert served.buckets == inference_buckets(CONFIG.max_seq_len)


@pytest.mark.parametrize("char_lookup", ["fold", "exact_first"])
def test_every_character_gets_the_vocabulary_id(vocab_path, tmp_path, char_lookup):
    """Across all planes (a stride through every code point), and for vocabulary entries that are private-use
    or unassigned characters, which only their literal entry maps."""
    odd = ["\ue123", "\U0010fffd", "\u0378", "\U000e0080"]
    vocab_file = tmp_path / "vocab.txt"
    vocab_file.write_text(vocab_path.read_text(encoding="utf-8").rstrip("\n") + "\n"
                          + "\n".join(odd[:3] + ["\u2581" + odd[3]]) + "\n", encoding="utf-8")
    feat = Featurizer(Vocab.from_file(vocab_file, char_lookup))
    served = round_trip(build_tables(CONFIG, feat))
    sample = [chr(c) for c in range(0, 0x110000, 7)] + odd
    assert served.token_ids("".join(sample)) == [feat.vocab.char_to_id(c) for c in sample]
    assert all(served.char_ids[c] != feat.vocab.unk_id for c in odd)
    assert sum(unicodedata.category(c) == "Cn" for c in sample) > 100_000  # unassigned code points were sampled


@pytest.fixture(scope="module")
def every_feature(vocab_path, msra_texts):
    feat = featurizer(vocab_path, msra_texts, "exact_first", True, True, True)
    tables = build_tables(CONFIG, feat)
    return feat, round_trip(tables), tables


@settings(max_examples=150, deadline=None)
@given(text=st.text(st.characters(blacklist_categories=("Cs",)), max_size=60))
def test_random_text_gets_the_featurizer_ids(every_feature, text):
    feat, served, _ = every_feature
    assert served.encode(text) == training_side(feat, text)


@settings(max_examples=400, deadline=None)
@given(st.integers(0, 300), st.integers(1, 40), st.data())
def test_windows_and_merge_equal_the_training_side(length, window, data):
    overlap = data.draw(st.integers(0, window - 1))
    spans = window_spans(length, window, overlap)
    assert spans == data_window_spans(length, window, overlap)
    rows = [[k * 1000 + pos for pos in range(a, b)] for k, (a, b) in enumerate(spans)]  # says which span won
    assert merge_windows(length, spans, rows) == merge_spans(length, spans, rows).tolist()


@pytest.mark.parametrize("edit,message", [
    (lambda t: t.update(format=2), "format must be 1"),
    (lambda t: t.pop("labels"), "missing field 'labels'"),
    (lambda t: t["labels"].append("B_PER"), "labels[5]: invalid tag 'B_PER'"),
    (lambda t: t.update(max_seq_len="64"), "max_seq_len must be int, got str"),
    (lambda t: t.update(buckets=[32, 16, 64]), "buckets must be increasing"),
    (lambda t: t["char_ids"].update({"ab": 3}), "char_ids key 'ab' is not one character"),
    (lambda t: t["special_ids"].pop("cls"), "special_ids lacks cls"),
    (lambda t: t["features"].update(lexicon={}), "features ['lexicon'] are not model inputs"),
])
def test_damaged_tables_are_refused_naming_the_field(every_feature, edit, message):
    tables = copy.deepcopy(every_feature[2])
    edit(tables)
    with pytest.raises(TablesError, match="^serving.json: " + message.replace("[", r"\[").replace("(", r"\(")):
        ServingFeatures(tables)
