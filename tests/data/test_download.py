"""Fetching public files: checksum verification, atomic writes, and a clear offline message."""
import hashlib

import pytest

from albert_ner.data.download import MSRA_FILES, WORDPIECE_VOCAB, DownloadError, RemoteFile, fetch


def test_fetch_verifies_checksum_and_writes_atomically(tmp_path):
    src = tmp_path / "src.txt"
    src.write_bytes(b"hello\n")
    good = RemoteFile("out.txt", (src.as_uri(),), hashlib.sha256(b"hello\n").hexdigest())
    dest = fetch(good, tmp_path / "cache")
    assert dest.read_bytes() == b"hello\n" and not (tmp_path / "cache" / "out.txt.part").exists()

    bad = RemoteFile("bad.txt", (src.as_uri(),), "0" * 64)
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        fetch(bad, tmp_path / "cache")
    assert not (tmp_path / "cache" / "bad.txt").exists()


def test_offline_failure_names_the_file_and_where_to_put_it(tmp_path):
    unreachable = RemoteFile("train.txt", ("http://127.0.0.1:9/train.txt",))
    with pytest.raises(DownloadError) as err:
        fetch(unreachable, tmp_path / "msra", timeout=5)
    msg = str(err.value)
    assert "train.txt" in msg and str(tmp_path / "msra" / "train.txt") in msg and "by hand" in msg


def test_existing_file_is_not_downloaded_again(tmp_path):
    (tmp_path / "vocab.txt").write_text("x")
    assert fetch(WORDPIECE_VOCAB, tmp_path).read_text() == "x"


def test_known_checksums_match_the_shared_copies(shared_dir):
    from albert_ner.data.download import sha256_of

    assert sha256_of(shared_dir / "data" / "msra" / "test.txt") == MSRA_FILES["test.txt"].sha256
    assert sha256_of(shared_dir / "pretrained" / "vocab.txt") == WORDPIECE_VOCAB.sha256
