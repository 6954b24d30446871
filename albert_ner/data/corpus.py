"""Reading and validating char-per-line (`char<TAB>tag`) NER corpora, with file:line errors."""
from __future__ import annotations

import os
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Tuple, Union

from albert_ner.data.tags import detect_scheme, parse_tag, repair_tags

PathLike = Union[str, "os.PathLike[str]"]
DOCSTART = "-DOCSTART-"
MAX_REPORTED = 5


@dataclass(frozen=True)
class Sentence:
    """One sentence: its characters, their tags (None for raw text) and where it came from."""

    chars: Tuple[str, ...]
    tags: Optional[Tuple[str, ...]]
    source: str
    line: int  # 1-based line of the first character; character k is on line `line + k`

    @property
    def text(self) -> str:
        """The sentence as one string."""
        return "".join(self.chars)


class CorpusError(ValueError):
    """A problem in a corpus file; the message starts with "{path}:{line}: "."""

    def __init__(self, path: str, line: int, message: str):
        super().__init__(f"{path}:{line}: {message}")
        self.path, self.line, self.message = path, line, message

    def __reduce__(self):
        return type(self), (self.path, self.line, self.message)


class TagRepairWarning(UserWarning):
    """Some I-/E- tags did not continue an entity and were turned into B-/S- tags."""


@dataclass(frozen=True)
class CorpusStats:
    """Counts for one corpus file, for logs and run reports."""

    path: str
    sentences: int
    chars: int
    entities: Dict[str, int]
    scheme: str
    repaired: int
    skipped_lines: int
    longest: int

    def summary(self) -> str:
        """One human line: "test.txt: 3,442 sentences, 172,601 chars, entities LOC 2,886 ... (BIO), longest 2,427"."""
        ents = " ".join(f"{t} {n:,}" for t, n in sorted(self.entities.items())) or "none"
        text = (f"{os.path.basename(self.path)}: {self.sentences:,} sentences, {self.chars:,} chars, "
                f"entities {ents} ({self.scheme}), longest {self.longest:,}")
        if self.repaired:
            text += f", {self.repaired:,} tags repaired"
        if self.skipped_lines:
            text += f", {self.skipped_lines:,} lines skipped"
        return text


def entity_counts(sentences: Iterable[Sentence]) -> Dict[str, int]:
    """Entities per type in labelled sentences, counted at their B-/S- tags (raw text counts nothing)."""
    counts: Counter = Counter()
    for s in sentences:
        if s.tags:
            counts.update(tag[2:] for tag in s.tags if tag[:2] in ("B-", "S-"))
    return dict(sorted(counts.items()))


def unseen_entity_types(known: Iterable[str],
                        corpora: Mapping[str, Iterable[Sentence]]) -> Dict[str, Dict[str, int]]:
    """Per corpus name, the entity types outside `known` (e.g. those of train) with their counts.

    Corpora with none are left out. A model never learns such a type, so it scores 0 there."""
    known = set(known)
    unseen = {}
    for name, sentences in corpora.items():
        extra = {t: n for t, n in entity_counts(sentences).items() if t not in known}
        if extra:
            unseen[name] = extra
    return unseen


def unseen_type_messages(unseen: Mapping[str, Mapping[str, int]], reference: str = "train") -> List[str]:
    """One warning line per entity type in `unseen` (from unseen_entity_types), naming every corpus it is in."""
    where: Dict[str, List[str]] = {}
    for name, counts in unseen.items():
        for entity_type, n in counts.items():
            where.setdefault(entity_type, []).append(f"{name} ({n:,} {'entity' if n == 1 else 'entities'})")
    return [f"entity type {t} is not in {reference} but occurs in {', '.join(places)}: the model cannot "
            f"predict it, so it scores 0 there" for t, places in sorted(where.items())]


def _split_on_spaces(line: str) -> Tuple[str, str]:
    """(char, tag) of a line without a tab: split on the last run of spaces ("  O" is the char " ")."""
    body = line.rstrip(" ")
    j = body.rfind(" ")
    if j < 0:
        return body, ""
    i = j
    while i > 0 and body[i - 1] == " ":
        i -= 1
    char = body[:i]
    if not char and j - i >= 1:  # at least two spaces before the tag: the first is the char itself
        char = " "
    return char, body[j + 1:]


def _decode(data: bytes, source: str, encoding: str) -> str:
    """The file's text with a leading BOM removed and CRLF turned into LF."""
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise CorpusError(source, line, f"cannot decode bytes {data[exc.start:exc.end]!r} as {encoding} "
                                        f"({exc.reason})") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\r\n" in text:
        text = text.replace("\r\n", "\n")
    return text


def read_corpus(path: PathLike, *, strict: bool = False,
                encoding: str = "utf-8") -> Tuple[List[Sentence], CorpusStats]:
    """Read a `char<TAB>tag` (or `char tag`) corpus; blank lines separate sentences. Bad lines raise CorpusError."""
    source = os.fspath(path)
    lines = _decode(Path(path).read_bytes(), source, encoding).split("\n")

    sentences: List[Sentence] = []
    tag_counts: Counter = Counter()
    clean_tag: Dict[str, str] = {}  # raw tag field -> validated tag
    chars: List[str] = []
    tags: List[str] = []
    first_line = 0
    needs_repair = False
    repaired_lines: List[int] = []
    skipped = 0
    prev: Optional[str] = None

    def flush() -> None:
        nonlocal chars, tags, needs_repair, prev
        if chars:
            final = tags
            if needs_repair:
                final, _ = repair_tags(tags)
            tag_counts.update(final)
            sentences.append(Sentence(tuple(chars), tuple(final), source, first_line))
            chars, tags, needs_repair = [], [], False
        prev = None

    for lineno, line in enumerate(lines, 1):
        if "\t" in line:
            char, _, raw = line.rpartition("\t")
        elif not line or line.isspace():
            flush()
            continue
        else:
            char, raw = _split_on_spaces(line)
        if line.startswith(DOCSTART):
            skipped += 1
            flush()
            continue
        tag = clean_tag.get(raw)
        if tag is None:
            tag = raw.strip()
            if not tag:
                raise CorpusError(source, lineno, f"missing tag in {line!r} (expected 'char<TAB>tag')")
            try:
                parse_tag(tag)
            except ValueError as exc:
                raise CorpusError(source, lineno, str(exc)) from None
            clean_tag[raw] = tag
        if len(char) != 1:
            raise CorpusError(source, lineno, f"char field {char!r} is not exactly one character (line {line!r})")
        p = tag[0]
        if (p == "I" or p == "E") and (prev is None or prev[0] not in "BI" or prev[2:] != tag[2:]):
            if strict:
                after = f"after {prev}" if prev else "at the start of a sentence"
                raise CorpusError(source, lineno, f"{tag} {after} does not continue an entity "
                                                  f"(strict mode; without it the tag is repaired)")
            needs_repair = True
            repaired_lines.append(lineno)
        if not chars:
            first_line = lineno
        chars.append(char)
        tags.append(tag)
        prev = tag
    flush()

    if not sentences:
        raise CorpusError(source, 1, "no sentences found (empty corpus)")
    if repaired_lines:
        where = ", ".join(f"{source}:{n}" for n in repaired_lines[:MAX_REPORTED])
        more = f" and {len(repaired_lines) - MAX_REPORTED} more" if len(repaired_lines) > MAX_REPORTED else ""
        warnings.warn(f"{source}: repaired {len(repaired_lines)} I-/E- tag(s) that did not continue an entity "
                      f"of the same type (now B-/S-): {where}{more}", TagRepairWarning, stacklevel=2)
    entities: Dict[str, int] = {}
    for tag, n in tag_counts.items():
        if tag[:2] in ("B-", "S-"):
            entities[tag[2:]] = entities.get(tag[2:], 0) + n
    stats = CorpusStats(
        path=source, sentences=len(sentences), chars=sum(tag_counts.values()),
        entities=dict(sorted(entities.items())), scheme=detect_scheme(tag_counts),
        repaired=len(repaired_lines), skipped_lines=skipped,
        longest=max(len(s.chars) for s in sentences))
    return sentences, stats
