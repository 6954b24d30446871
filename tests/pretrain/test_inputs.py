"""Corpus inputs: compressed files told by their bytes, glob patterns, each file once, fingerprints."""
import bz2
import gzip
import lzma
import os

import pytest

from albert_ner.infer.textfiles import Unreadable, read_documents
from albert_ner.pretrain.inputs import corpus_fingerprint, expand_corpus

LINES = ["张三在北京大学工作。", "Hello 世界", "", "最后一行"]
COMPRESSORS = {"gzip": gzip.compress, "xz": lzma.compress, "bzip2": bz2.compress}


@pytest.mark.parametrize("kind", sorted(COMPRESSORS))
@pytest.mark.parametrize("encoding", ["utf-8", "gb18030", "utf-16"])
def test_compressed_files_are_read_by_their_bytes_not_their_name(tmp_path, kind, encoding):
    data = COMPRESSORS[kind](("\n".join(LINES) + "\n").encode(encoding))
    misnamed = tmp_path / "looks_plain.txt"
    misnamed.write_bytes(data)
    docs = list(read_documents([str(misnamed)], decompress=True))
    assert [d.text for d in docs] == LINES and all(d.error is None for d in docs)
    (whole,) = read_documents([str(misnamed)], whole_file=True, decompress=True)
    assert whole.text == "\n".join(LINES) + "\n"


def test_a_compressed_suffix_on_plain_text_is_read_as_plain_text(tmp_path):
    for name in ("plain.gz", "plain.xz", "plain.bz2"):
        (tmp_path / name).write_text("BZh 不是压缩文件\n第二行\n", encoding="utf-8")
    docs = list(read_documents([str(p) for p in sorted(tmp_path.iterdir())], decompress=True))
    assert [d.text for d in docs] == ["BZh 不是压缩文件", "第二行"] * 3


def test_without_decompress_a_compressed_file_is_still_reported_as_not_text(tmp_path):
    path = tmp_path / "a.gz"
    path.write_bytes(gzip.compress("北京\n".encode()))
    (doc,) = read_documents([str(path)])
    assert doc.line == 0 and doc.error.startswith("not text (gzip data)")


@pytest.mark.parametrize("kind", sorted(COMPRESSORS))
def test_corrupt_or_truncated_compressed_data_is_reported_and_the_next_file_read(tmp_path, kind):
    data = COMPRESSORS[kind](("第一行\n" * 2000 + "最后\n").encode())
    (tmp_path / "a_truncated").write_bytes(data[:len(data) // 2])
    (tmp_path / "b_ok.txt").write_text("好的\n", encoding="utf-8")
    docs = list(read_documents([str(tmp_path / "a_truncated"), str(tmp_path / "b_ok.txt")], decompress=True))
    errors = [d for d in docs if d.error]
    assert len(errors) == 1 and errors[0].source.endswith("a_truncated")
    assert f"corrupt or truncated {kind} data" in errors[0].error
    assert docs[-1].text == "好的" and docs[-1].error is None


def test_inputs_are_files_directories_and_globs_each_read_once(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    for rel in ("d/a.txt", "d/sub/b.txt.xz", "c.txt", "e.gz"):
        (tmp_path / rel).write_text("x\n", encoding="utf-8")
    found = expand_corpus([str(tmp_path / "d"), str(tmp_path / "*.txt"), str(tmp_path / "d" / "a.txt"),
                           str(tmp_path / "**" / "*.xz")])
    assert found == [str(tmp_path / "d/a.txt"), str(tmp_path / "d/sub/b.txt.xz"), str(tmp_path / "c.txt")]
    with pytest.raises(FileNotFoundError, match=r"nope\*\.txt: no file matches"):
        expand_corpus([str(tmp_path / "nope*.txt")])
    with pytest.raises(FileNotFoundError, match="missing.txt: no such file"):
        expand_corpus([str(tmp_path / "missing.txt")])
    with pytest.raises(ValueError, match="standard input cannot be preprocessed"):
        expand_corpus(["-"])


def test_the_fingerprint_changes_with_a_file_and_names_unreadable_ones(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("一\n", encoding="utf-8")
    before = corpus_fingerprint([str(path)])
    assert before == [{"path": str(path), "bytes": 4, "mtime_ns": os.stat(path).st_mtime_ns}]
    os.utime(path, ns=(1, 1))
    assert corpus_fingerprint([str(path)]) != before
    assert corpus_fingerprint([Unreadable(str(tmp_path / "x"), "Permission denied")]) == [
        {"path": str(tmp_path / "x"), "error": "Permission denied"}]
