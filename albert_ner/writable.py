"""Where a command writes: checked before any work is done, and cleared of unfinished checkpoint files after a
failed write (TensorFlow-free).

A wrong output path should fail in a second with one clear line, not after a model is loaded or
trained. The errors are the OSError subclasses the write itself would raise, with messages naming
the option and the path.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import List, Union

PathLike = Union[str, "os.PathLike[str]"]
# What a TensorFlow checkpoint write leaves while it runs: PREFIX_temp/ holding part-NNNNN-of-NNNNN.* files
# (e.g. weights/model_temp/, checkpoints/ckpt-12_temp/); a write that fails (full disk) leaves it behind.
CHECKPOINT_TEMP_DIR = re.compile(r".+_temp$")
CHECKPOINT_TEMP_PART = re.compile(r"^part-\d+-of-\d+(\..*)?$")


def _nearest_existing(path: Path) -> Path:
    """`path` itself or its closest ancestor that exists (the folder a new path would be created in)."""
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path(".")  # a relative path whose first part is missing: created in the working directory


def _check_creatable(path: Path, what: str) -> None:
    """`path` (missing) can be created: its nearest existing ancestor is a folder we may write in."""
    base = _nearest_existing(path.parent)
    if not base.is_dir():
        raise NotADirectoryError(f"{what} {path}: {base} is a file, not a directory")
    if not os.access(base, os.W_OK | os.X_OK):
        raise PermissionError(f"{what} {path}: no permission to create it in {base}")


def check_output_dir(path: PathLike, what: str, *, empty: bool = False) -> Path:
    """`path` is a directory we may write in, or can be created; with `empty`, an existing one holds nothing.

    `what` names the option in messages (e.g. "--output-dir")."""
    p = Path(path)
    if os.path.lexists(p):
        if not p.is_dir():
            raise NotADirectoryError(f"{what} {p}: exists and is not a directory")
        if not os.access(p, os.W_OK | os.X_OK):
            raise PermissionError(f"{what} {p}: no permission to write in this directory")
        if empty and any(p.iterdir()):
            raise FileExistsError(f"{what} {p}: exists and is not empty")
        return p
    _check_creatable(p, what)
    return p


def check_output_file(path: PathLike, what: str) -> Path:
    """`path` is a file we may overwrite, or can be created (its folder exists or can be made)."""
    p = Path(path)
    if os.path.lexists(p):
        if p.is_dir():
            raise IsADirectoryError(f"{what} {p}: is a directory, not a file")
        if not os.access(p, os.W_OK):
            raise PermissionError(f"{what} {p}: no permission to write it")
        return p
    _check_creatable(p, what)
    return p


def check_input_file(path: PathLike, what: str) -> Path:
    """`path` is a readable file (not a directory)."""
    p = Path(path)
    if p.is_dir():
        raise IsADirectoryError(f"{what} {p}: is a directory, not a file")
    if not p.is_file():
        raise FileNotFoundError(f"{what} {p}: no such file")
    if not os.access(p, os.R_OK):
        raise PermissionError(f"{what} {p}: no permission to read it")
    return p


def remove_checkpoint_temps(directory: PathLike, depth: int = 3) -> List[Path]:
    """Delete the `PREFIX_temp/` folders of unfinished checkpoint writes in `directory` (and `depth - 1` levels
    below); returns them. Only folders that hold nothing but checkpoint parts are touched."""
    removed: List[Path] = []
    root = Path(directory)
    if not root.is_dir():
        return removed
    level = [root]
    for _ in range(depth):
        below = []
        for folder in level:
            for entry in sorted(folder.iterdir()):
                if not entry.is_dir() or entry.is_symlink():
                    continue
                if CHECKPOINT_TEMP_DIR.match(entry.name) and all(
                        p.is_file() and CHECKPOINT_TEMP_PART.match(p.name) for p in entry.iterdir()):
                    shutil.rmtree(entry)
                    removed.append(entry)
                else:
                    below.append(entry)
        level = below
    return removed


def fsync_directory(folder: Union[str, Path]) -> None:
    """Make a directory's entries (a rename into it) durable; a no-op where directories cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
