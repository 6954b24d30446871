"""The Python API, `albert_ner.load(...).tag(...)`: the CLI's records, exact offsets, batching, laziness,
bad input."""
import copy
import json
import subprocess
import sys

import pytest

import albert_ner
from albert_ner.cli import main
from albert_ner.data.corpus import read_corpus
from albert_ner.data.tags import entities_from_tags

ODD = ["😀👍🏽 {}", "  {}  ", "Hello, world! {} 123", "é\u0301\u200d{}\u3000\t", "{}\r\n{}", "ＡＢＣ{}𝔘𝔫𝔦"]


@pytest.fixture(scope="module")
def sentences(model_dir):
    return [s.text for s in read_corpus(model_dir / "train.txt")[0]]


@pytest.fixture(scope="module")
def gold(model_dir):
    """How many entities the training sentences (which the model has learned by heart) hold."""
    return sum(len(entities_from_tags(s.tags)) for s in read_corpus(model_dir / "train.txt")[0])


@pytest.fixture(scope="module")
def tagger(model_dir):
    return albert_ner.load(model_dir / "model", batch_size=8, jit=False)


def cli_entities(model_dir, tmp_path, texts, *flags):
    """The `entities` field of `albert-ner tag`'s jsonl records for `texts` (one per line)."""
    src, out = tmp_path / "in.txt", tmp_path / "out.jsonl"
    src.write_text("".join(t + "\n" for t in texts), encoding="utf-8")
    assert main(["tag", str(model_dir / "model"), str(src), "-o", str(out), "--jit", "false",
                 "--batch-size", "8", *flags]) == 0
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["text"] for r in records] == texts
    return [r["entities"] for r in records]


def same_entities(a, b):
    """Equal records; scores equal to 1e-3 (a batch of other rows may round the last digit differently)."""
    strip = [[[{k: v for k, v in e.items() if k != "score"} for e in doc] for doc in docs] for docs in (a, b)]
    assert strip[0] == strip[1]
    for x, y in zip(sum(a, []), sum(b, [])):
        assert (x["score"] is None) == (y["score"] is None)
        if x["score"] is not None:
            assert x["score"] == pytest.approx(y["score"], abs=1e-3)


def check_offsets(texts, results):
    assert len(results) == len(texts)
    for text, entities in zip(texts, results):
        for e in entities:
            assert set(e) == {"type", "start", "end", "text", "score"}
            assert 0 <= e["start"] < e["end"] <= len(text) and text[e["start"]:e["end"]] == e["text"]


def test_tag_gives_the_records_of_the_cli(model_dir, tagger, sentences, gold, tmp_path):
    long_text = "".join(sentences)  # beyond max_seq_len (128): windowed
    texts = sentences + [long_text, "张三在北京工作。", "no entities here"]
    expected = cli_entities(model_dir, tmp_path, texts)
    assert gold >= 10 and sum(map(len, expected[:len(sentences)])) >= 0.9 * gold  # not a vacuous comparison
    assert tagger.tag(texts) == expected  # same texts, same batches: identical records
    assert list(tagger.tag_iter(iter(texts))) == expected
    same_entities([tagger.tag(t) for t in texts[:5] + texts[-3:]], expected[:5] + expected[-3:])
    assert all(0.0 < e["score"] <= 1.0 for doc in expected for e in doc)
    # without scores: the CLI's --scores false records, scores None
    fast = albert_ner.load(model_dir / "model", batch_size=8, jit=False, scores=False)
    no_scores = cli_entities(model_dir, tmp_path, texts, "--scores", "false")
    assert fast.tag(texts) == no_scores
    assert all(e["score"] is None for doc in no_scores for e in doc)
    same_entities([[dict(e, score=None) for e in doc] for doc in expected], no_scores)


def test_the_cli_tags_through_the_api_object(model_dir, tmp_path, monkeypatch):
    from albert_ner import api

    made, real_load = [], api.load

    def load(*args, **kwargs):
        made.append(real_load(*args, **kwargs))
        return made[-1]

    documents = []
    real_tag_documents = api.Tagger.tag_documents

    def tag_documents(self, docs, *args, **kwargs):
        documents.append(self)
        return real_tag_documents(self, docs, *args, **kwargs)

    monkeypatch.setattr(api, "load", load)
    monkeypatch.setattr(api.Tagger, "tag_documents", tag_documents)
    cli_entities(model_dir, tmp_path, ["张三在北京工作。"], "--scores", "false", "--batch-size", "16")
    assert len(made) == 1 and documents == made
    assert made[0].batch_size == 16 and made[0].scores is False


def test_offsets_index_odd_texts_exactly(tagger, sentences):
    texts = [pattern.format(s, s) for s in sentences[:6] for pattern in ODD]
    results = tagger.tag(texts)
    check_offsets(texts, results)
    assert sum(map(len, results)) >= len(texts) // 2  # entities are found inside the odd texts
    for text, tags in zip(texts, tagger.char_tags(texts)):
        assert len(tags) == len(text) and set(tags) <= set(tagger.labels)


def test_a_text_with_newlines_is_one_document(tagger, sentences):
    first, second = sorted(sentences, key=len)[:2]
    text = f"{first}\n{second}"
    entities = tagger.tag(text)
    check_offsets([text], [entities])
    later = [e for e in entities if e["start"] > len(first)]
    assert later  # entities of the second line, at offsets into the whole text
    assert len(tagger.char_tags(text)) == len(text)


def test_many_texts_in_small_batches_equal_one_by_one(tagger, sentences):
    # 100 texts >= 16 sentences x 5 suffix lengths: every sentence with every suffix
    texts = [f"{i}号：{sentences[i % len(sentences)]}" + "啊" * (i % 5) * 30 for i in range(100)]
    assert max(map(len, texts)) > 128  # some are windowed
    batched = tagger.tag(texts, batch_size=7)
    assert tagger.batch_size == 8  # the call's batch size did not change the tagger's
    check_offsets(texts, batched)
    assert sum(map(len, batched)) >= 50
    same_entities(batched, [tagger.tag(t) for t in texts])


def test_a_long_text_is_windowed_not_cut(tagger, sentences, gold):
    text = "".join(sentences * 3)
    assert len(text) > 5 * 128
    entities = tagger.tag(text)
    check_offsets([text], [entities])
    assert max(e["end"] for e in entities) > len(text) - len(sentences[-1])  # found up to the end
    assert len(tagger.char_tags(text)) == len(text)
    assert len(entities) >= 0.9 * 3 * gold


def test_empty_inputs(tagger):
    assert tagger.tag("") == []
    assert tagger.tag([]) == []
    assert tagger.char_tags("") == []
    assert list(tagger.tag_iter(iter([]))) == []
    both = tagger.tag(["", "张三在北京工作。", ""])
    assert both[0] == [] and both[2] == [] and both[1] == tagger.tag("张三在北京工作。")


def test_tag_iter_reads_its_input_lazily_and_in_order(tagger):
    drawn = []

    def texts():
        for i in range(6000):
            drawn.append(i)
            yield f"张三{i}在北京工作。"

    results = tagger.tag_iter(texts())
    assert drawn == []  # nothing read before the first result is asked for
    first = next(results)
    same_entities([first], [tagger.tag("张三0在北京工作。")])
    assert 0 < len(drawn) < 6000
    results.close()


def test_non_str_input_is_a_type_error_naming_its_index(tagger):
    with pytest.raises(TypeError, match="text 2 is a int"):
        tagger.tag(["张三", "李四", 3])
    with pytest.raises(TypeError, match="text 1 is a bytes.*decode it first"):
        tagger.tag(["张三", "李四".encode()])
    with pytest.raises(TypeError, match="got NoneType"):
        tagger.tag(None)
    with pytest.raises(TypeError, match="got bytes"):
        tagger.tag(b"abc")
    with pytest.raises(TypeError, match="use tag\\(text\\)"):
        tagger.tag_iter("张三")
    with pytest.raises(TypeError, match="got int"):
        tagger.tag_iter(3)  # at the call, not at the first result
    results = tagger.tag_iter(["张三", None])
    with pytest.raises(TypeError, match="text 1 is a NoneType"):
        list(results)
    with pytest.raises(ValueError, match="batch_size must be at least 1, got 0"):
        tagger.tag("张三", batch_size=0)
    with pytest.raises(TypeError, match="batch_size must be an int"):
        albert_ner.load("nowhere", batch_size="8")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        albert_ner.load("nowhere")


def test_a_text_that_cannot_be_tagged_is_an_error_naming_it(tagger):
    from albert_ner.api import Tagger, TaggingError

    featurizer = copy.copy(tagger.predictor.featurizer)

    class Picky(type(featurizer)):
        def encode(self, sentences, labels=None):
            if any("j" in s.text for s in sentences):
                raise ValueError("no j here")
            return super().encode(sentences, labels)

    featurizer.__class__ = Picky
    predictor = copy.copy(tagger.predictor)
    predictor.featurizer = featurizer
    picky = Tagger(predictor)
    results = picky.tag_iter(["张三在北京工作。", "李四", "jam", "王五"])
    same_entities([next(results), next(results)], tagger.tag(["张三在北京工作。", "李四"]))
    with pytest.raises(TaggingError, match="text 2: featurization failed: ValueError: no j here"):
        next(results)


def test_import_albert_ner_does_not_import_tensorflow():
    code = ("import sys, albert_ner; assert callable(albert_ner.load) and 'load' in dir(albert_ner); "
            "print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
