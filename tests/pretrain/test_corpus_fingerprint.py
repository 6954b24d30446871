"""The preprocessing fingerprint is the corpus's content: a corpus copied afresh or moved resumes, a hash cache
spares unchanged files, a changed file is named, and an older version's folder (inputs by path, size and mtime)
is kept with a warning and rewritten."""
import json
import logging
import lzma
import os
import shutil

import pytest

from albert_ner.cli import main
from albert_ner.pretrain import inputs as corpus_inputs
from albert_ner.pretrain.inputs import HASH_CACHE, content_fingerprint, corpus_fingerprint, expand_corpus
from albert_ner.pretrain.preprocess import FINGERPRINT, FingerprintMismatch, preprocess
from albert_ner.pretrain.shards import sha256_file
from tests.pretrain.test_preprocess import run, write_corpus
from tests.pretrain.test_sentences import write_vocab

LATER_NS = 2_000_000_000 * 10 ** 9  # an mtime no file written by these tests has (2033)


@pytest.fixture
def vocab_file(tmp_path):
    return write_vocab(tmp_path)


def stamps(folder):
    """mtime_ns of every shard and part record: unchanged when nothing was redone."""
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if p.suffix in (".npz", ".json")
            and p.name.startswith(("train-", "heldout-", "part-"))}


def fresh_copy(src, dst):
    """`cp` without -p, as a fresh download: the same bytes, new mtimes (set well apart to be sure)."""
    shutil.copytree(src, dst, copy_function=shutil.copyfile)
    for path in dst.iterdir():
        os.utime(path, ns=(LATER_NS, LATER_NS))
    return dst


def stored_json(path):
    return json.loads(path.read_text(encoding="utf-8"))


def count_hashing(monkeypatch):
    hashed = []
    real = corpus_inputs._hash_file

    def counted(path):
        hashed.append(os.path.basename(path))
        return real(path)

    monkeypatch.setattr(corpus_inputs, "_hash_file", counted)
    return hashed


def test_a_corpus_copied_afresh_elsewhere_redoes_nothing(tmp_path, vocab_file, caplog):
    corpus = write_corpus(tmp_path / "corpus")
    out = tmp_path / "out"
    first = run(corpus, out, vocab_file, shard_chars=30)
    assert first["parts"] >= 4
    before = stamps(out)
    copy = fresh_copy(corpus, tmp_path / "downloaded" / "corpus")
    shutil.rmtree(corpus)
    caplog.set_level(logging.INFO)
    again = run(copy, out, vocab_file, shard_chars=30)
    assert any("nothing redone" in r.getMessage() for r in caplog.records)
    assert stamps(out) == before
    assert again["splits"] == first["splits"] and again["counts"] == first["counts"]
    new, old = again["fingerprint"]["inputs"], first["fingerprint"]["inputs"]
    assert [(i["name"], i["bytes"], i["sha256"]) for i in new] == [(i["name"], i["bytes"], i["sha256"]) for i in old]
    assert [i["path"] for i in new] == [str(copy / i["name"]) for i in new]
    # The stored fingerprint and the manifest's copy now name the copy, so the next start compares nothing stale.
    assert stored_json(out / FINGERPRINT) == again["fingerprint"] == stored_json(out / "manifest.json")["fingerprint"]
    # Without the manifest (a run interrupted before its end), every part is still reused from the copy.
    (out / "manifest.json").unlink()
    second = fresh_copy(copy, tmp_path / "again")
    resumed = run(second, out, vocab_file, shard_chars=30)
    assert resumed["parts_reused"] == first["parts"] and resumed["splits"] == first["splits"]
    assert stamps(out) == before


def test_the_hash_cache_reads_only_files_whose_path_size_or_mtime_changed(tmp_path, vocab_file, monkeypatch,
                                                                           caplog):
    corpus = write_corpus(tmp_path / "corpus")
    out = tmp_path / "out"
    hashed = count_hashing(monkeypatch)
    first = run(corpus, out, vocab_file)
    assert sorted(hashed) == ["a.txt", "b.txt.gz", "c.xz", "d.txt", "e.txt", "f.bin"]
    cache = stored_json(out / HASH_CACHE)
    stat = {n: (corpus / n).stat() for n in hashed}
    assert cache == {str(corpus / n): {"bytes": stat[n].st_size, "mtime_ns": stat[n].st_mtime_ns,
                                       "sha256": sha256_file(corpus / n)} for n in hashed}
    hashed.clear()
    run(corpus, out, vocab_file)
    assert hashed == []
    os.utime(corpus / "c.xz", ns=(LATER_NS, LATER_NS))  # touched, same bytes: hashed again, still the same corpus
    assert run(corpus, out, vocab_file)["splits"] == first["splits"] and hashed == ["c.xz"]
    assert stored_json(out / HASH_CACHE)[str(corpus / "c.xz")]["mtime_ns"] == LATER_NS
    # A cache that cannot be read costs hashing everything once, with a warning naming it; then it is rewritten.
    (out / HASH_CACHE).write_text("{not json", encoding="utf-8")
    hashed.clear()
    caplog.set_level(logging.INFO)
    monkeypatch.setattr(corpus_inputs, "SLOW_HASHING_S", -1.0)  # log the hashing time as a slow start would
    assert run(corpus, out, vocab_file)["splits"] == first["splits"] and len(hashed) == 6
    assert f"{out / HASH_CACHE}: not a readable input hash cache" in caplog.text
    assert "hashed 6 of 6 input files" in caplog.text
    assert set(stored_json(out / HASH_CACHE)) == {str(corpus / n) for n in hashed}
    # The cache does not change the fingerprint: the same with no cache at all.
    files = expand_corpus([str(corpus)])
    assert content_fingerprint(files) == content_fingerprint(files, out / HASH_CACHE) == first["fingerprint"]["inputs"]


def test_changed_content_is_an_error_naming_the_file(tmp_path, vocab_file):
    corpus = write_corpus(tmp_path / "corpus")
    out = tmp_path / "out"
    run(corpus, out, vocab_file)
    text = (corpus / "a.txt").read_text(encoding="utf-8")
    (corpus / "a.txt").write_text(text.replace("北京", "上海"), encoding="utf-8")  # the same number of bytes
    os.utime(corpus / "a.txt", ns=(LATER_NS, LATER_NS))
    with pytest.raises(FingerprintMismatch, match=r"\(inputs differ in 1 file: a\.txt: content differs \(same "
                                                  r"size, another sha256\)\); use a new folder"):
        run(corpus, out, vocab_file)


def test_the_mismatch_names_the_first_differing_files_and_counts_them_all(tmp_path, vocab_file):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(7):
        (corpus / f"f{i}.txt").write_text("北京很好。\n" * (i + 1), encoding="utf-8")
    out = tmp_path / "out"
    run(corpus, out, vocab_file)
    for i in range(6):
        (corpus / f"f{i}.txt").write_text("上海很好。\n", encoding="utf-8")
    (corpus / "f6.txt").unlink()
    (corpus / "g.txt").write_text("深圳\n", encoding="utf-8")
    with pytest.raises(FingerprintMismatch) as caught:
        run(corpus, out, vocab_file)
    message = str(caught.value)
    assert ("(inputs differ in 8 files: f0.txt: content differs (same size, another sha256); f1.txt: content "
            "differs (32 bytes before, 16 now); f2.txt") in message
    assert "f4.txt: content differs (80 bytes before, 16 now); and 3 more); use a new folder" in message
    assert "g.txt" not in message and "f5.txt" not in message  # beyond the first five
    # The same files read in another order make other shards.
    shutil.rmtree(out)
    names = ["f0.txt", "g.txt"]
    preprocess([str(corpus / n) for n in names], str(out), vocab_file, 19, workers=1)
    with pytest.raises(FingerprintMismatch, match=r"\(inputs differ: the same files, read in another order\)"):
        preprocess([str(corpus / n) for n in reversed(names)], str(out), vocab_file, 19, workers=1)


def write_old_scheme(out, corpus, **changes):
    """fingerprint.json and the manifest's copy as an older version wrote them: inputs by path, size and mtime."""
    fingerprint = dict(stored_json(out / FINGERPRINT), inputs=corpus_fingerprint(expand_corpus([str(corpus)])),
                       input_fingerprint="path + bytes + mtime_ns", **changes)
    (out / FINGERPRINT).write_text(json.dumps(fingerprint, indent=1, ensure_ascii=False), encoding="utf-8")
    manifest = stored_json(out / "manifest.json")
    manifest["fingerprint"] = fingerprint
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False), encoding="utf-8")
    (out / HASH_CACHE).unlink(missing_ok=True)  # no older version wrote one
    return fingerprint


def test_a_folder_of_the_older_path_and_mtime_fingerprint_is_kept_with_a_warning(tmp_path, vocab_file, caplog):
    corpus = write_corpus(tmp_path / "corpus")
    out = tmp_path / "out"
    first = run(corpus, out, vocab_file, shard_chars=30)
    before = stamps(out)
    write_old_scheme(out, corpus)
    for path in corpus.iterdir():  # downloaded afresh to the same place: new mtimes
        os.utime(path, ns=(LATER_NS, LATER_NS))
    caplog.set_level(logging.INFO)
    again = run(corpus, out, vocab_file, shard_chars=30)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "older version" in
                r.getMessage()]
    assert len(warnings) == 1 and "cannot prove their content" in warnings[0] and "shards are kept" in warnings[0]
    assert any("nothing redone" in r.getMessage() for r in caplog.records)
    assert stamps(out) == before and again["splits"] == first["splits"]
    assert again["fingerprint"] == first["fingerprint"]  # rewritten by content
    assert stored_json(out / FINGERPRINT) == first["fingerprint"] == stored_json(out / "manifest.json")["fingerprint"]
    caplog.clear()
    run(corpus, out, vocab_file, shard_chars=30)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # warned once: now by content

    # An older folder of other sizes or settings stays an error, naming what differs.
    old = write_old_scheme(out, corpus)
    old["inputs"][0]["bytes"] += 1
    (out / FINGERPRINT).write_text(json.dumps(old), encoding="utf-8")
    with pytest.raises(FingerprintMismatch, match=rf"\(inputs differ in 1 file: {corpus / 'a.txt'}: content differs "
                                                  r"\(\d+ bytes before, \d+ now\)\)"):
        run(corpus, out, vocab_file, shard_chars=30)
    write_old_scheme(out, corpus, max_seq_len=32)
    with pytest.raises(FingerprintMismatch, match=r"\(max_seq_len differ\); use a new folder"):
        run(corpus, out, vocab_file, shard_chars=30)


def test_the_same_pretrain_command_resumes_after_the_corpus_is_downloaded_afresh(shared_dir, vocab_path, tmp_path,
                                                                                 caplog):
    with lzma.open(shared_dir / "corpus" / "zh-009.txt.xz", "rt", encoding="utf-8") as f:
        text = "".join(next(f) for _ in range(30))
    corpus = tmp_path / "channel" / "docs.txt"
    corpus.parent.mkdir()
    corpus.write_text(text, encoding="utf-8")
    argv = ["pretrain", str(corpus), "--output-dir", str(tmp_path / "run"), "--vocab-file", str(vocab_path),
            "--encoder-preset", "tiny", "--max-seq-len", "32", "--batch-size", "8", "--max-steps", "1", "--epochs", "1",
            "--workers", "1", "--sop", "off"]
    assert main(argv) == 0
    before = stamps(tmp_path / "run" / "data")
    corpus.unlink()  # the channel downloaded again: the same text, a new file
    corpus.write_text(text, encoding="utf-8")
    os.utime(corpus, ns=(LATER_NS, LATER_NS))
    caplog.clear()
    caplog.set_level(logging.INFO)
    assert main(argv) == 0, caplog.text[-2000:]
    assert "nothing redone" in caplog.text and stamps(tmp_path / "run" / "data") == before
