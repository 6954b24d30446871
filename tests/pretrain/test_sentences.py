"""Documents -> chunks: sentence ends, whitespace, jieba word starts (with a user dictionary), packing, cuts."""
import copy
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from albert_ner.data.vocab import Vocab
from albert_ner.pretrain.sentences import Segmenter, clean_blanks, cut_points, split_sentences

SPECIALS = ["[PAD]", "[unused1]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
CHARS = ("我们在北京大学工作今天天气很好他说去吧中华人民共和国中央政府召开了一次非常重要的会议蓝鲸智算发布新模型"
         "上海深圳广州的人口很多这是第句话文件里有行张三李四王五赵六来到东南西北方向看见山水花鸟鱼虫"
         "，。！？!?；;：“”\"'（）()、abcdefghijklmnopqrstuvwxyz0123456789.-")


def write_vocab(folder: Path, extra: str = "") -> str:
    """A small WordPiece vocab.txt: the specials, then the characters of these tests' texts."""
    path = folder / "vocab.txt"
    path.write_text("\n".join(SPECIALS + sorted(set(CHARS + extra))) + "\n", encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def vocab(tmp_path_factory) -> Vocab:
    return Vocab.from_file(write_vocab(tmp_path_factory.mktemp("vocab")))


@pytest.fixture(scope="module")
def segmenter(vocab) -> Segmenter:
    return Segmenter(vocab, 16)


def decode(vocab: Vocab, ids) -> str:
    return "".join(" " if i == vocab.space_id else vocab.tokens[i] for i in ids)


def test_sentences_end_after_their_marks_and_closing_quotes():
    text = "他说：“今天天气很好！”我们去吧。真的吗？！是的；好 a;b\n第二行没有句号"
    assert split_sentences(text) == ["他说：“今天天气很好！”", "我们去吧。", "真的吗？！", "是的；", "好 a;",
                                     "b", "第二行没有句号"]
    assert split_sentences("（好。）下一句") == ["（好。）", "下一句"]
    assert split_sentences("") == []


def test_blanks_are_dropped_and_counted_except_one_space_between_ascii_words():
    assert clean_blanks("  iPhone   14 Pro 很 贵\u200b了\t") == ("iPhone 14 Pro很贵了", 8)
    assert clean_blanks("北京 大学") == ("北京大学", 1)
    assert clean_blanks("\u3000\xa0") == ("", 2)


def test_cut_points_prefer_the_last_word_start_in_reach():
    marks = np.array([1, 0, 0, 1, 0, 1, 0, 0, 0, 1], dtype=np.int8)
    assert cut_points(marks, 6) == ([5], 0)  # the word starting at 5 is the last in reach of 6 tokens
    assert cut_points(marks, 10) == ([], 0)
    assert cut_points(np.array([1] + [0] * 9, dtype=np.int8), 4) == ([4, 8], 2)  # one long word: cut inside it


def test_chunks_pack_whole_sentences_and_mark_sentence_and_word_starts(segmenter, vocab):
    counts, unk = Counter(), Counter()
    text = "他说今天天气很好。我们去北京大学吧！北京大学很好。"
    chunks = segmenter.chunks(text, counts, unk)
    # 9 + 9 tokens do not fit in 16: the second chunk starts at a sentence, and holds two of them.
    assert [decode(vocab, c.token_ids) for c in chunks] == ["他说今天天气很好。", "我们去北京大学吧!北京大学很好。"]
    assert chunks[1].sentence_starts.tolist() == [1] + [0] * 8 + [1] + [0] * 6
    words = segmenter.words("我们去北京大学吧！") + segmenter.words("北京大学很好。")
    expected = np.zeros(16, dtype=np.int8)
    np.put(expected, np.cumsum([0] + [len(w) for w in words[:-1]]), 1)
    assert chunks[1].word_starts.tolist() == expected.tolist()
    assert all(c.token_ids.dtype == np.int32 and c.word_starts.dtype == np.int8 for c in chunks)
    assert counts["sentences"] == 3 and counts["sentences_cut"] == 0 and counts["unk_tokens"] == 0


def test_a_sentence_longer_than_a_chunk_is_cut_at_a_word_start(segmenter, vocab):
    counts, unk = Counter(), Counter()
    text = "中华人民共和国中央人民政府今天召开了一次非常重要的会议。"  # 28 characters, no sentence end inside
    chunks = segmenter.chunks(text, counts, unk)
    assert "".join(decode(vocab, c.token_ids) for c in chunks) == text
    assert all(len(c.token_ids) <= 16 for c in chunks) and len(chunks) == 2
    starts = np.flatnonzero(np.concatenate([c.word_starts for c in chunks]))
    words = segmenter.words(text)
    word_starts = np.cumsum([0] + [len(w) for w in words[:-1]])
    assert len(chunks[0].token_ids) in word_starts  # the cut is at a word start
    assert starts.tolist() == word_starts.tolist()
    assert counts["sentences_cut"] == 1 and counts["cuts_inside_word"] == 0


def test_unknown_characters_are_counted_and_a_document_of_nothing_known_gives_no_chunk(segmenter):
    counts, unk = Counter(), Counter()
    chunks = segmenter.chunks("我们☃在北京☃。", counts, unk)
    assert len(chunks) == 1 and counts["unk_tokens"] == 2 and unk == Counter({"☃": 2})
    assert segmenter.chunks("☃☃ ☂", counts, unk) == [] and counts["unk_tokens"] == 2
    assert segmenter.chunks(" \t\u200b", counts, unk) == []


def test_a_user_dictionary_makes_a_made_up_entity_one_word(tmp_path, vocab):
    text = "蓝鲸智算发布了新模型。"
    plain = Segmenter(vocab, 64).chunks(text, Counter(), Counter())[0].word_starts
    user_dict = tmp_path / "user.txt"
    user_dict.write_text("蓝鲸智算 10 nt\n", encoding="utf-8")
    custom = Segmenter(vocab, 64, str(user_dict)).chunks(text, Counter(), Counter())[0].word_starts
    assert plain[:4].tolist() == [1, 0, 1, 0]  # jieba alone: 蓝鲸 / 智算
    assert custom[:4].tolist() == [1, 0, 0, 0]  # one word with the dictionary
    assert plain[4:].tolist() == custom[4:].tolist()


def test_a_bad_user_dictionary_is_an_error_naming_it(tmp_path, vocab):
    bad = tmp_path / "bad.txt"
    bad.write_bytes("蓝鲸".encode("gbk") + b" 3\n")
    with pytest.raises(ValueError, match="bad.txt: cannot be read as a jieba user dictionary"):
        Segmenter(vocab, 64, str(bad))


SENTENCE_PIECES = st.lists(st.sampled_from(["我们", "北京", "大学", "工作", "今天", "天气", "很好", "ab", "12", " ",
                                            "。", "！", "？", "”", "；", "\t", "☃"]), max_size=60)


@settings(max_examples=60, deadline=None)
@given(pieces=SENTENCE_PIECES, max_tokens=st.integers(1, 12))
def test_chunks_hold_every_known_character_in_order_within_the_limit(segmenter, vocab, pieces, max_tokens):
    text = "".join(pieces)
    limited = copy.copy(segmenter)  # shares the jieba tokenizer
    limited.max_tokens = max_tokens
    counts = Counter()
    chunks = limited.chunks(text, counts, Counter())
    sentences = [c for c in (clean_blanks(s)[0] for s in split_sentences(text)) if c]
    kept = "".join(sentences)
    assert counts["blank_chars_dropped"] == len(text) - len(kept)
    if not chunks:
        assert set(kept) <= {"☃"}
        return
    assert np.concatenate([c.token_ids for c in chunks]).tolist() == vocab.encode(kept).tolist()
    for chunk in chunks:
        assert 1 <= len(chunk.token_ids) <= max_tokens
        assert len(chunk.word_starts) == len(chunk.sentence_starts) == len(chunk.token_ids)
        assert chunk.sentence_starts[0] == 1 and chunk.word_starts[0] == 1
    if not counts["sentences_cut"]:  # then chunks are runs of whole sentences, each sentence start marked
        sentence_bounds = np.cumsum([0] + [len(s) for s in sentences[:-1]]).tolist()
        chunk_bounds = np.cumsum([0] + [len(c.token_ids) for c in chunks[:-1]]).tolist()
        assert set(chunk_bounds) <= set(sentence_bounds)
        marked = np.flatnonzero(np.concatenate([c.sentence_starts for c in chunks])).tolist()
        assert marked == sentence_bounds
