"""Pretraining examples: SOP pairs and segment ids, static bucketed batches, padding rows, resume, bad specs."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from albert_ner.data.vocab import Vocab
from albert_ner.pretrain.examples import (ExampleSpec, batch_counts, build_example, make_batches, random_id_range,
                                         sop_rows)

CLS, SEP, MASK = 101, 102, 103
BASE = dict(max_seq_len=64, cls_id=CLS, sep_id=SEP, mask_id=MASK, random_ids=(106, 8118))
SIG = {"token_ids": tf.TensorSpec([None], tf.int32), "word_starts": tf.TensorSpec([None], tf.int8),
       "sentence_starts": tf.TensorSpec([None], tf.int8), "example_index": tf.TensorSpec([], tf.int64)}


def spec(**options) -> ExampleSpec:
    return ExampleSpec(**{**BASE, **options})


def make_chunk(rng, sentence_lengths):
    """A chunk of the given sentences, each of random words (1..3 chars); ids unique within the chunk."""
    word_starts, sentence_starts = [], []
    for n in sentence_lengths:
        sentence_starts += [1] + [0] * (n - 1)
        starts = []
        while len(starts) < n:
            w = int(rng.integers(1, 4))
            starts += [1] + [0] * (w - 1)
        word_starts += starts[:n]
    length = len(word_starts)
    ids = rng.permutation(np.arange(10_000, 10_000 + max(length, 1)))[:length].astype(np.int32)
    return ids, np.array(word_starts, np.int8), np.array(sentence_starts, np.int8)


def dataset(chunks, indices=None):
    indices = list(range(len(chunks))) if indices is None else list(indices)

    def gen():
        for i, (ids, ws, ss) in zip(indices, chunks):
            yield {"token_ids": ids, "word_starts": ws, "sentence_starts": ss, "example_index": np.int64(i)}

    return tf.data.Dataset.from_generator(gen, output_signature=SIG)


def examples(chunks, example_spec, seed=0, epoch=0):
    ds = dataset(chunks).map(lambda c: build_example(c, example_spec, seed, epoch))
    return [{k: v.numpy() for k, v in ex.items()} for ex in ds]


def unmask(token_ids, labels):
    return np.where(labels >= 0, labels, token_ids)


def segments(ex):
    """(A, B) real-token ids (masking undone) of one unpadded example, checking the layout."""
    ids, seg = unmask(ex["token_ids"], ex["mlm_labels"]), ex["segment_ids"]
    n = int(ex["lengths"])
    assert len(ids) == n and ids[0] == CLS and ids[-1] == SEP
    first = int((seg == 0).sum())  # [CLS] A [SEP]
    assert (seg[:first] == 0).all() and (seg[first:] == 1).all()
    assert ids[first - 1] == SEP
    a, b = ids[1:first - 1], ids[first:-1]
    assert CLS not in ids[1:] and SEP not in a and SEP not in b
    return a, b


@pytest.fixture(scope="module")
def multi_sentence():
    rng = np.random.default_rng(11)
    return [make_chunk(rng, rng.integers(2, 12, size=int(rng.integers(2, 6)))) for _ in range(2000)]


def test_sop_pairs_split_at_a_sentence_start_and_swap_half(multi_sentence):
    built = examples(multi_sentence, spec())
    swapped = 0
    splits = set()
    for (ids, ws, ss), ex in zip(multi_sentence, built):
        a, b = segments(ex)
        label = int(ex["sop_labels"])
        assert label in (0, 1) and len(a) >= 1 and len(b) >= 1
        first, second = (b, a) if label else (a, b)
        np.testing.assert_array_equal(np.concatenate([first, second]), ids)
        assert ss[len(first)] == 1  # B starts at a sentence start
        splits.add((len(ss), len(first)))
        swapped += label
    assert abs(swapped / len(built) - 0.5) < 0.03, swapped
    assert len(splits) > 500  # the sentence start is drawn, not always the same one


def test_one_sentence_chunk_splits_at_the_word_start_nearest_the_middle():
    ids = np.arange(10_000, 10_010, dtype=np.int32)
    ws = np.array([1, 0, 0, 1, 0, 1, 0, 0, 1, 0], np.int8)  # words at 0, 3, 5, 8: 5 is the middle
    ss = np.array([1] + [0] * 9, np.int8)
    for ex in examples([(ids, ws, ss)] * 1, spec()):
        a, b = segments(ex)
        first = b if ex["sop_labels"] else a
        assert len(first) == 5
    no_words = np.array([1] + [0] * 8, np.int8)  # one 9-character word: cut in its middle
    for ex in examples([(ids[:9], no_words, no_words)], spec()):
        a, b = segments(ex)
        assert len(b if ex["sop_labels"] else a) == 4


def test_one_token_chunk_has_no_pair_and_is_counted():
    one = (np.array([10_000], np.int32), np.array([1], np.int8), np.array([1], np.int8))
    [ex] = examples([one], spec())
    np.testing.assert_array_equal(unmask(ex["token_ids"], ex["mlm_labels"]), [CLS, 10_000, SEP])
    np.testing.assert_array_equal(ex["segment_ids"], [0, 0, 0])
    assert ex["sop_labels"] == 0 and ex["lengths"] == 3 and ex["mlm_labels"][1] == 10_000
    rng = np.random.default_rng(0)
    [batch] = list(make_batches(dataset([one, make_chunk(rng, [4, 4]), one]), spec(), 0, 0, batch_size=4))
    counts = {k: int(v) for k, v in batch_counts(batch).items()}
    assert counts == {"examples": 3, "tokens": 3 + 11 + 3, "masked_tokens": counts["masked_tokens"],
                      "sop_pairs": 1, "sop_unpaired": 2}
    assert counts["masked_tokens"] == int((batch["mlm_labels"].numpy() >= 0).sum()) >= 3
    assert sop_rows(batch).numpy().tolist() == [False, True, False, False]  # the pair, not 1-token rows or padding


def test_without_sop_the_chunk_is_one_segment(multi_sentence):
    for (ids, _, _), ex in zip(multi_sentence[:50], examples(multi_sentence[:50], spec(sop=False))):
        assert "sop_labels" not in ex
        np.testing.assert_array_equal(unmask(ex["token_ids"], ex["mlm_labels"]), np.r_[CLS, ids, SEP])
        assert not ex["segment_ids"].any() and ex["lengths"] == len(ids) + 2


def test_specials_are_never_masked_in_pairs(multi_sentence):
    for ex in examples(multi_sentence[:300], spec(mask_prob=1.0)):
        special = np.isin(ex["token_ids"], [CLS, SEP]) & (ex["mlm_labels"] < 0)
        assert special.sum() == 3 and (ex["mlm_labels"] >= 0).sum() == ex["lengths"] - 3


def test_a_word_is_never_masked_across_the_sop_cut():
    """A one-word chunk cut in the middle becomes two units: B's start begins a new one."""
    ids = np.arange(10_000, 10_040, dtype=np.int32)
    ws = np.array([1] + [0] * 39, np.int8)
    rows = examples([(ids, ws, ws.copy())] * 1, spec(mask_prob=0.3))
    for ex in rows + examples([(ids, ws, ws.copy())], spec(mask_prob=0.3), seed=1):
        a_masked = (ex["mlm_labels"][ex["segment_ids"] == 0] >= 0).sum()
        b_masked = (ex["mlm_labels"][ex["segment_ids"] == 1] >= 0).sum()
        assert sorted([a_masked, b_masked]) == [0, 20]  # one half whole, the other untouched


def batches_of(chunks, example_spec, batch_size, **kw):
    out = make_batches(dataset(chunks), example_spec, kw.pop("seed", 0), kw.pop("epoch", 0), batch_size, **kw)
    return out, [{k: v.numpy() for k, v in b.items()} for b in out]


def test_batches_are_static_bucketed_and_use_every_example():
    rng = np.random.default_rng(5)
    chunks = [make_chunk(rng, [int(n)]) for n in rng.integers(1, 62, size=45)]  # up to max_seq_len - 3
    example_spec = spec(buckets=(16, 32, 64))
    ds, batches = batches_of(chunks, example_spec, batch_size=4)
    assert ds.element_spec["token_ids"].shape.as_list() == [4, None]
    assert ds.element_spec["lengths"].shape.as_list() == [4]
    seen = []
    for b in batches:
        width = b["token_ids"].shape[1]
        assert width in (16, 32, 64)
        assert all(v.shape[0] == 4 for v in b.values())
        assert all(b[k].shape == (4, width) for k in ("token_ids", "segment_ids", "mlm_labels"))
        real = b["lengths"] > 0
        longest = b["lengths"].max()
        assert longest <= width and (width == 16 or longest > width // 2)  # the smallest bucket that fits
        for row in np.flatnonzero(real):
            n = b["lengths"][row]
            ids = unmask(b["token_ids"][row], b["mlm_labels"][row])
            assert (ids[n:] == 0).all() and (b["mlm_labels"][row, n:] == -1).all()
            assert (b["segment_ids"][row, n:] == 0).all()
            seen.append(tuple(sorted(ids[:n][(ids[:n] != CLS) & (ids[:n] != SEP)])))
        for row in np.flatnonzero(~real):  # padding rows: empty
            assert not b["token_ids"][row].any() and not b["segment_ids"][row].any()
            assert (b["mlm_labels"][row] == -1).all() and b["sop_labels"][row] == 0
    assert sorted(seen) == sorted(tuple(sorted(c[0])) for c in chunks)
    assert sum((b["lengths"] == 0).sum() for b in batches) > 0  # partial batches were filled, not dropped


def test_partial_batch_padding_and_drop_remainder():
    rng = np.random.default_rng(6)
    chunks = [make_chunk(rng, [5, 5]) for _ in range(10)]  # one bucket: 2 full batches + 2 rows
    _, batches = batches_of(chunks, spec(), batch_size=4)
    assert [int((b["lengths"] > 0).sum()) for b in batches] == [4, 4, 2]
    assert batches[-1]["token_ids"].shape == (4, 32)
    _, kept = batches_of(chunks, spec(), batch_size=4, drop_remainder=True)
    assert len(kept) == 2


def test_batch_order_is_deterministic_and_resume_skips_exactly(multi_sentence):
    chunks = multi_sentence[:120]
    ds, first = batches_of(chunks, spec(max_seq_len=128), batch_size=8, seed=3, epoch=1)
    _, again = batches_of(chunks, spec(max_seq_len=128), batch_size=8, seed=3, epoch=1)
    resumed = [{k: v.numpy() for k, v in b.items()} for b in ds.skip(5)]
    assert len(first) == len(again) and len(resumed) == len(first) - 5
    for a, b in zip(first, again):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    for a, b in zip(first[5:], resumed):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    _, other_epoch = batches_of(chunks, spec(max_seq_len=128), batch_size=8, seed=3, epoch=2)
    assert not all(np.array_equal(a["mlm_labels"], b["mlm_labels"]) for a, b in zip(first, other_epoch))


def test_too_long_chunk_and_mismatched_fields_fail_clearly():
    rng = np.random.default_rng(8)
    long_chunk = make_chunk(rng, [62])  # 62 + 3 > 64
    with pytest.raises(tf.errors.InvalidArgumentError, match="chunk too long.*at most 61 tokens"):
        list(make_batches(dataset([long_chunk]), spec(), 0, 0, 2))
    ids, ws, ss = make_chunk(rng, [6])
    with pytest.raises(tf.errors.InvalidArgumentError, match="differ in length"):
        list(make_batches(dataset([(ids, ws[:4], ss)]), spec(), 0, 0, 2))
    fits = make_chunk(rng, [62])
    assert len(list(make_batches(dataset([fits]), spec(sop=False), 0, 0, 2))) == 1  # 62 + 2 fits without SOP


def test_example_graph_is_pure_tf_ops():
    """No py_function: the builder traces into a graph that tf.data runs in parallel without the GIL."""
    graph = tf.function(lambda c: build_example(c, spec(char_mask_share=0.3, max_predictions=9), 1, 2)) \
        .get_concrete_function(SIG).graph
    kinds = {op.type for op in graph.get_operations()}
    assert "StatelessRandomUniformV2" in kinds and not any("PyFunc" in k for k in kinds)


def test_make_batches_rejects_a_dataset_that_is_not_of_chunks():
    ds = tf.data.Dataset.from_tensor_slices({"token_ids": np.zeros((2, 3), np.int32)})
    with pytest.raises(ValueError, match="lacks field.*word_starts, sentence_starts, example_index"):
        make_batches(ds, spec(), 0, 0, 2)
    with pytest.raises(ValueError, match="must be an integer tensor of rank 1"):
        make_batches(tf.data.Dataset.from_tensor_slices(
            {"token_ids": np.zeros((2, 3), np.float32), "word_starts": np.zeros((2, 3), np.int8),
             "sentence_starts": np.zeros((2, 3), np.int8), "example_index": np.arange(2)}), spec(), 0, 0, 2)
    with pytest.raises(ValueError, match="batch_size"):
        make_batches(dataset([]), spec(), 0, 0, 0)


@pytest.mark.parametrize("change, message", [
    (dict(max_seq_len=3), "max_seq_len must be a whole number >= 4"),
    (dict(max_seq_len=64.0), "max_seq_len must be a whole number"),
    (dict(pad_id=5), "pad_id must be 0"),
    (dict(mask_id=CLS), "special ids must differ"),
    (dict(random_ids=(100, 200)), r"holds special id\(s\) .*cls_id"),
    (dict(random_ids=(300, 200)), "random_ids must be an id range"),
    (dict(random_ids=(106,)), "random_ids must be an id range"),
    (dict(mask_prob=0.0), r"mask_prob must be a number in \(0.0, 1.0\]"),
    (dict(mask_prob=1.5), "mask_prob must be a number"),
    (dict(mask_prob=float("nan")), "mask_prob must be a number"),
    (dict(replace_probs=(0.8, 0.1)), "replace_probs must be three probabilities"),
    (dict(replace_probs=(0.8, 0.1, 0.2)), "replace_probs must sum to 1"),
    (dict(replace_probs=(1.2, -0.1, -0.1)), r"replace_probs\[0\] must be a number"),
    (dict(char_mask_share=-0.1), "char_mask_share must be a number in"),
    (dict(whole_word="yes"), "whole_word must be true or false"),
    (dict(sop=1), "sop must be true or false"),
    (dict(buckets=(32, 16, 64)), "buckets must increase strictly and end at max_seq_len 64"),
    (dict(buckets=(16, 32)), "buckets must increase strictly and end at max_seq_len 64"),
    (dict(buckets=(2, 64)), r"buckets\[0\] must be a whole number >= 3"),
    (dict(max_predictions=0), "max_predictions must be a whole number >= 1"),
])
def test_bad_spec_fields_are_named(change, message):
    with pytest.raises(ValueError, match=f"ExampleSpec.*{message}"):
        spec(**change)


def test_spec_defaults():
    s = spec(max_seq_len=128)
    assert s.buckets == (32, 64, 128) and s.max_chunk_len == 125 and spec(sop=False).max_chunk_len == 62
    assert (s.mask_prob, s.replace_probs, s.whole_word, s.char_mask_share, s.max_predictions) == \
           (0.15, (0.8, 0.1, 0.1), True, 0.0, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.mask_prob = 0.2


def test_for_vocab_takes_specials_and_a_text_only_random_range(tmp_path):
    tokens = ["[PAD]"] + [f"[unused{i}]" for i in range(1, 6)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]", "<S>"] \
        + list("的一是了我不人在") + ["##的", "##一"] + list("abc")
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    s = ExampleSpec.for_vocab(Vocab.from_file(path), 32, sop=False)
    assert (s.pad_id, s.cls_id, s.sep_id, s.mask_id) == (0, 7, 8, 9)
    assert s.random_ids == (11, 19) and s.sop is False and s.max_seq_len == 32
    assert ExampleSpec.for_vocab(Vocab.from_file(path), 32, random_ids=(21, 24)).random_ids == (21, 24)
    no_mask = tmp_path / "nomask.txt"
    no_mask.write_text("\n".join(t for t in tokens if t != "[MASK]") + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"nomask.txt: the vocabulary has no \[MASK\] token"):
        ExampleSpec.for_vocab(Vocab.from_file(no_mask), 32)
    with pytest.raises(ValueError, match="x.txt: no run of ordinary"):
        random_id_range(["[PAD]", "[CLS]", "a", "[SEP]"], "x.txt")


def test_for_vocab_on_the_chinese_bert_vocab(vocab_path):
    s = ExampleSpec.for_vocab(Vocab.from_file(vocab_path), 128)
    assert s.mask_id == 103 and s.random_ids == (106, 8118)  # its 8,000 characters (and 12 words after them)
