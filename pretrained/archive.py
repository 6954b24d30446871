"""Safe archive extraction: nothing lands outside the target directory.

Members with absolute paths or `..` components, links that point outside the target, and device
or FIFO entries are refused with an error naming the archive and the member; nothing is written
for a refused archive (members are checked before any is extracted).
"""
from __future__ import annotations

import os
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import List


class UnsafeArchiveError(ValueError):
    """An archive member would escape the target directory or is not a plain file/dir/link."""


def _check_name(archive: Path, name: str) -> PurePosixPath:
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchiveError(f"{archive}: member {name!r} has an absolute path")
    if ".." in p.parts:
        raise UnsafeArchiveError(f"{archive}: member {name!r} climbs out with '..'")
    return p


def _inside(target: Path, path: Path) -> bool:
    target = Path(os.path.realpath(target))
    return os.path.commonpath([target, os.path.realpath(path)]) == str(target)


def _write(src, dest: Path) -> Path:
    """Stream one member's bytes into dest (its folders created)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
    return dest


def extract_zip(archive: Path, target: Path) -> List[Path]:
    """Extract a zip into target after checking every member; symbolic links are refused."""
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:
            _check_name(archive, info.filename)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise UnsafeArchiveError(f"{archive}: member {info.filename!r} is a symbolic link")
        target.mkdir(parents=True, exist_ok=True)
        out = []
        for info in infos:
            dest = target / _check_name(archive, info.filename)
            if info.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            with zf.open(info) as src:
                out.append(_write(src, dest))
    return out


def extract_tar(archive: Path, target: Path) -> List[Path]:
    """Extract a (compressed) tar into target after checking every member, links included."""
    with tarfile.open(archive) as tf:
        members = tf.getmembers()
        for m in members:
            rel = _check_name(archive, m.name)
            if m.issym() or m.islnk():
                base = (target / rel).parent if m.issym() else target
                link = PurePosixPath(m.linkname)
                if link.is_absolute() or not _inside(target, base / link):
                    raise UnsafeArchiveError(f"{archive}: link {m.name!r} -> {m.linkname!r} points outside the target")
            elif not (m.isfile() or m.isdir()):
                raise UnsafeArchiveError(f"{archive}: member {m.name!r} is a device, FIFO or other special file")
        target.mkdir(parents=True, exist_ok=True)
        out = []
        for m in members:
            dest = target / _check_name(archive, m.name)
            if m.isdir():
                dest.mkdir(parents=True, exist_ok=True)
            elif m.isfile():
                with tf.extractfile(m) as src:
                    out.append(_write(src, dest))
            else:  # links, checked above; created last so that no later member is written through one
                continue
        for m in members:
            if m.issym():
                dest = target / _check_name(archive, m.name)
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(m.linkname, dest)
            elif m.islnk():
                dest = target / _check_name(archive, m.name)
                os.link(target / _check_name(archive, m.linkname), dest)
    return out


def extract(archive: Path, target: Path) -> List[Path]:
    """Extract a .zip, .tar, .tar.gz or .tgz archive safely into target."""
    name = archive.name.lower()
    if name.endswith(".zip"):
        return extract_zip(archive, target)
    if name.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")):
        return extract_tar(archive, target)
    raise ValueError(f"{archive}: not a known archive type (.zip, .tar, .tar.gz, .tgz)")
