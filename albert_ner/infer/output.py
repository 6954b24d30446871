"""The output file of `albert-ner tag -o`: checked against the inputs, written beside it, moved into place.

Records go to a hidden temporary file in the target's directory (`.NAME.PID.tmp`), which replaces
the target only when the run has finished: a failed or interrupted run never leaves a half-written
file under the final name (an earlier output stays as it was). What an interrupted run had written
is kept as NAME.partial: complete records only. The target must not be one of the inputs (the same
file, through any name or link); inside input directories the output and its temporary and
partial files are never read (see `Artifacts`).
"""
from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import BinaryIO, Optional, Sequence

from albert_ner.writable import fsync_directory

PARTIAL_SUFFIX = ".partial"


def check_output(output: str, inputs: Sequence[str], stdin: Optional[BinaryIO] = None) -> Path:
    """The file to write for `-o output` (a symbolic link is written through), or a ValueError when it is a
    directory, its directory does not exist, or it is the same file as an input (or as stdin, for "-");
    a PermissionError when its directory is not writable."""
    if os.path.isdir(output):
        raise ValueError(f"{output}: is a directory; -o takes a file name (e.g. {os.path.join(output, 'tags.jsonl')})")
    target = Path(os.path.realpath(output))
    if not target.parent.is_dir():
        raise ValueError(f"{output}: directory {target.parent} does not exist")
    if not os.access(target.parent, os.W_OK | os.X_OK):
        raise PermissionError(f"{output}: no permission to write in {target.parent}")
    if not target.exists():
        return target
    ident = _identity(os.stat(target))
    for item in inputs:
        if item == "-":
            try:
                same = _identity(os.fstat((stdin or sys.stdin.buffer).fileno())) == ident
            except (AttributeError, OSError, ValueError):
                same = False
            if same:
                raise ValueError(f"{output}: is also the input (stdin reads it); writing it would destroy the "
                                 f"input, choose another -o")
        elif os.path.exists(item) and _identity(os.stat(item)) == ident:
            raise ValueError(f"{output}: is also an input ({item}); writing it would destroy the input, "
                             f"choose another -o")
    return target


def _identity(st: os.stat_result):
    return st.st_dev, st.st_ino


class Artifacts:
    """Whether a path is the output of a run writing `target` or one of its partial or temporary files
    (`.NAME.*.tmp`, this run's or another's): by name, or by identity (hard and symbolic links)."""

    def __init__(self, target: Path):
        self.directory, self.name = os.path.realpath(target.parent), target.name
        self.ids = set()
        for path in (target, _partial(target)):
            try:
                self.ids.add(_identity(os.stat(path)))
            except OSError:
                pass

    def __call__(self, path: str) -> bool:
        names = [os.path.abspath(path)] + ([os.path.realpath(path)] if os.path.islink(path) else [])
        for name in names:
            directory, base = os.path.split(name)
            if self._named(base) and os.path.realpath(directory) == self.directory:
                return True
        try:
            return _identity(os.stat(path)) in self.ids
        except OSError:
            return False

    def _named(self, base: str) -> bool:
        return base in (self.name, self.name + PARTIAL_SUFFIX) or (base.startswith(f".{self.name}.")
                                                                   and base.endswith(".tmp"))


def artifacts(target: Path) -> Artifacts:
    """The files a run writing `target` creates, never to be read as input (for `expand_inputs(exclude=)`)."""
    return Artifacts(target)


def _partial(target: Path) -> Path:
    return target.with_name(target.name + PARTIAL_SUFFIX)


class OutputFile:
    """A text sink for records: UTF-8 into a temporary file beside `target`; `commit()` moves it into place.

    `write` takes one whole record at a time; the bytes of complete records are counted, so that
    `keep_partial()` can cut off a record whose writing was interrupted."""

    def __init__(self, target: Path):
        self.target = Path(target)
        self.temp = self.target.parent / f".{self.target.name}.{os.getpid()}.tmp"
        fd = os.open(self.temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)  # the umask applies, as for open()
        self._file = os.fdopen(fd, "wb")
        self.complete = 0  # bytes of complete records

    def write(self, text: str) -> int:
        data = text.encode("utf-8")
        self._file.write(data)
        self.complete += len(data)
        return len(text)

    def flush(self) -> None:
        self._file.flush()

    def commit(self) -> None:
        """Make the written file the target (atomically; an existing target keeps its permission bits)."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        try:
            os.chmod(self.temp, stat.S_IMODE(os.stat(self.target).st_mode))
        except FileNotFoundError:
            pass
        os.replace(self.temp, self.target)
        fsync_directory(self.target.parent)

    def keep_partial(self) -> Optional[Path]:
        """Move the complete records written so far to TARGET.partial (the target is left alone) and return its
        path; None, with nothing left behind, when there are none or they cannot be saved whole."""
        try:
            if not self._file.closed:
                self._file.flush()
                self._file.close()
            size = os.path.getsize(self.temp)
        except (OSError, ValueError):
            self.discard()
            return None
        if size < self.complete or self.complete == 0:
            self.discard()
            return None
        if size > self.complete:
            os.truncate(self.temp, self.complete)  # a record cut by the interruption
        partial = _partial(self.target)
        os.replace(self.temp, partial)
        return partial

    def discard(self) -> None:
        """Remove the temporary file; the target is left alone."""
        try:
            self._file.close()
        except OSError:
            pass
        try:
            os.unlink(self.temp)
        except FileNotFoundError:
            pass
