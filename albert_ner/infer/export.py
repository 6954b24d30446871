"""`albert-ner export`: a trained model directory -> TF Serving / SageMaker-ready directory.

    OUT/1/                      SavedModel, signature `serving_default` (see infer/serving.py)
    OUT/code/inference.py       SageMaker TFS handler: texts in, entities out
    OUT/code/requirements.txt   what the handler needs besides the standard library
    OUT/code/lib/albert_ner/    the package's TensorFlow-free modules the handler imports
    OUT/code/model/             model_config.json, the featurizer files (vocab, bigrams) and their manifest
`tar -czf model.tar.gz -C OUT .` is what a SageMaker TensorFlow endpoint takes (`--archive`).
"""
from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import tensorflow as tf

import albert_ner
from albert_ner.config import MODEL_CONFIG_FILE
from albert_ner.data.features import FEATURIZER_FILES
from albert_ner.data.pipeline import CHAR_FEATURES
from albert_ner.infer.serving import SIGNATURE
from albert_ner.model import modeldir
from albert_ner.model.store import open_model
from albert_ner.writable import check_output_dir

VERSION = "1"
REQUIREMENTS = "numpy<2\njieba>=0.42\nsentencepiece\n"
# Modules the handler imports (directly or not); none of them imports TensorFlow.
HANDLER_MODULES = ("__init__.py", "config.py", "data/__init__.py", "data/bigrams.py", "data/corpus.py",
                   "data/features.py", "data/lexicon.py", "data/posseg.py", "data/pipeline.py", "data/tags.py",
                   "data/vocab.py", "data/windows.py", "infer/__init__.py", "infer/serving.py", "infer/tagging.py",
                   "infer/textfiles.py", "infer/windowed.py", "model/__init__.py", "model/modeldir.py")


def serving_function(model) -> tf.types.experimental.ConcreteFunction:
    """The `serving_default` concrete function: window batches -> tags and their CRF marginals."""
    used = {name for name, _ in model.feature_embeddings()}
    specs = [tf.TensorSpec([None, None], tf.int32, "token_ids"), tf.TensorSpec([None], tf.int32, "lengths")] + [
        tf.TensorSpec([None, None], tf.int32, name) for name in CHAR_FEATURES]

    @tf.function(input_signature=specs)
    def serve(token_ids, lengths, word_boundaries, pos_ids, bigram_ids):
        features = {"word_boundaries": word_boundaries, "pos_ids": pos_ids, "bigram_ids": bigram_ids}
        inputs = dict(token_ids=token_ids, lengths=lengths, **{k: v for k, v in features.items() if k in used})
        out = model.decode_with_confidence(inputs)
        return {"tags": tf.identity(out["tags"], name="tags"),
                "confidence": tf.identity(out["confidence"], name="confidence")}

    return serve.get_concrete_function()


def export(model_dir: str | Path, out_dir: str | Path, archive: bool = False) -> Path:
    """Write the SavedModel, the handler and the featurizer files; optionally OUT.tar.gz beside OUT.

    OUT must be a new or empty directory we may write in; that is checked before the model is loaded."""
    out = Path(out_dir)
    check_output_dir(out, "export OUT", empty=True)
    if archive:
        check_output_dir(out.parent, "export --archive: the folder of OUT.tar.gz")
    loaded = open_model(model_dir)  # checked; files come from the folder the weights came from
    model, files = loaded.model, loaded.files
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{out}: exists and is not empty")
    module = tf.Module()
    module.model = model
    tf.saved_model.save(module, str(out / VERSION), signatures={SIGNATURE: serving_function(model)})
    code = out / "code"
    (code / "model").mkdir(parents=True)
    for name in (MODEL_CONFIG_FILE,) + FEATURIZER_FILES:
        if (files.folder / name).is_file():
            shutil.copyfile(files.folder / name, code / "model" / name)
    source = files.manifest or {}
    modeldir.write_manifest(code / "model", {"vocab_tokens": len(loaded.featurizer.vocab),
                                             "exported_from": str(files.folder),
                                             "run_id": source.get("run_id"), "epoch": source.get("epoch")})
    shutil.copyfile(Path(__file__).with_name("sagemaker_inference.py"), code / "inference.py")
    (code / "requirements.txt").write_text(REQUIREMENTS, encoding="utf-8")
    package = Path(albert_ner.__file__).parent
    for rel in HANDLER_MODULES:
        dest = code / "lib" / "albert_ner" / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(package / rel, dest)
    if archive:
        with tarfile.open(str(out) + ".tar.gz", "w:gz") as tar:
            for item in sorted(out.iterdir()):
                tar.add(item, arcname=item.name)
    return out
