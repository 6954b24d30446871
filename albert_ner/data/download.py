"""Public data files this project can fetch: MSRA NER (BIO) and the Chinese WordPiece vocab.

Source URLs live in this one table. Offline, fetching fails with a message that names each
file and where to put it by hand.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Dict, Optional, Tuple

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class RemoteFile:
    """A file we know how to download, with its checksum where one is established."""

    name: str
    urls: Tuple[str, ...]
    sha256: Optional[str] = None


MSRA_FILES: Dict[str, RemoteFile] = {
    # SIGHAN 2006 MSRA NER, char-per-line BIO (45,000 train / 3,442 test sentences).
    "train.txt": RemoteFile("train.txt", (
        "https://raw.githubusercontent.com/OYE93/Chinese-NLP-Corpus/master/NER/MSRA/msra_train_bio.txt",)),
    "test.txt": RemoteFile("test.txt", (
        "https://raw.githubusercontent.com/OYE93/Chinese-NLP-Corpus/master/NER/MSRA/msra_test_bio.txt",),
        sha256="2be8e580bcb22e9086e4403d82a7ec0f6e18019ebef35b0fd52941724bdf89a3"),
}

WORDPIECE_VOCAB = RemoteFile("vocab.txt", (
    "https://raw.githubusercontent.com/brightmart/albert_zh/master/albert_config/vocab.txt",),
    sha256="45bbac6b341c319adc98a532532882e91a9cefc0329aa57bac9ae761c27b291c")


class DownloadError(RuntimeError):
    """A file could not be fetched; the message says what to put where."""


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _download(url: str, part: Path, timeout: float) -> None:
    """Stream url into `part`, resuming after the bytes already there when the server allows ranges."""
    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        resp = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code != 416 or not have:  # 416: the range starts at the end, i.e. the file is complete
            raise
        return
    with resp:
        resumed = bool(have) and getattr(resp, "status", None) == 206
        if have and not resumed:
            log.info("%s: the server does not resume; downloading from the start", url)
        size = resp.headers.get("Content-Length")
        total = (int(size) + (have if resumed else 0)) if size and size.isdigit() else None
        log.info("downloading %s -> %s%s", url, part.with_suffix(""),
                 f" (resuming at {have:,} bytes)" if resumed else "")
        from tqdm import tqdm

        with open(part, "ab" if resumed else "wb") as out, tqdm(
                total=total, initial=have if resumed else 0, unit="B", unit_scale=True, disable=None,
                desc=part.name[:-len(".part")], mininterval=2.0) as bar:
            while chunk := resp.read(1 << 20):
                out.write(chunk)
                bar.update(len(chunk))


def fetch(remote: RemoteFile, dest_dir: str | Path, timeout: float = 30.0) -> Path:
    """Download `remote` into dest_dir (atomically, checksum-verified) unless it is already there.

    An interrupted download leaves `NAME.part`; the next call resumes it with an HTTP range request.
    """
    dest = Path(dest_dir) / remote.name
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    errors = []
    for url in remote.urls:
        try:
            _download(url, part, timeout)
        except (urllib.error.URLError, OSError) as exc:
            errors.append(f"{url}: {exc}")
            continue
        if remote.sha256 and sha256_of(part) != remote.sha256:
            part.unlink()
            errors.append(f"{url}: sha256 mismatch (expected {remote.sha256})")
            continue
        os.replace(part, dest)
        return dest
    raise DownloadError(
        f"could not download {remote.name} ({'; '.join(errors)}).\n"
        f"Put the file there by hand: {dest}\n  (source: {remote.urls[0]})")


def ensure_msra(data_dir: str | Path) -> Dict[str, Path]:
    """train.txt and test.txt of MSRA in data_dir, downloading the missing ones."""
    return {name: fetch(remote, data_dir) for name, remote in MSRA_FILES.items()}
