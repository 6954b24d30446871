"""Character-bigram vocabulary: built from train, one id per character, saved and reloaded exactly."""
import numpy as np
import pytest

from albert_ner.data.bigrams import PAD, UNK, BigramVocab


def test_build_keeps_frequent_bigrams_most_frequent_first():
    v = BigramVocab.build(["北京北京人", "北京人", "人民"], min_count=2)
    # 北京 x3, 京人 x2, 人<end> x2; 京北, 人民, 民<end> once
    assert v.bigrams == ["北京", "京人", "人\u2403"] and len(v) == 5
    ids = v.encode("北京人")
    assert ids.tolist() == [2, 3, 4]
    assert v.encode("人民").tolist() == [UNK, UNK]
    assert PAD not in v.encode("北京北京").tolist()


def test_normalised_like_the_vocab_and_whitespace_is_safe():
    v = BigramVocab.build(["ＡＢ", "ab"], min_count=2)
    assert v.bigrams[0] == "ab"
    ids = v.encode("a\tb\nc")
    assert len(ids) == 5


def test_save_load_round_trip_and_bad_file(tmp_path):
    v = BigramVocab.build(["中国 人民", "中国 人民"], min_count=1)
    v.save(tmp_path / "b.txt")
    w = BigramVocab.load(tmp_path / "b.txt")
    assert w.bigrams == v.bigrams
    np.testing.assert_array_equal(w.encode("中国 人"), v.encode("中国 人"))
    (tmp_path / "bad.txt").write_text("中国\n中\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.txt:2: expected a two-character bigram"):
        BigramVocab.load(tmp_path / "bad.txt")
