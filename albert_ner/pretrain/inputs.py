"""Which files a pretraining corpus is (files, directories, glob patterns) and their fingerprint.

A file is fingerprinted by its absolute path, size and modification time (ns), not by a hash of its
content: a corpus may be far larger than memory, and hashing it would read it all once more before any
work starts. Touching a file therefore counts as changing it.
"""
from __future__ import annotations

import glob as globbing
import logging
import os
from typing import Any, Dict, List, Sequence

from albert_ner.infer.textfiles import Input, Unreadable, expand_inputs

log = logging.getLogger(__name__)


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
    """[{path, bytes, mtime_ns}] per file in reading order ({path, error} for one that cannot be read)."""
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
