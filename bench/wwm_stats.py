"""Benchmark: whole-word masking statistics on the pretraining corpus (issue 13, item 4).

Runs the real preprocessing (albert_ner/pretrain/preprocess.py: sentences, jieba words, chunks of at most
--max-seq-len - 3 tokens, shards) over the corpus and the real masking (pretrain/examples.build_example, the
function `albert-ner pretrain` maps over its chunks, with its defaults: 15% of tokens, whole jieba words,
80/10/10) over every chunk once, then counts, in each chunk's own order (the SOP swap undone):
- tokens (no [CLS]/[SEP]) and masked tokens, their share, and the target (round(15% x tokens) per chunk);
- how the masked tokens were replaced ([MASK] / a random id / kept; a random id equal to the original counts as
  kept);
- masked spans: maximal runs of masked tokens inside one word (a "word" is a run of the stored word-start marks:
  jieba's words, and the rest of a word that the length limit cut counts as a word of its own, as the masker
  sees it). A span is a whole multi-character word, a single-character word, or a piece of a multi-character
  word (only char-level masking, --char-mask-share, or an SOP split inside a word makes those); the span-length
  distribution; and how many tokens of the corpus sit in multi-character words.

Full run (all 9 shards, shards kept in --data-dir so a rerun skips preprocessing; a few minutes on 2 cores):

    python bench/wwm_stats.py --workers 2 --data-dir bench/runs/wwm_shards \
        --json-out bench/runs/wwm_stats.json
    python bench/wwm_stats.py --workers 2 --data-dir bench/runs/wwm_shards --char-mask-share 0.3 \
        --json-out bench/runs/wwm_stats_char03.json

A quick look: `--max-lines 20000` (the first lines of the corpus; the shards' lines are shuffled, so any head is
a sample). Vocabulary: m3e-small's (`albert-ner download m3e-small`) unless --vocab-file. Not a test; results
belong in BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_CORPUS = BENCH_DIR.parent.parent / "shared" / "corpus" / "zh-*.txt.xz"
DEFAULT_CHECKPOINT = Path.home() / ".cache" / "albert-ner" / "pretrained" / "m3e-small"
DEFAULT_JSON = BENCH_DIR / "runs" / "wwm_stats.json"
SPAN_BINS = (1, 2, 3, 4, 5, 6)  # span lengths counted one by one; longer ones go to "7+"

log = logging.getLogger("wwm_stats")


# ---- corpus -----------------------------------------------------------------------------------------------
def first_documents(inputs: Sequence[str], max_lines: int, encoding: str = "auto") -> Dict[str, Any]:
    """The first `max_lines` documents (one per line) of `inputs` in reading order, with how many read errors
    were skipped on the way: {"texts": [...], "skipped_errors": n, "first_errors": [...]}."""
    from albert_ner.infer.textfiles import read_documents
    from albert_ner.pretrain.inputs import expand_corpus

    texts: List[str] = []
    errors: List[str] = []
    for doc in read_documents(expand_corpus(inputs), encoding, decompress=True):
        if doc.error:
            errors.append(f"{doc.source}:{doc.line}: {doc.error}")
            continue
        texts.append(doc.text)
        if len(texts) >= max_lines:
            break
    return {"texts": texts, "skipped_errors": len(errors), "first_errors": errors[:5]}


def write_head(inputs: Sequence[str], max_lines: int, path: Path) -> Dict[str, Any]:
    """Write the first `max_lines` documents of `inputs` to `path`, one per line; returns first_documents' counts.
    A file already there with the same text is left alone (its mtime keys the preprocessing hash cache)."""
    head = first_documents(inputs, max_lines)
    bad = [i for i, t in enumerate(head["texts"]) if "\n" in t or "\r" in t]
    if bad:
        raise ValueError(f"{inputs}: document {bad[0] + 1} holds a line break; cannot write it as one line")
    text = "".join(t + "\n" for t in head["texts"])
    if not (path.is_file() and path.read_text(encoding="utf-8") == text):
        path.write_text(text, encoding="utf-8")
    return {"lines": len(head["texts"]), "skipped_errors": head["skipped_errors"],
            "first_errors": head["first_errors"]}


def default_vocab(checkpoint: Path) -> str:
    """The vocabulary file of a pretrained encoder folder (m3e-small: its tokenizer.json)."""
    from albert_ner.weights.convert import pretrained_encoder_config

    vocab = pretrained_encoder_config(checkpoint)[1]
    if vocab is None:
        raise FileNotFoundError(f"{checkpoint}: no vocabulary beside the weights; pass --vocab-file")
    return str(vocab)


# ---- counting ---------------------------------------------------------------------------------------------
class Tally:
    """Running counts over chunks, each given in its own token order (see add)."""

    def __init__(self) -> None:
        self.c: Counter = Counter()
        self.span_lengths: Counter = Counter()

    def add(self, tokens: np.ndarray, starts: np.ndarray, inputs: np.ndarray, masked: np.ndarray,
            chunk_first: np.ndarray, targets: int, mask_id: int) -> None:
        """Count chunks laid end to end: tokens (original ids), starts (word-start marks), inputs (what the model
        sees), masked (bool: predicted), chunk_first (bool: a chunk's first token), targets (the masker's
        per-chunk target, summed)."""
        n = len(tokens)
        starts = np.logical_or(starts != 0, chunk_first)
        word_of = np.cumsum(starts) - 1
        word_len = np.bincount(word_of)
        self.c["chunks"] += int(np.count_nonzero(chunk_first))
        self.c["tokens"] += n
        self.c["words"] += len(word_len)
        self.c["multi_char_words"] += int(np.count_nonzero(word_len >= 2))
        self.c["tokens_in_multi_char_words"] += int(np.count_nonzero(word_len[word_of] >= 2))
        self.c["masked_tokens"] += int(np.count_nonzero(masked))
        self.c["masked_tokens_in_multi_char_words"] += int(np.count_nonzero(masked & (word_len[word_of] >= 2)))
        self.c["target_tokens"] += int(targets)
        self.c["replaced_mask"] += int(np.count_nonzero(masked & (inputs == mask_id)))
        self.c["replaced_kept"] += int(np.count_nonzero(masked & (inputs == tokens)))
        self.c["replaced_random"] += int(np.count_nonzero(masked & (inputs != mask_id) & (inputs != tokens)))
        # Spans: runs of masked tokens, cut at word starts (a span never crosses a word boundary).
        before = np.concatenate([[False], masked[:-1]]) if n else masked
        span_start = masked & (starts | ~before)
        span_of = np.cumsum(span_start) - 1
        span_len = np.bincount(span_of[masked], minlength=int(np.count_nonzero(span_start)))
        span_word_len = word_len[word_of[span_start]]
        whole = span_len == span_word_len
        self.c["spans"] += len(span_len)
        self.c["spans_whole_multi_char_word"] += int(np.count_nonzero(whole & (span_word_len >= 2)))
        self.c["spans_single_char_word"] += int(np.count_nonzero(span_word_len == 1))
        self.c["spans_part_of_word"] += int(np.count_nonzero(~whole))
        self.span_lengths.update(np.minimum(span_len, SPAN_BINS[-1] + 1).tolist())
        # Words: masked whole, masked in part (some of their tokens only).
        masked_in_word = np.bincount(word_of[masked], minlength=len(word_len))
        self.c["words_masked_whole"] += int(np.count_nonzero(masked_in_word == word_len))
        self.c["words_masked_in_part"] += int(np.count_nonzero((masked_in_word > 0) & (masked_in_word < word_len)))

    def report(self) -> Dict[str, Any]:
        c = self.c
        tokens, masked, spans = c["tokens"], c["masked_tokens"], c["spans"]

        def share(a: int, b: int) -> Optional[float]:
            return a / b if b else None

        lengths = {str(k) if k <= SPAN_BINS[-1] else f"{SPAN_BINS[-1] + 1}+": self.span_lengths.get(k, 0)
                   for k in list(SPAN_BINS) + [SPAN_BINS[-1] + 1]}
        return {"counts": dict(sorted(c.items())),
                "masked_share": share(masked, tokens), "target_share": share(c["target_tokens"], tokens),
                "replacement_shares": {k: share(c[f"replaced_{k}"], masked) for k in ("mask", "random", "kept")},
                "span_shares": {"whole_multi_char_word": share(c["spans_whole_multi_char_word"], spans),
                                "single_char_word": share(c["spans_single_char_word"], spans),
                                "part_of_word": share(c["spans_part_of_word"], spans)},
                "whole_word_spans_share": share(c["spans_whole_multi_char_word"] + c["spans_single_char_word"], spans),
                "mean_span_length": share(masked, spans),
                "span_lengths": lengths,
                "span_length_shares": {k: share(v, spans) for k, v in lengths.items()},
                "tokens_in_multi_char_words_share": share(c["tokens_in_multi_char_words"], tokens),
                "masked_tokens_in_multi_char_words_share": share(c["masked_tokens_in_multi_char_words"], masked)}


def chunk_positions(batch: Dict[str, np.ndarray], sop: bool) -> np.ndarray:
    """int [R, C]: for each padded example row (build_example's fields) the row position of its chunk's token
    p, p < chunk_len: [CLS] and [SEP]s skipped and the sentence-order swap undone. Past chunk_len: 0."""
    n = batch["chunk_len"].astype(np.int64)[:, None]
    p = np.arange(batch["chunk_tokens"].shape[1], dtype=np.int64)[None, :]
    plain = 1 + p  # [CLS] chunk [SEP]
    if sop:
        real = np.arange(batch["segment_ids"].shape[1])[None, :] < batch["lengths"][:, None]
        # tokens before the middle [SEP]: segment 0 holds [CLS] A [SEP]
        first = (np.count_nonzero((batch["segment_ids"] == 0) & real, axis=1) - 2)[:, None]
        swapped = (batch["sop_labels"] != 0)[:, None]
        in_order = np.where(p < first, 1 + p, 2 + p)  # [CLS] A [SEP] B [SEP], A = chunk[:first]
        # swapped: [CLS] chunk[split:] [SEP] chunk[:split] [SEP], split = n - first
        back = np.where(p < n - first, 2 + first + p, 1 + p - (n - first))
        plain = np.where(n >= 2, np.where(swapped, back, in_order), plain)
    return np.where(p < n, plain, 0)


def masked_examples(data_dir: str, spec, seed: int, epoch: int, batch_size: int) -> Iterator[Dict[str, np.ndarray]]:
    """Padded numpy batches of every training chunk (stored order) through build_example, with the chunk's own
    token ids, word starts and length beside the example's fields."""
    import tensorflow as tf

    from albert_ner.pretrain.examples import build_example
    from albert_ner.pretrain.shards import read_examples

    def both(chunk):
        out = dict(build_example(chunk, spec, seed, epoch))
        out.update(chunk_tokens=tf.cast(chunk["token_ids"], tf.int32),
                   word_starts=tf.cast(chunk["word_starts"], tf.int32), chunk_len=tf.size(chunk["token_ids"]))
        return out

    ds = read_examples(data_dir, "train", shuffle_buffer=0).map(both, num_parallel_calls=tf.data.AUTOTUNE,
                                                                deterministic=True)
    for batch in ds.padded_batch(batch_size).prefetch(2).as_numpy_iterator():
        yield batch


def count_masks(data_dir: str, spec, seed: int, epoch: int, batch_size: int) -> Tally:
    """Mask every chunk of `data_dir` once with `spec` and count (see Tally.add)."""
    tally = Tally()
    for batch in masked_examples(data_dir, spec, seed, epoch, batch_size):
        n = batch["chunk_len"]
        valid = np.arange(batch["chunk_tokens"].shape[1])[None, :] < n[:, None]
        where = chunk_positions(batch, spec.sop)
        labels = np.take_along_axis(batch["mlm_labels"], where, axis=1)[valid]
        inputs = np.take_along_axis(batch["token_ids"], where, axis=1)[valid]
        tokens = batch["chunk_tokens"][valid]
        masked = labels >= 0
        if not (np.array_equal(labels[masked], tokens[masked]) and np.array_equal(inputs[~masked], tokens[~masked])):
            raise RuntimeError(f"{data_dir}: once the example layout is undone, a label or an unmasked input differs "
                               "from its chunk token; the example format is not the one this script reads")
        chunk_first = np.zeros_like(valid)
        chunk_first[:, 0] = True
        targets = np.maximum(np.floor(n * spec.mask_prob + 0.5).astype(np.int64), 1)
        tally.add(tokens, batch["word_starts"][valid], inputs, masked, chunk_first[valid], int(targets.sum()),
                  spec.mask_id)
    return tally


# ---- the run ----------------------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> Dict[str, Any]:
    """Preprocess (or reuse) the corpus shards, mask every chunk once, count; returns the report."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.workers)
    tf.config.threading.set_inter_op_parallelism_threads(args.workers)
    from albert_ner.data.vocab import Vocab
    from albert_ner.pretrain.examples import ExampleSpec
    from albert_ner.pretrain.preprocess import preprocess
    from albert_ner.pretrain.task import CHAR_LOOKUP

    vocab_file = args.vocab_file or default_vocab(args.checkpoint)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="wwm_stats_") as tmp:
        inputs, head = list(args.corpus), None
        data_dir = str(args.data_dir) if args.data_dir else str(Path(tmp) / "shards")
        if args.max_lines:  # the head and its shards beside each other, in --data-dir when given (reused)
            folder = Path(args.data_dir) if args.data_dir else Path(tmp)
            folder.mkdir(parents=True, exist_ok=True)
            head_file = folder / f"head-{args.max_lines}.txt"
            head = write_head(args.corpus, args.max_lines, head_file)
            inputs, data_dir = [str(head_file)], str(folder / f"head-{args.max_lines}-shards")
        manifest = preprocess(inputs, data_dir, vocab_file, args.max_seq_len, user_dict=args.user_dict,
                              workers=args.workers, heldout_fraction=0.0, char_lookup=CHAR_LOOKUP)
        prep_s = time.perf_counter() - started
        vocab = Vocab.from_file(vocab_file, char_lookup=CHAR_LOOKUP)
        spec = ExampleSpec.for_vocab(vocab, args.max_seq_len, mask_prob=args.mask_prob, whole_word=not args.char_level,
                                     char_mask_share=args.char_mask_share, sop=args.sop == "on")
        t0 = time.perf_counter()
        tally = count_masks(data_dir, spec, args.seed, args.epoch, args.batch_size)
        mask_s = time.perf_counter() - t0
    stats = tally.report()
    corpus = dict(manifest["counts"], chunks=manifest["splits"]["train"]["examples"],
                  tokens=manifest["splits"]["train"]["tokens"])
    if stats["counts"].get("tokens", 0) != corpus["tokens"]:
        raise RuntimeError(f"{data_dir}: counted {stats['counts'].get('tokens', 0)} tokens, the manifest says "
                           f"{corpus['tokens']}")
    return {"corpus_inputs": [str(p) for p in args.corpus], "max_lines": args.max_lines, "head": head,
            "vocab_file": vocab_file, "user_dict": args.user_dict, "data_dir": str(args.data_dir or ""),
            "settings": {"max_seq_len": args.max_seq_len, "mask_prob": spec.mask_prob,
                         "whole_word": spec.whole_word, "char_mask_share": spec.char_mask_share, "sop": spec.sop,
                         "replace_probs": list(spec.replace_probs), "seed": args.seed, "epoch": args.epoch},
            "corpus": corpus, "unk_chars": dict(list(manifest.get("unk_chars", {}).items())[:10]),
            "stats": stats, "seconds": {"preprocess": round(prep_s, 1), "mask_and_count": round(mask_s, 1)},
            "workers": args.workers}


def pct(x: Optional[float]) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def markdown(report: Dict[str, Any]) -> str:
    s, c, st = report["settings"], report["stats"]["counts"], report["stats"]
    what = f"{report['corpus']['documents']:,} lines" + (" (head)" if report["max_lines"] else " (all)")
    masking = ("whole word" if s["whole_word"] else "char") + (f", char share {s['char_mask_share']:g}"
                                                               if s["char_mask_share"] else "") + \
        (", SOP" if s["sop"] else "")
    lines = ["| corpus | masking | chunks | tokens | masked (share; target) | [MASK]/random/kept | spans | "
             "whole multi-char words | single-char words | parts of words | mean span | tokens in multi-char words |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|",
             f"| {what} | {masking} | {c['chunks']:,} | {c['tokens']:,} | {c['masked_tokens']:,} "
             f"({pct(st['masked_share'])}; {pct(st['target_share'])}) | "
             f"{' / '.join(pct(v) for v in st['replacement_shares'].values())} | {c['spans']:,} | "
             f"{pct(st['span_shares']['whole_multi_char_word'])} | {pct(st['span_shares']['single_char_word'])} | "
             f"{pct(st['span_shares']['part_of_word'])} | {st['mean_span_length'] or 0:.2f} | "
             f"{pct(st['tokens_in_multi_char_words_share'])} |",
             "", "| span length | " + " | ".join(st["span_lengths"]) + " |",
             "|---|" + "---|" * len(st["span_lengths"]),
             "| share of spans | " + " | ".join(pct(v) for v in st["span_length_shares"].values()) + " |"]
    return "\n".join(lines)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", nargs="+", default=[str(DEFAULT_CORPUS)],
                   help="text files, directories or globs (plain, .gz, .xz, .bz2); default: ../shared/corpus")
    p.add_argument("--max-lines", type=int, default=0, help="only the first N lines (documents); 0 = all")
    p.add_argument("--vocab-file", default=None, help="default: the vocabulary of --checkpoint")
    p.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help="where the default vocabulary is")
    p.add_argument("--user-dict", default=None, help="jieba user dictionary (its words are masked whole)")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="keep the preprocessed shards here (reused by a rerun); default: a temporary folder")
    p.add_argument("--workers", type=int, default=max(1, len(os.sched_getaffinity(0))
                                                         if hasattr(os, "sched_getaffinity") else 1),
                   help="preprocessing processes and TensorFlow threads (default: the usable cores)")
    p.add_argument("--max-seq-len", type=int, default=128)
    p.add_argument("--mask-prob", type=float, default=0.15)
    p.add_argument("--char-mask-share", type=float, default=0.0, help="ERNIE's share of char-level masking units")
    p.add_argument("--char-level", action="store_true", help="no whole-word masking (BERT's original masking)")
    p.add_argument("--sop", choices=("on", "off"), default="off",
                   help="build sentence-order pairs too (their split starts a masking unit); off as for m3e-small")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--epoch", type=int, default=0, help="which pass's masks (they change every pass)")
    p.add_argument("--batch-size", type=int, default=512, help="chunks masked per tf.data batch (speed only)")
    p.add_argument("--json-out", type=Path, default=DEFAULT_JSON)
    args = p.parse_args(argv)
    for name in ("max_lines", "workers", "batch_size"):
        if getattr(args, name) < (0 if name == "max_lines" else 1):
            p.error(f"--{name.replace('_', '-')} must be >= {0 if name == 'max_lines' else 1}, "
                    f"got {getattr(args, name)}")
    if args.vocab_file and not Path(args.vocab_file).is_file():
        p.error(f"--vocab-file {args.vocab_file}: no such file")
    if not args.vocab_file and not (args.checkpoint / "config.json").is_file():
        p.error(f"--checkpoint {args.checkpoint}: no config.json there (get m3e-small with "
                "`albert-ner download m3e-small`), or pass --vocab-file")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    report = run(args)
    print(markdown(report))
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")
    print(f"# wrote {args.json_out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
