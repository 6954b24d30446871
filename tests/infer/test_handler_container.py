"""The exported handler as the SageMaker TensorFlow Serving container runs it: a Python with no
site-packages (3.10, the container's, where this machine has one), only code/ and code/lib/ on the
import path, requests through the container's invocation flow, against a TF-Serving-like REST endpoint.

The model uses every feature (jieba word boundaries and POS tags, bigrams), so jieba travels with it.
"""
import ast
import json
import shutil
import sys
import tarfile
import warnings

import numpy as np
import pytest

from albert_ner.cli import main
from albert_ner.data.corpus import read_corpus
from albert_ner.infer.export import HANDLER_MODULES, WORD_FEATURE_MODULES
from albert_ner.infer.predictor import Predictor
from albert_ner.infer.vendored import JIEBA_FILES
from albert_ner.model.store import load_model
from albert_ner.train.loop import train
from tests.infer.container import emulated_container, fake_serving, get_json, invoke, python310, unpack_like_sagemaker
from tests.infer.shipped import check_imports
from tests.train.conftest import write_slice
from tests.train.test_loop import tiny_config

PY310 = python310()
PYTHONS = [pytest.param(sys.executable, id="python3.11"),
           pytest.param(PY310, id="python3.10", marks=pytest.mark.skipif(PY310 is None, reason="no Python 3.10 here"))]


@pytest.fixture(scope="module")
def featured_model(msra_dir, vocab_path, tmp_path_factory):
    """A tiny model with word boundaries, POS tags and bigrams; 30 characters per window. Its dev (= train) F1
    reaches 1.0 at about epoch 11 of 15; it finds entities in the unseen test sentences too."""
    root = tmp_path_factory.mktemp("featured")
    data = write_slice(msra_dir / "train.txt", root / "train.txt", 16)
    cfg = tiny_config(data, root / "model", vocab_path, epochs=15, jit=False, max_seq_len=32, window_overlap=6,
                      lexicon_dim=4, pos_dim=4, bigram_dim=4, bigram_min_count=1)
    train(cfg)
    return root / "model"


@pytest.fixture(scope="module")
def archive(featured_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "ner"
    assert main(["export", str(featured_model), str(out), "--archive"]) == 0
    return out.parent / "ner.tar.gz"


@pytest.fixture(scope="module")
def texts(msra_dir, tmp_path_factory):
    path = write_slice(msra_dir / "test.txt", tmp_path_factory.mktemp("slice") / "test.txt", 24, with_entities=True)
    sentences, _ = read_corpus(path)
    return [s.text for s in sentences] + ["", "ＡＢＣ　Ｉ’m “张三” 在北京\t工作。\u2028第二行", "\U00020000\ue000\U0010fffd"]


@pytest.fixture(scope="module")
def expected(featured_model, texts):
    from albert_ner.data.corpus import Sentence

    model, featurizer = load_model(featured_model)
    sentences = [Sentence(tuple(t), None, "<t>", i + 1) for i, t in enumerate(texts)]
    return Predictor(model, featurizer, batch_size=16, jit=False).predict_with_confidence(sentences)


def test_archive_holds_the_handler_its_modules_and_jieba_and_no_requirements(archive, tmp_path):
    with tarfile.open(archive) as tar:
        names = {m.name for m in tar.getmembers() if m.isfile()}
    assert {"1/saved_model.pb", "code/inference.py", "code/model/serving.json", "code/model/manifest.json"} <= names
    assert "code/requirements.txt" not in names  # the container would ignore it; nothing needs installing
    shipped = {n[len("code/lib/albert_ner/"):] for n in names if n.startswith("code/lib/albert_ner/")}
    assert shipped == set(HANDLER_MODULES + WORD_FEATURE_MODULES) | {"__init__.py"}
    jieba = {n[len("code/lib/jieba/"):] for n in names if n.startswith("code/lib/jieba/")}
    assert jieba == set(JIEBA_FILES) | {"LICENSE"}
    root = unpack_like_sagemaker(archive, tmp_path)
    assert "MIT License" in (root / "code/lib/jieba/LICENSE").read_text()
    manifest = json.loads((root / "code/model/manifest.json").read_text())
    assert "serving.json" in manifest["files"]


def test_shipped_modules_import_only_the_standard_library_and_what_ships(archive, tmp_path):
    root = unpack_like_sagemaker(archive, tmp_path)
    problems, scanned = check_imports(root / "code")
    assert not problems, "\n".join(problems)
    assert scanned >= len(HANDLER_MODULES) + 2  # inference.py and the package __init__ too


def test_shipped_python_files_parse_as_python_3_10(archive, tmp_path):
    root = unpack_like_sagemaker(archive, tmp_path)
    files = sorted((root / "code").rglob("*.py"))
    assert len(files) > 15
    with warnings.catch_warnings():  # jieba's regular expressions in plain strings ("\s") warn, and work
        warnings.simplefilter("ignore", DeprecationWarning)
        for path in files:
            ast.parse(path.read_text(encoding="utf-8"), str(path), feature_version=(3, 10))


def records_equal_the_tagger(records, texts, expected):
    assert [r["text"] for r in records] == texts
    for record, (tags, conf) in zip(records, expected):
        assert record["tags"] == tags
        for e in record["entities"]:
            assert record["text"][e["start"]:e["end"]] == e["text"]
        np.testing.assert_allclose([e["score"] for e in record["entities"]],
                                   [round(min(conf[e["start"]:e["end"]]), 4) for e in record["entities"]], atol=2e-4)


BAD_REQUESTS = [  # (body, content type, accept, status, words the message must hold)
    (b'{"instances": ["a", ', "application/json", None, 400, "not valid JSON"),
    ({"instance": ["张三"]}, "application/json", None, 400, 'no "instances", "texts" or "text" field (keys: instance)'),
    ({"instances": ["张三", 7]}, "application/json", None, 400, "instances[1]: expected a string"),
    ({"instances": "张三"}, "application/json", None, 400, '"instances" must be a list'),
    ({"texts": [{"text": None}]}, "application/json", None, 400, 'texts[0]: "text" must be a string, got null'),
    ('"张三"\n{"txt": "x"}\n'.encode(), "application/jsonlines", None, 400, "line 2: expected a string"),
    (b'"ok"\n{broken\n', "application/jsonlines", None, 400, "line 2: not valid JSON"),
    (b"\xff\xfe\x00", "text/plain", None, 400, "not valid utf-8"),
    (b"a,b\n", "text/csv", None, 415, "Content-Type 'text/csv' is not supported"),
    ({"instances": ["张三"]}, "application/json", "text/csv", 406, "Accept 'text/csv'"),
    ({"instances": ["张三"]}, "application/json; charset=no-such", None, 415, "charset 'no-such'"),
]


@pytest.mark.parametrize("python", PYTHONS)
def test_the_container_serves_json_json_lines_and_text_and_refuses_bad_input_with_4xx(
        python, archive, texts, expected, tmp_path):
    root = unpack_like_sagemaker(archive, tmp_path)
    with fake_serving(root / "1") as port, emulated_container(root, port, python) as (base, version):
        assert version == ("3.10" if python == PY310 else f"{sys.version_info[0]}.{sys.version_info[1]}")
        status, ctype, body = invoke(base, {"instances": texts})
        assert (status, ctype) == (200, "application/json"), body[:2000]
        records_equal_the_tagger(json.loads(body), texts, expected)
        assert any(r["entities"] for r in json.loads(body))

        lines = [json.dumps(t if i % 2 else {"text": t, "id": i}, ensure_ascii=False) for i, t in enumerate(texts)]
        jsonl = ("\n".join(lines[:3]) + "\n\n" + "\n".join(lines[3:]) + "\n").encode()  # a blank line is no record
        status, ctype, body = invoke(base, jsonl, "application/jsonlines", "application/jsonlines")
        assert (status, ctype) == (200, "application/jsonlines"), body[:2000]
        out_lines = body.decode().split("\n")
        assert out_lines[-1] == "" and len(out_lines) == len(texts) + 1
        records_equal_the_tagger([json.loads(line) for line in out_lines[:-1]], texts, expected)

        plain = [t for t in texts if "\n" not in t and "\r" not in t]
        status, ctype, body = invoke(base, ("\n".join(plain) + "\n").encode(), "text/plain; charset=utf-8",
                                     "application/json, text/html;q=0.5")
        assert (status, ctype) == (200, "application/json"), body[:2000]
        records_equal_the_tagger(json.loads(body), plain, [e for t, e in zip(texts, expected) if t in plain])

        for payload, content_type, accept, code, words in BAD_REQUESTS:
            status, ctype, body = invoke(base, payload, content_type, accept)
            assert (status, ctype) == (code, "application/json"), (payload, body)
            error = json.loads(body)
            assert words in error["error"] and error["status"] == code, (payload, error)
        # where the response object is not the container's kind, the handler raises: 500 with the message
        status, _, body = invoke(base, {"instance": ["x"]}, path="/invocations-plain")
        assert status == 500 and 'no "instances", "texts" or "text" field' in json.loads(body)["error"]

        assert get_json(base, "/modules") == []  # nothing was loaded from outside the standard library and code/


def test_a_damaged_export_stops_the_container_at_start_naming_the_file(archive, tmp_path):
    root = unpack_like_sagemaker(archive, tmp_path)
    tables = root / "code/model/serving.json"
    data = json.loads(tables.read_text())
    data["char_ids"]["张"] = 5
    tables.write_text(json.dumps(data))
    with pytest.raises(AssertionError, match=r"serving.json: .* bytes where .*manifest.json records|"
                                             r"serving.json: sha256 differs"):
        with emulated_container(root, 9, sys.executable):
            pass
    shutil.rmtree(root)
