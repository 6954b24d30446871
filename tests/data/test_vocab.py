"""Vocab: WordPiece and ERNIE formats, 1:1 char->id alignment, normalisation, whitespace, errors."""
import numpy as np
import pytest

from albert_ner.data.corpus import read_corpus
from albert_ner.data.vocab import Vocab, normalize_char

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]


@pytest.fixture(scope="module")
def vocab(vocab_path):
    return Vocab.from_file(vocab_path)


def _write(tmp_path, lines, name="vocab.txt"):
    path = tmp_path / name
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def test_wordpiece_vocab(vocab, vocab_path):
    assert len(vocab) == 21128 == len(vocab.tokens)
    assert (vocab.pad_id, vocab.unk_id, vocab.cls_id, vocab.sep_id) == (0, 100, 101, 102)
    assert vocab.token_to_id("[MASK]") == 103 and vocab.token_to_id("no such token") is None
    assert vocab.tokens[101] == "[CLS]"
    assert vocab.space_id == vocab.token_to_id("[unused1]") == 1
    assert vocab.source == str(vocab_path)


def test_msra_chars_map_one_to_one_with_few_unknowns(vocab, msra_dir):
    sentences, st = read_corpus(msra_dir / "test.txt")
    encoded = [vocab.encode(s.chars) for s in sentences]
    assert all(ids.dtype == np.int32 and ids.shape == (len(s.chars),) for ids, s in zip(encoded, sentences))
    flat = np.concatenate(encoded)
    assert flat.size == st.chars == 172601
    assert flat.min() >= 0 and flat.max() < len(vocab)
    assert not np.isin(flat, [vocab.pad_id, vocab.cls_id, vocab.sep_id]).any()
    unknown = vocab.unknown_chars(c for s in sentences for c in s.chars)
    n_unk = sum(unknown.values())
    assert n_unk == int((flat == vocab.unk_id).sum())
    # measured: 30 / 172,601 (rare characters); without the punctuation fallback curly quotes
    # and dashes made it 1,474 (0.85%)
    assert n_unk / st.chars < 0.0005
    assert "中" not in unknown and "“" not in unknown and "—" not in unknown


def test_typographic_punctuation_folds_to_plain_tokens(vocab):
    assert vocab.char_to_id("“") == vocab.char_to_id("”") == vocab.token_to_id('"')
    assert vocab.char_to_id("‘") == vocab.token_to_id("'")
    assert vocab.char_to_id("—") == vocab.token_to_id("-")


def test_encode_matches_char_to_id(vocab):
    text = "我在北京ＡBc１２３ 　\t。"
    ids = vocab.encode(text)
    assert ids.tolist() == [vocab.char_to_id(c) for c in text]
    assert vocab.encode([]).shape == (0,) and vocab.encode([]).dtype == np.int32
    assert vocab.encode(("中",)).tolist() == [vocab.token_to_id("中")]


def test_full_width_and_case_normalisation(vocab):
    a = vocab.token_to_id("a")
    assert a is not None and a != vocab.unk_id
    assert vocab.char_to_id("Ａ") == vocab.char_to_id("A") == vocab.char_to_id("a") == vocab.char_to_id("ａ") == a
    assert vocab.char_to_id("１") == vocab.token_to_id("1")
    assert vocab.token_to_id("é") is None  # accents are stripped only when the accented form is missing
    assert vocab.char_to_id("é") == vocab.char_to_id("É") == vocab.token_to_id("e")
    assert vocab.char_to_id("ü") == vocab.token_to_id("u")


def test_whitespace_and_control_chars(vocab):
    for ch in (" ", "\u3000", "\t", "\u00a0", "\u200b", "\x07", "\ufeff"):
        assert vocab.char_to_id(ch) == vocab.space_id == 1, repr(ch)


def test_unknown_char(vocab):
    assert vocab.char_to_id("\U0001f9ff") == vocab.unk_id  # not in the vocab
    with pytest.raises(ValueError):
        vocab.char_to_id("ab")


@pytest.mark.parametrize("ch, expected", [
    ("Ａ", "a"), ("ｚ", "z"), ("！", "!"), ("～", "~"), ("\u3000", " "), ("A", "a"), ("中", "中"),
    ("İ", "İ"), ("É", "é"), ("\uff5f", "\uff5f"), ("", ""),
])
def test_normalize_char(ch, expected):
    assert normalize_char(ch) == expected


def test_ernie_vocab(shared_dir):
    vocab = Vocab.from_file(shared_dir / "pretrained" / "ernie-1.0" / "vocab.txt")
    assert len(vocab) == 17964
    assert (vocab.pad_id, vocab.cls_id, vocab.sep_id, vocab.unk_id) == (0, 1, 2, 17963)
    assert vocab.token_to_id("[MASK]") == 3
    assert vocab.space_id == vocab.unk_id  # ERNIE has no [unused1]/[SPACE]/[BLANK]
    assert vocab.char_to_id("“") == vocab.token_to_id("“") != vocab.unk_id


def test_tab_vocab_with_gaps_and_space_token(tmp_path):
    path = _write(tmp_path, ["[PAD]\t0", "[UNK]\t1", "", "[CLS]\t5", "[SEP]\t6", "[SPACE]\t3", "中\t2"])
    vocab = Vocab.from_file(path)
    assert len(vocab) == 7 and vocab.tokens[4] == ""
    assert vocab.encode("中 x").tolist() == [2, 3, 1]


def test_plain_vocab_with_bom_and_crlf(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_bytes("\ufeff[PAD]\r\n[UNK]\r\n[CLS]\r\n[SEP]\r\n[BLANK]\r\n中\r\n".encode("utf-8"))
    vocab = Vocab.from_file(path)
    assert (len(vocab), vocab.space_id, vocab.char_to_id("中")) == (6, 4, 5)


@pytest.mark.parametrize("lines, line, what", [
    (SPECIALS + ["中", "国", "中"], 7, "duplicate token '中'"),
    (SPECIALS + ["中", "", "国"], 6, "empty line"),
    (SPECIALS + ["中\t4"], 5, "tab"),
    (["[PAD]\t0", "[UNK]\t1", "[CLS]\t2", "[SEP]\tthree"], 4, "expected 'token<TAB>id'"),
    (["[PAD]\t0", "[UNK]\t1", "[CLS]\t2", "[SEP]"], 4, "expected 'token<TAB>id'"),
    (["[PAD]\t0", "[UNK]\t1", "[CLS]\t2", "[SEP]\t-3"], 4, "expected 'token<TAB>id'"),
    (["[PAD]\t0", "[UNK]\t1", "[CLS]\t2", "[SEP]\t1"], 4, "id 1 already used on line 2"),
    (["[PAD]\t0", "[UNK]\t1", "[CLS]\t2", "[UNK]\t3"], 4, "duplicate token"),
])
def test_malformed_vocab_names_file_and_line(tmp_path, lines, line, what):
    path = _write(tmp_path, lines)
    with pytest.raises(ValueError, match=what) as info:
        Vocab.from_file(path)
    assert str(info.value).startswith(f"{path}:{line}: ")


def test_missing_special_tokens(tmp_path):
    path = _write(tmp_path, ["[PAD]", "[UNK]", "中"])
    with pytest.raises(ValueError, match=r"\[CLS\], \[SEP\]") as info:
        Vocab.from_file(path)
    assert str(path) in str(info.value)
    with pytest.raises(ValueError, match="lacks"):
        Vocab.from_file(_write(tmp_path, [], "empty.txt"))


def test_undecodable_vocab(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_bytes(b"[PAD]\n[UNK]\n\xff\n")
    with pytest.raises(ValueError, match="not UTF-8") as info:
        Vocab.from_file(path)
    assert str(info.value).startswith(f"{path}:3: ")


def test_sentencepiece_model_maps_each_char_to_its_piece(tmp_path):
    """Google ALBERT ships an spm model instead of vocab.txt; specials are <pad>/<unk>/[CLS]/[SEP]."""
    import sentencepiece as spm

    text = "北京欢迎你 上海是中国的城市 张三在北京大学工作 the quick brown fox\n" * 50
    (tmp_path / "corpus.txt").write_text(text, encoding="utf-8")
    spm.SentencePieceTrainer.train(input=str(tmp_path / "corpus.txt"), model_prefix=str(tmp_path / "sp"),
                                   vocab_size=60, model_type="unigram", character_coverage=1.0,
                                   hard_vocab_limit=False, pad_id=0, unk_id=1, bos_id=-1, eos_id=-1,
                                   user_defined_symbols=["[CLS]", "[SEP]", "[MASK]"])
    sp = spm.SentencePieceProcessor(model_file=str(tmp_path / "sp.model"))
    vocab = Vocab.from_file(tmp_path / "sp.model")
    assert (vocab.pad_id, vocab.unk_id) == (sp.piece_to_id("<pad>"), sp.piece_to_id("<unk>")) == (0, 1)
    assert (vocab.cls_id, vocab.sep_id) == (sp.piece_to_id("[CLS]"), sp.piece_to_id("[SEP]"))
    assert vocab.tokens[0] == "<pad>" and len(vocab) == sp.get_piece_size()
    ids = vocab.encode(list("北京 张q😀"))
    for ch, idx in zip("北京", ids[:2]):
        piece = ch if sp.piece_to_id(ch) != sp.unk_id() else "\u2581" + ch
        assert idx == sp.piece_to_id(piece) != vocab.unk_id
    assert ids[2] == sp.piece_to_id("\u2581")  # whitespace -> the word-start piece
    assert ids[-1] == vocab.unk_id  # an unseen character
    # a model directory keeps the spm model as vocab.model and reads it back
    from albert_ner.data.features import Featurizer

    (tmp_path / "model").mkdir()
    Featurizer(vocab).save(tmp_path / "model", tmp_path / "sp.model")
    assert (tmp_path / "model/vocab.model").read_bytes() == (tmp_path / "sp.model").read_bytes()
    assert Featurizer.load(tmp_path / "model", lexicon=False, bigrams=False).vocab.tokens == vocab.tokens
    with pytest.raises(ValueError, match="not a SentencePiece model"):
        (tmp_path / "bad.model").write_bytes(b"junk")
        Vocab.from_file(tmp_path / "bad.model")


LOOKUP_TOKENS = SPECIALS + ["[unused1]", "，", ",", "ａ", "a", "A", "１", "e", "b", '"', "中"]


@pytest.mark.parametrize("ch, fold, exact_first", [
    ("，", ",", "，"),   # full-width comma: folded to "," vs kept, as a pretrained tokenizer keeps it
    ("１", "１", "１"),   # no "1": fold falls back to the character as written
    ("A", "a", "A"),     # uppercase: lower-cased first vs as written
    ("Ａ", "a", "ａ"),    # no "Ａ": exact_first lower-cases to "ａ" before folding to half-width
    ("É", "e", "e"),     # accents stripped when no accented form exists
    ("Ｂ", "b", "b"),    # no "Ｂ"/"ｂ": exact_first folds to half-width, then lower-cases
    ("“", '"', '"'),     # punctuation fallback
    ("中", "中", "中"),
    ("\u3000", "[unused1]", "[unused1]"),  # whitespace handling as before
    ("\x07", "[unused1]", "[unused1]"),
    ("\U0001f9ff", "[UNK]", "[UNK]"),
])
def test_lookup_orders(tmp_path, ch, fold, exact_first):
    path = _write(tmp_path, LOOKUP_TOKENS)
    for mode, expected in (("fold", fold), ("exact_first", exact_first)):
        vocab = Vocab.from_file(path, char_lookup=mode)
        assert vocab.char_lookup == mode
        assert vocab.tokens[vocab.char_to_id(ch)] == expected, (mode, ch)
        assert vocab.encode([ch, ch]).tolist() == [vocab.token_to_id(expected)] * 2  # cached the same
    assert Vocab.from_file(path).char_lookup == "fold"  # the default: what every saved model used


def test_exact_first_on_a_sentencepiece_style_vocab():
    vocab = Vocab({"<pad>": 0, "<unk>": 1, "[CLS]": 2, "[SEP]": 3, "\u2581，": 4, "\u2581,": 5, "\u2581": 6},
                  char_lookup="exact_first")
    assert (vocab.char_to_id("，"), vocab.char_to_id(" ")) == (4, 6)
    assert Vocab(dict(zip(vocab.tokens, range(len(vocab))))).char_to_id("，") == 5  # fold


def test_unknown_char_lookup_is_refused(tmp_path):
    path = _write(tmp_path, SPECIALS)
    with pytest.raises(ValueError, match=r"char_lookup must be one of fold, exact_first, got 'exact'") as info:
        Vocab.from_file(path, char_lookup="exact")
    assert str(info.value).startswith(f"{path}: ")
