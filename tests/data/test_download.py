"""Fetching public files: checksum verification, atomic writes, and a clear offline message."""
import hashlib

import pytest

from albert_ner.data.download import (MSRA_FILES, WORDPIECE_VOCAB, DownloadError, RemoteFile, fetch,
                                      parse_content_range)


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


def test_known_sizes_match_the_shared_copies(shared_dir):
    assert (shared_dir / "data" / "msra" / "test.txt").stat().st_size == MSRA_FILES["test.txt"].size == 1_119_341
    assert (shared_dir / "pretrained" / "vocab.txt").stat().st_size == WORDPIECE_VOCAB.size == 109_540
    # The shared train.txt is not the URL's file byte for byte, so nothing is recorded for it.
    assert MSRA_FILES["train.txt"].size is None and MSRA_FILES["train.txt"].sha256 is None


def test_size_mismatch_is_an_error_naming_the_file_and_both_sizes(tmp_path):
    src = tmp_path / "src.txt"
    src.write_bytes(b"x" * 1500)
    with pytest.raises(DownloadError) as err:
        fetch(RemoteFile("out.txt", (src.as_uri(),), size=1200), tmp_path / "cache")
    msg = str(err.value)
    assert "out.txt: size mismatch" in msg and "1,200" in msg and "1,500" in msg
    assert not (tmp_path / "cache" / "out.txt").exists() and not (tmp_path / "cache" / "out.txt.part").exists()


def test_offline_message_states_the_published_size_and_sha256(tmp_path):
    unreachable = RemoteFile("vocab.txt", ("http://127.0.0.1:9/vocab.txt",), WORDPIECE_VOCAB.sha256, 109_540)
    with pytest.raises(DownloadError) as err:
        fetch(unreachable, tmp_path, timeout=5)
    msg = str(err.value)
    assert str(tmp_path / "vocab.txt") in msg and "size 109,540 bytes" in msg and WORDPIECE_VOCAB.sha256 in msg


@pytest.mark.parametrize("header, parsed", [
    ("bytes 0-9/10", (0, 9, 10)), ("bytes 300-999/1000", (300, 999, 1000)), ("bytes */1000", (None, None, 1000)),
    ("bytes 5-9/*", (5, 9, None)), ("BYTES 1-2/3", (1, 2, 3)), (None, None), ("", None), ("bytes 5-/10", None),
    ("items 0-9/10", None), ("bytes 0-9", None)])
def test_content_range_is_parsed_or_rejected(header, parsed):
    assert parse_content_range(header) == parsed
