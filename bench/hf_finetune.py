"""The Hugging Face side of the accuracy comparison: BertForTokenClassification fine-tuned on MSRA windows.

The same training sentences (load_splits: same dev hold-out and --max-train-sentences), the same windows
(make_windows) and the same seqeval entity report as `albert-ner train`; characters become ids through the
checkpoint's own tokenizer, one word per character, its first sub-token. Resumable: model, optimizer,
scheduler, torch RNG and the (epoch, batch) position are saved every --checkpoint-every steps; the data
order is a function of (seed, epoch) alone. Run through bench/hf_compare.py --mode finetune.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from albert_ner.data.corpus import Sentence
from albert_ner.data.download import sha256_of
from albert_ner.data.pipeline import Window, label_index, labels_from_sentences, make_windows
from albert_ner.data.splits import load_splits
from albert_ner.data.windows import merge_spans
from albert_ner.train.report import entity_report, format_table, metric_lines

STATE_FILE = "state.pt"
RESULTS_FILE = "results.json"
STATE_FORMAT = 1
IGNORE = -100  # label of [CLS], [SEP] and padding: no loss
# Arguments that change what is trained; a checkpoint is resumed only when all of them match.
RUN_FIELDS = ("checkpoint", "data_dir", "epochs", "lr", "head_lr", "batch_size", "max_seq_len", "window_overlap",
              "warmup_ratio", "weight_decay", "clip_norm", "dev_fraction", "precision", "max_train_sentences",
              "seed", "hf_attn")
AUTOCAST = {"float32": None, "bf16": "bfloat16"}
EXAMPLES = 20


class ResumeMismatch(ValueError):
    """The output directory holds a checkpoint of a run with other settings."""


# ---- optimisation, shared with the step benchmark ---------------------------------------------------------
def hf_optimizer(model, lr: float, head_lr: float, weight_decay: float, total: int, warmup: int):
    """AdamW with no decay on biases and LayerNorm weights, the classifier at head_lr, linear warmup/decay."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    groups: Dict[Tuple[bool, bool], List] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            no_decay = name.endswith("bias") or "LayerNorm" in name or "layer_norm" in name
            groups.setdefault((name.startswith("classifier."), no_decay), []).append(p)
    params = [{"params": ps, "lr": head_lr if head else lr, "weight_decay": 0.0 if nd else weight_decay}
              for (head, nd), ps in sorted(groups.items())]
    opt = torch.optim.AdamW(params, lr=lr, eps=1e-6)
    return opt, get_linear_schedule_with_warmup(opt, warmup, max(total, 1))


def autocast(dtype_name: Optional[str]):
    """torch CPU autocast to `dtype_name`, or a no-op for float32."""
    import torch

    if dtype_name is None:
        return contextlib.nullcontext()
    return torch.autocast("cpu", dtype=getattr(torch, dtype_name))


def set_torch_threads(threads: int, inter_op: int) -> Dict[str, int]:
    """Intra- and inter-op thread counts; torch fixes the inter-op pool at its first parallel work, after which
    the request is left as it is (the counts in force are returned and recorded)."""
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(inter_op)
    except RuntimeError:
        pass
    return {"intra_op": torch.get_num_threads(), "inter_op": torch.get_num_interop_threads()}


# ---- characters -> ids ------------------------------------------------------------------------------
def char_id_table(tokenizer, sentences: Sequence[Sentence]) -> Tuple[Dict[str, int], Dict[str, Any]]:
    """Each distinct character's id as the checkpoint's tokenizer gives it (a one-character word, first
    sub-token; no token at all -> [UNK]), with counts of [UNK], empty and multi-token characters."""
    counts = Counter(c for s in sentences for c in s.chars)
    distinct = sorted(counts)
    encoded = tokenizer([[c] for c in distinct], is_split_into_words=True, add_special_tokens=False)["input_ids"]
    unk = tokenizer.unk_token_id
    table: Dict[str, int] = {}
    kinds: Dict[str, List[str]] = {"unk": [], "no_token": [], "multi_token": []}
    for ch, ids in zip(distinct, encoded):
        if not ids:
            kinds["no_token"].append(ch)
        elif len(ids) > 1:
            kinds["multi_token"].append(ch)
        table[ch] = ids[0] if ids else unk
        if table[ch] == unk:
            kinds["unk"].append(ch)

    def summary(chars: List[str]) -> Dict[str, Any]:
        top = sorted(chars, key=lambda c: -counts[c])
        return {"distinct": len(chars), "occurrences": sum(counts[c] for c in chars),
                "examples": [[c, counts[c]] for c in top[:EXAMPLES]]}

    stats = {"distinct_chars": len(distinct), "chars": sum(counts.values())}
    stats.update({kind: summary(chars) for kind, chars in kinds.items()})
    return table, stats


def compare_with_albert_ner(checkpoint: Path, table: Dict[str, int], sentences: Sequence[Sentence]) -> Dict:
    """How many character occurrences get another id from albert-ner's own lookup (exact_first over the
    checkpoint's tokenizer.json vocabulary), so any difference in inputs between the two sides is on record."""
    from albert_ner.data.vocab import Vocab

    path = checkpoint / "tokenizer.json"
    if not path.is_file():
        return {"skipped": f"{path}: not found"}
    vocab = Vocab.from_file(path, "exact_first")
    counts = Counter(c for s in sentences for c in s.chars)
    differ = sorted((c for c in counts if vocab.char_to_id(c) != table[c]), key=lambda c: -counts[c])
    return {"vocab": str(path), "char_lookup": "exact_first", "distinct": len(differ),
            "occurrences": sum(counts[c] for c in differ),
            "examples": [[c, counts[c], table[c], vocab.char_to_id(c)] for c in differ[:EXAMPLES]]}


# ---- rows and batches ------------------------------------------------------------------------------
@dataclasses.dataclass
class Encoded:
    """Per-sentence id arrays and the windows over them (every character is in at least one window)."""

    ids: List[np.ndarray]
    labels: Optional[List[np.ndarray]]
    windows: List[Window]


def encode(sentences: Sequence[Sentence], table: Dict[str, int], label_ids: Optional[Dict[str, int]],
           max_chars: int, overlap: int) -> Encoded:
    ids = [np.fromiter((table[c] for c in s.chars), np.int64, len(s.chars)) for s in sentences]
    labels = None
    if label_ids is not None:
        labels = []
        for s in sentences:
            unknown = sorted({t for t in s.tags if t not in label_ids})
            if unknown:
                raise ValueError(f"{s.source}:{s.line}: tag(s) {unknown} are not in the training label set")
            labels.append(np.fromiter((label_ids[t] for t in s.tags), np.int64, len(s.tags)))
    return Encoded(ids, labels, make_windows([len(s.chars) for s in sentences], max_chars, overlap))


def collate(enc: Encoded, rows: Sequence[int], specials: Tuple[int, int, int]) -> Dict[str, Any]:
    """Rows `[CLS] chars [SEP]` padded to the longest in the batch; labels IGNORE off the characters."""
    import torch

    cls_id, sep_id, pad_id = specials
    wins = [enc.windows[r] for r in rows]
    width = max(w.length for w in wins) + 2
    input_ids = np.full((len(wins), width), pad_id, np.int64)
    mask = np.zeros((len(wins), width), np.int64)
    labels = np.full((len(wins), width), IGNORE, np.int64)
    for i, w in enumerate(wins):
        n = w.length
        input_ids[i, 0], input_ids[i, 1:n + 1], input_ids[i, n + 1] = cls_id, enc.ids[w.sentence][w.start:w.end], sep_id
        mask[i, :n + 2] = 1
        if enc.labels is not None:
            labels[i, 1:n + 1] = enc.labels[w.sentence][w.start:w.end]
    batch = {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(mask)}
    if enc.labels is not None:
        batch["labels"] = torch.from_numpy(labels)
    return batch


def epoch_batches(n_rows: int, batch_size: int, seed: int, epoch: int) -> List[np.ndarray]:
    """The epoch's batches of row indices: a permutation seeded by (seed, epoch) cut into batch_size pieces."""
    order = np.random.default_rng([seed, epoch]).permutation(n_rows)
    return [order[i:i + batch_size] for i in range(0, n_rows, batch_size)]


# ---- resumable state ---------------------------------------------------------------------------------
@dataclasses.dataclass
class Progress:
    """Where the run stands; saved with every checkpoint."""

    epoch: int = 0
    batch_in_epoch: int = 0
    step: int = 0
    train_seconds: float = 0.0
    train_samples: int = 0
    real_tokens: int = 0  # [CLS] chars [SEP] of every row
    padded_tokens: int = 0  # batch rows x padded width
    epoch_loss_sum: float = 0.0
    epoch_loss_batches: int = 0
    epoch_losses: List[float] = dataclasses.field(default_factory=list)
    sessions: int = 0  # processes that trained this run (1 + resumes)


def run_fingerprint(args: argparse.Namespace, train_file: Path) -> Dict[str, Any]:
    """The settings and input files a checkpoint belongs to (JSON-able)."""
    fp: Dict[str, Any] = {}
    for name in RUN_FIELDS:
        value = getattr(args, name)
        fp[name] = str(Path(value).resolve()) if isinstance(value, Path) else value
    fp["train_sha256"] = sha256_of(train_file)
    fp["checkpoint_files"] = {p.name: p.stat().st_size for p in sorted(Path(args.checkpoint).iterdir())
                              if p.is_file() and not p.name.startswith(".")}
    return fp


def load_state(path: Path, fingerprint: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """The saved state if it is of this run; a run with other settings is an error naming what differs."""
    import torch

    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged or foreign file: say which
        raise ResumeMismatch(f"{path}: cannot read the checkpoint ({exc}); use --no-resume to start over") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise ResumeMismatch(f"{path}: not a checkpoint of this script (format {STATE_FORMAT}); "
                             "use --no-resume to start over")
    saved = state.get("fingerprint", {})
    diffs = [f"{k}: saved {saved.get(k)!r}, now {v!r}" for k, v in fingerprint.items() if saved.get(k) != v]
    if diffs:
        raise ResumeMismatch(f"{path}: holds a run with other settings ({'; '.join(diffs)}); re-run with the "
                             "same arguments, or pass --no-resume (or another --output-dir) to start over")
    return state


def save_state(path: Path, model, opt, sched, progress: Progress, fingerprint: Dict[str, Any]) -> None:
    """Write the checkpoint beside the old one, then replace it: a stop mid-write leaves the old one whole."""
    import torch

    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format": STATE_FORMAT, "model": model.state_dict(), "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(), "torch_rng": torch.get_rng_state(),
                "progress": dataclasses.asdict(progress), "fingerprint": fingerprint}, tmp)
    os.replace(tmp, path)


@contextlib.contextmanager
def stop_requests() -> Iterator[List[int]]:
    """SIGTERM/SIGINT append the signal number to the yielded list; the loop saves and stops at the step's end."""
    got: List[int] = []
    previous = {s: signal.signal(s, lambda signum, frame: got.append(signum)) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield got
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


# ---- evaluation ----------------------------------------------------------------------------------------
def predict(model, enc: Encoded, lengths: Sequence[int], labels: Sequence[str], batch_size: int,
            specials: Tuple[int, int, int], dtype_name: Optional[str]) -> List[List[str]]:
    """Argmax tag of every character of every sentence; windows merged where each character has most context."""
    import torch

    model.eval()
    rows = sorted(range(len(enc.windows)), key=lambda r: enc.windows[r].length)  # little padding
    out: List[Optional[np.ndarray]] = [None] * len(enc.windows)
    with torch.no_grad():
        for i in range(0, len(rows), batch_size):
            chunk = rows[i:i + batch_size]
            batch = collate(enc, chunk, specials)
            with autocast(dtype_name):
                logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            best = logits.float().argmax(-1).numpy()
            for j, r in enumerate(chunk):
                out[r] = best[j, 1:enc.windows[r].length + 1]
    by_sentence: Dict[int, List[int]] = {}
    for r, w in enumerate(enc.windows):
        by_sentence.setdefault(w.sentence, []).append(r)
    pred = []
    for s, n in enumerate(lengths):
        rs = by_sentence[s]
        ids = merge_spans(n, [(enc.windows[r].start, enc.windows[r].end) for r in rs], [out[r] for r in rs])
        pred.append([labels[int(k)] for k in ids])
    return pred


def evaluate(model, sentences: Sequence[Sentence], table, labels, args, specials) -> Dict[str, Any]:
    t0 = time.perf_counter()
    enc = encode(sentences, table, None, args.max_seq_len - 2, args.window_overlap)
    pred = predict(model, enc, [len(s.chars) for s in sentences], labels, args.eval_batch_size, specials,
                   AUTOCAST[args.precision])
    seconds = time.perf_counter() - t0
    report = entity_report([s.tags for s in sentences], pred)
    report.update(eval_seconds=seconds, chars_per_s=report["chars"] / max(seconds, 1e-9), windows=len(enc.windows))
    return report


# ---- the run ----------------------------------------------------------------------------------------
def run(args: argparse.Namespace, env: Dict[str, Any]) -> int:
    """Fine-tune (or resume), evaluate dev and test, write results.json; returns the process exit code."""
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    started = time.time()
    set_torch_threads(args.threads, args.inter_op_threads)
    train_file, test_file = args.data_dir / "train.txt", args.data_dir / "test.txt"
    for path in (train_file, test_file):
        if not path.is_file():
            raise SystemExit(f"hf_compare: error: {path}: not found (--data-dir holds train.txt and test.txt)")
    if args.max_seq_len < 3 or not 0 <= args.window_overlap < args.max_seq_len - 2:
        raise SystemExit(f"hf_compare: error: --window-overlap {args.window_overlap} must be in "
                         f"0..--max-seq-len minus 3 ({args.max_seq_len - 3})")
    head_lr = args.lr if args.head_lr is None else args.head_lr
    splits = load_splits(str(train_file), None, str(test_file), args.dev_fraction, args.seed,
                         max_train_sentences=args.max_train_sentences)
    test = splits.test[:args.max_test_sentences] if args.max_test_sentences else splits.test
    labels = labels_from_sentences(splits.train)
    tokenizer = AutoTokenizer.from_pretrained(str(args.checkpoint))
    specials = (tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id)
    if None in specials:
        raise SystemExit(f"hf_compare: error: {args.checkpoint}: the tokenizer lacks [CLS], [SEP] or [PAD] "
                         f"(ids {specials})")
    everything = list(splits.train) + list(splits.dev) + list(test)
    table, token_stats = char_id_table(tokenizer, everything)
    token_stats["albert_ner_lookup_differs"] = compare_with_albert_ner(args.checkpoint, table, everything)
    train = encode(splits.train, table, label_index(labels), args.max_seq_len - 2, args.window_overlap)
    steps_per_epoch = -(-len(train.windows) // args.batch_size)
    total = steps_per_epoch * args.epochs
    warmup = int(args.warmup_ratio * total)

    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / STATE_FILE
    fingerprint = run_fingerprint(args, train_file)
    if args.no_resume and state_path.is_file():
        state_path.unlink()
        print(f"# {state_path}: discarded (--no-resume)", flush=True)
    try:
        state = load_state(state_path, fingerprint)
    except ResumeMismatch as exc:
        raise SystemExit(f"hf_compare: error: {exc}") from None

    torch.manual_seed(args.seed)  # the classifier's initialisation
    kwargs = {"attn_implementation": args.hf_attn} if args.hf_attn else {}
    model = AutoModelForTokenClassification.from_pretrained(
        str(args.checkpoint), num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id=label_index(labels), **kwargs)
    opt, sched = hf_optimizer(model, args.lr, head_lr, args.weight_decay, total, warmup)
    progress = Progress()
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        progress = Progress(**state["progress"])
        where = ("training complete: evaluating only" if progress.step >= total
                 else f"epoch {progress.epoch + 1}, batch {progress.batch_in_epoch}")
        print(f"# resumed from {state_path} at step {progress.step}/{total} ({where})", flush=True)
    print(f"# {len(splits.train)} training sentences -> {len(train.windows)} windows, {steps_per_epoch} "
          f"steps/epoch x {args.epochs} epochs; {len(splits.dev)} dev, {len(test)} test sentences; labels "
          f"{' '.join(labels)}; [UNK] chars: {token_stats['unk']['occurrences']}", flush=True)

    stopped = train_loop(args, model, opt, sched, train, specials, progress, fingerprint, state_path, total)
    if stopped:
        print(f"# stopped by signal {stopped} at step {progress.step}/{total}; checkpoint {state_path}: re-run "
              "the same command to resume", flush=True)
        return 3

    dev = evaluate(model, splits.dev, table, labels, args, specials)
    test_report = evaluate(model, test, table, labels, args, specials)
    train_summary = {
        "steps": progress.step, "steps_per_epoch": steps_per_epoch, "epochs": args.epochs,
        "windows": len(train.windows), "sentences": len(splits.train), "samples": progress.train_samples,
        "train_seconds": progress.train_seconds,
        "samples_per_s": progress.train_samples / max(progress.train_seconds, 1e-9),
        "real_tokens": progress.real_tokens, "padded_tokens": progress.padded_tokens,
        "epoch_losses": progress.epoch_losses, "sessions": progress.sessions, "warmup_steps": warmup,
        "head_lr": head_lr}
    results = {"mode": "finetune", "side": "hf", "model_class": type(model).__name__,
               "attn_implementation": getattr(model.config, "_attn_implementation", None),
               "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
                        if k not in ("child", "child_out")},
               "environment": env, "torch_threads": {"intra_op": torch.get_num_threads(),
                                                     "inter_op": torch.get_num_interop_threads()},
               "labels": list(labels), "dev_source": splits.dev_source,
               "tokenization": token_stats, "train": train_summary, "dev": dev, "test": test_report,
               "wall_seconds_this_session": time.time() - started}
    (out / RESULTS_FILE).write_text(json.dumps(results, indent=1, ensure_ascii=False), encoding="utf-8")
    print(f"samples_per_sec = {train_summary['samples_per_s']:.2f}")
    for line in metric_lines("dev", dev) + metric_lines("eval", test_report):
        print(line)
    print(format_table(test_report))
    print(f"# wrote {out / RESULTS_FILE}", flush=True)
    return 0


def train_loop(args, model, opt, sched, train: Encoded, specials: Tuple[int, int, int], progress: Progress,
               fingerprint, state_path: Path, total: int) -> Optional[int]:
    """Train from `progress` to the end; returns the signal number if stopped early (after saving)."""
    import torch

    dtype_name = AUTOCAST[args.precision]
    if progress.step >= total:
        return None
    progress.sessions += 1
    with stop_requests() as stop:
        while progress.epoch < args.epochs:
            batches = epoch_batches(len(train.windows), args.batch_size, args.seed, progress.epoch)
            model.train()
            for bi in range(progress.batch_in_epoch, len(batches)):
                batch = collate(train, batches[bi], specials)
                t0 = time.perf_counter()
                with autocast(dtype_name):
                    loss = model(**batch).loss
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip_norm)
                opt.step()
                sched.step()
                opt.zero_grad(set_to_none=True)
                value = loss.item()
                progress.train_seconds += time.perf_counter() - t0
                rows = len(batches[bi])
                progress.train_samples += rows
                progress.real_tokens += int(batch["attention_mask"].sum())
                progress.padded_tokens += int(batch["attention_mask"].numel())
                progress.epoch_loss_sum += value
                progress.epoch_loss_batches += 1
                progress.batch_in_epoch = bi + 1
                progress.step += 1
                if not np.isfinite(value):
                    raise RuntimeError(f"loss is {value} at step {progress.step}; the run is diverging")
                if progress.step % args.log_every == 0:
                    print(f"step {progress.step}/{total} epoch {progress.epoch + 1} loss "
                          f"{progress.epoch_loss_sum / progress.epoch_loss_batches:.4f} samples/s "
                          f"{progress.train_samples / progress.train_seconds:.2f}", flush=True)
                if stop or progress.step % args.checkpoint_every == 0:
                    save_state(state_path, model, opt, sched, progress, fingerprint)
                if stop:
                    return stop[0]
            progress.epoch_losses.append(progress.epoch_loss_sum / max(progress.epoch_loss_batches, 1))
            progress.epoch += 1
            progress.batch_in_epoch, progress.epoch_loss_sum, progress.epoch_loss_batches = 0, 0.0, 0
            save_state(state_path, model, opt, sched, progress, fingerprint)
            print(f"# epoch {progress.epoch}/{args.epochs} done: mean loss {progress.epoch_losses[-1]:.4f}; "
                  f"checkpoint {state_path}", flush=True)
    return None
