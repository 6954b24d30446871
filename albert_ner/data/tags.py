"""BIO / BIOES tagging schemes: tag parsing, entity extraction, tag building and repair."""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, List, Optional, Sequence, Tuple

TAG_RE = re.compile(r"O|([BIES])-(\S+)")
SCHEMES = ("BIO", "BIOES")


@dataclass(frozen=True)
class Entity:
    """An entity of `type` covering characters [start, end)."""

    type: str
    start: int
    end: int


@lru_cache(maxsize=4096)
def parse_tag(tag: str) -> Tuple[str, Optional[str]]:
    """Split a tag into (prefix, type): "B-PER" -> ("B", "PER"), "O" -> ("O", None)."""
    match = TAG_RE.fullmatch(tag) if isinstance(tag, str) else None
    if match is None:
        raise ValueError(f"invalid tag {tag!r}: expected 'O' or B-/I-/E-/S- followed by an entity type")
    if match.group(1) is None:
        return "O", None
    return match.group(1), match.group(2)


def detect_scheme(tags: Iterable[str]) -> str:
    """"BIOES" if any tag has an E- or S- prefix, else "BIO"."""
    for tag in tags:
        if tag[:2] in ("E-", "S-"):
            return "BIOES"
    return "BIO"


def entities_from_tags(tags: Sequence[str]) -> List[Entity]:
    """Entities of a BIO or BIOES tag sequence; an I-/E- that continues nothing starts a new entity (conlleval)."""
    entities: List[Entity] = []
    cur_type: Optional[str] = None
    cur_start = 0
    for i, tag in enumerate(tags):
        prefix, etype = parse_tag(tag)
        if prefix == "O":
            if cur_type is not None:
                entities.append(Entity(cur_type, cur_start, i))
                cur_type = None
            continue
        if not (cur_type == etype and prefix in ("I", "E")):
            if cur_type is not None:
                entities.append(Entity(cur_type, cur_start, i))
            cur_type, cur_start = etype, i
        if prefix in ("E", "S"):
            entities.append(Entity(cur_type, cur_start, i + 1))
            cur_type = None
    if cur_type is not None:
        entities.append(Entity(cur_type, cur_start, len(tags)))
    return entities


def tags_from_entities(length: int, entities: Iterable[Entity], scheme: str = "BIO") -> List[str]:
    """Tag sequence of `length` for non-overlapping entities in the given scheme ("BIO" or "BIOES")."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown tagging scheme {scheme!r}; expected one of {SCHEMES}")
    tags = ["O"] * length
    for ent in sorted(entities, key=lambda e: e.start):
        if not 0 <= ent.start < ent.end <= length:
            raise ValueError(f"entity {ent} does not fit in a sequence of length {length}")
        if any(t != "O" for t in tags[ent.start:ent.end]):
            raise ValueError(f"entity {ent} overlaps another entity")
        parse_tag(f"B-{ent.type}")  # validates the type
        if scheme == "BIOES" and ent.end - ent.start == 1:
            tags[ent.start] = f"S-{ent.type}"
            continue
        tags[ent.start] = f"B-{ent.type}"
        for i in range(ent.start + 1, ent.end):
            tags[i] = f"I-{ent.type}"
        if scheme == "BIOES":
            tags[ent.end - 1] = f"E-{ent.type}"
    return tags


def repair_tags(tags: Sequence[str]) -> Tuple[List[str], List[int]]:
    """Turn every I-X (E-X) not following B-X/I-X into B-X (S-X); returns (tags, repaired positions)."""
    out = list(tags)
    repaired: List[int] = []
    prev_prefix, prev_type = "O", None
    for i, tag in enumerate(out):
        prefix, etype = parse_tag(tag)
        if prefix in ("I", "E") and not (prev_type == etype and prev_prefix in ("B", "I")):
            prefix = "B" if prefix == "I" else "S"
            out[i] = f"{prefix}-{etype}"
            repaired.append(i)
        prev_prefix, prev_type = prefix, etype
    return out, repaired


def convert_scheme(tags: Sequence[str], scheme: str) -> List[str]:
    """The same entities written in another scheme ("BIO" or "BIOES")."""
    return tags_from_entities(len(tags), entities_from_tags(tags), scheme)
