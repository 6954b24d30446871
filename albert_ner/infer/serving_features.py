"""The serving handler's featurizer: raw text -> the model's input ids, in plain Python (standard library only).

It reads `serving.json`, which `albert-ner export` computes from the model's own Featurizer
(infer/serving_tables.py): the vocabulary id of every character that does not map to [UNK] (so the
lookup order, folding and Unicode tables of the training side are data here, not code), the bigram
forms and ids, jieba's word-boundary and part-of-speech ids, the labels and the window settings.
Word boundaries and POS tags come from jieba (shipped beside the handler when the model uses them).
The tests check that these ids equal data.features.Featurizer's.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

from albert_ner.data.tags import parse_tag

TABLES_FILE = "serving.json"
TABLES_FORMAT = 1
MANIFEST_FILE = "manifest.json"
SPECIALS = ("pad", "unk", "cls", "sep")
WORD_FEATURES = ("word_boundaries", "pos_ids")
SEGMENTERS = ("jieba", "posseg")  # jieba.cut(HMM=True) | jieba.posseg's segmentation (data/posseg.py)
BOUNDARY_KEYS = ("B", "M", "E", "S")


class TablesError(ValueError):
    """serving.json (or its manifest entry) cannot be used; the message names the file and the field."""


def _field(data: Dict[str, Any], key: str, kind, where: str) -> Any:
    if key not in data:
        raise TablesError(f"{where}: missing field {key!r}")
    value = data[key]
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if not ok:
        raise TablesError(f"{where}: {key} must be {getattr(kind, '__name__', kind)}, got {type(value).__name__}")
    return value


def _id_map(data: Dict[str, Any], key: str, where: str, single_chars: bool = False) -> Dict[str, int]:
    table = _field(data, key, dict, where)
    for name, idx in table.items():
        if isinstance(idx, bool) or not isinstance(idx, int) or idx < 0:
            raise TablesError(f"{where}: {key}[{name!r}] must be a non-negative integer, got {idx!r}")
        if single_chars and len(name) != 1:
            raise TablesError(f"{where}: {key} key {name!r} is not one character")
    return table


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_manifest_entry(folder: str, name: str) -> None:
    """`name` has the size and sha256 that the folder's manifest records (no manifest: nothing to check)."""
    manifest_path = os.path.join(folder, MANIFEST_FILE)
    if not os.path.exists(manifest_path):
        return
    try:
        with open(manifest_path, encoding="utf-8") as f:
            entry = json.load(f)["files"][name]
        size, sha = entry["bytes"], entry["sha256"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TablesError(f"{manifest_path}: no usable entry for {name} ({type(exc).__name__}: {exc})") from None
    path = os.path.join(folder, name)
    actual = os.path.getsize(path)
    if actual != size:
        raise TablesError(f"{path}: {actual:,} bytes where {manifest_path} records {size:,}: the file was "
                          "truncated, edited or replaced")
    if _sha256(path) != sha:
        raise TablesError(f"{path}: sha256 differs from {manifest_path}: the file was damaged, edited or replaced")


class ServingFeatures:
    """Texts -> {input name: ids per character}, from the tables of one exported model."""

    def __init__(self, tables: Dict[str, Any], source: str = TABLES_FILE):
        where = source
        if not isinstance(tables, dict):
            raise TablesError(f"{where}: expected a JSON object, got {type(tables).__name__}")
        if tables.get("format") != TABLES_FORMAT:
            raise TablesError(f"{where}: format must be {TABLES_FORMAT}, got {tables.get('format')!r} "
                              "(export the model again with this version)")
        self.source = source
        self.inputs: Tuple[str, ...] = tuple(_field(tables, "inputs", list, where))
        if self.inputs[:2] != ("token_ids", "lengths"):
            raise TablesError(f"{where}: inputs must start with token_ids, lengths; got {list(self.inputs[:2])}")
        self.labels: Tuple[str, ...] = tuple(_field(tables, "labels", list, where))
        if not self.labels:
            raise TablesError(f"{where}: labels is empty")
        for i, tag in enumerate(self.labels):
            try:
                parse_tag(tag)
            except ValueError as exc:
                raise TablesError(f"{where}: labels[{i}]: {exc}") from None
        self.max_seq_len: int = _field(tables, "max_seq_len", int, where)
        self.window_overlap: int = _field(tables, "window_overlap", int, where)
        if self.max_seq_len < 3 or not 0 <= self.window_overlap < self.max_seq_len - 2:
            raise TablesError(f"{where}: max_seq_len {self.max_seq_len} / window_overlap {self.window_overlap}: "
                              "need max_seq_len >= 3 and 0 <= window_overlap < max_seq_len - 2")
        self.buckets: Tuple[int, ...] = tuple(_field(tables, "buckets", list, where))
        if (not self.buckets or list(self.buckets) != sorted(set(self.buckets))
                or self.buckets[-1] != self.max_seq_len or self.buckets[0] < 3):
            raise TablesError(f"{where}: buckets must be increasing row lengths ending at max_seq_len, "
                              f"got {list(self.buckets)}")
        specials = _id_map(tables, "special_ids", where)
        missing = [k for k in SPECIALS if k not in specials]
        if missing:
            raise TablesError(f"{where}: special_ids lacks {', '.join(missing)}")
        self.pad_id, self.unk_id, self.cls_id, self.sep_id = (specials[k] for k in SPECIALS)
        self.char_ids = _id_map(tables, "char_ids", where, single_chars=True)
        features = _field(tables, "features", dict, where)
        unknown = sorted(set(features) - set(self.inputs[2:]))
        if unknown:
            raise TablesError(f"{where}: features {unknown} are not model inputs {list(self.inputs[2:])}")
        self.features = features
        self.boundary_ids: Optional[Dict[str, int]] = None
        self.pos_ids: Optional[Dict[str, int]] = None
        self.pos_unknown = 0
        self.segmenter: Optional[str] = None
        self.bigrams: Optional[Dict[str, int]] = None
        self._read_word_features(features, where)
        if "bigram_ids" in features:
            self._read_bigrams(_field(features, "bigram_ids", dict, where), f"{where}: features.bigram_ids")
        self._jieba = None
        self._posseg = None

    def _read_word_features(self, features: Dict[str, Any], where: str) -> None:
        """features.word_boundaries / pos_ids: the segmenter (one for both) and the id tables."""
        for name in WORD_FEATURES:
            if name in features:
                spec = _field(features, name, dict, where)
                segmenter = _field(spec, "segmenter", str, f"{where}: features.{name}")
                if segmenter not in SEGMENTERS or (self.segmenter not in (None, segmenter)):
                    raise TablesError(f"{where}: features.{name}.segmenter {segmenter!r}: expected one of "
                                      f"{', '.join(SEGMENTERS)}, the same for every word feature")
                self.segmenter = segmenter
        if "word_boundaries" in features:
            self.boundary_ids = _id_map(features["word_boundaries"], "ids", f"{where}: features.word_boundaries")
            if sorted(self.boundary_ids) != sorted(BOUNDARY_KEYS):
                raise TablesError(f"{where}: features.word_boundaries.ids must map exactly {', '.join(BOUNDARY_KEYS)}")
        if "pos_ids" in features:
            spec = features["pos_ids"]
            self.pos_ids = _id_map(spec, "ids", f"{where}: features.pos_ids")
            self.pos_unknown = _field(spec, "unknown", int, f"{where}: features.pos_ids")
            if self.segmenter != "posseg":
                raise TablesError(f"{where}: features.pos_ids needs the posseg segmenter")

    def _read_bigrams(self, spec: Dict[str, Any], at: str) -> None:
        """features.bigram_ids: each character's bigram form, the end mark, the bigram list and its ids."""
        self.bigram_forms = _field(spec, "forms", dict, at)
        if not all(len(k) == 1 and isinstance(v, str) and len(v) == 1 for k, v in self.bigram_forms.items()):
            raise TablesError(f"{at}: forms must map single characters to single characters")
        self.bigram_end = _field(spec, "end", str, at)
        self.bigram_unknown = _field(spec, "unknown", int, at)
        first = _field(spec, "first_id", int, at)
        listed = _field(spec, "bigrams", list, at)
        if not all(isinstance(b, str) and len(b) == 2 for b in listed):
            raise TablesError(f"{at}: bigrams must be two-character strings")
        self.bigrams = {b: first + i for i, b in enumerate(listed)}
        if len(self.bigrams) != len(listed):
            raise TablesError(f"{at}: bigrams has duplicates")

    @classmethod
    def from_dir(cls, folder: str) -> "ServingFeatures":
        """Read `folder`/serving.json (an export's code/model), checked against the folder's manifest."""
        folder = os.fspath(folder)
        path = os.path.join(folder, TABLES_FILE)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: missing (written by `albert-ner export`; export the model again)")
        check_manifest_entry(folder, TABLES_FILE)
        try:
            with open(path, encoding="utf-8") as f:
                tables = json.load(f)
        except (UnicodeDecodeError, ValueError) as exc:
            raise TablesError(f"{path}: not JSON ({exc})") from None
        return cls(tables, path)

    # ---- jieba ------------------------------------------------------------------------------------------
    def load_segmenter(self) -> None:
        """Import jieba and build its dictionary now (about a second), so no request waits for it."""
        if self.segmenter is not None:
            self._words("预热")

    def _words(self, text: str) -> List[Tuple[str, str]]:
        """(word, POS tag or "") pieces of `text` from the model's segmenter; they concatenate to `text`."""
        if self.segmenter == "posseg":
            if self._posseg is None:
                from albert_ner.data import posseg

                self._posseg = posseg
            return list(self._posseg.cut(text))
        if self._jieba is None:
            import jieba

            jieba.setLogLevel(logging.WARNING)
            self._jieba = jieba
        return [(word, "") for word in self._jieba.cut(text, HMM=True)]

    # ---- encoding ---------------------------------------------------------------------------------------
    def token_ids(self, text: str) -> List[int]:
        """One vocabulary id per character."""
        get, unk = self.char_ids.get, self.unk_id
        return [get(c, unk) for c in text]

    def bigram_ids(self, text: str) -> List[int]:
        """Each character's bigram (with its right neighbour, or the end mark) as an id."""
        forms = self.bigram_forms
        norm = [forms.get(c, c) for c in text]
        ids, unknown = self.bigrams, self.bigram_unknown
        return [ids.get(a + b, unknown) for a, b in zip(norm, norm[1:] + [self.bigram_end])]

    def word_features(self, text: str) -> Dict[str, List[int]]:
        """B/M/E/S ids and/or POS ids per character, as the model uses them."""
        pieces = self._words(text)
        covered = sum(len(word) for word, _ in pieces)
        if covered != len(text):  # jieba's pieces always concatenate to the input; guard the alignment anyway
            raise RuntimeError(f"jieba segmentation covered {covered} of {len(text)} characters of {text[:40]!r}")
        out: Dict[str, List[int]] = {}
        if self.boundary_ids is not None:
            b, m, e, s = (self.boundary_ids[k] for k in BOUNDARY_KEYS)
            ids: List[int] = []
            for word, _ in pieces:
                if len(word) == 1:
                    ids.append(s)
                elif word:
                    ids.extend([b] + [m] * (len(word) - 2) + [e])
            out["word_boundaries"] = ids
        if self.pos_ids is not None:
            get, unknown = self.pos_ids.get, self.pos_unknown
            out["pos_ids"] = [idx for word, tag in pieces for idx in [get(tag, unknown)] * len(word)]
        return out

    def encode(self, text: str) -> Dict[str, List[int]]:
        """{"token_ids": [...], and each feature the model uses: [...]}, one id per character of `text`."""
        out = {"token_ids": self.token_ids(text)}
        if self.segmenter is not None:
            out.update(self.word_features(text))
        if self.bigrams is not None:
            out["bigram_ids"] = self.bigram_ids(text)
        return out

    def feature_names(self) -> Sequence[str]:
        """The per-character inputs this model uses (the others are sent as zeros)."""
        return [name for name in self.inputs[2:] if name in self.features]
