"""`albert-ner tag`: exact offsets for any Unicode, formats, order, failures counted, long lines whole."""
import io
import json
import logging
import os
import re
import subprocess
import sys

import pytest
from hypothesis import given, settings, strategies as st

from albert_ner.cli import main
from albert_ner.data.corpus import read_corpus
from albert_ner.data.tags import entities_from_tags
from albert_ner.infer.tagging import entity_records, render
from albert_ner.infer.textfiles import Document

ANY_TEXT = st.text(alphabet=st.one_of(
    st.sampled_from(list("张三北京大学工作在了的 \t\u3000abcXYZ0123456789😀👍🏽é\u0301\u200d，。！")),
    st.characters(blacklist_categories=("Cs",))), max_size=60)
TAGS = st.sampled_from(["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "E-LOC", "S-PER"])


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_entity_offsets_index_the_original_text(data):
    text = data.draw(ANY_TEXT)
    tags = data.draw(st.lists(TAGS, min_size=len(text), max_size=len(text)))
    conf = data.draw(st.lists(st.floats(0, 1), min_size=len(text), max_size=len(text)))
    entities = entity_records(text, tags, conf)
    assert len(entities) == len(entities_from_tags(tags))
    for e in entities:
        assert text[e["start"]:e["end"]] == e["text"] and e["end"] > e["start"]
        assert e["score"] == round(min(conf[e["start"]:e["end"]]), 4)
    doc = Document("f.txt", 3, text)
    record = json.loads(render("jsonl", doc, tags, entities))
    assert record["text"] == text and record["line"] == 3
    assert all(record["text"][e["start"]:e["end"]] == e["text"] for e in record["entities"])
    # inline marks: removing them gives the text back
    inline = render("inline", doc, tags, entities)[:-1]
    for e in entities:
        inline = inline.replace(f"[{e['text']}]({e['type']})", e["text"], 1)
    assert inline == text
    assert render("conll", doc, tags, entities).count("\n") == len(text) + 1


def test_tag_finds_the_learned_entities_with_exact_offsets(model_dir, tmp_path):
    sentences, _ = read_corpus(model_dir / "train.txt")
    lines = [s.text for s in sentences]
    (tmp_path / "in.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(["tag", str(model_dir / "model"), str(tmp_path / "in.txt"), "-o", str(tmp_path / "out.jsonl")]) == 0
    records = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["line"] for r in records] == list(range(1, len(lines) + 1))  # input order
    assert [r["text"] for r in records] == lines
    found = [(e["type"], e["start"], e["end"]) for r in records for e in r["entities"]]
    gold = [(e.type, e.start, e.end) for s in sentences for e in entities_from_tags(s.tags)]
    assert len(found) >= 0.9 * len(gold)
    for r in records:
        for e in r["entities"]:
            assert r["text"][e["start"]:e["end"]] == e["text"] and 0.0 < e["score"] <= 1.0
    # without scores: the same entities, score null (no forward-backward pass)
    assert main(["tag", str(model_dir / "model"), str(tmp_path / "in.txt"), "-o", str(tmp_path / "fast.jsonl"),
                 "--scores", "false", "--jit", "false", "--batch-size", "8"]) == 0
    fast = [json.loads(x) for x in (tmp_path / "fast.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [[(e["type"], e["start"], e["end"]) for e in r["entities"]] for r in fast] == \
        [[(e["type"], e["start"], e["end"]) for e in r["entities"]] for r in records]
    assert all(e["score"] is None for r in fast for e in r["entities"])


def test_long_lines_are_tagged_whole_and_bad_lines_are_counted(model_dir, tmp_path, capsys, caplog):
    caplog.set_level(logging.INFO)
    sentences, _ = read_corpus(model_dir / "train.txt")
    long_line = "".join(s.text for s in sentences)  # far beyond max_seq_len: windowed, not truncated
    assert len(long_line) > 300
    path = tmp_path / "mixed.txt"
    path.write_bytes(long_line.encode() + b"\n\xff\xfe\n" + "张三去了北京。".encode() + b"\n")
    code = main(["tag", str(model_dir / "model"), str(path), "--format", "conll", "--encoding", "utf-8"])
    captured = capsys.readouterr()
    assert code == 1  # some lines failed
    blocks = captured.out.split("\n\n")
    assert len(blocks[0].splitlines()) == len(long_line)
    assert [ln.split("\t")[0] for ln in blocks[0].splitlines()] == list(long_line)
    assert len(blocks[1].splitlines()) == len("张三去了北京。")
    assert f"{path}:2: cannot decode bytes" in caplog.text
    assert "tagged 2 documents" in caplog.text and "1 failed" in caplog.text


def test_many_small_chunks_keep_order_and_a_document_that_cannot_be_featurized_is_reported(caplog):
    import io

    from albert_ner.data.features import Featurizer
    from albert_ner.infer.tagging import tag_documents
    from tests.infer.test_windowed import expected_tags, make_tagger

    class PickyFeaturizer(Featurizer):
        def encode(self, sentences, labels=None):
            if any("j" in s.text for s in sentences):
                raise ValueError("no j here")
            return super().encode(sentences, labels)

    calls = []
    tagger = make_tagger(batch_size=8, calls=calls)
    tagger.featurizer = PickyFeaturizer(tagger.featurizer.vocab)
    texts = ["abc", "dej", "e", "ghi" * 20, "a", "bbbb"] * 7
    docs = [Document("in.txt", i + 1, t) for i, t in enumerate(texts)]
    docs[10] = Document("in.txt", 11, "", error="cannot decode bytes")
    out = io.StringIO()
    summary = tag_documents(tagger, docs, out, "conll", chunk_docs=5, scores=False)
    blocks = out.getvalue().split("\n\n")[:-1]
    kept = [d for d in docs if d.error is None and "j" not in d.text]
    assert summary.documents == len(kept) == len(blocks)
    assert summary.failed == len(docs) - len(kept)
    for doc, block in zip(kept, blocks):
        assert [ln.split("\t")[1] for ln in block.splitlines()] == expected_tags(doc.text)
    assert "in.txt:2: featurization failed: ValueError: no j here" in caplog.text
    assert "in.txt:11: cannot decode bytes" in caplog.text


# --- the output never destroys or feeds on the input; failures and interruptions keep what was done ---------

def tag(model_dir, *args):
    return main(["tag", str(model_dir / "model"), *map(str, args), "--jit", "false", "--batch-size", "8"])


def records(path):
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def test_an_output_that_is_an_input_is_refused_whatever_its_name(model_dir, tmp_path, capsys, caplog):
    src = tmp_path / "in.txt"
    src.write_text("张三去了北京。\n李四在上海。\n", encoding="utf-8")
    before = src.read_bytes()
    os.link(src, tmp_path / "hard.txt")
    os.symlink(src, tmp_path / "soft.txt")
    for output in (src, tmp_path / "hard.txt", tmp_path / "soft.txt", f"{tmp_path}/./in.txt"):
        assert tag(model_dir, src, "-o", output) == 2
        assert src.read_bytes() == before
    told = capsys.readouterr().err + caplog.text
    assert told.count("is also an input") == 4 and "choose another -o" in told
    with open(src, "rb") as stdin, pytest.MonkeyPatch.context() as mp:  # `tag MODEL -o in.txt < in.txt`
        mp.setattr(sys, "stdin", io.TextIOWrapper(stdin))
        assert tag(model_dir, "-o", src) == 2
    assert src.read_bytes() == before


def test_an_output_inside_an_input_directory_is_never_read(model_dir, tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "in.txt").write_text("张三去了北京。\n李四在上海。\n", encoding="utf-8")
    (d / "out.jsonl.partial").write_text("stale partial output\n", encoding="utf-8")
    (d / ".out.jsonl.999.tmp").write_text("another run's temporary output\n", encoding="utf-8")
    assert tag(model_dir, d, "-o", d / "out.jsonl") == 0
    first = (d / "out.jsonl").read_text(encoding="utf-8")
    assert tag(model_dir, d, "-o", d / "out.jsonl") == 0  # run twice: its own output is not read
    assert (d / "out.jsonl").read_text(encoding="utf-8") == first
    assert [(r["source"], r["line"]) for r in records(d / "out.jsonl")] == [(str(d / "in.txt"), 1),
                                                                            (str(d / "in.txt"), 2)]
    assert sorted(p.name for p in d.iterdir()) == [".out.jsonl.999.tmp", "in.txt", "out.jsonl", "out.jsonl.partial"]


def _stop_at(monkeypatch, n, exc):
    """Make the n-th document written raise `exc` (as a Ctrl-C or a failure between two records would)."""
    from albert_ner.infer import tagging

    real, calls = tagging._write_document, []

    def write(*args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            raise exc
        return real(*args, **kwargs)

    monkeypatch.setattr(tagging, "_write_document", write)


def test_ctrl_c_keeps_the_complete_records_aside_and_the_old_output_as_it_was(model_dir, tmp_path, monkeypatch,
                                                                               caplog):
    src = tmp_path / "in.txt"
    src.write_text("".join(f"张三去了北京{i}。\n" for i in range(5)), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    out.write_text("an earlier run's output\n", encoding="utf-8")
    _stop_at(monkeypatch, 3, KeyboardInterrupt())
    try:
        code = tag(model_dir, src, "-o", out)
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C ended `tag` with a traceback")
    assert code == 130
    assert out.read_text(encoding="utf-8") == "an earlier run's output\n"  # never half-written
    kept = records(tmp_path / "out.jsonl.partial")
    assert [r["line"] for r in kept] == [1, 2] and kept[1]["text"] == "张三去了北京1。"
    assert f"interrupted after 2 documents (last: {src}:2)" in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "out.jsonl", "out.jsonl.partial"]


def test_a_failed_run_leaves_no_half_written_output(model_dir, tmp_path, monkeypatch, caplog):
    src = tmp_path / "in.txt"
    src.write_text("".join(f"张三去了北京{i}。\n" for i in range(5)), encoding="utf-8")
    _stop_at(monkeypatch, 4, RuntimeError("disk on fire"))
    with pytest.raises(RuntimeError, match="disk on fire"):
        tag(model_dir, src, "-o", tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()
    assert len(records(tmp_path / "out.jsonl.partial")) == 3
    assert "stopped after 3 documents" in caplog.text


def test_an_unreadable_input_is_reported_and_the_others_are_tagged(model_dir, tmp_path, monkeypatch, caplog):
    from albert_ner.infer import textfiles
    from tests.infer.test_textfiles import unreadable

    caplog.set_level(logging.INFO)
    for name in "abc":
        (tmp_path / f"{name}.txt").write_text(f"张三去了北京{name}。\n", encoding="utf-8")
    unreadable(monkeypatch, textfiles, "open", tmp_path / "b.txt")
    code = tag(model_dir, *(tmp_path / f"{n}.txt" for n in "abc"), "-o", tmp_path / "out.jsonl")
    assert code == 1
    assert [r["source"] for r in records(tmp_path / "out.jsonl")] == [str(tmp_path / "a.txt"), str(tmp_path / "c.txt")]
    assert f"{tmp_path / 'b.txt'}: cannot read (Permission denied)" in caplog.text
    assert "1 input not read" in caplog.text


def test_options_may_come_before_the_inputs(model_dir, tmp_path, capsys):
    (tmp_path / "f.txt").write_text("张三去了北京。\n", encoding="utf-8")
    assert main(["tag", str(model_dir / "model"), "--format", "inline", str(tmp_path / "f.txt"), "--jit", "false"]) == 0
    out = capsys.readouterr().out
    assert "](" in out and re.sub(r"\[([^]]*)\]\([A-Z]+\)", r"\1", out) == "张三去了北京。\n"  # inline marks


def test_output_piped_into_head_ends_quietly(model_dir, tmp_path):
    (tmp_path / "many.txt").write_text("张三去了北京。\n" * 3000, encoding="utf-8")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.Popen([sys.executable, "-m", "albert_ner.cli", "tag", str(model_dir / "model"),
                             str(tmp_path / "many.txt"), "--jit", "false"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    first = proc.stdout.readline()  # `| head -1`
    proc.stdout.close()
    _, err = proc.communicate(timeout=600)
    err = err.decode()
    assert json.loads(first)["text"] == "张三去了北京。"
    assert "Traceback" not in err and "Exception ignored" not in err, err[-2000:]
    assert proc.returncode == 2 and "broken pipe" in err
