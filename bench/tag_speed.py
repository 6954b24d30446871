"""Benchmark: tagging throughput (chars/s) and entity F1 on the MSRA test set, side by side with Jiagu.

Not a test. Every system tags the same texts in the same process, one after the other:
  - trained model directories (`--model DIR`, repeatable): the `albert-ner tag` path (featurize,
    window, decode with CRF confidences, entities), F1 against the gold tags;
  - encoder sizes without trained weights (`--encoder-config JSON`, repeatable, e.g. albert_zh tiny
    and base): throughput only, on the first `--untrained-sentences` sentences (no pretrained
    weights can be had here, so their F1 would mean nothing);
  - Jiagu 0.2.3 (`pip install jiagu==0.2.3`; word segmentation, then its NER perceptron on the words).
Each system's timing is the median of `--repeat` runs, as wall seconds and CPU seconds of the whole
process (all threads: `tag` featurizes the next chunk in a second thread while decoding, so its CPU
time can exceed its wall time; Jiagu runs in one thread). Prints a Markdown table for BENCHMARKS.md.

    python bench/tag_speed.py --model bench/runs/emb-lex16-lstm128 --threads 1 \
        --encoder-config ../shared/pretrained/albert_config/albert_config_tiny.json
"""
from __future__ import annotations

import argparse
import io
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("ALBERT_NER_SHARED", HERE.parent.parent / "shared"))


def jiagu_tags(texts):
    """Char-level BIO tags from Jiagu's word-level NER labels."""
    import jiagu

    out = []
    for text in texts:
        words = jiagu.seg(text)
        labels = jiagu.ner(words)
        tags = []
        for word, label in zip(words, labels):
            if label == "O":
                tags += ["O"] * len(word)
            else:
                kind = label[2:]
                tags += [label if label.startswith("B-") else f"I-{kind}"] + [f"I-{kind}"] * (len(word) - 1)
        out.append(tags)
    return out


def tag_all(predictor, sentences, scores=True):
    """The `albert-ner tag` path over in-memory documents; returns the predicted tags per sentence."""
    from albert_ner.infer.tagging import tag_documents
    from albert_ner.infer.textfiles import Document

    docs = [Document("test.txt", i + 1, s.text) for i, s in enumerate(sentences)]
    sink = io.StringIO()
    tag_documents(predictor, docs, sink, "conll", scores=scores)
    blocks = sink.getvalue().split("\n\n")
    return [[line.rsplit("\t", 1)[1] for line in block.splitlines()] for block in blocks[:len(sentences)]]


def timed(repeat, fn, *args):
    """(result, wall seconds, CPU seconds of this process over all its threads): the median of `repeat` runs."""
    runs = []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn(*args)
        runs.append((time.perf_counter() - wall, time.process_time() - cpu))
    wall, cpu = sorted(runs)[len(runs) // 2]
    return result, wall, cpu


def row(name, params, sentences, seconds, cpu_seconds, f1):
    chars = sum(len(s.chars) for s in sentences)
    f1_text = f"{f1:.4f}" if f1 is not None else "n/a (untrained)"
    return (f"| {name} | {params} | {len(sentences):,} | {chars:,} | {seconds:.2f} | {chars / seconds:,.0f} | "
            f"{cpu_seconds:.2f} | {chars / cpu_seconds:,.0f} | {f1_text} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--test-file", default=str(SHARED / "data/msra/test.txt"))
    ap.add_argument("--model", action="append", default=[], help="trained model directory")
    ap.add_argument("--encoder-config", action="append", default=[], help="published encoder config (untrained)")
    ap.add_argument("--untrained-sentences", type=int, default=500)
    ap.add_argument("--threads", type=int, default=0, help="TensorFlow intra/inter-op threads (0: TF default)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--jit", action="store_true", help="XLA-compile the decode function")
    ap.add_argument("--no-scores", action="store_true", help="tag without entity scores (as `tag --scores false`)")
    ap.add_argument("--no-jiagu", action="store_true")
    ap.add_argument("--repeat", type=int, default=3, help="runs per system; the median is reported")
    args = ap.parse_args()

    import tensorflow as tf

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    from albert_ner.config import EncoderConfig, HeadConfig, ModelConfig
    from albert_ner.data.corpus import read_corpus
    from albert_ner.data.features import Featurizer
    from albert_ner.data.vocab import Vocab
    from albert_ner.infer.predictor import Predictor
    from albert_ner.model.store import load_model
    from albert_ner.model.tagger import NerTagger
    from albert_ner.train.report import entity_report

    sentences, _ = read_corpus(args.test_file)
    gold = [list(s.tags) for s in sentences]
    rows = []
    for model_dir in args.model:
        model, featurizer = load_model(model_dir)
        predictor = Predictor(model, featurizer, batch_size=args.batch_size, jit=args.jit)
        tag_all(predictor, sentences[:600], not args.no_scores)  # warm-up: trace the decode for each bucket
        pred, seconds, cpu = timed(args.repeat, tag_all, predictor, sentences, not args.no_scores)
        params = sum(int(tf.size(v)) for v in model.weights)
        rows.append(row(f"albert-ner {Path(model_dir).name}", f"{params / 1e6:.1f}M", sentences, seconds, cpu,
                        entity_report(gold, pred)["f1"]))
    for config_path in args.encoder_config:
        vocab = Vocab.from_file(SHARED / "pretrained/vocab.txt")
        config = ModelConfig(EncoderConfig.from_pretrained_json(config_path), HeadConfig(lstm_units=128, lexicon_dim=16),
                             labels=("O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"))
        model = NerTagger(config)
        model.build_weights()
        predictor = Predictor(model, Featurizer(vocab, lexicon=True), batch_size=args.batch_size, jit=args.jit)
        subset = sentences[: args.untrained_sentences]
        tag_all(predictor, subset[:50])
        _, seconds, cpu = timed(args.repeat, tag_all, predictor, subset)
        params = sum(int(tf.size(v)) for v in model.weights)
        rows.append(row(f"{Path(config_path).stem} + BiLSTM-CRF", f"{params / 1e6:.1f}M", subset, seconds, cpu, None))
    if not args.no_jiagu:
        jiagu_tags([sentences[0].text])  # load its models before timing
        pred, seconds, cpu = timed(args.repeat, jiagu_tags, [s.text for s in sentences])
        rows.append(row("Jiagu 0.2.3 (seg + ner)", "-", sentences, seconds, cpu, entity_report(gold, pred)["f1"]))

    print(f"\ncommand: python bench/tag_speed.py {' '.join(sys.argv[1:])}")
    print(f"machine: {os.cpu_count()} cores; TensorFlow threads: {args.threads or 'default'}; "
          f"batch {args.batch_size}; XLA {'on' if args.jit else 'off'}; entity scores "
          f"{'off' if args.no_scores else 'on'}; median of {args.repeat} runs")
    print("| system | parameters | sentences | chars | wall s | chars/s | CPU s | chars per CPU s | entity F1 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
