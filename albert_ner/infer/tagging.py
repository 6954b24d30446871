"""Tag many documents with a trained model: chunked streaming, output formats, counts of what failed.

Documents are read lazily and tagged in chunks (the predictor groups each chunk's windows by
length); results are written in input order. Entity offsets index the document text exactly:
`text[start:end] == entity["text"]` for any input. In CoNLL output a line-breaking character
(newline, tab, U+2028, ...) is written as its backslash escape so that each character keeps one
line. An entity's score is the smallest CRF marginal
probability among its characters' tags (how sure the model is of its weakest character).
"""
from __future__ import annotations

import collections
import contextlib
import dataclasses
import itertools
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Deque, Dict, Iterable, Iterator, List, Optional, Sequence, TextIO, Tuple, Union

from albert_ner.data.corpus import Sentence
from albert_ner.data.features import Featurizer
from albert_ner.data.pipeline import EncodedCorpus
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
    """Counts of one tagging run, kept up to date while it runs (so an interrupted run can say how far it got)."""

    documents: int = 0
    chars: int = 0
    entities: int = 0
    failed: int = 0  # lines (or whole-file documents) that could not be read or tagged
    files_failed: int = 0  # files and directories reported as a whole: unreadable, not text, not in one encoding
    seconds: float = 0.0
    last: str = ""  # source:line of the last document written or reported

    def line(self) -> str:
        rate = self.chars / self.seconds if self.seconds else 0.0
        files = f", {self.files_failed:,} input{'s' if self.files_failed != 1 else ''} not read" \
            if self.files_failed else ""
        return (f"tagged {self.documents:,} documents, {self.chars:,} chars, {self.entities:,} entities in "
                f"{self.seconds:.1f}s ({rate:,.0f} chars/s); {self.failed:,} failed{files}")

    def progress(self) -> str:
        """How far a run got: "1,234 documents (last: a.txt:1300)"."""
        plural = "" if self.documents == 1 else "s"
        return f"{self.documents:,} document{plural}" + (f" (last: {self.last})" if self.last else "")


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


Result = Union[Tuple[List[str], Optional[List[float]]], str]  # (tags, confidences or None), or why it failed


def tag_results(predictor: WindowedTagger, docs: Iterable[Document], chunk_docs: int = 1024,
                chunk_chars: int = 32_000, scores: bool = True) -> Iterator[List[Tuple[Document, Result]]]:
    """Tag documents as they are drawn from `docs`; yields lists of (document, result) in input order.

    The one tagging pipeline behind `tag_documents` (the CLI) and the Python API. A result is
    (tags, per-character confidences or None) or, for a document that could not be tagged, the
    reason (a string; the run goes on). The next chunk is featurized (jieba, in Python) in a worker
    thread while the model decodes the current one (TensorFlow releases the GIL), so the two overlap
    on separate cores. Windows of consecutive chunks share batches (a WindowStream), so only full
    batches run until a window has waited one chunk; at most two chunks are held. Without `scores`
    the forward-backward pass for the confidences is skipped (faster; confidences are None).
    """
    stream = predictor.stream(confidence=scores, record_errors=True)
    waiting: Deque[Tuple[Document, Optional[str]]] = collections.deque()  # in input order, with any error
    results: Deque = collections.deque()  # stream results of the documents at the head of `waiting`

    def ready() -> List[Tuple[Document, Result]]:
        results.extend(stream.ready())
        done: List[Tuple[Document, Result]] = []
        while waiting and (waiting[0][1] is not None or results):
            doc, error = waiting.popleft()
            result = error if error is not None else results.popleft()
            done.append((doc, result if isinstance(result, str) else predictor.readable(result, scores)))
        return done

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="featurize") as pool:
        pending = None  # (chunk, future of its features)
        for chunk in itertools.chain(_chunks(docs, chunk_docs, chunk_chars), [None]):
            upcoming = (chunk, pool.submit(_featurize, predictor.featurizer, chunk)) if chunk is not None else None
            if pending is not None:
                done, (errors, corpus) = pending[0], pending[1].result()
                waiting.extend(zip(done, errors))
                generation = stream.add(corpus)
                stream.flush(before=generation)  # windows of the previous chunk run now, batch full or not
                tagged = ready()
                if tagged:
                    yield tagged
            pending = upcoming
    stream.flush()
    tagged = ready()
    if tagged:
        yield tagged


def tag_documents(predictor: WindowedTagger, docs: Iterable[Document], out: TextIO, fmt: str = "jsonl",
                  chunk_docs: int = 1024, chunk_chars: int = 32_000,
                  on_progress: Callable[[int, int], None] = lambda docs, chars: None,
                  scores: bool = True, summary: Optional[TagSummary] = None) -> TagSummary:
    """Tag every document (see `tag_results`) and write it to `out` in input order; failures are logged
    with file:line. Without `scores` entity scores are null. Counts go to `summary` (a new one if None)
    as documents are written, so a caller still has them when the run is interrupted.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown output format {fmt!r}; choose one of {', '.join(FORMATS)}")
    summary = summary if summary is not None else TagSummary()
    started = time.time()
    with contextlib.closing(tag_results(predictor, docs, chunk_docs, chunk_chars, scores)) as tagged:
        for batch in tagged:
            for doc, result in batch:
                _write_document(doc, result, out, fmt, summary)
            on_progress(len(batch), sum(len(doc.text) for doc, _ in batch))
    summary.seconds += time.time() - started
    return summary


def _write_document(doc: Document, result, out: TextIO, fmt: str, summary: TagSummary) -> None:
    """Write one tagged document ((tags, confidences or None)), or log its error (a string) with file:line
    (file alone for an error about a whole file, line 0)."""
    if isinstance(result, str):
        if doc.line:
            summary.failed += 1
            log.error("%s:%d: %s", doc.source, doc.line, result)
        else:
            summary.files_failed += 1
            log.error("%s: %s", doc.source, result)
        summary.last = f"{doc.source}:{doc.line}" if doc.line else doc.source
        return
    tags, confidence = result
    entities = entity_records(doc.text, tags, confidence)
    out.write(render(fmt, doc, tags, entities))
    summary.last = f"{doc.source}:{doc.line}"
    summary.documents += 1
    summary.chars += len(doc.text)
    summary.entities += len(entities)


def _featurize(featurizer: Featurizer, chunk: List[Document]) -> Tuple[List[Optional[str]], EncodedCorpus]:
    """(per document: None or why it cannot be tagged, the encoding of the documents without an error).

    The chunk is encoded at once; if that fails, document by document, to find and report the bad ones."""
    errors: List[Optional[str]] = [d.error for d in chunk]
    sentences = [Sentence(tuple(d.text), None, d.source, d.line) for d in chunk if d.error is None]
    try:
        return errors, featurizer.encode(sentences)
    except Exception:
        pass
    encoded = []
    good = [i for i, d in enumerate(chunk) if d.error is None]
    for i, sentence in zip(good, sentences):
        try:
            encoded.append(featurizer.encode([sentence]))
        except Exception as exc:  # reported per line; the run goes on
            errors[i] = f"featurization failed: {type(exc).__name__}: {exc}"
    return errors, EncodedCorpus.concat(encoded)
