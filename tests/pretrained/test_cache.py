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
    """Serves `files` (name -> bytes) with HTTP Range support; records the Range headers it saw."""

    files: dict = {}
    ranges: list = []

    def do_GET(self):
        body = self.files.get(self.path.lstrip("/"))
        if body is None:
            self.send_error(404)
            return
        rng = self.headers.get("Range")
        self.ranges.append(rng)
        start = int(rng.split("=")[1].rstrip("-")) if rng else 0
        if start >= len(body) and rng:
            self.send_response(416)
            self.end_headers()
            return
        self.send_response(206 if rng else 200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        self.wfile.write(body[start:])

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    RangeHandler.files, RangeHandler.ranges = {}, []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", RangeHandler
    httpd.shutdown()


def test_interrupted_download_resumes_with_a_range_request(server, tmp_path):
    url, handler = server
    payload = bytes(range(256)) * 4096  # 1 MiB
    handler.files["weights.bin"] = payload
    (tmp_path / "weights.bin.part").write_bytes(payload[:300_000])  # what an interrupted run left
    remote = RemoteFile("weights.bin", (f"{url}/weights.bin",), hashlib.sha256(payload).hexdigest())
    assert fetch(remote, tmp_path).read_bytes() == payload
    assert handler.ranges == ["bytes=300000-"]
    assert not (tmp_path / "weights.bin.part").exists()


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
    assert not (home / ".downloads").exists()
    handler.files.clear()  # cached: no second download
    assert resolve_pretrained("tiny-test", tmp_path / "cache") == home


def test_offline_download_says_what_to_put_where(tmp_path):
    ckpt = PretrainedCheckpoint("x", "release X", "", (RemoteFile("x.pdparams", ("http://127.0.0.1:9/x.pdparams",)),))
    with pytest.raises(DownloadError) as err:
        download(ckpt, tmp_path)
    msg = str(err.value)
    assert "'x' (release X) is not available offline" in msg and str(tmp_path / "x" / "x.pdparams") in msg


def test_unknown_name_lists_the_known_ones(tmp_path):
    with pytest.raises(FileNotFoundError, match="known: albert_base_zh, "):
        resolve_pretrained("albert_huge_zh", tmp_path)


def test_every_registry_entry_is_well_formed(capsys):
    assert main(["download", "--list"]) == 0
    listing = capsys.readouterr().out
    for name, ckpt in KNOWN.items():
        assert name in listing and ckpt.files and all(f.urls[0].startswith("https://") for f in ckpt.files)
    assert "albert_base_zh_additional_36k_steps.zip" in listing
