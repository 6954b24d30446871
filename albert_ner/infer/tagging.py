"""Tag many documents with a trained model: chunked streaming, output formats, counts of what failed.

Documents are read lazily and tagged in chunks (the predictor groups each chunk's windows by
length); results are written in input order. Entity offsets index the document text exactly:
`text[start:end] == entity["text"]` for any input. In CoNLL output a line-breaking character
(newline, tab, U+2028, ...) is written as its backslash escape so that each character keeps one
line. An entity's score is the smallest CRF marginal
probability among its characters' tags (how sure the model is of its weakest character).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from typing import Callable, Dict, Iterable, Iterator, List, Sequence, TextIO

from albert_ner.data.corpus import Sentence
from albert_ner.data.tags import entities_from_tags
from albert_ner.infer.textfiles import Document
from albert_ner.infer.windowed import WindowedTagger

log = logging.getLogger(__name__)

FORMATS = ("jsonl", "conll", "inline")


def entity_records(text: str, tags: Sequence[str], confidence: Sequence[float]) -> List[Dict]:
    """Entities of one document: type, [start, end) offsets into `text`, the covered text and a score."""
    return [{"type": e.type, "start": e.start, "end": e.end, "text": text[e.start:e.end],
             "score": round(min(confidence[e.start:e.end]), 4)}
            for e in entities_from_tags(tags)]


def render(fmt: str, doc: Document, tags: Sequence[str], entities: List[Dict]) -> str:
    """One document in an output format (with its trailing newline)."""
    if fmt == "jsonl":
        return json.dumps({"source": doc.source, "line": doc.line, "text": doc.text, "entities": entities},
                          ensure_ascii=False) + "\n"
    if fmt == "conll":
        return "".join(f"{_conll_char(c)}\t{t}\n" for c, t in zip(doc.text, tags)) + "\n"
    if fmt == "inline":
        parts, pos = [], 0
        for e in entities:
            parts.append(doc.text[pos:e["start"]])
            parts.append(f"[{e['text']}]({e['type']})")
            pos = e["end"]
        parts.append(doc.text[pos:])
        return "".join(parts) + "\n"
    raise ValueError(f"unknown output format {fmt!r}; choose one of {', '.join(FORMATS)}")


# Characters that would break the one-character-per-line layout are written as escapes ("\\n", "\\t", ...).
_LINE_BREAKING = {"\n", "\r", "\t", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"}


def _conll_char(c: str) -> str:
    return c.encode("unicode_escape").decode("ascii") if c in _LINE_BREAKING else c


@dataclasses.dataclass
class TagSummary:
    """Counts of one tagging run."""

    documents: int = 0
    chars: int = 0
    entities: int = 0
    failed: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        rate = self.chars / self.seconds if self.seconds else 0.0
        return (f"tagged {self.documents:,} documents, {self.chars:,} chars, {self.entities:,} entities in "
                f"{self.seconds:.1f}s ({rate:,.0f} chars/s); {self.failed:,} failed")


def _chunks(docs: Iterable[Document], max_docs: int, max_chars: int) -> Iterator[List[Document]]:
    chunk: List[Document] = []
    size = 0
    for doc in docs:
        chunk.append(doc)
        size += len(doc.text)
        if len(chunk) >= max_docs or size >= max_chars:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def tag_documents(predictor: WindowedTagger, docs: Iterable[Document], out: TextIO, fmt: str = "jsonl",
                  chunk_docs: int = 2048, chunk_chars: int = 400_000,
                  on_progress: Callable[[int, int], None] = lambda docs, chars: None) -> TagSummary:
    """Tag every document and write it to `out` in input order; failures are logged with file:line."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown output format {fmt!r}; choose one of {', '.join(FORMATS)}")
    summary = TagSummary()
    started = time.time()
    for chunk in _chunks(docs, chunk_docs, chunk_chars):
        for doc, result in zip(chunk, _predict_chunk(predictor, chunk)):
            if isinstance(result, str):
                summary.failed += 1
                log.error("%s:%d: %s", doc.source, doc.line, result)
                continue
            tags, confidence = result
            entities = entity_records(doc.text, tags, confidence)
            out.write(render(fmt, doc, tags, entities))
            summary.documents += 1
            summary.chars += len(doc.text)
            summary.entities += len(entities)
        on_progress(len(chunk), sum(len(d.text) for d in chunk))
    summary.seconds = time.time() - started
    return summary


def _predict_chunk(predictor: WindowedTagger, chunk: List[Document]) -> List:
    """(tags, confidence) per document, or an error message for documents that failed."""
    results: List = [d.error for d in chunk]
    good = [i for i, d in enumerate(chunk) if d.error is None]
    sentences = [Sentence(tuple(chunk[i].text), None, chunk[i].source, chunk[i].line) for i in good]
    try:
        predicted = predictor.predict_with_confidence(sentences)
    except Exception:  # one bad document must not sink the chunk: retry one by one to find it
        predicted = []
        for s in sentences:
            try:
                predicted.append(predictor.predict_with_confidence([s])[0])
            except Exception as exc:  # reported per line; the run goes on
                predicted.append(f"prediction failed: {type(exc).__name__}: {exc}")
    for i, p in zip(good, predicted):
        results[i] = p
    return results
