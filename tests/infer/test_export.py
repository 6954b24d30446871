"""`albert-ner export`: the SavedModel predicts exactly what the in-process tagger predicts, and the
SageMaker TFS handler, run against a TF-Serving-like REST endpoint, returns the same entities."""
import json
import http.server
import os
import subprocess
import sys
import tarfile
import threading

import numpy as np
import pytest
import tensorflow as tf

from albert_ner.cli import main
from albert_ner.data.corpus import read_corpus
from albert_ner.infer.predictor import Predictor
from albert_ner.infer.serving import SIGNATURE, ServingPipeline, complete_inputs
from albert_ner.model.store import load_model
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
    serve = tf.saved_model.load(str(path)).signatures[SIGNATURE]

    def run(inputs, confidence):
        out = serve(**{k: tf.constant(v) for k, v in complete_inputs(inputs).items()})
        return {k: v.numpy() for k, v in out.items()}
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
    with tarfile.open(str(exported) + ".tar.gz") as tar:
        names = tar.getnames()
    assert "1/saved_model.pb" in names and "code/inference.py" in names and "code/model/model_config.json" in names


class FakeServing(http.server.BaseHTTPRequestHandler):
    """TensorFlow Serving's REST predict API (columnar), backed by the exported SavedModel."""

    serve = None

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        assert self.path == "/v1/models/model:predict" and body["signature_name"] == SIGNATURE
        out = self.serve(**{k: tf.constant(v, tf.int32) for k, v in body["inputs"].items()})
        payload = json.dumps({"outputs": {k: v.numpy().tolist() for k, v in out.items()}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


def test_sagemaker_handler_over_rest_returns_the_tagger_entities(model_dir, exported, test_slice, tmp_path):
    FakeServing.serve = tf.saved_model.load(str(exported / "1")).signatures[SIGNATURE]
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeServing)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        texts = [s.text for s in test_slice[:20]]
        (tmp_path / "request.json").write_text(json.dumps({"instances": texts}, ensure_ascii=False), encoding="utf-8")
        # The handler runs in a fresh interpreter, importing albert_ner from code/lib as in the container.
        script = (
            "import collections, io, json, sys\n"
            f"sys.path.insert(0, {str(exported / 'code')!r})\n"
            "import inference, albert_ner\n"
            f"assert albert_ner.__file__.startswith({str(exported / 'code' / 'lib')!r}), albert_ner.__file__\n"
            "Ctx = collections.namedtuple('Ctx', 'rest_uri request_content_type accept_header')\n"
            f"ctx = Ctx('http://127.0.0.1:{httpd.server_address[1]}/v1/models/model:predict', "
            "'application/json', 'application/json')\n"
            f"body, ctype = inference.handler(open({str(tmp_path / 'request.json')!r}, 'rb'), ctx)\n"
            "assert ctype == 'application/json'\n"
            "sys.stdout.write(body)\n")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        response = json.loads(proc.stdout)
    finally:
        httpd.shutdown()
    model, featurizer = load_model(model_dir / "model")
    expected = Predictor(model, featurizer, batch_size=16, jit=False).predict_sentences(test_slice[:20])
    assert [r["text"] for r in response] == texts
    assert [r["tags"] for r in response] == expected
    for r in response:
        for e in r["entities"]:
            assert r["text"][e["start"]:e["end"]] == e["text"]
