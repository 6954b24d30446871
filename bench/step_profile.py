"""Where a CPU train step's time goes: forward, forward+backward and the full step, timed apart, and a TF
profiler op table (by op type and by model part), for one NerTagger in graph mode or under XLA.

    python bench/step_profile.py --checkpoint ~/.cache/albert-ner/pretrained/m3e-small --lstm-units 0 \
        --mode graph --threads 2 [--inter-op-threads 1] [--precision float32] [--steps 8] [--profile]

The step is the one `albert-ner train` runs (runner.build_training): forward and backward under a
dropout seed, global-norm clipping, one AdamW per group (encoder 5e-5, head 1e-3), written out here with
the same ops so that this file also runs against older checkouts: put a checkout first on PYTHONPATH to
time its code (A/B between two trees: alternate processes, compare medians). Batches are B x T random
full rows (no padding), as in bench/hf_compare.py --mode step. Prints one JSON object. Not a test.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Dict, List

import numpy as np

DEFAULT_CHECKPOINT = Path.home() / ".cache" / "albert-ner" / "pretrained" / "m3e-small"
LABELS = tuple("O B-LOC I-LOC B-ORG I-ORG B-PER I-PER".split())
PARTS = ("forward", "backward", "step")  # backward = forward + gradients; step = + clipping and AdamW
# Model parts an op belongs to, by the first of these found in its name (gradient ops carry the forward
# op's scope under gradient_tape/).
AREAS = (("adamw", "optimizer"), ("clip_by_global_norm", "clip"), ("crf", "crf"), ("bilstm", "bilstm"),
         ("classifier", "classifier"), ("embeddings", "embeddings"), ("attention", "attention"),
         ("intermediate", "ffn"), ("ffn_output", "ffn"), ("LayerNorm", "layer_norm"), ("dropout", "dropout"))


def build(args: argparse.Namespace):
    """The model (pretrained weights when --load), its two AdamW groups and the three timed functions."""
    import tensorflow as tf

    from albert_ner.config import HeadConfig, ModelConfig
    from albert_ner.model.noise import step_seed
    from albert_ner.model.tagger import NerTagger
    from albert_ner.train.optim import make_optimizer
    from albert_ner.weights.convert import load_pretrained, pretrained_encoder_config

    encoder_config, _ = pretrained_encoder_config(args.checkpoint)
    model = NerTagger(ModelConfig(encoder_config, HeadConfig(lstm_units=args.lstm_units), LABELS,
                                  max_seq_len=args.seq_len))
    model.build_weights()
    if args.load:
        load_pretrained(model.encoder, args.checkpoint)
    enc, head = model.encoder_variables, model.head_variables
    opts = [make_optimizer(5e-5, 0.01, 1, 1000, enc, "encoder_adamw"),
            make_optimizer(1e-3, 0.01, 1, 1000, head, "head_adamw")]
    counter = tf.Variable(0, dtype=tf.int64, trainable=False)

    def loss_of(batch):
        seed = tf.random.experimental.stateless_fold_in(tf.constant([args.seed, 0], tf.int64), counter)
        with step_seed(seed):
            return model.nll_loss({"token_ids": batch["token_ids"], "lengths": batch["lengths"]}, batch["labels"],
                                  training=True)

    def forward(batch):
        return loss_of(batch)

    def backward(batch):
        with tf.GradientTape() as tape:
            loss = loss_of(batch)
        return loss, tape.gradient(loss, enc + head)  # returned, so that none of them is pruned

    def step(batch):
        with tf.GradientTape() as tape:
            loss = loss_of(batch)
        grads, _ = tf.clip_by_global_norm(tape.gradient(loss, enc + head), 1.0)
        opts[0].apply_gradients(zip(grads[:len(enc)], enc))
        opts[1].apply_gradients(zip(grads[len(enc):], head))
        counter.assign_add(1)
        return loss

    jit = args.mode == "xla"
    fns = {name: tf.function(fn, jit_compile=jit, reduce_retracing=True)
           for name, fn in (("forward", forward), ("backward", backward), ("step", step))}
    return model, encoder_config, fns


def batches(args: argparse.Namespace, vocab_size: int, n: int) -> List[Dict[str, Any]]:
    """n random full-row batches: token ids [B,T], lengths [B] = T-2, labels [B,T-2]."""
    import tensorflow as tf

    rng = np.random.default_rng(args.seed)
    b, t = args.batch_size, args.seq_len
    return [{"token_ids": tf.constant(rng.integers(1, vocab_size, (b, t)).astype(np.int32)),
             "lengths": tf.constant(np.full(b, t - 2, np.int32)),
             "labels": tf.constant(rng.integers(0, len(LABELS), (b, t - 2)).astype(np.int32))} for _ in range(n)]


def time_fn(fn: Callable, data: List[Dict[str, Any]], warmup: int) -> Dict[str, Any]:
    """Median, min and every wall time (ms) of fn over data after `warmup` untimed calls, and the median process
    CPU time (ms): on a machine shared with other jobs the CPU time is the steadier of the two."""
    loss = lambda out: (out[0] if isinstance(out, tuple) else out).numpy()
    for b in data[:warmup]:
        loss(fn(b))
    times, cpu = [], []
    for b in data[warmup:]:
        t0, c0 = time.perf_counter(), time.process_time()
        loss(fn(b))
        times.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    return {"ms_median": statistics.median(times), "ms_min": min(times), "cpu_ms_median": statistics.median(cpu),
            "ms": [round(t, 1) for t in times]}


def area_of(name: str) -> str:
    for key, area in AREAS:
        if key in name:
            return area
    return "other"


def op_table(trace_dir: str, steps: int, top: int) -> Dict[str, Any]:
    """Self time per op type and per model part (ms per step), from the profiler's xplane trace.

    Op events are named `scope/op:Type`; their durations are summed over every executor thread, so on
    2 threads the total can exceed the wall time, and on a busy machine they include time the thread was
    descheduled (compare shares, not totals, across runs). The small XLA kernels the graph-mode step calls
    (model/gelu.py, model/layer_norm.py, the fused AdamW) are not op events here: their time shows in the
    forward/backward/step CPU times only."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    paths = sorted(glob.glob(os.path.join(trace_dir, "**", "*.xplane.pb"), recursive=True))
    if not paths:
        raise FileNotFoundError(f"{trace_dir}: the profiler wrote no *.xplane.pb")
    space = xplane_pb2.XSpace()
    space.ParseFromString(Path(paths[-1]).read_bytes())
    by_type, by_area, grad_ms, total = defaultdict(float), defaultdict(float), 0.0, 0.0
    by_area_type = defaultdict(float)
    for plane in space.planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        for line in plane.lines:
            if not line.name.startswith("tf_Compute") and not line.name.startswith("tf_XLA"):
                continue
            for ev in line.events:
                meta = plane.event_metadata[ev.metadata_id]
                if ":" not in meta.name or "::" in meta.name:  # executor bookkeeping, not an op
                    continue
                ms = ev.duration_ps / 1e9 / steps
                name, op_type = meta.name.rsplit(":", 1)
                area = area_of(name)
                by_type[op_type] += ms
                by_area[("grad " if "gradient_tape" in name else "fwd ") + area] += ms
                by_area_type[(area, op_type)] += ms
                grad_ms += ms if "gradient_tape" in name else 0.0
                total += ms
    rnd = lambda d, n: {str(k): round(v, 1) for k, v in sorted(d.items(), key=lambda kv: -kv[1])[:n]}
    return {"total_op_ms_per_step": round(total, 1), "gradient_ms_per_step": round(grad_ms, 1),
            "by_type": rnd(by_type, top), "by_area": rnd(by_area, 40), "by_area_type": rnd(by_area_type, top)}


def main(argv: List[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    p.add_argument("--load", action="store_true", help="load the pretrained weights (timing does not need them)")
    p.add_argument("--lstm-units", type=int, default=0)
    p.add_argument("--mode", choices=("graph", "xla"), default="graph")
    p.add_argument("--precision", default="float32")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--inter-op-threads", type=int, default=None, help="default: --threads")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--parts", default=",".join(PARTS))
    p.add_argument("--profile", action="store_true", help="also an op table of --profile-steps full steps")
    p.add_argument("--profile-steps", type=int, default=2)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args(argv)
    parts = [x for x in args.parts.split(",") if x]
    unknown = [x for x in parts if x not in PARTS]
    if unknown:
        p.error(f"--parts: unknown {unknown}; known: {', '.join(PARTS)}")

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.inter_op_threads or args.threads)
    tf.keras.mixed_precision.set_global_policy(args.precision)
    import albert_ner

    model, encoder_config, fns = build(args)
    data = batches(args, encoder_config.vocab_size, args.warmup + args.steps)
    result: Dict[str, Any] = {"code": str(Path(albert_ner.__file__).resolve().parents[1]), "mode": args.mode,
                              "precision": args.precision, "lstm_units": args.lstm_units, "threads": args.threads,
                              "inter_op_threads": args.inter_op_threads or args.threads,
                              "batch": [args.batch_size, args.seq_len], "loadavg_before": os.getloadavg()}
    for name in parts:
        result[name] = time_fn(fns[name], data, args.warmup)
    if args.profile:
        trace = f"/tmp/step_profile_{os.getpid()}"
        tf.profiler.experimental.start(trace)
        for b in data[:args.profile_steps]:
            fns["step"](b).numpy()
        tf.profiler.experimental.stop()
        result["ops"] = op_table(trace, args.profile_steps, args.top)
    result["loadavg_after"] = os.getloadavg()
    json.dump(result, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
