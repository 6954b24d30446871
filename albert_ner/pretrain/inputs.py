"""Which files a pretraining corpus is (files, directories, glob patterns) and their content fingerprint.

Content decides whether preprocessed shards still fit a corpus: each file's size and sha256 in reading order,
never its absolute path or modification time, so a corpus copied afresh (a new download, `cp` without -p) or
moved resumes. Hashing reads the whole corpus, so a small cache in the output folder (HASH_CACHE: absolute path
-> size, mtime_ns, sha256) keeps restarts cheap: a file whose path, size and mtime are unchanged is not read
again. As with make or rsync, an edit that keeps both a file's size and its mtime is therefore not noticed.
"""
from __future__ import annotations

import glob as globbing
import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

from albert_ner.infer.textfiles import Input, Unreadable, expand_inputs
from albert_ner.pretrain.shards import write_atomically

log = logging.getLogger(__name__)

HASH_CACHE = "input_hashes.json"
HASH_BLOCK = 1 << 20  # bytes read at a time while hashing
SLOW_HASHING_S = 1.0  # hashing that took longer is logged at INFO


def expand_corpus(inputs: Sequence[str], glob: str = "*") -> List[Input]:
    """Files as given, directories walked (files matching `glob`), glob patterns expanded (sorted, `**` recursive);
    each file once. A pattern that matches nothing, a missing file and stdin ("-": it cannot be read again
    on resume) are errors naming the input; a file or directory that cannot be read becomes an Unreadable."""
    out: List[Input] = []
    seen = set()
    for item in inputs:
        if item == "-":
            raise ValueError("-: standard input cannot be preprocessed (it cannot be fingerprinted or read again "
                             "to resume); write it to a file first")
        if globbing.has_magic(item) and not os.path.exists(item):
            matches = sorted(globbing.glob(item, recursive=True))
            if not matches:
                raise FileNotFoundError(f"{item}: no file matches this pattern")
            found = expand_inputs(matches, glob)
        else:
            found = expand_inputs([item], glob)
        for entry in found:
            key = os.path.realpath(entry.path if isinstance(entry, Unreadable) else entry)
            if key in seen:
                log.info("%s: given more than once; read once", entry)
                continue
            seen.add(key)
            out.append(entry)
    if not out:
        raise ValueError(f"no input file in {', '.join(inputs) or '(nothing given)'}")
    return out


def corpus_fingerprint(files: Sequence[Input]) -> List[Dict[str, Any]]:
    """[{path, bytes, mtime_ns}] per file in reading order ({path, error} for one that cannot be read): what a
    file is on this disk now, read without opening it (the hash cache's key; a checkpoint's record of its corpus)."""
    out: List[Dict[str, Any]] = []
    for entry in files:
        if isinstance(entry, Unreadable):
            out.append({"path": os.path.abspath(entry.path), "error": entry.reason})
            continue
        try:
            st = os.stat(entry)
        except OSError as exc:
            out.append({"path": os.path.abspath(entry), "error": exc.strerror or str(exc)})
            continue
        out.append({"path": os.path.abspath(entry), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns})
    return out


def input_names(paths: Sequence[str]) -> List[str]:
    """Each absolute path relative to the folder all of them share (a lone file: its basename), so that the
    names stay the same wherever the corpus is copied."""
    if not paths:
        return []
    root = os.path.commonpath([os.path.dirname(p) for p in paths])
    return [os.path.relpath(p, root) for p in paths]


def content_fingerprint(files: Sequence[Input], cache_file: Optional[Union[str, Path]] = None
                        ) -> List[Dict[str, Any]]:
    """[{name, path, bytes, sha256}] per file in reading order ({name, path, error} for one that cannot be read);
    `name` as input_names gives it. With `cache_file`, a file whose path, size and mtime_ns are recorded there
    keeps its recorded sha256; every other file is hashed, and the cache is rewritten with the current files."""
    stats = corpus_fingerprint(files)
    cache = _load_cache(Path(cache_file)) if cache_file is not None else {}
    fresh: Dict[str, Dict[str, Any]] = {}
    out: List[Dict[str, Any]] = []
    hashed, hashed_bytes, start = 0, 0, time.perf_counter()
    for entry, name in zip(stats, input_names([s["path"] for s in stats])):
        path = entry["path"]
        if "error" in entry:
            out.append({"name": name, "path": path, "error": entry["error"]})
            continue
        known = cache.get(path)
        if (isinstance(known, dict) and known.get("bytes") == entry["bytes"]
                and known.get("mtime_ns") == entry["mtime_ns"] and isinstance(known.get("sha256"), str)):
            record = known
        else:
            try:
                record = _hash_file(path)
            except OSError as exc:
                out.append({"name": name, "path": path, "error": exc.strerror or str(exc)})
                continue
            hashed, hashed_bytes = hashed + 1, hashed_bytes + record["bytes"]
        fresh[path] = {"bytes": record["bytes"], "mtime_ns": record["mtime_ns"], "sha256": record["sha256"]}
        out.append({"name": name, "path": path, "bytes": record["bytes"], "sha256": record["sha256"]})
    seconds = time.perf_counter() - start
    if hashed:
        (log.info if seconds > SLOW_HASHING_S else log.debug)(
            "hashed %d of %d input files (%.1f MB) in %.1f s; %d by their cached sha256", hashed, len(stats),
            hashed_bytes / 1e6, seconds, len(fresh) - hashed)
    if cache_file is not None and fresh != cache:
        _save_cache(Path(cache_file), fresh)
    return out


def _hash_file(path: str) -> Dict[str, Any]:
    """{bytes, mtime_ns, sha256} of one file, its size and mtime taken from the open file before reading it."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        for block in iter(lambda: f.read(HASH_BLOCK), b""):
            digest.update(block)
    return {"bytes": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest.hexdigest()}


def _load_cache(path: Path) -> Dict[str, Any]:
    """The hash cache, or {} (every file hashed) when there is none or it cannot be read: it is only a cache."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        log.warning("%s: cannot read the input hash cache (%s); hashing every input", path, exc)
        return {}
    try:
        cache = json.loads(text)
    except ValueError as exc:
        log.warning("%s: not a readable input hash cache (%s); hashing every input", path, exc)
        return {}
    if not isinstance(cache, dict):
        log.warning("%s: not a readable input hash cache (a JSON object expected); hashing every input", path)
        return {}
    return cache


def _save_cache(path: Path, cache: Dict[str, Any]) -> None:
    """Write the hash cache atomically; a folder that cannot take it only costs hashing again next time."""
    data = json.dumps(cache, indent=1, ensure_ascii=False, sort_keys=True).encode("utf-8")
    try:
        write_atomically(path, lambda f: f.write(data))
    except OSError as exc:
        log.warning("%s: cannot write the input hash cache (%s); the next run hashes its inputs again", path, exc)
