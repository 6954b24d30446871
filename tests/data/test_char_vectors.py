"""Pretrained character vectors (--char-embeddings): reading word2vec text (plain, .gz, .xz) and .npy + tokens,
errors naming file:line, mapping onto the run's ids, coverage, the encoder's width, freezing, the fingerprint."""
import dataclasses
import gzip
import json
import lzma

import numpy as np
import pytest

from albert_ner.cli import main
from albert_ner.config import TrainConfig
from albert_ner.data.char_vectors import CharVectorsError, read_char_vectors, source_files, table_init
from albert_ner.data.vocab import Vocab
from albert_ner.train import fingerprint
from albert_ner.train.loop import Trainer
from tests.train.test_loop import tiny_config

DIM = 8
# 12 character tokens, 10 distinct (在 and 。 twice).
CORPUS = "张\tB-PER\n三\tI-PER\n在\tO\n北\tB-LOC\n京\tI-LOC\n。\tO\n\n李\tB-PER\n四\tI-PER\n在\tO\n上\tB-LOC\n海\tI-LOC\n。\tO\n"
# In file order: four training characters, "A" and "a" (one id once folded: the first wins), a word (not one
# character) and a character the vocabulary lacks.
TOKENS = ["张", "在", "A", "。", "北京", "a", "京", "\U00020001"]


def vectors(seed=0):
    rng = np.random.default_rng(seed)
    return {t: np.round(rng.normal(size=DIM), 4).astype(np.float32) for t in TOKENS}


def word2vec_text(table, header=None):
    lines = [header or f"{len(table)} {DIM}"] + [t + " " + " ".join(f"{x:.4f}" for x in v) for t, v in table.items()]
    return "\n".join(lines) + "\n"


def write(path, text):
    data = text.encode("utf-8")
    opener = {".gz": gzip.open, ".xz": lzma.open}.get(path.suffix)
    if opener:
        with opener(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)
    return path


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text(CORPUS, encoding="utf-8")
    return path


@pytest.mark.parametrize("name", ["chars.vec", "chars.vec.gz", "chars.vec.xz", "chars.npy"])
def test_every_format_reads_the_same_single_character_vectors(tmp_path, name):
    table = vectors()
    path = tmp_path / name
    if name.endswith(".npy"):
        np.save(path, np.stack(list(table.values())))
        (tmp_path / "chars.vocab.txt").write_text("\n".join(table) + "\n", encoding="utf-8")
    else:
        write(path, word2vec_text(table))
    read = read_char_vectors(path)
    assert (read.dim, read.count, read.multi_char) == (DIM, len(TOKENS), 1)
    assert read.tokens == [t for t in TOKENS if len(t) == 1]
    np.testing.assert_array_equal(read.vectors, np.stack([table[t] for t in read.tokens]))
    assert len(source_files(path)) == (2 if name.endswith(".npy") else 1)


def test_mapping_onto_the_vocab_counts_collisions_and_measures_coverage(tmp_path, vocab_path):
    read = read_char_vectors(write(tmp_path / "chars.vec", word2vec_text(vectors())))
    vocab = Vocab.from_file(vocab_path, char_lookup="fold")
    init = table_init(read, vocab, "张三在北京。李四在上海。", "chars.vec")
    table = vectors()
    expected = {vocab.char_to_id(t): table[t] for t in ("张", "在", "A", "。", "京")}  # "A" before "a"
    assert sorted(expected) == init.rows.tolist()
    for row, value in zip(init.rows, init.values):
        np.testing.assert_array_equal(value, expected[row])
    r = init.report
    assert (r["file"], r["dim"], r["vectors"], r["rows_initialised"]) == ("chars.vec", DIM, len(TOKENS), 5)
    assert r["train_token_coverage"] == 6 / 12 and r["train_type_coverage"] == 4 / 10  # 张 在x2 。x2 京
    assert (r["shared_id_collisions"], r["skipped_not_one_char"], r["skipped_not_in_vocab"]) == (1, 1, 1)
    assert r["collision_examples"] == ["a -> id of A"] and r["rescaled"] is False
    # exact_first: the vocab holds no "A", so "A" falls back to "a" as well: still one id for both
    exact = table_init(read, Vocab.from_file(vocab_path, char_lookup="exact_first"), "张", "chars.vec")
    assert exact.report["rows_initialised"] == 5 and exact.report["train_token_coverage"] == 1.0


BAD = {
    "one-number header": ("5\n", r":1: expected the word2vec header 'COUNT DIM'"),
    "word header": ("five eight\n", r":1: expected the word2vec header"),
    "short line": (f"2 {DIM}\n张 " + " ".join(["0.1"] * DIM) + "\n在 0.1 0.2\n", r":3: '在' has 2 numbers, the header"),
    "not a number": (f"1 {DIM}\n张 " + " ".join(["0.1"] * (DIM - 1)) + " 0.x1\n",
                     r":2: value 8 of '张' is '0\.x1', not a number"),
    "nan": (f"1 {DIM}\n张 nan" + " 0.1" * (DIM - 1) + "\n", r":2: value 1 of '张' is 'nan', not a finite number"),
    "fewer vectors": (f"3 {DIM}\n张" + " 0.1" * DIM + "\n", r"announces 3 vectors, the file holds 1"),
    "more vectors": (f"1 {DIM}\n张" + " 0.1" * DIM + "\n在" + " 0.1" * DIM + "\n", r":3: more vectors than the 1"),
    "blank line inside": (f"2 {DIM}\n张" + " 0.1" * DIM + "\n\n在" + " 0.1" * DIM + "\n", r":3: empty line"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_vectors_file_is_refused_naming_file_and_line(tmp_path, case):
    text, message = BAD[case]
    path = write(tmp_path / "bad.vec.gz", text)
    with pytest.raises(CharVectorsError, match=message) as info:
        read_char_vectors(path)
    assert str(info.value).startswith(str(path))


def test_bad_npy_pairs_are_refused_naming_the_file(tmp_path):
    path = tmp_path / "v.npy"
    np.save(path, np.ones((2, DIM), np.float32))
    with pytest.raises(CharVectorsError, match=r"v\.npy: no token list beside it \(looked for v\.vocab\.txt, v\.txt"):
        read_char_vectors(path)
    (tmp_path / "v.txt").write_text("张\n在\n京\n", encoding="utf-8")
    with pytest.raises(CharVectorsError, match=r"v\.txt: 3 tokens for the 2 rows of .*v\.npy"):
        read_char_vectors(path)
    (tmp_path / "v.txt").write_text("张\n\n", encoding="utf-8")
    with pytest.raises(CharVectorsError, match=r"v\.txt:2: empty token"):
        read_char_vectors(path)
    np.save(path, np.array([[1.0] * DIM, [np.inf] * DIM], np.float32))
    (tmp_path / "v.txt").write_text("张\n在\n", encoding="utf-8")
    with pytest.raises(CharVectorsError, match=r"v\.npy: row 1 \('在', v\.txt:2\) holds a value that is not a finite"):
        read_char_vectors(path)


def _config(corpus, tmp_path, vocab_path, vec, **kw):
    values = dict(char_embeddings=str(vec), jit=False)
    values.update(kw)
    return tiny_config(corpus, tmp_path / "run", vocab_path, **values)


@pytest.mark.parametrize("preset", ["tiny", "embedding-only"])
def test_rows_are_set_from_the_file_and_a_presets_table_takes_its_width(corpus, tmp_path, vocab_path, preset):
    vec = write(tmp_path / "chars.vec.xz", word2vec_text(vectors()))
    trainer = Trainer(_config(corpus, tmp_path, vocab_path, vec, encoder_preset=preset))
    trainer._setup()
    table = trainer.model.encoder.embeddings.word_embeddings.numpy()
    assert table.shape == (trainer.model_config.encoder.vocab_size, DIM)
    assert trainer.model_config.encoder.embedding_size == DIM
    if preset == "embedding-only":
        assert trainer.model_config.encoder.hidden_size == DIM
    for char, value in vectors().items():
        if char in ("张", "在", "A", "。", "京"):
            np.testing.assert_array_equal(table[trainer.vocab.char_to_id(char)], value)  # as in the file
    assert trainer.char_init.report["train_token_coverage"] == 0.5


def test_a_config_of_another_width_is_refused(corpus, tmp_path, vocab_path):
    vec = write(tmp_path / "chars.vec", word2vec_text(vectors()))
    config = tmp_path / "albert_config.json"
    config.write_text(json.dumps(dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, vocab_size=21128,
                                      embedding_size=16, intermediate_size=64)))
    with pytest.raises(ValueError, match=r"chars\.vec: 8-dimensional vectors, but the character table of "
                                         r".*albert_config\.json is 16 wide \(embedding_size\)"):
        Trainer(_config(corpus, tmp_path, vocab_path, vec, encoder_config=str(config)))._setup()
    with pytest.raises(ValueError, match=r"char_embeddings and init both set the character table"):
        _config(corpus, tmp_path, vocab_path, vec, init=str(tmp_path))
    with pytest.raises(ValueError, match=r"freeze_char_embeddings needs char_embeddings"):
        tiny_config(corpus, tmp_path / "run", vocab_path, freeze_char_embeddings=True)


def _one_step(trainer):
    batch = next(iter(trainer.planner.dataset(shuffle=False, seed=0, epoch=0)))
    trainer.train_step(batch)
    return trainer.model.encoder.embeddings.word_embeddings.numpy()


@pytest.mark.parametrize("freeze", [True, False])
def test_frozen_rows_stay_and_the_others_train(corpus, tmp_path, vocab_path, freeze):
    vec = write(tmp_path / "chars.vec", word2vec_text(vectors()))
    # XLA on: the write-back of the frozen rows compiles; weight decay on: frozen rows are not decayed either.
    # The embedding-only preset (the random-init recipe's; character vectors never come with --init): no
    # Transformer layers to compile, the same character table.
    trainer = Trainer(_config(corpus, tmp_path, vocab_path, vec, freeze_char_embeddings=freeze, jit=True,
                              weight_decay=0.1, encoder_preset="embedding-only"))
    trainer._setup()
    before = trainer.model.encoder.embeddings.word_embeddings.numpy()
    after = _one_step(trainer)
    covered = [trainer.vocab.char_to_id(c) for c in "张在。京"]
    uncovered = [trainer.vocab.char_to_id(c) for c in "三北李四上海"]
    assert np.array_equal(after[covered], before[covered]) == freeze
    assert not np.array_equal(after[uncovered], before[uncovered])  # the table's other rows learn either way


def test_cli_reports_the_coverage_in_eval_results(corpus, tmp_path, vocab_path):
    vec = write(tmp_path / "chars.vec.gz", word2vec_text(vectors()))
    out = tmp_path / "cli"
    code = main(["train", "--train-file", str(corpus), "--dev-file", str(corpus), "--vocab-file", str(vocab_path),
                 "--output-dir", str(out), "--encoder-preset", "embedding-only", "--char-embeddings", str(vec),
                 "--freeze-char-embeddings", "--epochs", "1", "--lstm-units", "8", "--max-seq-len", "64",
                 "--batch-size", "2", "--jit", "false"])
    assert code == 0
    report = json.loads((out / "eval_results.json").read_text())["char_embeddings"]
    assert {k: report[k] for k in ("file", "dim", "vectors", "rows_initialised", "train_token_coverage",
                                   "train_type_coverage")} == dict(file=str(vec), dim=DIM, vectors=len(TOKENS),
                                                                   rows_initialised=5, train_token_coverage=0.5,
                                                                   train_type_coverage=0.4)
    saved = json.loads((out / "train_config.json").read_text())
    assert saved["char_embeddings"] == str(vec) and saved["freeze_char_embeddings"] is True


@pytest.mark.parametrize("kind", ["vec", "npy"])
def test_the_resume_fingerprint_holds_the_vectors_content(corpus, tmp_path, vocab_path, kind):
    if kind == "vec":
        vec = write(tmp_path / "chars.vec", word2vec_text(vectors()))
        change = lambda: write(vec, word2vec_text(vectors(seed=1)))  # noqa: E731
    else:
        vec = tmp_path / "chars.npy"
        np.save(vec, np.stack(list(vectors().values())))
        (tmp_path / "chars.vocab.txt").write_text("\n".join(TOKENS) + "\n", encoding="utf-8")
        change = lambda: (tmp_path / "chars.vocab.txt").write_text("\n".join(TOKENS[::-1]) + "\n")  # noqa: E731
    cfg = TrainConfig(train_file=str(corpus), output_dir=str(tmp_path / "o"), vocab_file=str(vocab_path),
                      char_embeddings=str(vec))
    saved = fingerprint.run_fingerprint(cfg)
    assert fingerprint.differences(saved, fingerprint.run_fingerprint(cfg)) == []
    moved = tmp_path / "moved"
    moved.mkdir()
    for path in source_files(vec):
        (moved / path.name).write_bytes(path.read_bytes())
    elsewhere = dataclasses.replace(cfg, char_embeddings=str(moved / vec.name))
    assert fingerprint.differences(saved, fingerprint.run_fingerprint(elsewhere)) == []  # same content elsewhere
    change()
    diffs = fingerprint.differences(saved, fingerprint.run_fingerprint(cfg))
    assert len(diffs) == 1 and diffs[0].startswith("char_embeddings: "), diffs
