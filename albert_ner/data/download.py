"""Public data files this project can fetch: MSRA NER (BIO) and the Chinese WordPiece vocab.

Source URLs live in this one table. Offline, fetching fails with a message that names each
file and where to put it by hand. A download is checked against the server's stated length and,
where recorded, the file's published size and sha256; a resumed one only ever appends the bytes
that follow the ones already held.
"""
from __future__ import annotations

import dataclasses
import hashlib
import http.client
import logging
import os
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Dict, Optional, Tuple

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class RemoteFile:
    """A file we know how to download, with its size and checksum where they are established."""

    name: str
    urls: Tuple[str, ...]
    sha256: Optional[str] = None
    size: Optional[int] = None  # bytes

    def verification(self) -> str:
        """What a download of this file is checked against, in words (for `albert-ner download --list`)."""
        checks = [what for what, value in (("sha256", self.sha256), ("size", self.size)) if value is not None]
        return " + ".join(checks) if checks else "server length only (nothing published)"


MSRA_FILES: Dict[str, RemoteFile] = {
    # SIGHAN 2006 MSRA NER, char-per-line BIO (45,000 train / 3,442 test sentences).
    # train.txt: nothing recorded. The shared copy (../shared/data/msra/README.md) comes from another
    # repository and is not byte-identical to this URL's file (different git blob), so its size and
    # sha256 say nothing about what this URL serves.
    "train.txt": RemoteFile("train.txt", (
        "https://raw.githubusercontent.com/OYE93/Chinese-NLP-Corpus/master/NER/MSRA/msra_train_bio.txt",)),
    # test.txt: the shared copy is this URL's file byte for byte (same git blob fe64ea31..., see
    # ../shared/data/msra/README.md); sha256 and size are those of that copy.
    "test.txt": RemoteFile("test.txt", (
        "https://raw.githubusercontent.com/OYE93/Chinese-NLP-Corpus/master/NER/MSRA/msra_test_bio.txt",),
        sha256="2be8e580bcb22e9086e4403d82a7ec0f6e18019ebef35b0fd52941724bdf89a3", size=1_119_341),
}

# The same git blob (ca4f9781...) as ../shared/pretrained/vocab.txt: 109,540 bytes, sha256 below
# (../shared/pretrained/README.md).
WORDPIECE_VOCAB = RemoteFile("vocab.txt", (
    "https://raw.githubusercontent.com/brightmart/albert_zh/master/albert_config/vocab.txt",),
    sha256="45bbac6b341c319adc98a532532882e91a9cefc0329aa57bac9ae761c27b291c", size=109_540)


class DownloadError(RuntimeError):
    """A file could not be fetched; the message says what to put where."""


class IncompleteDownload(OSError):
    """The body ended before the stated length; the partial file is kept so the next call resumes it."""


class BadDownload(OSError):
    """What arrived is not the file (not the size stated or published); the partial file has been discarded."""


class _StalePart(Exception):
    """The server's reply does not continue the bytes held: they are discarded and the file fetched afresh."""


_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)\s*$", re.IGNORECASE)


def parse_content_range(value: Optional[str]) -> Optional[Tuple[Optional[int], Optional[int], Optional[int]]]:
    """`bytes START-END/TOTAL` or `bytes */TOTAL` -> (start, end, total), None where a part is not stated.

    None when the header is absent or unreadable."""
    m = _CONTENT_RANGE.match(value or "")
    if not m:
        return None
    start, end, total = m.groups()
    return (int(start) if start else None, int(end) if end else None,
            int(total) if total and total != "*" else None)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _size_of(path: Path) -> int:
    return path.stat().st_size if path.is_file() else 0


def _discard(part: Path) -> None:
    if part.exists():
        part.unlink()


def _stream(url: str, part: Path, timeout: float, expected_size: Optional[int]) -> None:
    """One request: resume after the bytes in `part` (or start it), then check the length that arrived.

    Raises _StalePart when the held bytes cannot be continued, IncompleteDownload when the body is cut
    short (part kept), BadDownload when the file is not the size it must be (part discarded).
    """
    have = _size_of(part)
    if expected_size is not None and have > expected_size:
        raise _StalePart(f"{have:,} bytes held, more than the file's {expected_size:,}")
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        resp = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code != 416 or not have:
            raise
        # 416: nothing at or after byte `have`. The file is complete only if its total is exactly `have`.
        rng = parse_content_range(exc.headers.get("Content-Range"))
        total = rng[2] if rng else None
        known = total if total is not None else expected_size
        if known == have:
            _check_length(url, part, total, expected_size)  # a stated total must still be the published size
            return
        raise _StalePart(f"the server refused a resume at byte {have:,} (416; its total: "
                         f"{'not stated' if total is None else f'{total:,} bytes'})") from None
    with resp:
        status = getattr(resp, "status", None)
        if status == 206:
            rng = parse_content_range(resp.headers.get("Content-Range"))
            start = rng[0] if rng else None
            if start is None:
                raise _StalePart(f"a partial reply (206) without a usable Content-Range "
                                 f"({resp.headers.get('Content-Range')!r})")
            if start not in (have, 0):
                raise _StalePart(f"asked to resume at byte {have:,}, the server sent bytes from {start:,}")
            if start == 0 and have:
                log.info("%s: the server restarted at byte 0; downloading from the start", url)
            offset, total = start, rng[2]
        else:
            if have:
                log.info("%s: the server does not resume; downloading from the start", url)
            length = resp.headers.get("Content-Length")
            offset, total = 0, int(length) if length and length.isdigit() else None
        if total is not None and expected_size is not None and total != expected_size:
            _discard(part)
            raise BadDownload(f"{part.name[:-len('.part')]}: size mismatch: the registry expects "
                              f"{expected_size:,} bytes, the server says {total:,} ({url})")
        log.info("downloading %s -> %s%s", url, part.with_suffix(""),
                 f" (resuming at {offset:,} bytes)" if offset else "")
        from tqdm import tqdm

        with open(part, "ab" if offset else "wb") as out, tqdm(
                total=total, initial=offset, unit="B", unit_scale=True, disable=None,
                desc=part.name[:-len(".part")], mininterval=2.0) as bar:
            try:
                while chunk := resp.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
            except http.client.HTTPException as exc:  # e.g. a chunked body cut short
                out.write(getattr(exc, "partial", b""))  # IncompleteRead carries what did arrive
                raise IncompleteDownload(f"{part.name[:-len('.part')]}: the connection broke after "
                                         f"{out.tell():,} bytes ({exc!r}); {part} is kept and the next run "
                                         f"resumes it ({url})") from None
    _check_length(url, part, total, expected_size)


def _check_length(url: str, part: Path, total: Optional[int], expected_size: Optional[int]) -> None:
    """After a body: fewer bytes than stated -> keep the part to resume; more, or not the published size -> discard."""
    name, got = part.name[:-len(".part")], _size_of(part)
    target = total if total is not None else expected_size
    if target is not None and got < target:
        raise IncompleteDownload(f"{name}: the connection closed after {got:,} of {target:,} bytes; "
                                 f"{part} is kept and the next run resumes it ({url})")
    if total is not None and got != total:
        _discard(part)
        raise BadDownload(f"{name}: received {got:,} bytes, the server stated {total:,} ({url})")
    if expected_size is not None and got != expected_size:
        _discard(part)
        raise BadDownload(f"{name}: size mismatch: the registry expects {expected_size:,} bytes, "
                          f"got {got:,} ({url})")


def _download(url: str, part: Path, timeout: float, expected_size: Optional[int] = None) -> None:
    """Stream url into `part`, resuming after the bytes already there when the server continues them.

    A reply that does not continue those bytes (a resume answered from another offset, a 416 whose
    total disagrees, a part longer than the file) discards them and downloads afresh, once.
    """
    try:
        _stream(url, part, timeout, expected_size)
    except _StalePart as exc:
        log.warning("%s: %s; discarding %s and downloading from the start", url, exc, part.name)
        _discard(part)
        try:
            _stream(url, part, timeout, expected_size)
        except _StalePart as again:  # without a Range header this means a 206 from the wrong offset
            _discard(part)
            raise BadDownload(f"{part.name[:-len('.part')]}: {again} ({url})") from None


def fetch(remote: RemoteFile, dest_dir: str | Path, timeout: float = 30.0) -> Path:
    """Download `remote` into dest_dir (atomically, size- and checksum-verified) unless it is already there.

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
            _download(url, part, timeout, remote.size)
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            errors.append(f"{url}: {exc}")
            continue
        if remote.sha256 and (got := sha256_of(part)) != remote.sha256:
            part.unlink()
            errors.append(f"{url}: sha256 mismatch (expected {remote.sha256}, got {got})")
            continue
        os.replace(part, dest)
        return dest
    published = ", ".join(f"{what} {value}" for what, value in (
        ("size", f"{remote.size:,} bytes" if remote.size is not None else None),
        ("sha256", remote.sha256)) if value)
    raise DownloadError(
        f"could not download {remote.name} ({'; '.join(errors)}).\n"
        f"Put the file there by hand: {dest}\n  (source: {remote.urls[0]}"
        f"{'; ' + published if published else ''})")


def ensure_msra(data_dir: str | Path) -> Dict[str, Path]:
    """train.txt and test.txt of MSRA in data_dir, downloading the missing ones."""
    return {name: fetch(remote, data_dir) for name, remote in MSRA_FILES.items()}
