"""One training run per output directory: an exclusive lock held for the whole run.

The lock is flock(2) on OUTPUT_DIR/train.lock: the kernel releases it when the process ends however it
ends, so a crashed run never blocks the next one (the file stays; its content only says who held it).
"""
from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import socket
from pathlib import Path
from typing import Iterator

LOCK_FILE = "train.lock"


class OutputDirBusy(ValueError):
    """Another training run holds the output directory."""


def _holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        info = json.loads(os.read(fd, 4096).decode("utf-8"))
        return f"pid {info['pid']} on {info['host']} since {info['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


@contextlib.contextmanager
def hold_output_dir(out: str | Path) -> Iterator[Path]:
    """Lock `out` (created if missing) for training, or raise OutputDirBusy naming the holder."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputDirBusy(f"{out} is being trained by {_holder(fd)} ({path} is locked); wait for that run "
                                "to end, or use another --output-dir") from None
        since = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": since}).encode("utf-8"))
        yield path
    finally:
        os.close(fd)  # releases the lock
