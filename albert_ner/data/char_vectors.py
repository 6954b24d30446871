"""Pretrained character vectors for the character table of an encoder trained from scratch.

Read (every line or row checked, errors name file:line):
- word2vec text: a `COUNT DIM` header line, then `token v1 ... vDIM` per line; plain, .gz, .xz or .bz2.
- numpy: `X.npy`, a [COUNT, DIM] float array, with its tokens in `X.vocab.txt` (or `X.txt`) beside
  it, one per line, line i naming row i.
Mapped onto a run's vocabulary with the run's own character lookup (Vocab.char_to_id): only
single-character tokens are used; when several of them find the same id (with "fold", `：` and `:`),
the first in the file wins (word2vec files list the most frequent first) and the others are counted.
Vectors are used at the scale the file gives them (see `table_init`).
"""
from __future__ import annotations

import bz2
import dataclasses
import gzip
import lzma
import zlib
from collections import Counter
from pathlib import Path
from typing import IO, Dict, Iterable, List, Tuple

import numpy as np

from albert_ner.data.vocab import Vocab

COMPRESSED = {".gz": gzip.open, ".xz": lzma.open, ".bz2": bz2.open}
NPY_TOKEN_FILES = (".vocab.txt", ".txt")  # X.npy's tokens: X.vocab.txt, else X.txt
_READ_ERRORS = (OSError, EOFError, lzma.LZMAError, zlib.error)
EXAMPLES = 5  # collisions named in the report


class CharVectorsError(ValueError):
    """A vectors file that cannot be used; the message names the file (and line or row)."""


@dataclasses.dataclass
class CharVectors:
    """The single-character entries of a vectors file, in file order."""

    source: str
    dim: int
    count: int  # entries in the file (every token, one character or not)
    tokens: List[str]  # the single-character tokens
    vectors: np.ndarray  # [len(tokens), dim] float32
    multi_char: int  # entries skipped because their token is not one character


def npy_token_file(path: str | Path) -> Path:
    """The token list of an `X.npy` vectors file: X.vocab.txt, else X.txt."""
    path = Path(path)
    stem = path.name[: -len(".npy")]
    candidates = [path.with_name(stem + suffix) for suffix in NPY_TOKEN_FILES]
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        raise CharVectorsError(f"{path}: no token list beside it (looked for "
                               f"{', '.join(c.name for c in candidates)}: one token per line, line i for row i)")
    return found


def source_files(path: str | Path) -> List[Path]:
    """Every file `read_char_vectors(path)` reads (for the run's content fingerprint)."""
    path = Path(path)
    return [path, npy_token_file(path)] if path.name.endswith(".npy") else [path]


def read_char_vectors(path: str | Path) -> CharVectors:
    """A word2vec text file (optionally compressed) or an .npy + token-list pair; see the module docstring."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such vectors file")
    if path.name.endswith(".npy"):
        return _read_npy(path)
    opener = COMPRESSED.get(path.suffix, open)
    try:
        with opener(path, "rb") as f:
            return _read_word2vec(f, str(path))
    except _READ_ERRORS as exc:
        raise CharVectorsError(f"{path}: cannot be read ({type(exc).__name__}: {exc})") from None


def _decode(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CharVectorsError(f"{where}: not UTF-8 ({exc.reason} at byte {exc.start})") from None


def _parse_numbers(fields: List[str], token: str, where: str) -> np.ndarray:
    try:
        values = np.array(fields, dtype=np.float64)
    except ValueError:
        for i, field in enumerate(fields, 1):
            try:
                float(field)
            except ValueError:
                raise CharVectorsError(f"{where}: value {i} of {token!r} is {field[:40]!r}, not a number") from None
        raise
    if not np.isfinite(values).all():
        i = int(np.flatnonzero(~np.isfinite(values))[0]) + 1
        raise CharVectorsError(f"{where}: value {i} of {token!r} is {fields[i - 1]!r}, not a finite number")
    return values


def _read_word2vec(f: IO[bytes], source: str) -> CharVectors:
    header = _decode(f.readline(), f"{source}:1").lstrip("\ufeff").split()
    if len(header) != 2 or not all(h.isascii() and h.isdigit() for h in header) or min(map(int, header)) < 1:
        raise CharVectorsError(f"{source}:1: expected the word2vec header 'COUNT DIM' (two positive whole "
                               f"numbers), got {' '.join(header)[:80]!r}")
    count, dim = map(int, header)
    tokens: List[str] = []
    rows: List[np.ndarray] = []
    entries, multi_char, blank = 0, 0, 0
    for lineno, raw in enumerate(f, 2):
        where = f"{source}:{lineno}"
        line = _decode(raw, where).rstrip("\r\n").rstrip(" \t")
        if not line:
            blank = blank or lineno  # allowed at the end of the file only
            continue
        if blank:
            raise CharVectorsError(f"{source}:{blank}: empty line between vectors")
        entries += 1
        if entries > count:
            raise CharVectorsError(f"{where}: more vectors than the {count} the header (line 1) announces")
        token, sep, rest = line.partition(" ")
        if not token or not sep:
            raise CharVectorsError(f"{where}: expected a token and {dim} numbers separated by spaces, "
                                   f"got {line[:80]!r}")
        fields = rest.split()
        if len(fields) != dim:
            raise CharVectorsError(f"{where}: {token!r} has {len(fields)} numbers, the header (line 1) says {dim}")
        values = _parse_numbers(fields, token, where)
        if len(token) == 1:
            tokens.append(token)
            rows.append(values)
        else:
            multi_char += 1
    if entries != count:
        raise CharVectorsError(f"{source}: the header (line 1) announces {count} vectors, the file holds {entries}")
    vectors = np.array(rows, dtype=np.float32).reshape(len(rows), dim)
    return CharVectors(source, dim, count, tokens, vectors, multi_char)


def _read_npy(path: Path) -> CharVectors:
    token_file = npy_token_file(path)
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise CharVectorsError(f"{path}: not a readable .npy array ({exc})") from None
    if array.ndim != 2 or array.dtype.kind != "f" or min(array.shape) < 1:
        raise CharVectorsError(f"{path}: expected a 2-D float array [COUNT, DIM], got {array.dtype} "
                               f"{list(array.shape)}")
    data = token_file.read_bytes()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    all_tokens = []
    for lineno, raw in enumerate(lines, 1):
        token = _decode(raw, f"{token_file}:{lineno}").rstrip("\r")
        if lineno == 1:
            token = token.lstrip("\ufeff")
        if not token:
            raise CharVectorsError(f"{token_file}:{lineno}: empty token")
        all_tokens.append(token)
    if len(all_tokens) != array.shape[0]:
        raise CharVectorsError(f"{token_file}: {len(all_tokens)} tokens for the {array.shape[0]} rows of {path}")
    finite = np.isfinite(array).all(axis=1)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        raise CharVectorsError(f"{path}: row {row} ({all_tokens[row]!r}, {token_file.name}:{row + 1}) holds a "
                               "value that is not a finite number")
    keep = [i for i, t in enumerate(all_tokens) if len(t) == 1]
    return CharVectors(str(path), int(array.shape[1]), len(all_tokens), [all_tokens[i] for i in keep],
                       array[keep].astype(np.float32), len(all_tokens) - len(keep))


@dataclasses.dataclass
class TableInit:
    """Which rows of the character table get which vector, and the report of it."""

    rows: np.ndarray  # [R] int32 vocabulary ids
    values: np.ndarray  # [R, dim] float32
    report: Dict


def table_init(vectors: CharVectors, vocab: Vocab, train_chars: Iterable[str], source: str = "") -> TableInit:
    """Map the vectors onto `vocab`'s ids (first wins on a shared id) and measure the training coverage.

    The vectors are not rescaled: the encoder's embedding LayerNorm normalises each token's sum right
    after the lookup, so a global factor only weighs the vectors against the random position and
    segment rows (at the table's init std they would carry as much variance as the vectors), and
    Adam moves each coordinate by about the learning rate per step whatever its scale (vectors shrunk
    to std 0.02 would be rewritten within tens of updates at 2e-3)."""
    chosen: Dict[int, int] = {}  # vocab id -> index into vectors.tokens
    unknown = 0
    collisions: List[Tuple[str, str]] = []
    for i, token in enumerate(vectors.tokens):
        idx = vocab.char_to_id(token)
        if idx == vocab.unk_id:
            unknown += 1
        elif idx in chosen:
            collisions.append((token, vectors.tokens[chosen[idx]]))
        else:
            chosen[idx] = i
    rows = np.array(sorted(chosen), dtype=np.int32)
    values = vectors.vectors[[chosen[r] for r in rows]] if len(rows) else np.zeros((0, vectors.dim), np.float32)
    counts = Counter(train_chars)
    total = sum(counts.values())
    covered = {c: n for c, n in counts.items() if vocab.char_to_id(c) in chosen}
    report = {
        "file": source or vectors.source,
        "dim": vectors.dim,
        "vectors": vectors.count,
        "rows_initialised": int(len(rows)),
        "train_token_coverage": sum(covered.values()) / total if total else 0.0,
        "train_type_coverage": len(covered) / len(counts) if counts else 0.0,
        "train_tokens": total,
        "train_types": len(counts),
        "skipped_not_one_char": vectors.multi_char,
        "skipped_not_in_vocab": unknown,
        "shared_id_collisions": len(collisions),  # later tokens whose id an earlier one already set
        "collision_examples": [f"{a} -> id of {b}" for a, b in collisions[:EXAMPLES]],
        "char_lookup": vocab.char_lookup,
        "vector_std": float(values.std()) if values.size else 0.0,
        "rescaled": False,
    }
    return TableInit(rows, values.astype(np.float32), report)
