"""Resolve `--init NAME` to a local directory: download a known checkpoint once into a cache.

Layout: CACHE/NAME/ holds the unpacked release and exists only once it is complete (with
CACHE/NAME/.complete). Files download into CACHE/.NAME.downloads/ (partial ones as *.part, resumed
on the next call) and are unpacked into CACHE/.NAME.unpacking/, which is renamed to CACHE/NAME only
after every file was fetched, verified and unpacked: nothing an archive holds (a `.complete` of its
own, say) can make a half-unpacked folder look finished.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from albert_ner.data.download import DownloadError, fetch
from pretrained.archive import extract
from pretrained.registry import KNOWN, PretrainedCheckpoint

log = logging.getLogger(__name__)

COMPLETE = ".complete"
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


def download(checkpoint: PretrainedCheckpoint, cache_dir: Path) -> Path:
    """Fetch (resuming), verify and unpack one checkpoint into cache_dir/NAME; returns that directory."""
    cache_dir = Path(cache_dir)
    home = cache_dir / checkpoint.name
    if (home / COMPLETE).is_file():
        return home
    downloads = cache_dir / f".{checkpoint.name}.downloads"
    staging = cache_dir / f".{checkpoint.name}.unpacking"
    try:
        fetched = [fetch(remote, downloads) for remote in checkpoint.files]
    except DownloadError as exc:
        raise DownloadError(f"pretrained checkpoint {checkpoint.name!r} ({checkpoint.description}) is not "
                            f"available offline: {exc}\nOr pass --init with a local checkpoint directory.") from None
    _remove_tree(staging)  # what an interrupted earlier unpacking left
    staging.mkdir(parents=True)
    try:
        for path in fetched:
            if path.name.lower().endswith(ARCHIVE_SUFFIXES):
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


def resolve_pretrained(name_or_path: str, cache_dir: str | Path | None = None) -> Path:
    """A local path as is; a known checkpoint name -> its cached directory (downloaded if needed)."""
    path = Path(name_or_path)
    if path.exists():
        return path
    if name_or_path in KNOWN:
        return download(KNOWN[name_or_path], Path(cache_dir) if cache_dir else default_cache_dir())
    raise FileNotFoundError(f"{name_or_path}: neither a local checkpoint path nor a known pretrained model "
                            f"(known: {', '.join(KNOWN)})")
