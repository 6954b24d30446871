"""Benchmark: pretraining throughput of albert-ner against Hugging Face's BertForMaskedLM (issue 13, item 3).

Same encoder config and weights, same sequence length and batch, the SAME batches on both sides, this CPU.
One subprocess prepares everything once: the encoder (--checkpoint, default m3e-small, loaded as continual
pretraining loads it, with a fresh MLM head where it has none; or --encoder-preset / --encoder-config with
random weights), exported in Hugging Face format (pretrain/hf_export.py) so both sides start from the same
weights, and warmup + steps batches of B x T made by our own pipeline from real corpus text: preprocessing
(jieba words, chunks; pretrain/preprocess.py) and whole-word masking (pretrain/examples.make_batches, 15%,
80/10/10) of the first lines of ../shared/corpus, in one bucket of T (rows padded to T), written to one .npz.
Then every (side, variant) runs in its own subprocess (TensorFlow and torch never share a process):
- ours: PretrainingModel (tied MLM head; the vocab logits only at the masked positions, as pretraining runs)
  trained by the runner's own step (build_training + compile_step, PretrainTrainable, AdamW, clip 1.0) in TF
  graph mode, under XLA and/or the mixed_bfloat16 policy;
- HF: BertForMaskedLM (AlbertForMaskedLM for Google ALBERT's layout; *ForPreTraining when sentence order is on,
  its NSP/SOP head standing in for ours) from the exported folder, AdamW + clip 1.0, float32 and/or bf16 autocast;
  it computes vocab logits at every position, as that class does; --hf-scoring masked (or both) also runs HF's
  own modules with the logits only at the masked positions, as ours, to tell the framework from that choice.
Sentence-order prediction follows `albert-ner pretrain --sop auto` (off for BERT layouts like m3e-small, on for
ALBERT layouts) unless --sop says otherwise. Warmup steps are not timed. Reported: ms/step, samples/s, tokens/s
(real tokens, no padding), masked tokens/s, B x T positions/s, and HF ms / our ms per pair (above 1: we are
faster). Each child reports what it was fed (masked labels, tokens, a hash of the ids), which must match.

Full run on a quiet machine (m3e-small from `albert-ner download m3e-small`; the corpus by path):

    python bench/pretrain_compare.py --batch-size 32 --seq-len 128 --threads 2 --warmup 3 --steps 20 \
        --ours-variants graph,xla,mixed_bfloat16 --hf-variants float32,bf16 --hf-scoring both \
        --json-out bench/runs/pretrain_compare_m3e_small.json
    python bench/pretrain_compare.py --encoder-preset cpu-small \
        --vocab-file ~/.cache/albert-ner/pretrained/m3e-small/tokenizer.json \
        --batch-size 32 --seq-len 128 --threads 2 --warmup 3 --steps 20 --ours-variants graph,xla \
        --hf-variants float32 --hf-scoring both --json-out bench/runs/pretrain_compare_cpu_small.json

Not a test; results belong in BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:  # _compare_common (what hf_compare shares), hf_finetune and wwm_stats live here
    sys.path.insert(0, str(BENCH_DIR))

from _compare_common import (DEFAULT_CHECKPOINT, HF_VARIANTS, OURS_VARIANTS, add_child_args,  # noqa: E402
                             add_thread_args, add_variant_args, environment, finite_losses, pairs, positive,
                             resolve_threads, run_each, run_side, spawn, step_table, table, tf_threads,
                             time_steps, torch_step, torch_threads, write_json, write_report)
from wwm_stats import DEFAULT_CORPUS, write_head  # noqa: E402

DEFAULT_JSON = BENCH_DIR / "runs" / "pretrain_compare.json"
BATCHES_FILE = "batches.npz"
META_FILE = "prepared.json"
OURS_INIT_DIR = "ours_init"
HF_DIR = "hf"
CORPUS_FILE = "corpus_head.txt"
SHARDS_DIR = "shards"
SOP_CHOICES = ("auto", "on", "off")
# --hf-scoring: which HF steps run: the class's own forward (logits at every position) and/or masked_only_loss.
HF_SCORING = {"all": ("all",), "masked": ("masked",), "both": ("all", "masked")}
FIELDS = ("token_ids", "segment_ids", "lengths", "mlm_labels")  # + sop_labels with sentence order
WEIGHT_DECAY, CLIP_NORM = 0.01, 1.0
EXTRA_COLUMNS = (("tokens/s", "tokens_per_s"), ("masked tokens/s", "masked_tokens_per_s"))  # after the step table's


def fed_summary(token_ids: np.ndarray, mlm_labels: np.ndarray, lengths: np.ndarray) -> Dict[str, Any]:
    """What a side was fed, to show both sides trained on the same batches: masked labels, real tokens and a
    hash of the ids and labels (as int32, whatever dtype the side uses)."""
    digest = hashlib.sha256()
    for array in (token_ids, mlm_labels):
        digest.update(np.ascontiguousarray(array, dtype=np.int32).tobytes())
    return {"masked_labels": int(np.count_nonzero(mlm_labels >= 0)), "tokens": int(np.sum(lengths)),
            "sha256": digest.hexdigest()}


def per_step_counts(arrays: Dict[str, np.ndarray]) -> Dict[str, List[int]]:
    """Real tokens and masked tokens of each batch (stacked arrays [N, B, ...])."""
    return {"tokens": [int(x) for x in arrays["lengths"].sum(axis=1)],
            "masked_tokens": [int(x) for x in np.count_nonzero(arrays["mlm_labels"] >= 0, axis=(1, 2))]}


def load_batches(work: Path) -> Dict[str, np.ndarray]:
    with np.load(work / BATCHES_FILE) as data:
        return {k: data[k] for k in data.files}


# ---- the preparing child ----------------------------------------------------------------------------------
def encoder_and_vocab(args: argparse.Namespace):
    """(EncoderConfig, vocab file, checkpoint to load or None) from --checkpoint, --encoder-preset or
    --encoder-config (+ --vocab-file)."""
    from albert_ner.config import EncoderConfig, preset_encoder
    from albert_ner.data.vocab import Vocab
    from albert_ner.pretrain.task import CHAR_LOOKUP

    if args.encoder_preset or args.encoder_config:
        vocab = Vocab.from_file(args.vocab_file, char_lookup=CHAR_LOOKUP)
        if args.encoder_config:
            return EncoderConfig.from_pretrained_json(args.encoder_config), args.vocab_file, None
        return preset_encoder(args.encoder_preset, vocab_size=len(vocab)), args.vocab_file, None
    from albert_ner.weights.convert import pretrained_encoder_config

    config, vocab_file = pretrained_encoder_config(args.checkpoint)
    vocab_file = args.vocab_file or vocab_file
    if vocab_file is None:
        raise FileNotFoundError(f"{args.checkpoint}: no vocabulary beside the weights; pass --vocab-file")
    return config, str(vocab_file), args.checkpoint


def run_prepare(args: argparse.Namespace) -> Dict[str, Any]:
    """Weights for both sides (ours_init/, hf/) and warmup + steps masked batches (batches.npz) in --work-dir."""
    tf_threads(args)
    from albert_ner.data.vocab import Vocab
    from albert_ner.model.pretraining import PretrainingModel
    from albert_ner.pretrain.examples import ExampleSpec, make_batches
    from albert_ner.pretrain.hf_export import export_hf, hf_config
    from albert_ner.pretrain.preprocess import preprocess
    from albert_ner.pretrain.shards import read_examples
    from albert_ner.pretrain.task import CHAR_LOOKUP, sop_enabled
    from albert_ner.weights.heads import load_pretraining_init, save_pretrained_dir

    work = Path(args.work_dir)
    config, vocab_file, checkpoint = encoder_and_vocab(args)
    vocab = Vocab.from_file(vocab_file, char_lookup=CHAR_LOOKUP)
    if config.vocab_size < len(vocab):
        raise ValueError(f"{vocab_file}: {len(vocab)} tokens, but the encoder has {config.vocab_size} embedding rows")
    if args.seq_len > config.max_position_embeddings:
        raise ValueError(f"--seq-len {args.seq_len} exceeds the encoder's {config.max_position_embeddings} positions")
    sop = sop_enabled(args.sop, config)
    kind = hf_config(config, vocab)[0]  # fails here, clearly, for an encoder Hugging Face has no class for

    model = PretrainingModel(config, sop=sop)
    model.build_weights()
    init_report = load_pretraining_init(model, checkpoint) if checkpoint else None
    save_pretrained_dir(model, vocab_file, work / OURS_INIT_DIR, {"benchmark": "pretrain_compare"})
    export_hf(model, vocab_file, work / HF_DIR)

    total = args.warmup + args.steps
    lines = args.corpus_lines or max(200, 2 * args.batch_size * total)
    head = write_head(args.corpus, lines, work / CORPUS_FILE)
    manifest = preprocess([str(work / CORPUS_FILE)], str(work / SHARDS_DIR), vocab_file, args.seq_len,
                          user_dict=args.user_dict, workers=1, heldout_fraction=0.0, char_lookup=CHAR_LOOKUP)
    spec = ExampleSpec.for_vocab(vocab, args.seq_len, mask_prob=args.mask_prob, char_mask_share=args.char_mask_share,
                                 sop=sop, buckets=(args.seq_len,))
    examples = read_examples(work / SHARDS_DIR, "train", shuffle_buffer=0)
    ds = make_batches(examples, spec, args.seed, 0, args.batch_size, drop_remainder=True).take(total)
    batches = list(ds.as_numpy_iterator())
    if len(batches) < total:
        raise ValueError(f"{args.corpus}: the first {head['lines']} lines made {len(batches)} full batches of "
                         f"{args.batch_size}, {total} are needed; raise --corpus-lines")
    names = FIELDS + (("sop_labels",) if sop else ())
    arrays = {k: np.stack([b[k] for b in batches]).astype(np.int32) for k in names}
    np.savez(work / BATCHES_FILE, **arrays)
    counts = per_step_counts(arrays)
    capacity = model.prediction_capacity(args.batch_size, args.seq_len)
    heads = (init_report or {}).get("heads", {})
    meta = {"encoder": dataclasses.asdict(config), "vocab_file": str(vocab_file), "hf_kind": kind, "sop": sop,
            "checkpoint": str(checkpoint) if checkpoint else None,
            "init": {"heads_loaded": sorted(heads.get("loaded") or {}), "heads_fresh": sorted(heads.get("fresh") or {})}
            if checkpoint else "random weights",
            "spec": {"mask_prob": spec.mask_prob, "whole_word": spec.whole_word,
                     "char_mask_share": spec.char_mask_share, "replace_probs": list(spec.replace_probs)},
            "corpus": {"inputs": [str(c) for c in args.corpus], "lines": head["lines"],
                       "skipped_errors": head["skipped_errors"], "chunks": manifest["splits"]["train"]["examples"]},
            "batches": dict(counts, count=total, positions_per_batch=args.batch_size * args.seq_len,
                            masked_share=sum(counts["masked_tokens"]) / max(sum(counts["tokens"]), 1),
                            padding_share=1 - sum(counts["tokens"]) / (total * args.batch_size * args.seq_len)),
            "ours_scored_positions": capacity,
            "ours_unscored_masked": int(sum(max(m - capacity, 0) for m in counts["masked_tokens"])),
            "fed": fed_summary(arrays["token_ids"], arrays["mlm_labels"], arrays["lengths"])}
    (work / META_FILE).write_text(json.dumps(meta, indent=1), encoding="utf-8")
    return meta


# ---- our side ---------------------------------------------------------------------------------------------
def run_ours(args: argparse.Namespace, variant: str) -> Dict[str, Any]:
    """PretrainingModel from the prepared weights, trained by the runner's own step on the prepared batches."""
    tf = tf_threads(args)
    jit, policy = OURS_VARIANTS[variant]
    tf.keras.mixed_precision.set_global_policy(policy)
    from albert_ner.config import EncoderConfig
    from albert_ner.model.pretraining import PretrainingModel
    from albert_ner.pretrain.task import PretrainTrainable
    from albert_ner.train.runner import build_training, compile_step
    from albert_ner.weights.heads import load_pretraining_init

    work = Path(args.work_dir)
    meta = json.loads((work / META_FILE).read_text(encoding="utf-8"))
    model = PretrainingModel(EncoderConfig(**meta["encoder"]), sop=meta["sop"])
    model.build_weights()
    t0 = time.perf_counter()
    load_pretraining_init(model, work / OURS_INIT_DIR)
    load_s = time.perf_counter() - t0
    total = args.warmup + args.steps
    training = build_training(PretrainTrainable(model, args.lr), seed=args.seed, policy=policy, clip_norm=CLIP_NORM,
                              weight_decay=WEIGHT_DECAY, warmup_steps=1, total_steps=total)
    step_fn = compile_step(training.step, jit)
    arrays = load_batches(work)
    batches = [{k: tf.constant(v[i]) for k, v in arrays.items()} for i in range(total)]
    fed = fed_summary(np.stack([b["token_ids"].numpy() for b in batches]),
                      np.stack([b["mlm_labels"].numpy() for b in batches]),
                      np.stack([b["lengths"].numpy() for b in batches]))

    def step(batch) -> float:
        return step_fn(batch).loss.numpy()

    result = time_steps(step, batches, args.warmup)
    finite_losses(result, f"ours/{variant}")
    result.update(side="ours", variant=variant, precision=policy, jit=jit, fed=fed, weights_load_s=load_s,
                  model_class="PretrainingModel", scored_positions=model.prediction_capacity(args.batch_size,
                                                                                             args.seq_len),
                  parameters={"encoder": int(sum(np.prod(v.shape) for v in model.encoder.trainable_variables)),
                              "heads": int(sum(np.prod(v.shape) for v in model.head_variables))},
                  threads={"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                           "inter_op": tf.config.threading.get_inter_op_parallelism_threads()})
    return result


# ---- Hugging Face side ------------------------------------------------------------------------------------
def hf_model_class(kind: str, sop: bool):
    """BertForMaskedLM / AlbertForMaskedLM, or their *ForPreTraining (MLM + a 2-way sentence head) with SOP."""
    import transformers

    name = {"bert": "Bert", "albert": "Albert"}[kind] + ("ForPreTraining" if sop else "ForMaskedLM")
    return getattr(transformers, name)


def torch_batches(arrays: Dict[str, np.ndarray], kind: str, sop: bool) -> List[Dict[str, Any]]:
    """The prepared batches as the HF model's inputs: -100 where nothing is predicted, a mask from the lengths."""
    import torch

    out = []
    for i in range(len(arrays["token_ids"])):
        ids, labels, lengths = arrays["token_ids"][i], arrays["mlm_labels"][i], arrays["lengths"][i]
        mask = np.arange(ids.shape[1])[None, :] < lengths[:, None]
        batch = {"input_ids": torch.from_numpy(ids.astype(np.int64)),
                 "token_type_ids": torch.from_numpy(arrays["segment_ids"][i].astype(np.int64)),
                 "attention_mask": torch.from_numpy(mask.astype(np.int64)),
                 "labels": torch.from_numpy(np.where(labels >= 0, labels, -100).astype(np.int64))}
        if sop:
            key = "next_sentence_label" if kind == "bert" else "sentence_order_label"
            batch[key] = torch.from_numpy(arrays["sop_labels"][i].astype(np.int64))
        out.append(batch)
    return out


def masked_only_loss(model, batch: Dict[str, Any], kind: str, sop: bool):
    """The HF model's own modules with the vocab logits computed only at the masked positions, as our model
    scores them (the class itself scores every position): encoder, MLM head on the gathered rows, mean
    cross-entropy (+ the sentence head's)."""
    import torch.nn.functional as F

    base = model.bert if kind == "bert" else model.albert
    out = base(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
               token_type_ids=batch["token_type_ids"], return_dict=True)
    labels = batch["labels"]
    scored = labels != -100
    head = model.cls.predictions if kind == "bert" else model.predictions
    loss = F.cross_entropy(head(out.last_hidden_state[scored]).float(), labels[scored])
    if sop:
        sentence = model.cls.seq_relationship if kind == "bert" else model.sop_classifier
        key = "next_sentence_label" if kind == "bert" else "sentence_order_label"
        loss = loss + F.cross_entropy(sentence(out.pooler_output).float(), batch[key])
    return loss


def run_hf(args: argparse.Namespace, variant: str) -> Dict[str, Any]:
    """The HF *ForMaskedLM (or *ForPreTraining) from the exported folder, a plain PyTorch step; `variant` is
    PRECISION:SCORING (scoring "all": the class's own forward; "masked": masked_only_loss)."""
    import torch

    from hf_finetune import hf_optimizer

    kwargs = torch_threads(args)
    work = Path(args.work_dir)
    meta = json.loads((work / META_FILE).read_text(encoding="utf-8"))
    t0 = time.perf_counter()
    model = hf_model_class(meta["hf_kind"], meta["sop"]).from_pretrained(str(work / HF_DIR), **kwargs)
    load_s = time.perf_counter() - t0
    model.train()
    total = args.warmup + args.steps
    opt, sched = hf_optimizer(model, args.lr, args.lr, WEIGHT_DECAY, total, 1)
    precision, _, scoring = variant.partition(":")
    dtype_name = HF_VARIANTS[precision]
    batches = torch_batches(load_batches(work), meta["hf_kind"], meta["sop"])
    fed = fed_summary(np.stack([b["input_ids"].numpy() for b in batches]),
                      np.stack([np.where(b["labels"].numpy() >= 0, b["labels"].numpy(), -1) for b in batches]),
                      np.stack([b["attention_mask"].numpy().sum(axis=1) for b in batches]))
    loss_of = ((lambda batch: masked_only_loss(model, batch, meta["hf_kind"], meta["sop"])) if scoring == "masked"
               else (lambda batch: model(**batch).loss))
    step = torch_step(model, opt, sched, dtype_name, CLIP_NORM, loss_of)
    result = time_steps(step, batches, args.warmup)
    finite_losses(result, f"hf/{variant}")
    result.update(side="hf", variant=precision if scoring == "all" else f"{precision}, masked only",
                  scoring=scoring, precision=dtype_name or "float32", jit=False, fed=fed,
                  weights_load_s=load_s, model_class=type(model).__name__,
                  attn_implementation=getattr(model.config, "_attn_implementation", None),
                  parameters={"total": int(sum(p.numel() for p in model.parameters()))},
                  threads={"intra_op": torch.get_num_threads(), "inter_op": torch.get_num_interop_threads()})
    return result


CHILDREN: Dict[str, Callable[[argparse.Namespace, str], Dict[str, Any]]] = {"ours": run_ours, "hf": run_hf}


def throughput(result: Dict[str, Any], counts: Dict[str, List[int]], args: argparse.Namespace) -> Dict[str, float]:
    """samples/s from the mean step; tokens/s and masked tokens/s as the timed batches' counts over their time."""
    seconds = sum(result["step_ms"]) / 1000
    timed = slice(args.warmup, args.warmup + args.steps)
    return {"samples_per_s": args.batch_size * 1000 / result["ms_mean"],
            "positions_per_s": args.batch_size * args.seq_len * 1000 / result["ms_mean"],
            "tokens_per_s": sum(counts["tokens"][timed]) / seconds,
            "masked_tokens_per_s": sum(counts["masked_tokens"][timed]) / seconds}


def run_child(args: argparse.Namespace) -> None:
    """Inside a subprocess: prepare, or time one (side, variant); write its result JSON to --child-out."""
    if args.child == "prepare":
        result = run_prepare(args)
    else:
        result = run_side(args, CHILDREN)
        meta = json.loads((Path(args.work_dir) / META_FILE).read_text(encoding="utf-8"))
        result.update(throughput(result, meta["batches"], args))
    write_json(args.child_out, result)


# ---- the parent: prepare once, then one subprocess per (side, variant) ----------------------------------------
def run_parent(args: argparse.Namespace, argv: List[str]) -> int:
    """Prepare, spawn every requested (side, variant), check they were fed alike, print the tables, write JSON."""
    with tempfile.TemporaryDirectory(prefix="pretrain_compare_") as tmp:
        if args.work_dir is None:
            args.work_dir = Path(tmp)
        args.work_dir.mkdir(parents=True, exist_ok=True)
        script, extra = Path(__file__).resolve(), ["--work-dir", str(args.work_dir)]
        meta, _ = spawn(script, argv, "prepare", Path(tmp) / "prepare.json", args, extra=extra)
        if meta is None:
            return 1
        specs = [("ours", v) for v in args.ours_variants] + [
            ("hf", f"{v}:{s}") for v in args.hf_variants for s in HF_SCORING[args.hf_scoring]]
        results, failures = [], []
        for side, variant, result, _ in run_each(script, argv, specs, Path(tmp), args, sep=":", extra=extra):
            if result is None:
                failures.append({"side": side, "variant": variant, "why": "the subprocess failed"})
                continue
            if result["fed"] != meta["fed"]:
                failures.append({"side": side, "variant": variant,
                                 "why": f"fed other batches: {result['fed']} vs prepared {meta['fed']}"})
            results.append(result)
    report = {"benchmark": "pretrain_compare", "checkpoint": meta["checkpoint"],
              "encoder_preset": args.encoder_preset, "encoder_config": args.encoder_config,
              "batch_size": args.batch_size, "seq_len": args.seq_len, "warmup": args.warmup, "steps": args.steps,
              "learning_rate": args.lr, "prepared": meta,
              "environment": environment(args.threads, args.inter_op_threads), "results": results,
              "ratios": ratios(results), "failures": failures}
    print(step_table(results, args.threads, hf_name=lambda r: "HF " + r["model_class"], extra=EXTRA_COLUMNS))
    if report["ratios"]:
        print(ratio_markdown(report["ratios"]))
    hf_class = next((r["model_class"] for r in results if r["side"] == "hf"), "-")
    print(f"# batches: {meta['corpus']['lines']} corpus lines, masked share {meta['batches']['masked_share']:.3f}, "
          f"padding {meta['batches']['padding_share']:.3f}, SOP {'on' if meta['sop'] else 'off'}; HF class {hf_class}",
          file=sys.stderr)
    if meta["ours_unscored_masked"]:
        print(f"# note: {meta['ours_unscored_masked']} masked tokens fell beyond our model's "
              f"{meta['ours_scored_positions']} scored positions per batch (mlm_overflow; HF scores all positions)",
              file=sys.stderr)
    for f in failures:
        print(f"# FAILED {f['side']}/{f['variant']}: {f['why']}", file=sys.stderr)
    write_report(args.json_out, report)
    return 1 if failures else 0


def ratios(results: List[Dict]) -> List[Dict]:
    """For every (ours, HF) pair: HF mean ms / our mean ms (above 1: we are faster) and the tokens/s ratio."""
    return pairs(results, lambda o, h, _: {"tokens_per_s_ratio": o["tokens_per_s"] / h["tokens_per_s"]})


def ratio_markdown(rows: List[Dict]) -> str:
    """The speed ratio of every (ours, HF) pair."""
    return table(("albert-ner variant", "HF variant", "speed ratio (HF ms / our ms)"),
                 [(r["ours"], r["hf"], f"{r['speedup']:.2f}x") for r in rows])


# ---- command line -----------------------------------------------------------------------------------------
def parse_args(argv: List[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    e = p.add_argument_group("encoder (one of)")
    e.add_argument("--checkpoint", type=Path, default=None,
                   help=f"a pretrained encoder folder (default {DEFAULT_CHECKPOINT}, i.e. m3e-small)")
    e.add_argument("--encoder-preset", default=None, help="random weights of a named preset (cpu-small, tiny, ...)")
    e.add_argument("--encoder-config", default=None, help="random weights of an albert/bert/ernie config JSON")
    e.add_argument("--vocab-file", default=None, help="needed with a preset or config; default: the checkpoint's")
    c = p.add_argument_group("batches")
    c.add_argument("--corpus", nargs="+", default=[str(DEFAULT_CORPUS)],
                   help="text files, directories or globs; default: ../shared/corpus")
    c.add_argument("--corpus-lines", type=int, default=0,
                   help="corpus lines to make batches from (0: 2 x batch x (warmup + steps), at least 200)")
    c.add_argument("--user-dict", default=None, help="jieba user dictionary")
    c.add_argument("--mask-prob", type=float, default=0.15)
    c.add_argument("--char-mask-share", type=float, default=0.0)
    c.add_argument("--sop", choices=SOP_CHOICES, default="auto",
                   help="sentence-order prediction (auto: as `albert-ner pretrain`, on for ALBERT layouts)")
    s = p.add_argument_group("steps")
    s.add_argument("--batch-size", type=positive, default=32)
    s.add_argument("--seq-len", type=int, default=128, help="tokens per row incl. [CLS] and [SEP]; rows padded to it")
    s.add_argument("--warmup", type=positive, default=3, help="untimed steps (the first traces/compiles)")
    s.add_argument("--steps", type=positive, default=20, help="timed steps")
    s.add_argument("--lr", type=float, default=1e-4, help="peak learning rate (both sides; warmup 1 step)")
    add_thread_args(s)
    add_variant_args(s, ["graph", "xla"], ["float32"])
    s.add_argument("--hf-scoring", choices=sorted(HF_SCORING), default="all",
                   help="HF vocab logits at every position (the class's forward: all), only at the masked ones as "
                        "ours (masked), or both runs")
    s.add_argument("--hf-attn", default=None, help="HF attn_implementation (eager, sdpa); default: transformers'")
    s.add_argument("--json-out", type=Path, default=DEFAULT_JSON)
    s.add_argument("--work-dir", type=Path, default=None,
                   help="keep the prepared weights and batches here; default: a temporary folder")
    add_child_args(s)
    args = p.parse_args(argv)
    resolve_threads(args)
    if args.seq_len < 8:
        p.error(f"--seq-len must be >= 8 (the preprocessing's shortest chunk length), got {args.seq_len}")
    if args.corpus_lines < 0:
        p.error(f"--corpus-lines must be >= 0, got {args.corpus_lines}")
    given = [name for name in ("checkpoint", "encoder_preset", "encoder_config") if getattr(args, name)]
    if len(given) > 1:
        p.error(f"give one encoder: --{given[0].replace('_', '-')} or --{given[1].replace('_', '-')}")
    if not given:
        args.checkpoint = DEFAULT_CHECKPOINT
    if args.checkpoint is not None and not args.checkpoint.exists():
        p.error(f"--checkpoint {args.checkpoint}: no such folder or file (get m3e-small with "
                "`albert-ner download m3e-small`)")
    if (args.encoder_preset or args.encoder_config) and not args.vocab_file:
        p.error("--encoder-preset / --encoder-config need --vocab-file")
    for name in ("vocab_file", "encoder_config", "user_dict"):
        value = getattr(args, name)
        if value and not Path(value).is_file():
            p.error(f"--{name.replace('_', '-')} {value}: no such file")
    return args


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.child:
        run_child(args)
        return 0
    return run_parent(args, argv)


if __name__ == "__main__":
    sys.exit(main())
