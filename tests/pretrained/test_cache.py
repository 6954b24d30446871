"""The pretrained cache: resumable downloads over HTTP (a loopback server), unpacking, offline messages."""
import hashlib
import http.server
import io
import threading
import zipfile

import pytest

from albert_ner.cli import main
from albert_ner.data.download import DownloadError, RemoteFile, fetch
from pretrained import KNOWN, PretrainedCheckpoint, resolve_pretrained
from pretrained.cache import COMPLETE, download


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves `files` (name -> bytes) with HTTP Range support; records the Range headers it saw.

    `mode` picks a behaviour: "honour" (RFC 7233), "ignore" (200 and the whole file), "restart" (a
    206 from byte 0 whatever was asked), "shifted" (a 206 from half the asked offset), "truncate"
    (honour, but close the connection after half the promised body) or "chunked_cut" (HTTP/1.1
    chunked, closed after the first chunk of half the file).
    """

    files: dict = {}
    ranges: list = []
    mode: str = "honour"

    def do_GET(self):
        body = self.files.get(self.path.lstrip("/"))
        if body is None:
            self.send_error(404)
            return
        rng = self.headers.get("Range")
        self.ranges.append(rng)
        if self.mode == "chunked_cut":
            self.protocol_version, self.close_connection = "HTTP/1.1", True
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            half = body[:len(body) // 2]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(half), half))
            return
        asked = int(rng.split("=")[1].rstrip("-")) if rng else 0
        if self.mode == "ignore" or not rng:
            start, status = 0, 200
        else:
            start, status = {"restart": 0, "shifted": asked // 2}.get(self.mode, asked), 206
        if start >= len(body) and rng and self.mode != "ignore":
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(body)}")
            self.end_headers()
            return
        self.send_response(status)
        self.send_header("Content-Length", str(len(body) - start))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.end_headers()
        sent = body[start:]
        self.wfile.write(sent[:len(sent) // 2] if self.mode == "truncate" else sent)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    RangeHandler.files, RangeHandler.ranges, RangeHandler.mode = {}, [], "honour"
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", RangeHandler
    httpd.shutdown()
    httpd.server_close()


def test_interrupted_download_resumes_with_a_range_request(server, tmp_path):
    url, handler = server
    payload = bytes(range(256)) * 4096  # 1 MiB
    handler.files["weights.bin"] = payload
    (tmp_path / "weights.bin.part").write_bytes(payload[:300_000])  # what an interrupted run left
    remote = RemoteFile("weights.bin", (f"{url}/weights.bin",), hashlib.sha256(payload).hexdigest())
    assert fetch(remote, tmp_path).read_bytes() == payload
    assert handler.ranges == ["bytes=300000-"]
    assert not (tmp_path / "weights.bin.part").exists()


PAYLOAD = bytes(range(251)) * 2000  # 502,000 bytes, no period that divides the offsets used below


def _remote(url, **checks):
    return RemoteFile("weights.bin", (f"{url}/weights.bin",), **checks)


def test_stale_part_longer_than_the_remote_file_is_discarded(server, tmp_path):
    url, handler = server
    handler.files["weights.bin"] = PAYLOAD
    (tmp_path / "weights.bin.part").write_bytes(b"\xff" * (len(PAYLOAD) + 1000))  # left by an older, longer file
    assert fetch(_remote(url), tmp_path).read_bytes() == PAYLOAD  # no size or sha256 to catch it
    assert handler.ranges == [f"bytes={len(PAYLOAD) + 1000}-", None]  # 416 */TOTAL, then a clean restart


def test_stale_part_longer_than_the_published_size_is_discarded_without_asking(server, tmp_path):
    url, handler = server
    handler.files["weights.bin"] = PAYLOAD
    (tmp_path / "weights.bin.part").write_bytes(b"\xff" * (len(PAYLOAD) + 1))
    assert fetch(_remote(url, size=len(PAYLOAD)), tmp_path).read_bytes() == PAYLOAD
    assert handler.ranges == [None]


def test_complete_part_is_accepted_when_the_server_says_nothing_is_left(server, tmp_path):
    url, handler = server
    handler.files["weights.bin"] = PAYLOAD
    (tmp_path / "weights.bin.part").write_bytes(PAYLOAD)  # finished, but not yet renamed
    assert fetch(_remote(url, size=len(PAYLOAD)), tmp_path).read_bytes() == PAYLOAD
    assert handler.ranges == [f"bytes={len(PAYLOAD)}-"]


def test_resume_answered_from_byte_zero_is_not_appended(server, tmp_path):
    url, handler = server
    handler.files["weights.bin"], handler.mode = PAYLOAD, "restart"
    (tmp_path / "weights.bin.part").write_bytes(PAYLOAD[:100_000])
    assert fetch(_remote(url), tmp_path).read_bytes() == PAYLOAD
    assert handler.ranges == ["bytes=100000-"]  # the 206 from byte 0 is the whole file: written afresh


def test_resume_answered_from_another_offset_restarts_cleanly(server, tmp_path):
    url, handler = server
    handler.files["weights.bin"], handler.mode = PAYLOAD, "shifted"
    (tmp_path / "weights.bin.part").write_bytes(PAYLOAD[:100_000])
    assert fetch(_remote(url), tmp_path).read_bytes() == PAYLOAD
    assert handler.ranges == ["bytes=100000-", None]


def test_server_that_ignores_range_gives_the_whole_file(server, tmp_path):
    url, handler = server
    handler.files["weights.bin"], handler.mode = PAYLOAD, "ignore"
    (tmp_path / "weights.bin.part").write_bytes(PAYLOAD[:100_000])
    assert fetch(_remote(url, size=len(PAYLOAD)), tmp_path).read_bytes() == PAYLOAD
    assert handler.ranges == ["bytes=100000-"]


def test_truncated_body_leaves_a_resumable_part_and_no_file(server, tmp_path):
    url, handler = server
    handler.files["weights.bin"], handler.mode = PAYLOAD, "truncate"
    with pytest.raises(DownloadError, match=f"closed after {len(PAYLOAD) // 2:,} of {len(PAYLOAD):,} bytes"):
        fetch(_remote(url), tmp_path)  # Content-Length says 502,000; half arrive, then the connection closes
    assert not (tmp_path / "weights.bin").exists()
    assert (tmp_path / "weights.bin.part").read_bytes() == PAYLOAD[:len(PAYLOAD) // 2]
    handler.mode = "honour"
    assert fetch(_remote(url), tmp_path).read_bytes() == PAYLOAD
    assert handler.ranges == [None, f"bytes={len(PAYLOAD) // 2}-"]


def test_chunked_body_cut_short_leaves_a_resumable_part_and_no_file(server, tmp_path):
    url, handler = server
    handler.files["weights.bin"], handler.mode = PAYLOAD, "chunked_cut"
    with pytest.raises(DownloadError, match=f"connection broke after {len(PAYLOAD) // 2:,} bytes"):
        fetch(_remote(url), tmp_path)  # no length stated: only the unfinished chunked framing shows the cut
    assert not (tmp_path / "weights.bin").exists()
    assert (tmp_path / "weights.bin.part").read_bytes() == PAYLOAD[:len(PAYLOAD) // 2]


@pytest.mark.parametrize("published", [len(PAYLOAD) - 7, len(PAYLOAD) + 7])
def test_size_mismatch_with_the_registry_names_the_file_and_both_sizes(server, tmp_path, published):
    url, handler = server
    handler.files["weights.bin"] = PAYLOAD
    with pytest.raises(DownloadError) as err:
        fetch(_remote(url, size=published), tmp_path)
    msg = str(err.value)
    assert "weights.bin: size mismatch" in msg and f"{published:,}" in msg and f"{len(PAYLOAD):,}" in msg
    assert not (tmp_path / "weights.bin").exists() and not (tmp_path / "weights.bin.part").exists()


def test_download_list_names_the_verification_of_every_file(capsys):
    assert main(["download", "--list"]) == 0
    blocks, current = {}, None
    for line in capsys.readouterr().out.splitlines():
        if line and not line[0].isspace():
            current = line.split()[0]
            blocks[current] = []
        else:
            blocks[current].append(line.strip())
    assert list(blocks) == list(KNOWN)
    for name, ckpt in KNOWN.items():
        for f in ckpt.files:
            state = ("server length only (nothing published)" if f.sha256 is None and f.size is None
                     else " + ".join(c for c, v in (("sha256", f.sha256), ("size", f.size)) if v is not None))
            assert f"{f.name}  verified by: {state}" in "\n".join(blocks[name]), (name, f.name)
            assert (f"({f.size:,} bytes)" if f.size is not None else "size not published" if f.sha256
                    else "nothing published") in "\n".join(blocks[name])
    assert "albert_base_zh_additional_36k_steps.zip  verified by: server length only (nothing published)" in \
        "\n".join(blocks["albert_base_zh"])


def test_published_checksums_and_sizes_are_well_formed():
    files = [f for c in KNOWN.values() for f in c.files]
    for f in files:
        assert f.sha256 is None or (len(f.sha256) == 64 and int(f.sha256, 16) >= 0), f
        assert f.size is None or (isinstance(f.size, int) and f.size > 0), f
    assert any(f.sha256 for f in files) and any(f.size for f in files)


def test_known_checkpoint_is_downloaded_unpacked_and_cached(server, tmp_path, monkeypatch):
    url, handler = server
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("albert_tiny/albert_config_tiny.json", "{}")
        zf.writestr("albert_tiny/vocab.txt", "[PAD]\n")
    handler.files["albert_tiny.zip"] = buf.getvalue()
    ckpt = PretrainedCheckpoint("tiny-test", "a test release", url,
                                (RemoteFile("albert_tiny.zip", (f"{url}/albert_tiny.zip",)),), config={"x": 1})
    monkeypatch.setitem(KNOWN, "tiny-test", ckpt)
    home = resolve_pretrained("tiny-test", tmp_path / "cache")
    assert home == tmp_path / "cache/tiny-test" and (home / COMPLETE).is_file()
    assert (home / "albert_tiny/vocab.txt").read_text() == "[PAD]\n"
    assert (home / "model_config.json").read_text().strip().startswith("{")
    assert not (home / ".downloads").exists() and sorted(p.name for p in home.parent.iterdir()) == ["tiny-test"]
    handler.files.clear()  # cached: no second download
    assert resolve_pretrained("tiny-test", tmp_path / "cache") == home


def test_offline_download_says_what_to_put_where(tmp_path):
    ckpt = PretrainedCheckpoint("x", "release X", "", (RemoteFile("x.pdparams", ("http://127.0.0.1:9/x.pdparams",)),))
    with pytest.raises(DownloadError) as err:
        download(ckpt, tmp_path)
    msg = str(err.value)
    assert "'x' (release X) is not available offline" in msg and str(tmp_path / ".x.downloads" / "x.pdparams") in msg
    assert not (tmp_path / "x").exists()  # the checkpoint's folder appears only once it is complete


def test_unknown_name_lists_the_known_ones(tmp_path):
    with pytest.raises(FileNotFoundError, match="known: albert_base_zh, "):
        resolve_pretrained("albert_huge_zh", tmp_path)


def test_every_registry_entry_is_well_formed(capsys):
    assert main(["download", "--list"]) == 0
    listing = capsys.readouterr().out
    for name, ckpt in KNOWN.items():
        assert name in listing and ckpt.files and all(f.urls[0].startswith("https://") for f in ckpt.files)
    assert "albert_base_zh_additional_36k_steps.zip" in listing


def _tar_gz(members):
    """A .tar.gz of (name, kind, payload) members, kind file, symlink or hardlink."""
    import tarfile
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(payload)
                tf.addfile(info, io.BytesIO(payload))
                continue
            info.type, info.linkname = (tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE), payload
            tf.addfile(info)
    return buf.getvalue()


def _snapshot(root, *skip):
    """path -> bytes (or the link target) of everything under root except the folders skip."""
    import os
    return {str(p.relative_to(root)): os.readlink(p) if p.is_symlink() else (p.read_bytes() if p.is_file() else None)
            for p in root.rglob("*") if not any(s in p.parents or p == s for s in skip)}


CHAIN = [("b", "symlink", "."), ("a", "symlink", "b/.."), ("c", "symlink", "a/..")]  # a = CACHE, c = its parent


@pytest.mark.parametrize("archives", [
    # one archive: the chain, then a hard link through it onto another checkpoint's marker
    {"evil.tar.gz": [("ok", "file", b"ok\n"), *CHAIN, ("a/victim/.complete", "hardlink", "ok")]},
    # two archives: the first plants the chain, the second writes through it
    {"links.tar.gz": CHAIN, "files.tar.gz": [("a/victim/model_config.json", "file", b"pwned"),
                                             ("a/victim/.complete", "file", b"ok\n"), ("c/OUTSIDE", "file", b"pwned")]},
])
def test_download_of_a_symlink_chain_fails_and_changes_nothing_outside(server, tmp_path, archives):
    from pretrained.archive import UnsafeArchiveError
    url, handler = server
    cache = tmp_path / "cache"
    (cache / "victim").mkdir(parents=True)  # another checkpoint whose download has not finished
    (cache / "victim/model_config.json").write_text("original")
    (tmp_path / "keep.txt").write_text("keep")
    for name, members in archives.items():
        handler.files[name] = _tar_gz(members)
    ckpt = PretrainedCheckpoint("evil", "a hostile release", url,
                                tuple(RemoteFile(name, (f"{url}/{name}",)) for name in archives), config={"x": 1})
    ours = (cache / "evil", cache / ".evil.downloads", cache / ".evil.unpacking")
    before = _snapshot(tmp_path, *ours)
    with pytest.raises(UnsafeArchiveError, match=r"(evil|links)\.tar\.gz: .*symbolic link"):
        download(ckpt, cache)
    assert _snapshot(tmp_path, *ours) == before
    assert not (cache / "evil").exists() and not (cache / ".evil.unpacking").exists()
    assert sorted(p.name for p in (cache / ".evil.downloads").iterdir()) == sorted(archives)  # kept for a retry


def test_an_archive_planting_its_own_complete_marker_never_makes_a_partial_download_look_finished(server, tmp_path):
    url, handler = server
    handler.files["part1.tar.gz"] = _tar_gz([(".complete", "file", b"ok\n"), ("model_config.json", "file", b"{}")])
    ckpt = PretrainedCheckpoint("two", "a release in two files", url,
                                (RemoteFile("part1.tar.gz", (f"{url}/part1.tar.gz",)),
                                 RemoteFile("weights.bin", (f"{url}/weights.bin",))))
    with pytest.raises(DownloadError, match="weights.bin"):
        download(ckpt, tmp_path)  # the second file is missing on the server
    assert not (tmp_path / "two").exists()  # nothing under the checkpoint's name, marker or not
    handler.files["weights.bin"] = b"\x00" * 16
    home = download(ckpt, tmp_path)
    assert (home / "weights.bin").read_bytes() == b"\x00" * 16 and (home / COMPLETE).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["two"]
