"""Batches: fixed bucket shapes, every window present exactly once, deterministic resume."""
import numpy as np
import pytest

from albert_ner.data.corpus import Sentence
from albert_ner.data.bigrams import BigramVocab
from albert_ner.data.features import Featurizer
from albert_ner.data.pipeline import BatchPlanner, bucket_lengths, labels_from_sentences, make_windows
from albert_ner.data.vocab import Vocab


def sentences_of(lengths):
    out = []
    for i, n in enumerate(lengths):
        chars = tuple("中国人民银行北京上海"[j % 10] for j in range(n))
        tags = tuple("B-LOC" if j % 5 == 0 else "I-LOC" if j % 5 == 1 else "O" for j in range(n))
        out.append(Sentence(chars, tags, "mem.txt", 1 + i * 10))
    return out


@pytest.fixture(scope="module")
def vocab(vocab_path):
    return Vocab.from_file(vocab_path)


def test_bucket_lengths():
    assert bucket_lengths(128) == (32, 64, 128)
    assert bucket_lengths(100) == (32, 64, 100)
    assert bucket_lengths(20) == (20,)


def test_labels_put_o_first_and_group_by_type():
    s = sentences_of([7])
    assert labels_from_sentences(s) == ("O", "B-LOC", "I-LOC")


def test_every_window_lands_in_exactly_one_fixed_shape_batch(vocab):
    sents = sentences_of([3, 30, 61, 62, 200, 1, 45])
    labels = labels_from_sentences(sents)
    features = Featurizer(vocab, lexicon=True, bigrams=BigramVocab.build((s.chars for s in sents), min_count=1))
    corpus = features.encode(sents, labels)
    windows = make_windows([len(s.chars) for s in sents], 62, 10)
    planner = features.planner(corpus, windows, batch_size=3, max_seq_len=64)
    seen = []
    for bucket_len, idx in planner.plan(shuffle=True, seed=1, epoch=0):
        batch = planner.materialize(bucket_len, idx)
        assert batch["token_ids"].shape == (3, bucket_len) and bucket_len in planner.buckets
        assert batch["labels"].shape == batch["word_boundaries"].shape == batch["bigram_ids"].shape \
            == (3, bucket_len - 2)
        for row, wi in enumerate(idx):
            w = windows[wi]
            n = batch["lengths"][row]
            assert n == w.length
            ids = batch["token_ids"][row]
            assert ids[0] == vocab.cls_id and ids[n + 1] == vocab.sep_id and not ids[n + 2:].any()
            np.testing.assert_array_equal(ids[1:n + 1], corpus.token_ids[w.sentence][w.start:w.end])
            np.testing.assert_array_equal(batch["labels"][row, :n], corpus.label_ids[w.sentence][w.start:w.end])
            np.testing.assert_array_equal(batch["bigram_ids"][row, :n], corpus.features["bigram_ids"][w.sentence][w.start:w.end])
            assert (batch["bigram_ids"][row, :n] > 1).all()  # every bigram was seen in this data
        assert not batch["lengths"][len(idx):].any()  # filler rows are empty
        seen.extend(idx.tolist())
    assert sorted(seen) == list(range(len(windows)))
    # the 200-char sentence needs several windows and they cover it
    long_windows = [w for w in windows if w.sentence == 4]
    assert len(long_windows) > 1 and long_windows[0].start == 0 and long_windows[-1].end == 200


def test_plan_is_deterministic_and_skip_resumes_the_same_epoch(vocab):
    sents = sentences_of([5, 9, 40, 70, 12, 33, 8, 100, 3, 17])
    corpus = Featurizer(vocab).encode(sents, labels_from_sentences(sents))
    planner = Featurizer(vocab).planner(corpus, make_windows([len(s.chars) for s in sents], 126, 32), 2, 128)
    a = planner.plan(True, seed=3, epoch=2)
    b = planner.plan(True, seed=3, epoch=2)
    assert [x[1].tolist() for x in a] == [x[1].tolist() for x in b]
    assert [x[1].tolist() for x in planner.plan(True, seed=3, epoch=3)] != [x[1].tolist() for x in a]
    full = list(planner.iterate(True, seed=3, epoch=2))
    rest = list(planner.iterate(True, seed=3, epoch=2, skip=2))
    assert len(rest) == len(full) - 2
    for x, y in zip(full[2:], rest):
        np.testing.assert_array_equal(x["token_ids"], y["token_ids"])


def test_unknown_tag_in_dev_names_file_and_line(vocab):
    sents = sentences_of([4])
    bad = [Sentence(("a", "b"), ("O", "B-MISC"), "dev.txt", 40)]
    with pytest.raises(ValueError, match=r"dev.txt:41: tag 'B-MISC'"):
        Featurizer(vocab).encode(bad, labels_from_sentences(sents))


def test_dataset_yields_the_planned_batches(vocab):
    sents = sentences_of([5, 40, 70])
    corpus = Featurizer(vocab).encode(sents, labels_from_sentences(sents))
    planner = BatchPlanner(corpus, make_windows([5, 40, 70], 62, 8), 2, 64, vocab.cls_id, vocab.sep_id)
    got = [b["token_ids"].shape.as_list() for b in planner.dataset(shuffle=False)]
    assert got == [[2, 32], [2, 64], [2, 64]]  # 5 -> 32; 40, 70 (two windows) -> 64
