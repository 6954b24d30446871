"""`albert-ner export`: a trained model directory -> TF Serving / SageMaker-ready directory.

    OUT/1/                      SavedModel, signature `serving_default` (see infer/serving.py)
    OUT/code/inference.py       SageMaker TFS handler: texts in, entities out
    OUT/code/lib/albert_ner/    the modules the handler imports: standard library only (HANDLER_MODULES)
    OUT/code/lib/jieba/         jieba and its licence, for a model with word features (infer/vendored.py)
    OUT/code/model/             serving.json (the handler's featurizer tables), model_config.json, the
                                featurizer files (vocab, bigrams) and their manifest
`tar -czf model.tar.gz -C OUT .` is what a SageMaker TensorFlow endpoint takes (`--archive`). No
requirements.txt: the container ignores it beside code/lib, and its Python (3.10, without numpy)
needs nothing that is not in the archive.
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
from albert_ner.infer.serving_tables import write_tables
from albert_ner.infer.vendored import copy_jieba
from albert_ner.model import modeldir
from albert_ner.model.store import open_model
from albert_ner.writable import check_output_dir

VERSION = "1"
# Modules of the package the handler imports (directly or not); each imports only the standard library
# and the modules listed here (tests/infer/test_handler_container.py checks that).
HANDLER_MODULES = ("data/__init__.py", "data/tags.py", "infer/__init__.py", "infer/serving.py",
                   "infer/serving_features.py", "infer/serving_http.py")
# ... and those only a model with word features (jieba word boundaries, POS tags) uses, shipped with jieba.
WORD_FEATURE_MODULES = ("data/posseg.py",)
PACKAGE_INIT = '''"""albert-ner {version}: the serving handler's modules, as `albert-ner export` ships them."""
__version__ = "{version}"
'''


def write_handler(code: Path, word_features: bool) -> None:
    """code/inference.py and code/lib: the handler, the package modules it imports, and jieba if needed."""
    code.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(__file__).with_name("sagemaker_inference.py"), code / "inference.py")
    package = Path(albert_ner.__file__).parent
    lib = code / "lib"
    for rel in HANDLER_MODULES + (WORD_FEATURE_MODULES if word_features else ()):
        dest = lib / "albert_ner" / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(package / rel, dest)
    (lib / "albert_ner" / "__init__.py").write_text(PACKAGE_INIT.format(version=albert_ner.__version__),
                                                   encoding="utf-8")
    if word_features:
        copy_jieba(lib)


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
    write_tables(code / "model", model.config, loaded.featurizer)
    source = files.manifest or {}
    modeldir.write_manifest(code / "model", {"vocab_tokens": len(loaded.featurizer.vocab),
                                             "exported_from": str(files.folder),
                                             "run_id": source.get("run_id"), "epoch": source.get("epoch")})
    write_handler(code, word_features=loaded.featurizer.lexicon or loaded.featurizer.pos)
    if archive:
        with tarfile.open(str(out) + ".tar.gz", "w:gz") as tar:
            for item in sorted(out.iterdir()):
                tar.add(item, arcname=item.name)
    return out
