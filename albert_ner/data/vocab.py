"""Character -> id mapping onto WordPiece (or ERNIE `token<TAB>id`) vocabularies, one id per character.

A WordPiece vocabulary is read from vocab.txt, or from a Hugging Face tokenizer.json (`model.vocab`
plus `added_tokens`) when a checkpoint ships no vocab.txt.

Two lookup orders (`char_lookup`, saved with the model; CHAR_LOOKUPS in config.py):
- "fold": full-width ASCII folded to ASCII and lower-cased first, then the character as written, its
  accent-stripped form and PUNCTUATION_FALLBACK. Variants share one embedding, which generalises
  better for a table trained from scratch; every model saved without a stated lookup used this one.
- "exact_first": the character as written first, then lower-cased, accent-stripped, full-width folded,
  PUNCTUATION_FALLBACK. A pretrained encoder learned its embeddings through its own tokenizer, which
  keeps `，` as `，` (not `,`); this order gives every character that the vocabulary holds as written
  that same id, and falls back only where that tokenizer would emit [UNK].
Whitespace, control and format characters map to the whitespace token in both.
"""
from __future__ import annotations

import json
import os
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from albert_ner.config import CHAR_LOOKUPS, DEFAULT_CHAR_LOOKUP

PathLike = Union[str, "os.PathLike[str]"]
PAD, UNK, CLS, SEP = "[PAD]", "[UNK]", "[CLS]", "[SEP]"
REQUIRED_SPECIALS = (PAD, UNK, CLS, SEP)
SPM_WORD_START = "\u2581"  # "▁": SentencePiece's mark for a piece that starts a word
WHITESPACE_TOKENS = ("[unused1]", "[SPACE]", "[BLANK]", SPM_WORD_START)
# SentencePiece models (Google ALBERT's spm) spell two of the required specials differently.
SPECIAL_ALIASES = {PAD: "<pad>", UNK: "<unk>"}
_BLANK_CATEGORIES = frozenset(("Cc", "Cf", "Zs"))


def normalize_char(ch: str) -> str:
    """Full-width ASCII -> ASCII, U+3000 -> " ", then lower() unless that changes the length."""
    if len(ch) != 1:
        return "".join(normalize_char(c) for c in ch)
    return _lower(_half_width(ch))


def _half_width(ch: str) -> str:
    """One character with full-width ASCII (U+FF01..U+FF5E) folded to ASCII and U+3000 to " "."""
    code = ord(ch)
    if 0xFF01 <= code <= 0xFF5E:
        return chr(code - 0xFEE0)
    return " " if code == 0x3000 else ch


def _lower(ch: str) -> str:
    """ch.lower(), or `ch` itself where lower-casing would change the length (e.g. "İ")."""
    low = ch.lower()
    return low if len(low) == len(ch) else ch


# Typographic punctuation that Chinese WordPiece vocabs lack, folded to a plain equivalent that
# they have (“ ” are ~0.8% of MSRA test characters and would otherwise all be [UNK]).
PUNCTUATION_FALLBACK = {"“": '"', "”": '"', "„": '"', "‘": "'", "’": "'", "‚": "'", "—": "-", "–": "-",
                        "―": "-", "…": ".", "⋯": ".", "•": "·", "﹏": "_"}


def _strip_accents(ch: str) -> Optional[str]:
    """`ch` without combining marks (NFD), or None unless that leaves exactly one other character."""
    bare = "".join(c for c in unicodedata.normalize("NFD", ch) if unicodedata.category(c) != "Mn")
    return bare if len(bare) == 1 and bare != ch else None


def _is_blank(ch: str) -> bool:
    """Whitespace, control and format characters, which share the vocab's whitespace token."""
    return ch.isspace() or unicodedata.category(ch) in _BLANK_CATEGORIES


def _parse_lines(text: str, source: str) -> Dict[str, int]:
    """token -> id from plain (id = line index) or `token<TAB>id` lines; errors name file:line."""
    lines = text.split("\n")
    while lines and not lines[-1]:
        lines.pop()
    first = next((ln for ln in lines if ln), "")
    tabbed = _tab_entry(first) is not None
    ids: Dict[str, int] = {}
    seen_ids: Dict[int, int] = {}  # id -> line
    for lineno, line in enumerate(lines, 1):
        if tabbed:
            if not line:
                continue
            entry = _tab_entry(line)
            if entry is None:
                raise ValueError(f"{source}:{lineno}: expected 'token<TAB>id' (as on the first line), got {line!r}")
            token, idx = entry
            if idx in seen_ids:
                raise ValueError(f"{source}:{lineno}: id {idx} already used on line {seen_ids[idx]}")
            seen_ids[idx] = lineno
        else:
            if not line:
                raise ValueError(f"{source}:{lineno}: empty line in a one-token-per-line vocab")
            if "\t" in line:
                raise ValueError(f"{source}:{lineno}: tab in {line!r}; a one-token-per-line vocab has none "
                                 f"(a `token<TAB>id` vocab must start with such a line)")
            token, idx = line, lineno - 1
        if token in ids:
            raise ValueError(f"{source}:{lineno}: duplicate token {token!r} (first has id {ids[token]})")
        ids[token] = idx
    return ids


def _tab_entry(line: str) -> Optional[Tuple[str, int]]:
    """(token, id) for a `token<TAB>id` line with a non-empty token and a non-negative integer id."""
    token, sep, num = line.rpartition("\t")
    num = num.strip()
    if not sep or not token or not num.isdigit() or not num.isascii():
        return None
    return token, int(num)


def _no_duplicate_keys(source: str):
    def hook(pairs):
        out = {}
        for key, value in pairs:
            if key in out:
                raise ValueError(f"{source}: key {key!r} appears twice in one JSON object")
            out[key] = value
        return out
    return hook


def read_tokenizer_json(path: PathLike) -> Dict[str, int]:
    """token -> id of a Hugging Face tokenizer.json with a WordPiece model: `model.vocab` and `added_tokens`.

    Errors name the file and the entry: another model type, a non-integer or shared id, an added token
    whose id disagrees with the vocab."""
    source = os.fspath(path)
    try:
        data = json.loads(Path(path).read_bytes().decode("utf-8").lstrip("\ufeff"),
                          object_pairs_hook=_no_duplicate_keys(source))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{source}: not a tokenizer.json ({exc})") from None
    model = data.get("model") if isinstance(data, dict) else None
    if not isinstance(model, dict):
        raise ValueError(f"{source}: not a Hugging Face tokenizer.json (no 'model' object)")
    if model.get("type") != "WordPiece" or not isinstance(model.get("vocab"), dict):
        raise ValueError(f"{source}: the tokenizer's model is {model.get('type')!r}; only a WordPiece "
                         f"vocabulary (model.vocab: token -> id) maps characters to ids here")
    ids: Dict[str, int] = {}
    by_id: Dict[int, str] = {}

    def add(token: object, idx: object, where: str) -> None:
        if not isinstance(token, str) or not token:
            raise ValueError(f"{source}: {where}: token {token!r} is not a non-empty string")
        if isinstance(idx, bool) or not isinstance(idx, int) or idx < 0:
            raise ValueError(f"{source}: {where}: id {idx!r} of {token!r} is not a non-negative integer")
        if token in ids:
            if ids[token] != idx:
                raise ValueError(f"{source}: {where}: {token!r} has id {idx}, but model.vocab gives it {ids[token]}")
            return
        if idx in by_id:
            raise ValueError(f"{source}: {where}: id {idx} is given to both {by_id[idx]!r} and {token!r}")
        ids[token], by_id[idx] = idx, token

    for token, idx in model["vocab"].items():
        add(token, idx, "model.vocab")
    added = data.get("added_tokens") or []
    if not isinstance(added, list):
        raise ValueError(f"{source}: added_tokens is not a list")
    for n, entry in enumerate(added):
        if not isinstance(entry, dict):
            raise ValueError(f"{source}: added_tokens[{n}] is not an object")
        add(entry.get("content"), entry.get("id"), f"added_tokens[{n}]")
    if not ids:
        raise ValueError(f"{source}: model.vocab is empty")
    return ids


def vocab_file_bytes(path: PathLike) -> bytes:
    """A vocab file as a model directory stores it: the file as is, or a tokenizer.json's vocabulary as
    vocab.txt (one token per line in id order; its ids must run 0..N-1 without gaps)."""
    source = os.fspath(path)
    if not source.endswith(".json"):
        return Path(path).read_bytes()
    ids = read_tokenizer_json(path)
    tokens = sorted(ids, key=ids.__getitem__)
    gap = next((i for i, t in enumerate(tokens) if ids[t] != i), None)
    if gap is not None:
        raise ValueError(f"{source}: no token has id {gap} (ids run to {ids[tokens[-1]]}); such a vocabulary "
                         f"cannot be written as a one-token-per-line vocab.txt")
    bad = next((t for t in tokens if any(c in t for c in "\t\n\r")), None)
    if bad is not None:
        raise ValueError(f"{source}: token {bad!r} (id {ids[bad]}) holds a tab or line break; it cannot be "
                         f"written as a line of vocab.txt")
    return ("\n".join(tokens) + "\n").encode("utf-8")


def _lookup_forms(ch: str, char_lookup: str) -> Tuple[Optional[str], ...]:
    """The forms of one (non-blank) character to look up, in the order of `char_lookup`; None: no such form."""
    punct = PUNCTUATION_FALLBACK.get(ch)
    if char_lookup == "fold":
        norm = normalize_char(ch)
        return norm, ch, _strip_accents(norm), punct
    low, half = _lower(ch), _half_width(ch)
    return ch, low, _strip_accents(ch), _strip_accents(ch.lower()), half, _lower(half), punct


class Vocab:
    """A token -> id table that maps each character to exactly one id (never splitting or dropping one).

    `char_lookup` ("fold" or "exact_first", see the module docstring) is the order in which a
    character's forms are tried; it is part of the model, so a model is always read with its own."""

    def __init__(self, token_ids: Mapping[str, int], source: str = "<vocab>",
                 char_lookup: str = DEFAULT_CHAR_LOOKUP):
        if char_lookup not in CHAR_LOOKUPS:
            raise ValueError(f"{source}: char_lookup must be one of {', '.join(CHAR_LOOKUPS)}, got {char_lookup!r}")
        self.source = source
        self._char_lookup = char_lookup
        self._ids: Dict[str, int] = dict(token_ids)
        for token, alias in SPECIAL_ALIASES.items():
            if token not in self._ids and alias in self._ids:
                self._ids[token] = self._ids[alias]
        missing = [t for t in REQUIRED_SPECIALS if t not in self._ids]
        if missing:
            raise ValueError(f"{source}: vocabulary lacks required special token(s) {', '.join(missing)}")
        size = max(self._ids.values()) + 1
        tokens: List[str] = [""] * size
        for token, idx in self._ids.items():
            if not tokens[idx]:  # an aliased special keeps its original spelling
                tokens[idx] = token
        self._tokens: Tuple[str, ...] = tuple(tokens)
        self.pad_id, self.unk_id, self.cls_id, self.sep_id = (self._ids[t] for t in REQUIRED_SPECIALS)
        self.space_id = next((self._ids[t] for t in WHITESPACE_TOKENS if t in self._ids), self.unk_id)
        self._cache: Dict[str, int] = {}

    @classmethod
    def from_sentencepiece(cls, path: PathLike, char_lookup: str = DEFAULT_CHAR_LOOKUP) -> "Vocab":
        """The pieces of a SentencePiece model (as Google's ALBERT tokenization builds its vocab)."""
        import sentencepiece as spm

        source = os.fspath(path)
        try:
            sp = spm.SentencePieceProcessor(model_file=source)
        except (OSError, RuntimeError) as exc:
            raise ValueError(f"{source}: not a SentencePiece model: {exc}") from None
        return cls({sp.id_to_piece(i): i for i in range(sp.get_piece_size())}, source, char_lookup)

    @classmethod
    def from_file(cls, path: PathLike, char_lookup: str = DEFAULT_CHAR_LOOKUP) -> "Vocab":
        """Read a plain one-token-per-line vocab.txt, an ERNIE `token<TAB>id` vocab, a SentencePiece .model,
        or a Hugging Face WordPiece tokenizer.json (any *.json); characters are looked up by `char_lookup`."""
        source = os.fspath(path)
        if source.endswith(".model"):
            return cls.from_sentencepiece(path, char_lookup)
        if source.endswith(".json"):
            return cls(read_tokenizer_json(path), source, char_lookup)
        data = Path(path).read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            raise ValueError(f"{source}:{line}: not UTF-8 ({exc.reason})") from None
        text = text.lstrip("\ufeff").replace("\r\n", "\n")
        return cls(_parse_lines(text, source), source, char_lookup)

    @property
    def char_lookup(self) -> str:
        """The lookup order (config.CHAR_LOOKUPS); fixed for the table's life, as its id cache depends on it."""
        return self._char_lookup

    @property
    def tokens(self) -> Tuple[str, ...]:
        """Tokens by id ("" for ids that no token uses)."""
        return self._tokens

    def __len__(self) -> int:
        return len(self._tokens)

    def __repr__(self) -> str:
        return f"Vocab({self.source!r}, size={len(self)}, char_lookup={self.char_lookup!r})"

    def token_to_id(self, token: str) -> Optional[int]:
        """The id of an exact token, or None."""
        return self._ids.get(token)

    def char_to_id(self, ch: str) -> int:
        """The id of one character: the whitespace token, the first of its forms (in `char_lookup` order) that
        the vocabulary holds, or [UNK]."""
        idx = self._cache.get(ch)
        if idx is None:
            if len(ch) != 1:
                raise ValueError(f"expected exactly one character, got {ch!r}")
            idx = self._lookup(ch)
            self._cache[ch] = idx
        return idx

    def _lookup(self, ch: str) -> int:
        if _is_blank(ch):
            return self.space_id
        for candidate in _lookup_forms(ch, self._char_lookup):
            if candidate is not None:
                for token in (candidate, SPM_WORD_START + candidate):  # WordPiece, then SentencePiece
                    if token in self._ids:
                        return self._ids[token]
        return self.unk_id

    def encode(self, chars: Sequence[str]) -> np.ndarray:
        """int32 ids, one per character (same length as `chars`)."""
        cache, lookup = self._cache, self.char_to_id
        return np.fromiter((cache[c] if c in cache else lookup(c) for c in chars), dtype=np.int32, count=len(chars))

    def unknown_chars(self, chars: Iterable[str]) -> Counter:
        """Occurrence counts of the characters that map to [UNK]."""
        counts = Counter(chars)
        return Counter({c: n for c, n in counts.items() if self.char_to_id(c) == self.unk_id})
