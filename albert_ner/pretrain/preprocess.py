"""Preprocess a text corpus into pretraining shards: parallel over cores, resumable, cached by fingerprint.

The documents of all inputs, in order, are cut into *parts* of about `shard_chars` characters (whole
documents); a worker turns each part into chunks (sentences.Segmenter: jieba set up once per worker) and
writes them as shards `train-NNNNN.npz` and `heldout-NNNNN.npz`, then `part-NNNNN.json` (its counts and
shards' sha256). A document goes to the held-out split when the hash of its text falls below
`heldout_fraction`, so the split is fixed by the text alone and never shares a document with training.
Parts depend only on the inputs and settings, never on the number of workers, so the output is the same
for any `workers`. Workers are spawned processes (safe beside TensorFlow's threads), so a script calling
preprocess() with workers > 1 needs the usual `if __name__ == "__main__":` guard.

Resume and cache: `fingerprint.json` (inputs by content: size and sha256 in reading order, see inputs.py;
vocab and user dictionary by sha256; every setting) is written first. Content alone decides, never where the
corpus lies or its mtimes, so a corpus copied afresh or moved resumes (the stored fingerprint is then rewritten
with the new names and paths). A run into a folder with another fingerprint is an error naming what differs
(use a new folder, or delete this one); a run with the same one reuses every part whose shards are intact and
redoes only the rest; when manifest.json is there and every shard is intact, nothing is redone. A folder of an
older version (inputs by path, size and mtime) is kept, with a warning, when the same paths have the same sizes
and every setting is the same, and its fingerprint is rewritten by content.
"""
from __future__ import annotations

import concurrent.futures as futures
import contextlib
import dataclasses
import fcntl
import hashlib
import json
import logging
import multiprocessing
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from albert_ner.config import CHAR_LOOKUPS, DEFAULT_CHAR_LOOKUP
from albert_ner.data.vocab import Vocab
from albert_ner.infer.textfiles import ENCODINGS_AUTO, check_encoding, read_documents
from albert_ner.pretrain import shards as shardfiles
from albert_ner.pretrain.inputs import HASH_CACHE, content_fingerprint, expand_corpus
from albert_ner.pretrain.sentences import Segmenter

log = logging.getLogger(__name__)

DOC_PER = ("line", "file")
FINGERPRINT = "fingerprint.json"
INPUT_FINGERPRINT = "bytes + sha256"  # what decides; each input's name and path are kept for messages only
OLD_INPUT_FINGERPRINT = "path + bytes + mtime_ns"  # older versions': see _old_scheme_fits
INPUT_KEYS = ("inputs", "input_fingerprint")
DECIDING_INPUT_KEYS = ("bytes", "sha256", "error")
DIFFERENCES_NAMED = 5  # differing input files named in a mismatch error (all are counted)
LOCK = "preprocess.lock"
MIN_SEQ_LEN = 8
DEFAULT_SHARD_CHARS = 1_000_000
DEFAULT_HELDOUT_FRACTION = 0.01
UNK_CHARS_KEPT = 50  # most frequent [UNK] characters listed per part and in the manifest
ERRORS_KEPT = 20  # read errors quoted in the manifest (all are counted and logged)
# Every count in the manifest (zeros included): what was read, what was skipped or changed, and why.
COUNT_KEYS = ("files", "unreadable_files", "undecodable_lines", "documents", "blank_documents", "unusable_documents",
              "train_documents", "heldout_documents", "sentences", "sentences_cut", "cuts_inside_word",
              "unk_tokens", "blank_chars_dropped")


class FingerprintMismatch(ValueError):
    """The output folder holds shards of other inputs or settings."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """What a worker needs to turn a part into shards."""

    out_dir: str
    vocab_file: str
    char_lookup: str
    max_seq_len: int
    user_dict: Optional[str]
    heldout_fraction: float


def _sha256_or_none(path: Optional[str]) -> Optional[str]:
    return shardfiles.sha256_file(path) if path else None


def is_heldout(text: str, fraction: float) -> bool:
    """True for the documents of the held-out split: the first 8 bytes of sha256(text) as a fraction of 2**64."""
    if fraction <= 0:
        return False
    value = int.from_bytes(hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()[:8], "big")
    return value < fraction * 2 ** 64


# ---- workers -------------------------------------------------------------------------------------------

_WORKER: Dict[str, Any] = {}


def _init_worker(settings: Settings) -> None:
    """Set up this process's segmenter once (jieba's dictionary, the user dictionary, the vocab)."""
    vocab = Vocab.from_file(settings.vocab_file, settings.char_lookup)
    _WORKER["settings"] = settings
    _WORKER["segmenter"] = Segmenter(vocab, settings.max_seq_len - 3, settings.user_dict)


def _part_name(index: int) -> str:
    return f"part-{index:05d}.json"


def process_part(index: int, texts: Sequence[str]) -> Dict[str, Any]:
    """Turn one part's documents into its train and held-out shards and its part record (written last)."""
    settings: Settings = _WORKER["settings"]
    segmenter: Segmenter = _WORKER["segmenter"]
    start = time.perf_counter()
    counts: Counter = Counter()
    unk_chars: Counter = Counter()
    split_chunks: Dict[str, List] = {split: [] for split in shardfiles.SPLITS}
    for text in texts:
        counts["documents"] += 1
        if not text.strip():
            counts["blank_documents"] += 1
            continue
        chunks = segmenter.chunks(text, counts, unk_chars)
        if not chunks:
            counts["unusable_documents"] += 1  # nothing but blanks and characters the vocab lacks
            continue
        split = "heldout" if is_heldout(text, settings.heldout_fraction) else "train"
        counts[f"{split}_documents"] += 1
        split_chunks[split].extend(chunks)
    out = Path(settings.out_dir)
    record: Dict[str, Any] = {"part": index, "shards": {}}
    for split, chunks in split_chunks.items():
        record["shards"][split] = shardfiles.write_shard(
            out / f"{split}-{index:05d}.npz", [c.token_ids for c in chunks], [c.word_starts for c in chunks],
            [c.sentence_starts for c in chunks])
    record["counts"] = dict(sorted(counts.items()))
    record["unk_chars"] = dict(unk_chars.most_common(UNK_CHARS_KEPT))
    record["seconds"] = round(time.perf_counter() - start, 3)
    shardfiles.write_atomically(out / _part_name(index),
                                lambda f: f.write(json.dumps(record, ensure_ascii=False).encode("utf-8")))
    return record


def _run_part(index: int, texts: Sequence[str]) -> Dict[str, Any]:
    try:
        return process_part(index, texts)
    except Exception as exc:
        raise RuntimeError(f"part {index} (its first document: {texts[0][:40]!r}): "
                           f"{type(exc).__name__}: {exc}") from exc


# ---- reading parts -------------------------------------------------------------------------------------

@dataclasses.dataclass
class _ReadStats:
    files: int = 0
    unreadable_files: int = 0
    undecodable_lines: int = 0
    errors: List[str] = dataclasses.field(default_factory=list)


def _parts(files: Sequence, encoding: str, doc_per: str, shard_chars: int,
           stats: _ReadStats) -> Iterator[Tuple[int, List[str]]]:
    """(index, documents) of about `shard_chars` characters each, in reading order; read errors go to `stats`."""
    index, batch, size = 0, [], 0
    stats.files = len(files)
    for doc in read_documents(files, encoding, whole_file=doc_per == "file", decompress=True):
        if doc.error:
            where = f"{doc.source}:{doc.line}" if doc.line else doc.source
            if doc.line == 0:
                stats.unreadable_files += 1
            else:
                stats.undecodable_lines += 1
            log.warning("%s: %s", where, doc.error)
            if len(stats.errors) < ERRORS_KEPT:
                stats.errors.append(f"{where}: {doc.error}")
            continue
        batch.append(doc.text)
        size += len(doc.text)
        if size >= shard_chars:
            yield index, batch
            index, batch, size = index + 1, [], 0
    if batch:
        yield index, batch


# ---- the run -------------------------------------------------------------------------------------------

@contextlib.contextmanager
def _locked(out: Path) -> Iterator[None]:
    fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ValueError(f"{out}: another preprocessing run is writing this folder") from None
        yield
    finally:
        os.close(fd)


def _check_settings(max_seq_len: int, doc_per: str, workers: int, heldout_fraction: float, shard_chars: int,
                    char_lookup: str) -> None:
    errors = []
    if not isinstance(max_seq_len, int) or max_seq_len < MIN_SEQ_LEN:
        errors.append(f"max_seq_len must be an integer >= {MIN_SEQ_LEN}, got {max_seq_len!r}")
    if doc_per not in DOC_PER:
        errors.append(f"doc_per must be one of {', '.join(DOC_PER)}, got {doc_per!r}")
    if not isinstance(workers, int) or workers < 1:
        errors.append(f"workers must be a positive integer, got {workers!r}")
    if not 0 <= heldout_fraction < 1:
        errors.append(f"heldout_fraction must be in [0, 1), got {heldout_fraction!r}")
    if not isinstance(shard_chars, int) or shard_chars < 1:
        errors.append(f"shard_chars must be a positive integer, got {shard_chars!r}")
    if char_lookup not in CHAR_LOOKUPS:
        errors.append(f"char_lookup must be one of {', '.join(CHAR_LOOKUPS)}, got {char_lookup!r}")
    if errors:
        raise ValueError("; ".join(errors))


def _check_vocab(vocab: Vocab, vocab_file: str) -> None:
    if vocab.pad_id != 0:
        raise ValueError(f"{vocab_file}: [PAD] has id {vocab.pad_id}; pretraining needs it at id 0")
    if vocab.token_to_id("[MASK]") is None:
        raise ValueError(f"{vocab_file}: the vocabulary has no [MASK] token, which masked-LM pretraining needs")


def _read_json(path: Path) -> Optional[Dict[str, Any]]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_json(path: Path, value: Any) -> None:
    data = json.dumps(value, indent=1, ensure_ascii=False).encode("utf-8")
    shardfiles.write_atomically(path, lambda f: f.write(data))


# ---- fingerprints --------------------------------------------------------------------------------------

def _inputs(fingerprint: Any) -> List[Dict[str, Any]]:
    entries = fingerprint.get("inputs") if isinstance(fingerprint, dict) else None
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def _deciding(fingerprint: Any) -> Any:
    """What of a fingerprint decides the shards: every setting and each input's size and sha256 (or read
    error) in reading order; not the inputs' names or paths."""
    if not isinstance(fingerprint, dict):
        return fingerprint
    out = {key: value for key, value in fingerprint.items() if key != "inputs"}
    out["inputs"] = [{k: True if k == "error" else e[k] for k in DECIDING_INPUT_KEYS if k in e}
                     for e in _inputs(fingerprint)]  # an unreadable file: whatever the reason
    return out


def _settings(fingerprint: Dict[str, Any]) -> Dict[str, Any]:
    return {key: value for key, value in fingerprint.items() if key not in INPUT_KEYS}


def _inputs_fit(old: Dict[str, Any], new: Dict[str, Any]) -> bool:
    """The same inputs: by content; for an older version's fingerprint, the same paths with the same sizes."""
    if old.get("input_fingerprint") == OLD_INPUT_FINGERPRINT:
        def files(fingerprint: Dict[str, Any]) -> List[Tuple[Any, Any, bool]]:
            return [(e.get("path"), e.get("bytes"), "error" in e) for e in _inputs(fingerprint)]
        return files(old) == files(new)
    return old.get("input_fingerprint") == new.get("input_fingerprint") and (
        _deciding(old)["inputs"] == _deciding(new)["inputs"])


def _old_scheme_fits(old: Any, new: Dict[str, Any]) -> bool:
    """True for an older version's fingerprint (inputs by path, size and mtime) with every setting equal and the
    same files, in the same order, at the same paths with the same sizes: kept, since the shards of a run half
    done should not be stranded, though it cannot prove the content (see _accept_fingerprint's warning)."""
    return (isinstance(old, dict) and old.get("input_fingerprint") == OLD_INPUT_FINGERPRINT
            and _settings(old) == _settings(new) and _inputs_fit(old, new))


def _fits(saved: Any, new: Dict[str, Any]) -> bool:
    """Whether shards made under the `saved` fingerprint are those `new` would make."""
    return _deciding(saved) == _deciding(new) or _old_scheme_fits(saved, new)


def _accept_fingerprint(out: Path, old: Any, new: Dict[str, Any]) -> None:
    """Keep the folder's shards when its fingerprint fits `new` (rewriting it as `new` where it differs: the
    corpus moved, or an older version wrote it); else FingerprintMismatch naming what differs."""
    if old == new:
        return
    if _deciding(old) == _deciding(new):
        log.info("%s: the inputs have the content recorded (their names, paths or read errors differ); shards kept",
                 out)
    elif _old_scheme_fits(old, new):
        log.warning("%s: %s was written by an older version, which recorded the inputs by path, size and mtime and "
                    "so cannot prove their content; the same paths have the same sizes, so its shards are kept "
                    "(delete the folder to preprocess again if a file was edited). Its fingerprint is rewritten "
                    "by content.", out, FINGERPRINT)
    else:
        raise FingerprintMismatch(_mismatch_message(out, old, new))
    _write_json(out / FINGERPRINT, new)


def _mismatch_message(out: Path, old: Any, new: Dict[str, Any]) -> str:
    if not isinstance(old, dict):
        return (f"{out / FINGERPRINT}: not a fingerprint (a JSON object expected); use a new folder, or delete "
                "this one to preprocess again")
    what = []
    if not _inputs_fit(old, new):
        files = _input_differences(_inputs(old), _inputs(new))
        if files:
            named = "; ".join(files[:DIFFERENCES_NAMED])
            more = f"; and {len(files) - DIFFERENCES_NAMED} more" if len(files) > DIFFERENCES_NAMED else ""
            what.append(f"inputs differ in {len(files)} file{'s' if len(files) > 1 else ''}: {named}{more}")
        elif old.get("input_fingerprint") in (INPUT_FINGERPRINT, OLD_INPUT_FINGERPRINT):
            what.append("inputs differ: the same files, read in another order")
        else:
            what.append(f"inputs differ: recorded as {old.get('input_fingerprint')!r}, not {INPUT_FINGERPRINT!r}")
    old_settings, new_settings = _settings(old), _settings(new)
    settings = [key for key in sorted(set(old_settings) | set(new_settings))
                if old_settings.get(key) != new_settings.get(key)]
    if settings:
        what.append(f"{', '.join(settings)} differ")
    return (f"{out}: holds shards of other inputs or settings ({'; '.join(what) or 'the fingerprints differ'}); "
            "use a new folder, or delete this one to preprocess again")


def _input_differences(old: List[Dict[str, Any]], new: List[Dict[str, Any]]) -> List[str]:
    """'NAME: what changed' per differing file: new ones and changed ones in reading order, then the dropped ones.
    Files are matched by name (an older version's fingerprint has none: by path)."""
    key = "name" if all("name" in e for e in old) else "path"
    before = {e.get(key): e for e in old}
    now = {e.get(key): e for e in new}
    out = []
    for label, entry in now.items():
        change = "new input" if label not in before else _file_change(before[label], entry)
        if change:
            out.append(f"{label}: {change}")
    out += [f"{label}: no longer an input" for label in before if label not in now]
    return out


def _file_change(old: Dict[str, Any], new: Dict[str, Any]) -> Optional[str]:
    if "error" in new:
        return None if "error" in old else f"cannot be read now ({new['error']})"
    if "error" in old:
        return "can be read now (not before)"
    if old.get("bytes") != new.get("bytes"):
        return f"content differs ({old.get('bytes')} bytes before, {new.get('bytes')} now)"
    if "sha256" in old and old.get("sha256") != new.get("sha256"):
        return "content differs (same size, another sha256)"
    return None  # an older version's record: the same size is all it can compare


def _intact_part(out: Path, index: int) -> Optional[Dict[str, Any]]:
    """The record of a finished part whose shards are all there with their recorded sha256, else None."""
    record = _read_json(out / _part_name(index))
    if not record or record.get("part") != index:
        return None
    for shard in record.get("shards", {}).values():
        path = out / shard["file"]
        if not path.is_file() or shardfiles.sha256_file(path) != shard["sha256"]:
            return None
    return record


def _remove_temporaries(out: Path) -> None:
    for path in out.glob("*.tmp-*"):
        log.info("%s: removing an unfinished file of an interrupted run", path)
        path.unlink()


def preprocess(inputs: Sequence[str], out_dir: str, vocab_file: str, max_seq_len: int,
               user_dict: Optional[str] = None, doc_per: str = "line", workers: Optional[int] = None,
               heldout_fraction: float = DEFAULT_HELDOUT_FRACTION, encoding: str = ENCODINGS_AUTO, *,
               char_lookup: str = DEFAULT_CHAR_LOOKUP, glob: str = "*",
               shard_chars: int = DEFAULT_SHARD_CHARS) -> Dict[str, Any]:
    """Preprocess `inputs` (files, directories, glob patterns; plain or gzip/xz/bzip2) into `out_dir`; returns
    the manifest (also written to out_dir/manifest.json). See the module docstring for resume and caching.

    `char_lookup` must be the one the model will be trained with (config.CHAR_LOOKUPS)."""
    workers = workers or max(1, os.cpu_count() or 1)  # None or 0: one per core
    _check_settings(max_seq_len, doc_per, workers, heldout_fraction, shard_chars, char_lookup)
    check_encoding(encoding)
    vocab = Vocab.from_file(vocab_file, char_lookup)
    _check_vocab(vocab, vocab_file)
    if user_dict and not Path(user_dict).is_file():
        raise FileNotFoundError(f"{user_dict}: no such user dictionary file")
    files = expand_corpus(inputs, glob)
    import jieba

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with _locked(out):  # the hash cache in `out` is read and written under the lock
        fingerprint = {
            "format_version": shardfiles.FORMAT_VERSION,
            "inputs": content_fingerprint(files, out / HASH_CACHE), "input_fingerprint": INPUT_FINGERPRINT,
            "vocab_sha256": _sha256_or_none(vocab_file), "char_lookup": char_lookup,
            "user_dict_sha256": _sha256_or_none(user_dict), "jieba": jieba.__version__,
            "max_seq_len": max_seq_len, "doc_per": doc_per, "encoding": encoding,
            "heldout_fraction": heldout_fraction, "shard_chars": shard_chars,
        }
        return _run(files, out, fingerprint, Settings(str(out), os.fspath(vocab_file), char_lookup, max_seq_len,
                                                      os.fspath(user_dict) if user_dict else None,
                                                      heldout_fraction), workers, encoding, doc_per, shard_chars)


def _run(files, out: Path, fingerprint: Dict[str, Any], settings: Settings, workers: int, encoding: str,
         doc_per: str, shard_chars: int) -> Dict[str, Any]:
    old = _read_json(out / FINGERPRINT)
    if old is None and any(out.glob("part-*.json")):
        raise FingerprintMismatch(f"{out}: holds shards but no {FINGERPRINT}; use a new folder or delete this one")
    if old is not None:
        _accept_fingerprint(out, old, fingerprint)
    manifest = _read_json(out / shardfiles.MANIFEST)
    if old is not None and manifest and _fits(manifest.get("fingerprint"), fingerprint):
        problems = shardfiles.verify_shards(out, manifest)
        if not problems:
            if manifest["fingerprint"] != fingerprint:  # the corpus moved, or an older version's fingerprint
                manifest["fingerprint"] = fingerprint
                _write_json(out / shardfiles.MANIFEST, manifest)
            log.info("%s: already preprocessed from the same inputs and settings; nothing redone (%s)", out,
                     _summary(manifest))
            return manifest
        log.warning("%s: redoing the parts of damaged shards: %s", out, "; ".join(problems[:5]))
        (out / shardfiles.MANIFEST).unlink()
    if old is None:
        _write_json(out / FINGERPRINT, fingerprint)
    _remove_temporaries(out)

    start = time.perf_counter()
    stats = _ReadStats()
    records: Dict[int, Dict[str, Any]] = {}
    reused: set = set()
    with _pool(settings, workers) as submit:
        pending: Dict[futures.Future, int] = {}

        def collect(wait_for_all: bool) -> None:
            done, _ = futures.wait(pending, return_when=futures.ALL_COMPLETED if wait_for_all
                                   else futures.FIRST_COMPLETED)
            for future in done:
                index = pending.pop(future)
                try:
                    records[index] = future.result()
                except futures.process.BrokenProcessPool:
                    raise RuntimeError(f"a worker process died while part {index} was being made (killed, out of "
                                       f"memory, or a script that calls preprocess() without an "
                                       f"`if __name__ == \"__main__\":` guard)") from None
                log.info("part %d: %d chunks in %.1f s", index, sum(s["examples"] for s in
                                                                    records[index]["shards"].values()),
                         records[index]["seconds"])

        for index, texts in _parts(files, encoding, doc_per, shard_chars, stats):
            record = _intact_part(out, index)
            if record is not None:
                records[index] = record
                reused.add(index)
                continue
            while len(pending) >= 2 * workers:
                collect(False)
            pending[submit(index, texts)] = index
        while pending:
            collect(True)
    manifest = _manifest(fingerprint, records, stats, len(reused), time.perf_counter() - start, workers)
    done = [records[i] for i in records if i not in reused]
    busy = sum(r["seconds"] for r in done)
    if busy > 0:
        made = sum(s["examples"] for r in done for s in r["shards"].values())
        log.info("%s: %d chunks made in %.1f worker-seconds: %.0f chunks/s per worker", out, made, busy, made / busy)
    _write_json(out / shardfiles.MANIFEST, manifest)
    log.info("%s: %s", out, _summary(manifest))
    if not manifest["splits"]["train"]["examples"]:
        log.warning("%s: no training chunk was made from %s", out, ", ".join(str(f) for f in files[:3]))
    return manifest


@contextlib.contextmanager
def _pool(settings: Settings, workers: int):
    """A `submit(index, texts) -> Future` running parts in `workers` processes (in this one when workers is 1)."""
    if workers == 1:
        _init_worker(settings)

        def run_here(index: int, texts: Sequence[str]) -> futures.Future:
            future: futures.Future = futures.Future()
            future.set_result(_run_part(index, texts))
            return future

        yield run_here
        return
    executor = futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                           initializer=_init_worker, initargs=(settings,))
    try:
        yield lambda index, texts: executor.submit(_run_part, index, texts)
    except BaseException:
        executor.shutdown(wait=True, cancel_futures=True)
        raise
    executor.shutdown(wait=True)


def _manifest(fingerprint: Dict[str, Any], records: Dict[int, Dict[str, Any]], stats: _ReadStats, reused: int,
              seconds: float, workers: int) -> Dict[str, Any]:
    counts: Counter = Counter({key: 0 for key in COUNT_KEYS})
    unk_chars: Counter = Counter()
    splits: Dict[str, Dict[str, Any]] = {}
    for split in shardfiles.SPLITS:
        shards, first, tokens = [], 0, 0
        for index in sorted(records):
            shard = dict(records[index]["shards"][split], first_index=first)
            shards.append(shard)
            first += shard["examples"]
            tokens += shard["tokens"]
        splits[split] = {"examples": first, "tokens": tokens, "shards": shards}
    for record in records.values():
        counts.update(record["counts"])
        unk_chars.update(record.get("unk_chars", {}))
    counts.update({"files": stats.files, "unreadable_files": stats.unreadable_files,
                   "undecodable_lines": stats.undecodable_lines})
    return {
        "format": shardfiles.FORMAT, "format_version": shardfiles.FORMAT_VERSION,
        "fingerprint": fingerprint,
        "counts": {key: counts[key] for key in COUNT_KEYS},
        "unk_chars": dict(unk_chars.most_common(UNK_CHARS_KEPT)),
        "read_errors": stats.errors,
        "splits": splits,
        "parts": len(records), "parts_reused": reused, "workers": workers, "seconds": round(seconds, 3),
    }


def _summary(manifest: Dict[str, Any]) -> str:
    c, s = Counter(manifest["counts"]), manifest["splits"]
    return (f"{c['documents']} documents from {c['files']} files -> {s['train']['examples']} train chunks "
            f"({s['train']['tokens']} tokens), {s['heldout']['examples']} held-out chunks "
            f"({s['heldout']['tokens']} tokens); skipped: {c['blank_documents']} blank documents, "
            f"{c['unusable_documents']} documents without a known character, {c['unreadable_files']} unreadable "
            f"files, {c['undecodable_lines']} undecodable lines; {c['sentences_cut']} sentences cut as longer "
            f"than a chunk ({c['cuts_inside_word']} cuts inside a word), {c['unk_tokens']} [UNK] tokens, "
            f"{c['blank_chars_dropped']} whitespace/control characters dropped; {manifest['parts']} parts "
            f"({manifest['parts_reused']} reused) in {manifest['seconds']:.1f} s")
