"""`albert-ner export`: the SavedModel, through the handler's pipeline, predicts exactly what the in-process
tagger predicts, and the archive ships exactly the handler's standard-library-only modules (the handler in
the container's Python: test_handler_container.py)."""
import json
import subprocess
import sys
import tarfile

import numpy as np
import pytest
import tensorflow as tf

from albert_ner.cli import main
from albert_ner.data.corpus import read_corpus
from albert_ner.data.pipeline import CHAR_FEATURES
from albert_ner.infer.export import HANDLER_MODULES
from albert_ner.infer.predictor import Predictor
from albert_ner.infer.serving import SIGNATURE, ServingPipeline
from albert_ner.model.store import load_model
from tests.infer.shipped import check_imports
from tests.train.conftest import write_slice


@pytest.fixture(scope="module")
def exported(model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "ner"
    assert main(["export", str(model_dir / "model"), str(out), "--archive"]) == 0
    return out


@pytest.fixture(scope="module")
def test_slice(msra_dir, tmp_path_factory):
    """MSRA test sentences, long ones included (windowed in both paths)."""
    path = write_slice(msra_dir / "test.txt", tmp_path_factory.mktemp("slice") / "test.txt", 60, with_entities=False)
    sentences, _ = read_corpus(path)
    return sentences


def saved_model_runner(path):
    """A ServingPipeline runner that calls the SavedModel's signature in process (lists in, lists out)."""
    serve = tf.saved_model.load(str(path)).signatures[SIGNATURE]

    def run(inputs):
        out = serve(**{k: tf.constant(v, tf.int32) for k, v in inputs.items()})
        return {k: v.numpy().tolist() for k, v in out.items()}
    return run


def test_saved_model_predictions_equal_the_in_process_tagger(model_dir, exported, test_slice):
    assert (exported / "1" / "saved_model.pb").is_file() and (exported / "code/inference.py").is_file()
    model, featurizer = load_model(model_dir / "model")
    expected = Predictor(model, featurizer, batch_size=16, jit=False).predict_with_confidence(test_slice)
    pipeline = ServingPipeline.from_dir(exported / "code/model", saved_model_runner(exported / "1"), batch_size=16)
    got = pipeline.tag([s.text for s in test_slice])
    assert max(len(s.chars) for s in test_slice) > model.config.max_seq_len  # windows are exercised
    for (tags, conf), record in zip(expected, got):
        assert record["tags"] == tags
        np.testing.assert_allclose([e["score"] for e in record["entities"]],
                                   [round(min(conf[e["start"]:e["end"]]), 4) for e in record["entities"]], atol=2e-4)
    assert sum(len(r["entities"]) for r in got) > 10


def test_the_archive_holds_exactly_the_handler_modules(exported, tmp_path):
    """A model without word features ships no jieba and no POS module; the handler's modules import only
    the standard library and each other; no requirements.txt (the container ignores it beside lib/)."""
    with tarfile.open(str(exported) + ".tar.gz") as tar:
        names = set(tar.getnames())
        tar.extractall(tmp_path, filter="data")
    assert {"1/saved_model.pb", "code/inference.py", "code/model/model_config.json", "code/model/serving.json",
            "code/model/manifest.json"} <= names
    lib = {n[len("code/lib/"):] for n in names if n.startswith("code/lib/") and n.endswith(".py")}
    assert lib == {f"albert_ner/{m}" for m in HANDLER_MODULES} | {"albert_ner/__init__.py"}
    assert not any(n.startswith("code/lib/jieba") for n in names) and "code/requirements.txt" not in names
    problems, _ = check_imports(tmp_path / "code")
    assert not problems, "\n".join(problems)
    tables = json.loads((tmp_path / "code/model/serving.json").read_text(encoding="ascii"))
    assert tables["features"] == {} and tables["inputs"] == ["token_ids", "lengths", *CHAR_FEATURES]


def test_the_handler_needs_no_numpy(exported, tmp_path):
    """inference.py imports, and tags through a runner, in a Python that sees no site-packages."""
    script = (
        "import importlib.util, json, sys\n"
        "assert importlib.util.find_spec('numpy') is None\n"
        f"sys.path[:0] = [{str(exported / 'code')!r}, {str(exported / 'code' / 'lib')!r}]\n"
        f"spec = importlib.util.spec_from_file_location('inference', {str(exported / 'code' / 'inference.py')!r})\n"
        "inference = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(inference)\n"
        "from albert_ner.infer.serving import ServingPipeline\n"
        "def runner(batch):\n"
        "    return {'tags': [[0] * (len(r) - 2) for r in batch['token_ids']],\n"
        "            'confidence': [[1.0] * (len(r) - 2) for r in batch['token_ids']]}\n"
        "out = ServingPipeline(inference.FEATURES, runner).tag(['张三在北京工作。' * 40])\n"
        "print(json.dumps([len(out[0]['tags']), sorted(m for m in sys.modules if m.startswith('numpy'))]))\n")
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout) == [320, []]
