"""Check an export on the whole MSRA test set: SavedModel + serving pipeline vs the in-process tagger.

Not a test (the tests do this on a slice). Exports MODEL_DIR into a temporary directory, tags every
test sentence both ways, and prints how many sentences and characters differ (expected: none).

    python bench/export_check.py bench/runs/emb-lex16-pos16-drop05-lstm128
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("ALBERT_NER_SHARED", HERE.parent.parent / "shared"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir")
    ap.add_argument("--test-file", default=str(SHARED / "data/msra/test.txt"))
    args = ap.parse_args()

    import tensorflow as tf

    from albert_ner.data.corpus import read_corpus
    from albert_ner.infer.export import export
    from albert_ner.infer.predictor import Predictor
    from albert_ner.infer.serving import SIGNATURE, ServingPipeline
    from albert_ner.model.store import load_model

    sentences, _ = read_corpus(args.test_file)
    model, featurizer = load_model(args.model_dir)
    started = time.time()
    expected = Predictor(model, featurizer, jit=False).predict_sentences(sentences)
    in_process = time.time() - started
    with tempfile.TemporaryDirectory() as tmp:
        out = export(args.model_dir, Path(tmp) / "export")
        serve = tf.saved_model.load(str(out / "1")).signatures[SIGNATURE]

        def run(inputs):  # the handler's window batch (lists) through the signature, lists back
            return {k: v.numpy().tolist() for k, v in serve(**{k: tf.constant(v, tf.int32)
                                                                for k, v in inputs.items()}).items()}

        pipeline = ServingPipeline.from_dir(out / "code" / "model", run)
        started = time.time()
        got = [r["tags"] for r in pipeline.tag([s.text for s in sentences])]
        served = time.time() - started
    diff_sentences = sum(a != b for a, b in zip(expected, got))
    diff_chars = sum(x != y for a, b in zip(expected, got) for x, y in zip(a, b))
    chars = sum(len(s.chars) for s in sentences)
    print(f"command: python bench/export_check.py {' '.join(sys.argv[1:])}")
    print(f"{len(sentences):,} sentences, {chars:,} chars: {diff_sentences} sentences and {diff_chars} chars differ "
          f"between the SavedModel and the in-process tagger (in-process {in_process:.1f}s, SavedModel "
          f"{served:.1f}s)")
    return 0 if diff_sentences == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
