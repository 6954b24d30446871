"""Corpus reading: real MSRA counts, separators/encodings/blank lines, file:line errors, tag repair."""
import pickle
import warnings

import pytest

from albert_ner.data.corpus import CorpusError, CorpusStats, Sentence, TagRepairWarning, read_corpus


def _write(tmp_path, text, name="c.txt"):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def _read(path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a good file must not warn
        return read_corpus(path, **kw)


def test_msra_test_counts(msra_dir):
    sentences, st = _read(msra_dir / "test.txt")
    assert (st.sentences, st.chars) == (3442, 172601) == (len(sentences), sum(len(s.chars) for s in sentences))
    assert st.entities == {"LOC": 2886, "ORG": 1331, "PER": 1973}
    assert (st.scheme, st.repaired, st.skipped_lines, st.longest) == ("BIO", 0, 0, 2427)
    assert st.summary() == ("test.txt: 3,442 sentences, 172,601 chars, entities LOC 2,886 ORG 1,331 PER 1,973 "
                            "(BIO), longest 2,427")
    first = sentences[0]
    assert (first.line, first.chars[:2], first.tags[:2], first.source) == (1, ("中", "共"), ("B-ORG", "I-ORG"),
                                                                         str(msra_dir / "test.txt"))
    assert first.text.startswith("中共中央")
    # character k of a sentence sits on line `line + k`; sentences are separated by one blank line
    assert sentences[1].line == first.line + len(first.chars) + 1
    lines = (msra_dir / "test.txt").read_text(encoding="utf-8").split("\n")
    last = sentences[-1]
    assert lines[last.line - 1 + len(last.chars) - 1] == f"{last.chars[-1]}\t{last.tags[-1]}"


def test_msra_train_counts(msra_dir):
    sentences, st = _read(msra_dir / "train.txt")
    assert (st.sentences, st.chars, st.longest, st.repaired) == (45000, 2171573, 746, 0)
    assert st.entities == {"LOC": 36860, "ORG": 20584, "PER": 17615}
    assert st.summary().startswith("train.txt: 45,000 sentences, 2,171,573 chars, entities LOC 36,860 ORG 20,584 "
                                   "PER 17,615 (BIO), longest 746")


def test_tab_and_space_separators_bom_crlf_blank_lines(tmp_path):
    text = ("\ufeff张\tB-PER\r\n三\tI-PER\r\n在 O\r\n北   B-LOC\r\n京\tI-LOC \r\n\r\n\r\n \r\n"
            "好\tO\n\n\n\n走 O")  # mixed line endings; the last sentence has no trailing newline
    path = _write(tmp_path, text)
    sentences, st = _read(path)
    assert [s.text for s in sentences] == ["张三在北京", "好", "走"]
    assert sentences[0].tags == ("B-PER", "I-PER", "O", "B-LOC", "I-LOC")
    assert [s.line for s in sentences] == [1, 9, 13]
    assert st.entities == {"LOC": 1, "PER": 1}
    assert (st.sentences, st.chars, st.longest) == (3, 7, 5)
    assert all(isinstance(s, Sentence) and s.source == str(path) for s in sentences)


def test_space_and_ideographic_space_chars(tmp_path):
    text = "a\tO\n \tO\nb\tO\n\u3000\tO\n\u3000 O\n  O\n\t\tO\nc B-ORG\n"
    sentences, _ = _read(_write(tmp_path, text))
    assert sentences[0].chars == ("a", " ", "b", "\u3000", "\u3000", " ", "\t", "c")
    assert sentences[0].tags[-1] == "B-ORG"


def test_docstart_lines_are_skipped(tmp_path):
    text = "-DOCSTART-\tO\n\n甲\tS-PER\n乙\tO\n-DOCSTART- -X- O O\n丙\tB-LOC\n丁\tE-LOC\n"
    sentences, st = _read(_write(tmp_path, text))
    assert [s.text for s in sentences] == ["甲乙", "丙丁"]
    assert (st.skipped_lines, st.scheme, st.entities) == (2, "BIOES", {"LOC": 1, "PER": 1})
    assert "2 lines skipped" in st.summary() and "(BIOES)" in st.summary()


@pytest.mark.parametrize("text, line, what", [
    ("甲\tO\n乙\n", 2, "missing tag"),
    ("甲\tO\n乙\t\n", 2, "missing tag"),
    ("甲\tO\n\n乙 \n", 3, "missing tag"),
    ("甲\tO\n\n\n乙丙\tO\n", 4, "not exactly one character"),
    ("甲\tO\n\tO\n", 2, "not exactly one character"),
    ("甲\tO\n乙\tB-PER\n丙\tX-PER\n", 3, "invalid tag 'X-PER'"),
    ("甲\tO\n乙 丙 O\n", 2, "not exactly one character"),
    ("甲\tO\n乙\tB-PER extra\n", 2, "invalid tag"),
])
def test_bad_lines_name_file_and_line(tmp_path, text, line, what):
    path = _write(tmp_path, text)
    with pytest.raises(CorpusError, match=what) as info:
        read_corpus(path)
    assert str(info.value).startswith(f"{path}:{line}: ")
    assert (info.value.path, info.value.line) == (str(path), line)
    assert isinstance(info.value, ValueError)


def test_undecodable_bytes(tmp_path):
    path = _write(tmp_path, "甲\tO\n\n乙\tO\n".encode("utf-8") + b"\xff\xfe\tO\n")
    with pytest.raises(CorpusError, match="cannot decode") as info:
        read_corpus(path)
    assert str(info.value).startswith(f"{path}:4: ")
    ok, _ = read_corpus(_write(tmp_path, "甲\tO\n".encode("gbk"), "gbk.txt"), encoding="gbk")
    assert ok[0].text == "甲"


@pytest.mark.parametrize("text", ["", "\n\n  \n", "\ufeff", "-DOCSTART-\tO\n\n"])
def test_empty_corpus(tmp_path, text):
    path = _write(tmp_path, text)
    with pytest.raises(CorpusError, match="no sentences") as info:
        read_corpus(path)
    assert str(info.value).startswith(f"{path}:1: ")


def test_orphan_i_is_repaired_with_a_warning(tmp_path):
    text = "甲\tO\n乙\tI-PER\n丙\tI-PER\n\n丁\tB-LOC\n戊\tI-ORG\n己\tB-ORG\n庚\tI-ORG\n"
    path = _write(tmp_path, text)
    with pytest.warns(TagRepairWarning) as record:
        sentences, st = read_corpus(path)
    message = str(record[0].message)
    assert f"{path}:2" in message and f"{path}:6" in message and f"{path}:3" not in message
    assert st.repaired == 2 and "2 tags repaired" in st.summary()
    assert sentences[0].tags == ("O", "B-PER", "I-PER")
    assert sentences[1].tags == ("B-LOC", "B-ORG", "B-ORG", "I-ORG")
    assert st.entities == {"LOC": 1, "ORG": 2, "PER": 1}


def test_warning_lists_only_the_first_few(tmp_path):
    text = "字\tI-PER\n\n" * 8
    with pytest.warns(TagRepairWarning, match="and 3 more"):
        _, st = read_corpus(_write(tmp_path, text))
    assert st.repaired == 8


def test_bioes_orphans(tmp_path):
    text = "甲\tE-PER\n乙\tB-LOC\n丙\tE-LOC\n丁\tE-LOC\n"
    with pytest.warns(TagRepairWarning):
        sentences, st = read_corpus(_write(tmp_path, text))
    assert sentences[0].tags == ("S-PER", "B-LOC", "E-LOC", "S-LOC")
    assert (st.repaired, st.scheme) == (2, "BIOES")


def test_strict_mode_raises_at_the_orphan(tmp_path):
    path = _write(tmp_path, "甲\tB-PER\n乙\tI-PER\n\n丙\tO\n丁\tB-LOC\n戊\tI-ORG\n")
    with pytest.raises(CorpusError, match="I-ORG after B-LOC") as info:
        read_corpus(path, strict=True)
    assert str(info.value).startswith(f"{path}:6: ")
    path = _write(tmp_path, "甲\tB-PER\n\n乙\tI-PER\n", "start.txt")
    with pytest.raises(CorpusError, match="start of a sentence") as info:
        read_corpus(path, strict=True)
    assert str(info.value).startswith(f"{path}:3: ")


def test_corpus_error_pickles():
    err = pickle.loads(pickle.dumps(CorpusError("a.txt", 3, "bad")))
    assert (str(err), err.line) == ("a.txt:3: bad", 3)


def test_stats_is_frozen(tmp_path):
    _, st = _read(_write(tmp_path, "甲\tO\n"))
    assert isinstance(st, CorpusStats)
    with pytest.raises(AttributeError):
        st.sentences = 2


# --- entity types of dev/test that train never has: they can only score 0, so each gets one warning ---------

def test_unseen_entity_types_are_counted_per_corpus():
    from albert_ner.data.corpus import entity_counts, unseen_entity_types, unseen_type_messages

    def sent(*tags):
        return Sentence(tuple("字" * len(tags)), tuple(tags), "x", 1)

    train = [sent("B-PER", "I-PER", "O"), sent("S-LOC")]
    dev = [sent("B-GPE", "O", "B-PER"), sent("B-GPE", "I-GPE")]
    test = [sent("S-ORG", "B-GPE"), Sentence(("字",), None, "raw", 1)]
    assert entity_counts(train) == {"LOC": 1, "PER": 1}
    unseen = unseen_entity_types(entity_counts(train), {"dev": dev, "test": test, "other": train})
    assert unseen == {"dev": {"GPE": 2}, "test": {"GPE": 1, "ORG": 1}}
    assert unseen_type_messages(unseen) == [
        "entity type GPE is not in train but occurs in dev (2 entities), test (1 entity): the model cannot "
        "predict it, so it scores 0 there",
        "entity type ORG is not in train but occurs in test (1 entity): the model cannot predict it, so it "
        "scores 0 there"]


def test_load_splits_warns_once_per_type_missing_from_train(tmp_path, caplog):
    from albert_ner.data.splits import load_splits

    train = _write(tmp_path, "张\tB-PER\n三\tI-PER\n\n北\tB-LOC\n京\tI-LOC\n", "train.txt")
    dev = _write(tmp_path, "张\tB-PER\n\n美\tB-GPE\n国\tI-GPE\n", "dev.txt")
    test = _write(tmp_path, "美\tB-GPE\n\n中\tB-ORG\n央\tI-ORG\n\n法\tB-GPE\n", "test.txt")
    with caplog.at_level("WARNING"):
        splits = load_splits(str(train), str(dev), str(test), 0.1, seed=1)
    assert splits.unseen_types == {"dev": {"GPE": 1}, "test": {"GPE": 2, "ORG": 1}}
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 2
    assert warned[0].startswith("entity type GPE is not in train but occurs in dev (1 entity), test (2 entities)")
    assert warned[1].startswith("entity type ORG is not in train but occurs in test (1 entity)")


def test_a_type_held_out_of_train_with_its_only_sentence_is_warned(tmp_path, caplog):
    """The held-out dev split can take every sentence of a rare type: train then never sees it."""
    from albert_ner.data.splits import load_splits

    train = _write(tmp_path, "张\tB-PER\n三\tI-PER\n\n北\tB-LOC\n京\tI-LOC\n", "train.txt")
    with caplog.at_level("WARNING"):
        splits = load_splits(str(train), None, None, 0.5, seed=3)
    held_out = {s.tags[0][2:] for s in splits.dev}
    assert splits.unseen_types == {"dev": {t: 1 for t in held_out}} and len(held_out) == 1
    assert [r.getMessage().split(" is not")[0] for r in caplog.records if r.levelname == "WARNING"] == [
        f"entity type {held_out.pop()}"]


def test_no_warning_when_train_has_every_type(msra_dir, caplog):
    from albert_ner.data.splits import load_splits

    with caplog.at_level("WARNING"):
        splits = load_splits(str(msra_dir / "test.txt"), None, str(msra_dir / "test.txt"), 0.05, seed=42)
    assert splits.unseen_types == {} and not [r for r in caplog.records if r.levelname == "WARNING"]
