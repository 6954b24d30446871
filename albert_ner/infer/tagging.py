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
import itertools
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, TextIO

from albert_ner.data.corpus import Sentence
from albert_ner.data.tags import entities_from_tags
from albert_ner.infer.textfiles import Document
from albert_ner.infer.windowed import WindowedTagger

log = logging.getLogger(__name__)

FORMATS = ("jsonl", "conll", "inline")


def entity_records(text: str, tags: Sequence[str], confidence: Optional[Sequence[float]]) -> List[Dict]:
    """Entities of one document: type, [start, end) offsets into `text`, the covered text and a score
    (None when no confidences were computed)."""
    return [{"type": e.type, "start": e.start, "end": e.end, "text": text[e.start:e.end],
             "score": round(min(confidence[e.start:e.end]), 4) if confidence is not None else None}
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
                  chunk_docs: int = 1024, chunk_chars: int = 32_000,
                  on_progress: Callable[[int, int], None] = lambda docs, chars: None,
                  scores: bool = True) -> TagSummary:
    """Tag every document and write it to `out` in input order; failures are logged with file:line.

    The next chunk is featurized (jieba, in Python) in a worker thread while the model decodes the
    current one (TensorFlow releases the GIL), so the two overlap on separate cores. Without
    `scores` the forward-backward pass for the entity scores is skipped (faster; scores are null).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown output format {fmt!r}; choose one of {', '.join(FORMATS)}")
    summary = TagSummary()
    started = time.time()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="featurize") as pool:
        pending = None  # (chunk, future of its features)
        for chunk in itertools.chain(_chunks(docs, chunk_docs, chunk_chars), [None]):
            upcoming = (chunk, pool.submit(_featurize, predictor, chunk)) if chunk is not None else None
            if pending is not None:
                done, features = pending[0], pending[1].result()
                _write_chunk(predictor, done, features, out, fmt, summary, scores)
                on_progress(len(done), sum(len(d.text) for d in done))
            pending = upcoming
    summary.seconds = time.time() - started
    return summary


def _write_chunk(predictor: WindowedTagger, chunk: List[Document], features, out: TextIO, fmt: str,
                 summary: TagSummary, scores: bool) -> None:
    for doc, result in zip(chunk, _predict_chunk(predictor, chunk, features, scores)):
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


def _featurize(predictor: WindowedTagger, chunk: List[Document]):
    """(indices of readable documents, their sentences, their encoding or None if encoding failed)."""
    good = [i for i, d in enumerate(chunk) if d.error is None]
    sentences = [Sentence(tuple(chunk[i].text), None, chunk[i].source, chunk[i].line) for i in good]
    try:
        return good, sentences, predictor.featurizer.encode(sentences)
    except Exception:  # found document by document in _predict_chunk
        return good, sentences, None


def _predict_chunk(predictor: WindowedTagger, chunk: List[Document], features, scores: bool = True) -> List:
    """(tags, confidence or None) per document, or an error message for documents that failed."""
    results: List = [d.error for d in chunk]
    good, sentences, corpus = features

    def predict(batch, encoded=None):
        if scores:
            return predictor.predict_with_confidence(batch, encoded)
        return [(tags, None) for tags in predictor.predict_sentences(batch, encoded)]

    try:
        if corpus is None:
            raise ValueError("the chunk could not be encoded as a whole")
        predicted = predict(sentences, corpus)
    except Exception:  # one bad document must not sink the chunk: retry one by one to find it
        predicted = []
        for s in sentences:
            try:
                predicted.append(predict([s])[0])
            except Exception as exc:  # reported per line; the run goes on
                predicted.append(f"prediction failed: {type(exc).__name__}: {exc}")
    for i, p in zip(good, predicted):
        results[i] = p
    return results
