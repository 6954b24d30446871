"""Benchmark: milliseconds per train step for a model size, with and without XLA, on random batches.

    python bench/step_speed.py --preset embedding-only --lstm-units 128 --lexicon-dim 16 \
        --seq-len 64 --batch-size 32 [--precision mixed_float16] [--steps 20]

Prints one Markdown row per mode (graph, xla): compile time of the first step and the steady
step time. Not a test.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

LABELS = tuple("O B-LOC I-LOC B-ORG I-ORG B-PER I-PER".split())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="cpu-small")
    p.add_argument("--lstm-units", type=int, default=128)
    p.add_argument("--lexicon-dim", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--precision", default="float32")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--modes", default="graph,xla")
    args = p.parse_args()

    import tensorflow as tf

    from albert_ner.config import HeadConfig, ModelConfig, preset_encoder
    from albert_ner.model.tagger import NerTagger
    from albert_ner.train.optim import make_optimizer

    tf.keras.mixed_precision.set_global_policy(args.precision)
    rng = np.random.default_rng(0)
    b, t = args.batch_size, args.seq_len

    def batch():
        out = {"token_ids": rng.integers(1, 21128, (b, t)), "lengths": rng.integers(t // 2, t - 1, b),
               "labels": rng.integers(0, len(LABELS), (b, t - 2))}
        if args.lexicon_dim:
            out["word_boundaries"] = rng.integers(1, 5, (b, t - 2))
        return {k: tf.constant(v.astype(np.int32)) for k, v in out.items()}

    for mode in args.modes.split(","):
        model = NerTagger(ModelConfig(preset_encoder(args.preset, 21128),
                                      HeadConfig(lstm_units=args.lstm_units, lexicon_dim=args.lexicon_dim), LABELS))
        model.build_weights()
        enc, head = model.encoder_variables, model.head_variables
        opt_e = make_optimizer(1e-3, 0.01, 10, 1000, enc, "e")
        opt_h = make_optimizer(1e-3, 0.01, 10, 1000, head, "h")

        def step(batch):
            inputs = {k: batch[k] for k in ("token_ids", "lengths", "word_boundaries") if k in batch}
            with tf.GradientTape() as tape:
                loss = model.nll_loss(inputs, batch["labels"])
            grads, _ = tf.clip_by_global_norm(tape.gradient(loss, enc + head), 1.0)
            opt_e.apply_gradients(zip(grads[:len(enc)], enc))
            opt_h.apply_gradients(zip(grads[len(enc):], head))
            return loss

        fn = tf.function(step, jit_compile=(mode == "xla"))
        t0 = time.time()
        fn(batch()).numpy()
        compile_s = time.time() - t0
        batches = [batch() for _ in range(args.steps)]
        t0 = time.time()
        for x in batches:
            loss = fn(x)
        loss.numpy()
        ms = (time.time() - t0) / args.steps * 1000
        print(f"| {args.preset} | {args.lstm_units} | {args.lexicon_dim} | {b}x{t} | {args.precision} | {mode} | "
              f"{compile_s:.1f} s | {ms:.0f} ms | {b / ms * 1000:.0f} |", flush=True)


if __name__ == "__main__":
    main()
