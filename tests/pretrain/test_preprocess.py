"""preprocess(): every input format, counts of what is skipped, held-out split, workers, cache, resume, mismatches."""
import bz2
import gzip
import json
import logging
import lzma
import os

import numpy as np
import pytest

from albert_ner.data.vocab import Vocab
from albert_ner.pretrain import preprocess as prep
from albert_ner.pretrain.preprocess import FingerprintMismatch, is_heldout, preprocess
from albert_ner.pretrain.shards import load_shard, read_examples, sha256_file
from tests.pretrain.test_sentences import write_vocab

PLAIN = ["我们在北京大学工作。今天天气很好！", "", "   ", "他说：“去上海吧！”", "☃☃☃",
         "中华人民共和国中央人民政府召开了一次非常重要的会议，会议很重要，人民很好，北京很好。"]
GB = ["张三来到北京。", "李四去深圳！"]
XZ = ["王五看见山水 花鸟。", "\t"]
BZ = ["赵六来到广州。人口很多。"]
UNDECODABLE = "这是第一句话。\n".encode() + b"\xff\xfe\xfd broken\n" + "这是第二句话。\n".encode()


def write_corpus(folder):
    folder.mkdir()
    (folder / "a.txt").write_text("\n".join(PLAIN) + "\n", encoding="utf-8")
    (folder / "b.txt.gz").write_bytes(gzip.compress(("\r\n".join(GB) + "\r\n").encode("gb18030")))
    (folder / "c.xz").write_bytes(lzma.compress(("\n".join(XZ) + "\n").encode("utf-8")))
    (folder / "d.txt").write_bytes(bz2.compress(("\n".join(BZ)).encode("utf-8")))  # named as plain text
    (folder / "e.txt").write_bytes(UNDECODABLE)
    (folder / "f.bin").write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 4)
    return folder


def texts_in(folder, split):
    """The documents' text as stored: every chunk of `split` in stored order, decoded, joined."""
    vocab = Vocab.from_file(folder / "vocab.txt")
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    out = []
    for shard in manifest["splits"][split]["shards"]:
        arrays = load_shard(folder / shard["file"])
        out.append("".join(vocab.tokens[i] for i in arrays["token_ids"]))
    return "".join(out)


@pytest.fixture
def corpus(tmp_path):
    return write_corpus(tmp_path / "corpus")


@pytest.fixture
def vocab_file(tmp_path):
    return write_vocab(tmp_path)


def run(corpus, out, vocab_file, **kwargs):
    kwargs = {"workers": 1, "heldout_fraction": 0.0, **kwargs}
    manifest = preprocess([str(corpus)], str(out), vocab_file, kwargs.pop("max_seq_len", 19), **kwargs)
    (out / "vocab.txt").write_bytes(open(vocab_file, "rb").read())  # for texts_in
    return manifest


def test_every_format_is_read_and_everything_skipped_is_counted(corpus, tmp_path, vocab_file, caplog):
    caplog.set_level(logging.INFO)
    out = tmp_path / "out"
    manifest = run(corpus, out, vocab_file)
    assert manifest["counts"] == {
        "files": 6, "unreadable_files": 1, "undecodable_lines": 1,
        "documents": 13, "blank_documents": 3, "unusable_documents": 1, "train_documents": 9, "heldout_documents": 0,
        "sentences": 11, "sentences_cut": 1, "cuts_inside_word": 0, "unk_tokens": 1, "blank_chars_dropped": 1}
    assert manifest["unk_chars"] == {"二": 1} and len(manifest["read_errors"]) == 2
    assert "f.bin: not text" in manifest["read_errors"][1] and "e.txt:2: cannot decode" in manifest["read_errors"][0]
    kept = [t for t in PLAIN + GB + XZ + BZ + ["这是第一句话。", "这是第二句话。"] if t.strip() and "☃" not in t]
    vocab = Vocab.from_file(vocab_file)  # whitespace dropped, each character as the vocab spells it ("二": [UNK])
    expected = "".join(vocab.tokens[vocab.char_to_id(c)] for t in kept for c in t if not c.isspace())
    assert texts_in(out, "train") == expected
    for shard in manifest["splits"]["train"]["shards"]:
        assert sha256_file(out / shard["file"]) == shard["sha256"]
    fp = manifest["fingerprint"]
    assert [os.path.basename(i["path"]) for i in fp["inputs"]] == ["a.txt", "b.txt.gz", "c.xz", "d.txt", "e.txt",
                                                                   "f.bin"]
    assert fp["max_seq_len"] == 19 and fp["doc_per"] == "line" and fp["vocab_sha256"] == sha256_file(vocab_file)
    assert [i["name"] for i in fp["inputs"]] == ["a.txt", "b.txt.gz", "c.xz", "d.txt", "e.txt", "f.bin"]
    assert [i["sha256"] for i in fp["inputs"]] == [sha256_file(corpus / i["name"]) for i in fp["inputs"]]
    line = next(r.getMessage() for r in caplog.records if "documents from 6 files" in r.getMessage())
    assert "3 blank documents, 1 documents without a known character, 1 unreadable files, 1 undecodable lines" in line
    assert sum(1 for e in read_examples(out, shuffle_buffer=4)) == manifest["splits"]["train"]["examples"]


def test_one_document_per_file_ends_sentences_at_newlines(tmp_path, vocab_file):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "one.txt").write_text("北京很好\n上海很好\n\n", encoding="utf-8")
    (folder / "two.txt").write_text("深圳", encoding="utf-8")
    manifest = run(folder, tmp_path / "out", vocab_file, doc_per="file")
    assert manifest["counts"]["documents"] == 2 and manifest["counts"]["sentences"] == 3
    arrays = load_shard(tmp_path / "out" / "train-00000.npz")
    assert arrays["offsets"].tolist() == [0, 8, 10]  # one.txt's two sentences share a chunk; two.txt its own
    assert arrays["sentence_starts"][:8].tolist() == [1, 0, 0, 0, 1, 0, 0, 0]


def test_the_heldout_split_is_chosen_by_document_and_never_shares_one(tmp_path, vocab_file):
    folder = tmp_path / "many"
    folder.mkdir()
    rng = np.random.default_rng(0)
    chars = list("我们在北京大学工作今天天气很好上海深圳广州")
    lines = ["".join(rng.choice(chars, 12)) + "。" for _ in range(400)]
    (folder / "a.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    manifest = run(folder, out, vocab_file, heldout_fraction=0.25, max_seq_len=40, shard_chars=900)
    held = [t for t in lines if is_heldout(t, 0.25)]
    assert 60 < len(held) < 140 and manifest["counts"]["heldout_documents"] == len(held)
    assert texts_in(out, "heldout") == "".join(held)
    assert texts_in(out, "train") == "".join(t for t in lines if not is_heldout(t, 0.25))
    assert manifest["splits"]["heldout"]["examples"] == len(held)  # 13 tokens each: one chunk per document
    other = run(folder, tmp_path / "out2", vocab_file, heldout_fraction=0.25, max_seq_len=40, shard_chars=5000)
    assert other["counts"]["heldout_documents"] == len(held)  # whatever the parts


def test_workers_do_not_change_the_shards(corpus, tmp_path, vocab_file):
    one = run(corpus, tmp_path / "one", vocab_file, heldout_fraction=0.3, shard_chars=20)
    two = run(corpus, tmp_path / "two", vocab_file, heldout_fraction=0.3, shard_chars=20, workers=2)
    assert one["parts"] == two["parts"] > 3 and two["workers"] == 2
    assert one["splits"] == two["splits"] and one["counts"] == two["counts"]


def test_the_same_inputs_and_settings_redo_nothing(corpus, tmp_path, vocab_file, caplog):
    out = tmp_path / "out"
    first = run(corpus, out, vocab_file, shard_chars=30)
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.suffix == ".npz"}
    caplog.set_level(logging.INFO)
    again = run(corpus, out, vocab_file, shard_chars=30)
    assert again == first
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.suffix == ".npz"} == stamps
    assert any("nothing redone" in r.getMessage() for r in caplog.records)


def test_an_interrupted_run_keeps_finished_parts_and_redoes_only_the_rest(corpus, tmp_path, vocab_file, monkeypatch):
    clean = run(corpus, tmp_path / "clean", vocab_file, shard_chars=30)
    assert clean["parts"] >= 4
    out = tmp_path / "out"
    real = prep.process_part

    def crash_at_part_2(index, texts):
        if index == 2:
            raise KeyboardInterrupt
        return real(index, texts)

    monkeypatch.setattr(prep, "process_part", crash_at_part_2)
    with pytest.raises(KeyboardInterrupt):
        run(corpus, out, vocab_file, shard_chars=30)
    monkeypatch.undo()
    assert sorted(p.name for p in out.glob("part-*.json")) == ["part-00000.json", "part-00001.json"]
    assert not (out / "manifest.json").exists()
    (out / "train-00002.npz.tmp-12345678").write_bytes(b"half")  # as a crash mid-write leaves
    resumed = run(corpus, out, vocab_file, shard_chars=30)
    assert resumed["parts_reused"] == 2 and resumed["splits"] == clean["splits"]
    assert not list(out.glob("*.tmp-*"))
    # A damaged shard: its part alone is redone.
    (out / "train-00001.npz").write_bytes(b"damaged")
    again = run(corpus, out, vocab_file, shard_chars=30)
    assert again["parts_reused"] == clean["parts"] - 1 and again["splits"] == clean["splits"]


def test_other_inputs_or_settings_in_the_same_folder_are_an_error(corpus, tmp_path, vocab_file):
    out = tmp_path / "out"
    run(corpus, out, vocab_file)
    with pytest.raises(FingerprintMismatch, match="max_seq_len differ"):
        run(corpus, out, vocab_file, max_seq_len=32)
    (corpus / "a.txt").write_text("新的内容。\n", encoding="utf-8")
    with pytest.raises(FingerprintMismatch, match=r"\(inputs differ in 1 file: a\.txt: content differs \(\d+ bytes "
                                                  r"before, \d+ now\)\); use a new folder"):
        run(corpus, out, vocab_file)
    user_dict = tmp_path / "user.txt"
    user_dict.write_text("蓝鲸智算\n", encoding="utf-8")
    with pytest.raises(FingerprintMismatch, match="user_dict_sha256"):
        run(corpus, out, vocab_file, user_dict=str(user_dict))


def test_the_user_dictionary_reaches_the_stored_word_starts(tmp_path, vocab_file):
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "a.txt").write_text("蓝鲸智算发布了新模型。\n", encoding="utf-8")
    user_dict = tmp_path / "user.txt"
    user_dict.write_text("蓝鲸智算 10 nt\n", encoding="utf-8")
    run(folder, tmp_path / "plain", vocab_file)
    run(folder, tmp_path / "dict", vocab_file, user_dict=str(user_dict))
    plain = load_shard(tmp_path / "plain" / "train-00000.npz")["word_starts"]
    custom = load_shard(tmp_path / "dict" / "train-00000.npz")["word_starts"]
    assert plain[:4].tolist() == [1, 0, 1, 0] and custom[:4].tolist() == [1, 0, 0, 0]


def test_bad_arguments_are_clear_errors(corpus, tmp_path, vocab_file):
    no_mask = tmp_path / "no_mask.txt"
    no_mask.write_text(open(vocab_file, encoding="utf-8").read().replace("[MASK]\n", ""), encoding="utf-8")
    with pytest.raises(ValueError, match="no_mask.txt: the vocabulary has no \\[MASK\\]"):
        run(corpus, tmp_path / "o", str(no_mask))
    pad_late = tmp_path / "pad_late.txt"
    lines = open(vocab_file, encoding="utf-8").read().splitlines()
    pad_late.write_text("\n".join([lines[1], lines[0]] + lines[2:]) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="pad_late.txt: \\[PAD\\] has id 1"):
        run(corpus, tmp_path / "o", str(pad_late))
    with pytest.raises(FileNotFoundError, match="nope.txt: no such user dictionary"):
        run(corpus, tmp_path / "o", vocab_file, user_dict=str(tmp_path / "nope.txt"))
    with pytest.raises(ValueError, match="max_seq_len must be an integer >= 8, got 4; doc_per must be one of line"):
        run(corpus, tmp_path / "o", vocab_file, doc_per="page", max_seq_len=4)
    with pytest.raises(ValueError, match="unknown encoding 'klingon'"):
        run(corpus, tmp_path / "o", vocab_file, encoding="klingon")
    assert not (tmp_path / "o").exists()
