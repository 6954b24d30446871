"""Safe archive extraction: nothing lands outside the target directory, and no link is ever created.

The whole extraction is planned as path arithmetic on the member names before anything is written:
every name must stay inside the target (no absolute paths, no `..`); a symbolic or hard link is
followed member to member inside the archive and becomes a plain copy of the regular file it names,
while a link to anything else (outside, absolute, dangling, a folder, a loop) is refused, as are a
member stored under a link or a file, a duplicate name, a device or FIFO, more than `max_members`
members or more than `max_bytes` bytes. A refused archive writes nothing, and its error names the
archive and the member. Writing then never follows a link on disk: a path the archive writes that is
already a symbolic link inside the target (left by an earlier run or made by hand) is refused before
anything is written; each file is created new (O_EXCL, O_NOFOLLOW), filled with at most the size its
header declares, and renamed into place; a failure while writing removes what this run created.
"""
from __future__ import annotations

import contextlib
import dataclasses
import gzip
import lzma
import os
import secrets
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Callable, Dict, IO, List, Tuple

MAX_MEMBERS = 100_000
MAX_BYTES = 64 << 30  # 64 GiB unpacked, link copies included
MAX_LINK_DEPTH = 40  # links followed from one link before it counts as a loop
MAX_LINK_NAME = 4096  # bytes of a zip symbolic link's target
_CHUNK = 1 << 20
_LINKS = ("symlink", "hardlink")
_KIND = {"file": "file", "dir": "folder", "symlink": "symbolic link", "hardlink": "hard link"}
_READ_ERRORS = (tarfile.TarError, zipfile.BadZipFile, zlib.error, EOFError, lzma.LZMAError, gzip.BadGzipFile)
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
_READ_OWN = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)

Parts = Tuple[str, ...]


class UnsafeArchiveError(ValueError):
    """An archive would write outside its target, holds more than plain files, folders and links to its
    own files, exceeds a limit, or cannot be read as its headers declare."""


@dataclasses.dataclass(frozen=True, eq=False)
class _Member:
    name: str  # as stored in the archive, for messages
    parts: Parts  # normalised path inside the target; () is the target itself
    kind: str  # a key of _KIND
    size: int = 0  # declared bytes of a file
    linkname: str = ""
    handle: object = None  # the TarInfo / ZipInfo


@dataclasses.dataclass
class _Plan:
    dirs: List[Parts]  # parents first, the target itself excluded
    files: List[_Member]
    copies: List[Tuple[_Member, _Member]]  # (link member, the file member it becomes a copy of)


def _is_absolute(name: str) -> bool:
    return name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":")


def _normalise(archive: Path, name: str) -> Parts:
    """A member name as path parts inside the target (`.`, empty parts and trailing slashes dropped)."""
    if "\0" in name:
        raise UnsafeArchiveError(f"{archive}: member {name!r} has a NUL byte in its name")
    if _is_absolute(name):
        raise UnsafeArchiveError(f"{archive}: member {name!r} has an absolute path")
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if ".." in parts:
        raise UnsafeArchiveError(f"{archive}: member {name!r} climbs out with '..'")
    return parts


def _resolve(archive: Path, link: _Member, by_path: Dict[Parts, _Member], dirs: Dict[Parts, None]) -> _Member:
    """The regular file member a link names, following links member to member inside the archive only."""
    current, seen = link, set()

    def refuse(reason: str) -> UnsafeArchiveError:
        via = f" (followed from {link.name!r})" if current is not link else ""
        return UnsafeArchiveError(f"{archive}: {_KIND[current.kind]} {current.name!r} -> {current.linkname!r} "
                                  f"{reason}{via}")

    for _ in range(MAX_LINK_DEPTH):
        if current.parts in seen:
            raise refuse("is part of a loop of links")
        seen.add(current.parts)
        if not current.linkname or "\0" in current.linkname:
            raise refuse("has an empty or malformed target")
        if _is_absolute(current.linkname):
            raise refuse("points outside the target (an absolute path)")
        # a symbolic link is relative to its folder, a tar hard link to the archive root
        parts = list(current.parts[:-1]) if current.kind == "symlink" else []
        steps = PurePosixPath(current.linkname.replace("\\", "/")).parts
        for i, step in enumerate(steps):
            if step != "..":
                parts.append(step)
            elif parts:
                parts.pop()
            else:
                raise refuse("points outside the target")
            if i < len(steps) - 1 and step != ".." and tuple(parts) not in dirs:
                holder = by_path.get(tuple(parts))
                what = f"a {_KIND[holder.kind]}" if holder else "not in the archive"
                raise refuse(f"goes through {'/'.join(parts)!r}, which is {what}, not a folder of the archive")
        final = tuple(parts)
        if final in dirs:
            raise refuse("points at a folder; only links to files of the archive are unpacked (as copies)")
        target = by_path.get(final)
        if target is None:
            raise refuse("names no member of the archive")
        if target.kind == "file":
            return target
        current = target
    raise refuse(f"starts a chain of more than {MAX_LINK_DEPTH} links")


def _plan(archive: Path, members: List[_Member], max_bytes: int) -> _Plan:
    """Every member's final place inside the target, links resolved to copies; refuses before any write."""
    by_path: Dict[Parts, _Member] = {}
    for m in members:
        if not m.parts and m.kind != "dir":
            raise UnsafeArchiveError(f"{archive}: member {m.name!r} ({_KIND[m.kind]}) has no name")
        seen = by_path.setdefault(m.parts, m)
        if seen is not m and not seen.kind == m.kind == "dir":
            raise UnsafeArchiveError(f"{archive}: member {m.name!r} is a duplicate: the archive holds a "
                                     f"{_KIND[seen.kind]} {seen.name!r} and a {_KIND[m.kind]} {m.name!r} at one path")
    dirs: Dict[Parts, None] = {(): None}  # an ordered set, parents first
    for m in members:
        for i in range(1, len(m.parts)):
            holder = by_path.get(m.parts[:i])
            if holder is not None and holder.kind != "dir":
                raise UnsafeArchiveError(f"{archive}: member {m.name!r} lies under {holder.name!r}, which is a "
                                         f"{_KIND[holder.kind]}, not a folder")
            dirs[m.parts[:i]] = None
        if m.kind == "dir":
            dirs[m.parts] = None
    files = [m for m in members if m.kind == "file"]
    copies = [(m, _resolve(archive, m, by_path, dirs)) for m in members if m.kind in _LINKS]
    total = sum(m.size for m in files) + sum(source.size for _, source in copies)
    if total > max_bytes:
        raise UnsafeArchiveError(f"{archive}: members unpack to {total} bytes (link copies included), over the "
                                 f"limit of {max_bytes} bytes")
    return _Plan([d for d in dirs if d], files, copies)


def _check_disk(archive: Path, root: str, plan: _Plan) -> None:
    """Refuse, before writing, a path the archive writes that is already on disk as a link or the wrong kind."""
    kinds: Dict[Parts, str] = {d: "dir" for d in plan.dirs}  # parents come before their contents
    kinds.update((m.parts, "file") for m in plan.files)
    kinds.update((m.parts, "file") for m, _ in plan.copies)
    for parts, kind in kinds.items():
        path = os.path.join(root, *parts)
        try:
            mode = os.lstat(path).st_mode
        except (FileNotFoundError, NotADirectoryError):
            continue
        if stat.S_ISLNK(mode):
            raise UnsafeArchiveError(f"{archive}: {path} is already a symbolic link on disk; refusing to unpack "
                                     f"through it (remove it and retry)")
        if stat.S_ISDIR(mode) != (kind == "dir"):
            found = "folder" if stat.S_ISDIR(mode) else "file"
            raise UnsafeArchiveError(f"{archive}: {path} is already on disk as a {found}; the archive has a "
                                     f"{_KIND[kind]} there")


def _copy_stream(archive: Path, name: str, src: IO[bytes], dst: IO[bytes], limit: int) -> int:
    """Copy src to dst; a member yielding more than its declared `limit` bytes is refused (zip bomb guard)."""
    written = 0
    while True:
        try:
            chunk = src.read(_CHUNK)
        except _READ_ERRORS as exc:
            raise UnsafeArchiveError(f"{archive}: member {name!r} cannot be read ({exc})") from exc
        if not chunk:
            return written
        written += len(chunk)
        if written > limit:
            raise UnsafeArchiveError(f"{archive}: member {name!r} yields more than its declared {limit} bytes")
        dst.write(chunk)


class _Writer:
    """Creates folders and files under root, never through a link on disk; remembers what it made."""

    def __init__(self, archive: Path, root: str):
        self.archive, self.root = archive, root
        self.made_dirs: List[str] = []
        self.made_files: List[str] = []

    def path(self, parts: Parts) -> str:
        return os.path.join(self.root, *parts)

    def mkdir(self, parts: Parts) -> None:
        path = self.path(parts)
        try:
            os.mkdir(path)
            self.made_dirs.append(path)
        except FileExistsError:
            pass
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            raise UnsafeArchiveError(f"{self.archive}: {path} is not a folder (it changed on disk while unpacking)")

    def write(self, member: _Member, src: IO[bytes], limit: int) -> None:
        """A new file beside the destination, filled, then renamed over it: an old file or hard link is replaced."""
        path = self.path(member.parts)
        existed = os.path.lexists(path)
        for _ in range(8):
            tmp = os.path.join(os.path.dirname(path), f".unpacking-{secrets.token_hex(8)}")
            try:
                fd = os.open(tmp, _NEW_FILE, 0o666)
                break
            except FileExistsError:
                continue
        else:
            raise FileExistsError(f"{self.archive}: no free temporary name beside {path}")
        try:
            with os.fdopen(fd, "wb") as dst:
                _copy_stream(self.archive, member.name, src, dst, limit)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        if not existed:
            self.made_files.append(path)

    def undo(self) -> None:
        for path in reversed(self.made_files):
            with contextlib.suppress(OSError):
                os.unlink(path)
        for path in reversed(self.made_dirs):
            with contextlib.suppress(OSError):
                os.rmdir(path)


def _unpack(archive: Path, target: Path, members: List[_Member],
            open_member: Callable[[_Member], IO[bytes]], max_bytes: int) -> List[Path]:
    """Plan, check the disk, then write folders, files and link copies; returns the files written."""
    plan = _plan(archive, members, max_bytes)
    made_target = not target.exists()
    if not made_target:
        if not target.is_dir():
            raise NotADirectoryError(f"{target}: cannot unpack {archive} here, it is not a folder")
        _check_disk(archive, os.path.realpath(target), plan)
    target.mkdir(parents=True, exist_ok=True)
    writer = _Writer(archive, os.path.realpath(target))
    try:
        for parts in plan.dirs:
            writer.mkdir(parts)
        for m in plan.files:
            with open_member(m) as src:
                writer.write(m, src, m.size)
        for link, source in plan.copies:
            with os.fdopen(os.open(writer.path(source.parts), _READ_OWN), "rb") as src:
                writer.write(link, src, source.size)
    except BaseException:
        writer.undo()
        if made_target:
            with contextlib.suppress(OSError):
                target.rmdir()
        raise
    return [target.joinpath(*m.parts) for m in members if m.kind != "dir"]


def _too_many(archive: Path, max_members: int) -> UnsafeArchiveError:
    return UnsafeArchiveError(f"{archive}: more than {max_members} members (the limit)")


def _zip_member(archive: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> _Member:
    parts = _normalise(archive, info.filename)
    mode = info.external_attr >> 16
    if info.is_dir() or stat.S_ISDIR(mode):
        return _Member(info.filename, parts, "dir", handle=info)
    if info.flag_bits & 0x1:
        raise UnsafeArchiveError(f"{archive}: member {info.filename!r} is encrypted")
    if stat.S_ISLNK(mode):
        if info.file_size > MAX_LINK_NAME:
            raise UnsafeArchiveError(f"{archive}: symbolic link {info.filename!r} has a target of "
                                     f"{info.file_size} bytes")
        try:
            linkname = zf.read(info).decode("utf-8")
        except (UnicodeDecodeError, *_READ_ERRORS) as exc:
            raise UnsafeArchiveError(f"{archive}: symbolic link {info.filename!r} cannot be read ({exc})") from exc
        return _Member(info.filename, parts, "symlink", linkname=linkname, handle=info)
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG):
        raise UnsafeArchiveError(f"{archive}: member {info.filename!r} is a device, FIFO or other special file")
    return _Member(info.filename, parts, "file", info.file_size, handle=info)


def _under(archive: Path, members: List[_Member], subdir: str) -> List[_Member]:
    """The members inside folder `subdir` of the archive, their paths made relative to it."""
    prefix = _normalise(archive, subdir)
    if not prefix:
        return members
    inside = [dataclasses.replace(m, parts=m.parts[len(prefix):]) for m in members
              if m.parts[:len(prefix)] == prefix]
    if not any(m.kind != "dir" for m in inside):
        raise FileNotFoundError(f"{archive}: holds no file under {'/'.join(prefix)}/")
    return inside


def extract_zip(archive: Path, target: Path, *, max_members: int = MAX_MEMBERS,
                max_bytes: int = MAX_BYTES, subdir: str = "") -> List[Path]:
    """Extract a zip into target after checking every member; symbolic links to its files become copies.

    With `subdir`, only what lies under that folder of the archive is written, into target itself (every
    member is still checked; a link from inside the folder to a file outside it is refused)."""
    archive, target = Path(archive), Path(target)
    try:
        zf = zipfile.ZipFile(archive)
    except _READ_ERRORS as exc:
        raise UnsafeArchiveError(f"{archive}: cannot be read as a zip archive ({exc})") from exc
    with zf:
        infos = zf.infolist()
        if len(infos) > max_members:
            raise _too_many(archive, max_members)
        members = _under(archive, [_zip_member(archive, zf, info) for info in infos], subdir)
        return _unpack(archive, target, members, lambda m: zf.open(m.handle), max_bytes)


def _tar_members(archive: Path, tf: tarfile.TarFile, max_members: int) -> List[_Member]:
    out: List[_Member] = []
    while True:
        try:
            info = tf.next()
        except _READ_ERRORS as exc:
            raise UnsafeArchiveError(f"{archive}: cannot be read as a tar archive ({exc})") from exc
        if info is None:
            return out
        if len(out) >= max_members:
            raise _too_many(archive, max_members)
        parts = _normalise(archive, info.name)
        if info.isfile():
            out.append(_Member(info.name, parts, "file", info.size, handle=info))
        elif info.isdir():
            out.append(_Member(info.name, parts, "dir", handle=info))
        elif info.issym() or info.islnk():
            kind = "symlink" if info.issym() else "hardlink"
            out.append(_Member(info.name, parts, kind, linkname=info.linkname, handle=info))
        else:
            raise UnsafeArchiveError(f"{archive}: member {info.name!r} is a device, FIFO or other special file")


def extract_tar(archive: Path, target: Path, *, max_members: int = MAX_MEMBERS,
                max_bytes: int = MAX_BYTES) -> List[Path]:
    """Extract a (compressed) tar into target after checking every member; links to its files become copies."""
    archive, target = Path(archive), Path(target)
    try:
        tf = tarfile.open(archive)
    except _READ_ERRORS as exc:
        raise UnsafeArchiveError(f"{archive}: cannot be read as a tar archive ({exc})") from exc
    with tf:
        members = _tar_members(archive, tf, max_members)
        return _unpack(archive, target, members, lambda m: tf.extractfile(m.handle), max_bytes)


def extract(archive: Path, target: Path, *, max_members: int = MAX_MEMBERS,
            max_bytes: int = MAX_BYTES) -> List[Path]:
    """Extract a .zip, .tar(.gz, .bz2, .xz) or .tgz archive safely into target; returns the files written."""
    name = Path(archive).name.lower()
    if name.endswith(".zip"):
        return extract_zip(archive, target, max_members=max_members, max_bytes=max_bytes)
    if name.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")):
        return extract_tar(archive, target, max_members=max_members, max_bytes=max_bytes)
    raise ValueError(f"{archive}: not a known archive type (.zip, .tar, .tar.gz, .tgz, .tar.bz2, .tar.xz)")
