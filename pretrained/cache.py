"""Resolve `--init NAME` to a local directory: download a known checkpoint once into a cache.

Layout: CACHE/NAME/ holds the unpacked release; CACHE/NAME/.complete marks a finished download,
so an interrupted one is resumed (partial files are kept as *.part) rather than trusted.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from albert_ner.data.download import DownloadError, fetch
from pretrained.archive import extract
from pretrained.registry import KNOWN, PretrainedCheckpoint

log = logging.getLogger(__name__)

COMPLETE = ".complete"
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")


def default_cache_dir() -> Path:
    """$ALBERT_NER_CACHE, else ~/.cache/albert-ner/pretrained."""
    env = os.environ.get("ALBERT_NER_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "albert-ner" / "pretrained"


def download(checkpoint: PretrainedCheckpoint, cache_dir: Path) -> Path:
    """Fetch (resuming), verify and unpack one checkpoint into cache_dir/NAME; returns that directory."""
    home = cache_dir / checkpoint.name
    if (home / COMPLETE).is_file():
        return home
    downloads = home / ".downloads"
    try:
        for remote in checkpoint.files:
            is_archive = remote.name.lower().endswith(ARCHIVE_SUFFIXES)
            path = fetch(remote, downloads if is_archive else home)
            if is_archive:
                log.info("unpacking %s into %s", path.name, home)
                extract(path, home)
    except DownloadError as exc:
        raise DownloadError(f"pretrained checkpoint {checkpoint.name!r} ({checkpoint.description}) is not "
                            f"available offline: {exc}\nOr pass --init with a local checkpoint directory.") from None
    if checkpoint.config is not None:
        (home / "model_config.json").write_text(json.dumps(checkpoint.config, indent=2) + "\n", encoding="utf-8")
    for leftover in downloads.glob("*") if downloads.is_dir() else ():
        leftover.unlink()
    if downloads.is_dir():
        downloads.rmdir()
    (home / COMPLETE).write_text("ok\n")
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
