"""The Python API: `tagger = albert_ner.load("runs/latest")`, then `tagger.tag(text)` or `tagger.tag(texts)`.

A Tagger owns a loaded model, its featurizer and the windowed predictor, and tags through the same
pipeline as `albert-ner tag` (infer/tagging.tag_results), so both give the same entity records:
type, [start, end) offsets into the text, the covered text and a score (None without scores).
TensorFlow is imported by `load`, not by this module.
"""
from __future__ import annotations

import contextlib
import copy
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Optional, TextIO, Tuple, Union, overload

from albert_ner.infer.tagging import TagSummary, entity_records, tag_documents, tag_results
from albert_ner.infer.textfiles import Document
from albert_ner.infer.windowed import WindowedTagger

Entity = Dict[str, object]  # {"type", "start", "end", "text", "score"}: a record of `albert-ner tag`'s jsonl
SOURCE = "<text>"


class TaggingError(RuntimeError):
    """A text that the model could not tag (its featurization or prediction failed); names the text's index."""


class Tagger:
    """A trained model ready to tag text; made by `load`.

    `tag(text)` returns one text's entities; `tag(texts)` a list per text, in order; `tag_iter(texts)`
    yields them while reading `texts` lazily (for streams). A text is one document whatever it holds:
    newlines do not split it (unlike the CLI, which tags files line by line unless --whole-file), and a
    text longer than the model's max_seq_len is tagged in overlapping windows, never cut.
    """

    def __init__(self, predictor: WindowedTagger, scores: bool = True, model_dir: Optional[Path] = None):
        self.predictor = predictor
        self.scores = scores
        self.model_dir = model_dir

    @property
    def labels(self) -> Tuple[str, ...]:
        """The model's tags (e.g. O, B-PER, I-PER, ...)."""
        return self.predictor.labels

    @property
    def entity_types(self) -> Tuple[str, ...]:
        """The entity types the model finds (PER, LOC, ...), sorted."""
        return tuple(sorted({label[2:] for label in self.labels if label != "O"}))

    @property
    def batch_size(self) -> int:
        """Rows per model call (the default for `tag`'s batch_size)."""
        return self.predictor.batch_size

    @overload
    def tag(self, texts: str, batch_size: Optional[int] = None) -> List[Entity]: ...

    @overload
    def tag(self, texts: Iterable[str], batch_size: Optional[int] = None) -> List[List[Entity]]: ...

    def tag(self, texts, batch_size=None):
        """Entities of one text (a str), or a list of them per text (any other iterable of str), in order.

        Each entity is {"type", "start", "end", "text", "score"} with text[start:end] == entity["text"].
        Every text is checked before any is tagged (a non-str is a TypeError naming its index).
        `batch_size`: rows per model call for this call (default: the one given to `load`)."""
        return self._tag_all(texts, batch_size, entity_records, self.scores)

    def tag_iter(self, texts: Iterable[str], batch_size: Optional[int] = None) -> Iterator[List[Entity]]:
        """Entities per text, yielded in input order while `texts` is read lazily (a generator, a file's lines).

        Texts are tagged in chunks of up to 1,024 texts or 32,000 characters, so a result comes once its
        chunk is done (for the lowest latency on one text, call `tag(text)`). A non-str item is a TypeError
        naming its index, raised when the chunk holding it is read."""
        if isinstance(texts, str):
            raise TypeError("tag_iter expects an iterable of str, got one str; use tag(text) for a single text")
        return self._tag_stream(_texts(texts), self._predictor(batch_size), entity_records, self.scores)

    @overload
    def char_tags(self, texts: str, batch_size: Optional[int] = None) -> List[str]: ...

    @overload
    def char_tags(self, texts: Iterable[str], batch_size: Optional[int] = None) -> List[List[str]]: ...

    def char_tags(self, texts, batch_size=None):
        """One tag per character (the model's scheme, e.g. B-PER/I-PER/O) of one text, or of each text."""
        return self._tag_all(texts, batch_size, _char_tags, False)

    def tag_documents(self, docs: Iterable[Document], out: TextIO, fmt: str = "jsonl",
                      on_progress: Callable[[int, int], None] = lambda docs, chars: None,
                      summary: Optional[TagSummary] = None) -> TagSummary:
        """Tag documents read from files and write them to `out` in a CLI output format (`albert-ner tag`);
        unreadable or untaggable documents are logged with file:line and counted in the summary."""
        return tag_documents(self.predictor, docs, out, fmt, on_progress=on_progress, scores=self.scores,
                             summary=summary)

    def _tag_all(self, texts, batch_size: Optional[int], make: Callable, scores: bool):
        """make(...) of one text, or a list of them per text (all checked to be str before any is tagged)."""
        predictor = self._predictor(batch_size)
        if isinstance(texts, str):
            return list(self._tag_stream([texts], predictor, make, scores))[0]
        return list(self._tag_stream(list(_texts(texts)), predictor, make, scores))

    @staticmethod
    def _tag_stream(texts: Iterable[str], predictor: WindowedTagger, make: Callable, scores: bool) -> Iterator:
        """make(text, tags, confidences) per text, in order, through the CLI's pipeline; a text that failed
        is a TaggingError naming its index."""
        docs = (Document(SOURCE, index + 1, text) for index, text in enumerate(texts))
        with contextlib.closing(tag_results(predictor, docs, scores=scores)) as tagged:
            for batch in tagged:
                for doc, result in batch:
                    if isinstance(result, str):
                        raise TaggingError(f"text {doc.line - 1}: {result}")
                    yield make(doc.text, *result)

    def _predictor(self, batch_size: Optional[int]) -> WindowedTagger:
        """The predictor, or a shallow copy of it (sharing the compiled model) with another batch size."""
        if batch_size is None or _positive_int(batch_size, "batch_size") == self.predictor.batch_size:
            return self.predictor
        predictor = copy.copy(self.predictor)
        predictor.batch_size = batch_size
        return predictor

    def __repr__(self) -> str:
        where = f"{self.model_dir}, " if self.model_dir is not None else ""
        return f"Tagger({where}types={','.join(self.entity_types)}, max_seq_len={self.predictor.max_seq_len}, " \
               f"batch_size={self.batch_size}, scores={self.scores})"


def load(model_dir: Union[str, Path], *, batch_size: int = 64, jit: bool = True, scores: bool = True) -> Tagger:
    """A Tagger for a model directory written by `albert-ner train` (the output dir, e.g. runs/latest, or
    one of its model-N folders); a missing or damaged model is an error naming the file.

    batch_size: rows per model call (64 is the fastest on CPU; try 256 or more on a GPU). jit: XLA-compile
    the decode function. scores: compute each entity's score (CRF marginals); False is faster (score None).
    """
    _positive_int(batch_size, "batch_size")
    for name, value in (("jit", jit), ("scores", scores)):
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be True or False, got {value!r}")
    from albert_ner.infer.predictor import Predictor
    from albert_ner.model.store import load_model

    model, featurizer = load_model(model_dir)
    predictor = Predictor(model, featurizer, batch_size=batch_size, jit=jit)
    return Tagger(predictor, scores=scores, model_dir=Path(model_dir))


def _texts(texts: Iterable[str]) -> Iterator[str]:
    """The items of `texts`, each checked, as it is read, to be a str (a TypeError names the index of one that
    is not); a `texts` that is not iterable is a TypeError at once."""
    if isinstance(texts, (bytes, bytearray)):
        raise TypeError(f"expected a str or an iterable of str, got {type(texts).__name__}; decode it first")
    try:
        items = iter(texts)
    except TypeError:
        raise TypeError(f"expected a str or an iterable of str, got {type(texts).__name__}") from None
    return _each_str(items)


def _each_str(items: Iterator[object]) -> Iterator[str]:
    for index, text in enumerate(items):
        if not isinstance(text, str):
            raise TypeError(f"text {index} is a {type(text).__name__}, not a str"
                            + ("; decode it first" if isinstance(text, (bytes, bytearray)) else ""))
        yield text


def _char_tags(text: str, tags: List[str], confidence: Optional[List[float]]) -> List[str]:
    return tags


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return value
