"""Whole-word masking: whole words together, ~15% coverage, 80/10/10, specials untouched, reproducible."""
import numpy as np
import pytest
import tensorflow as tf

from albert_ner.pretrain.examples import ExampleSpec, build_example, example_key
from albert_ner.pretrain.masking import mask_chunk, mask_target

CLS, SEP, MASK = 101, 102, 103
RANDOM_IDS = (106, 8118)
ORIGINAL = (10_000, 11_000)  # chunk ids lie outside RANDOM_IDS, so a random replacement is recognisable
WORD_LENGTHS, WORD_P = (1, 2, 3, 4), (0.35, 0.45, 0.12, 0.08)  # roughly jieba's on news text


def spec(**options) -> ExampleSpec:
    fields = dict(max_seq_len=256, cls_id=CLS, sep_id=SEP, mask_id=MASK, random_ids=RANDOM_IDS, sop=False)
    fields.update(options)
    return ExampleSpec(**fields)


def random_chunk(rng: np.random.Generator, length: int):
    """(token_ids, word_starts, sentence_starts) of `length` tokens made of random words."""
    starts = []
    while len(starts) < length:
        n = int(rng.choice(WORD_LENGTHS, p=WORD_P))
        starts += [1] + [0] * (n - 1)
    word_starts = np.array(starts[:length], np.int8)
    sentence_starts = np.zeros(length, np.int8)
    sentence_starts[0] = 1
    return rng.integers(*ORIGINAL, size=length).astype(np.int32), word_starts, sentence_starts


def chunks_dataset(chunks, indices=None) -> tf.data.Dataset:
    indices = range(len(chunks)) if indices is None else indices

    def gen():
        for i, (ids, ws, ss) in zip(indices, chunks):
            yield {"token_ids": ids, "word_starts": ws, "sentence_starts": ss, "example_index": np.int64(i)}

    sig = {"token_ids": tf.TensorSpec([None], tf.int32), "word_starts": tf.TensorSpec([None], tf.int8),
           "sentence_starts": tf.TensorSpec([None], tf.int8), "example_index": tf.TensorSpec([], tf.int64)}
    return tf.data.Dataset.from_generator(gen, output_signature=sig)


def built(chunks, example_spec, seed=0, epoch=0, indices=None):
    """build_example over a dataset (graph mode, as in training): numpy dicts, in order."""
    ds = chunks_dataset(chunks, indices).map(lambda c: build_example(c, example_spec, seed, epoch))
    return [{k: v.numpy() for k, v in ex.items()} for ex in ds]


def words_of(word_starts):
    """[start, end) of every word."""
    starts = list(np.flatnonzero(word_starts)) + [len(word_starts)]
    return list(zip(starts[:-1], starts[1:]))


@pytest.fixture(scope="module")
def corpus():
    rng = np.random.default_rng(7)
    return [random_chunk(rng, int(rng.integers(60, 200))) for _ in range(1500)]


@pytest.fixture(scope="module")
def masked(corpus):
    return built(corpus, spec())


def test_mask_target_rounds_and_masks_at_least_one():
    got = [int(mask_target(n, 0.15)) for n in (0, 1, 3, 10, 100, 103, 126)]
    assert got == [1, 1, 1, 2, 15, 15, 19]


def test_whole_words_are_masked_together(corpus, masked):
    partial = whole = 0
    for (ids, ws, _), ex in zip(corpus, masked):
        chosen = ex["mlm_labels"][1:-1] >= 0
        for a, b in words_of(ws):
            n = chosen[a:b].sum()
            partial += 0 < n < b - a
            whole += n == b - a
    assert partial == 0
    assert whole > 1500 * 10


def test_about_mask_prob_of_tokens_are_masked(corpus, masked):
    counts = np.array([(ex["mlm_labels"] >= 0).sum() for ex in masked])
    lengths = np.array([len(c[0]) for c in corpus])
    share = counts.sum() / lengths.sum()
    assert abs(share - 0.15) < 0.004, share
    # Per chunk the covered count is the closest a prefix of words gets: within half a long word.
    targets = np.floor(lengths * 0.15 + 0.5)
    assert np.abs(counts - targets).max() <= 2
    # Ties between a count below and one above the target go either way: no bias in the share.
    assert 0.75 < np.mean(counts > targets) / np.mean(counts < targets) < 1.33


def test_replacements_split_80_10_10_per_token(corpus, masked):
    kinds = np.zeros(3)
    for (ids, _, _), ex in zip(corpus, masked):
        chosen = ex["mlm_labels"][1:-1] >= 0
        inputs = ex["token_ids"][1:-1][chosen]
        random = (inputs >= RANDOM_IDS[0]) & (inputs < RANDOM_IDS[1])
        kinds += [(inputs == MASK).sum(), random.sum(), (inputs == ids[chosen]).sum()]
        assert (inputs == MASK).sum() + random.sum() + (inputs == ids[chosen]).sum() == chosen.sum()
    share = kinds / kinds.sum()
    assert kinds.sum() > 15_000
    assert abs(share[0] - 0.8) < 0.012 and abs(share[1] - 0.1) < 0.008 and abs(share[2] - 0.1) < 0.008, share


def test_labels_hold_originals_and_unmasked_tokens_are_untouched(corpus, masked):
    for (ids, _, _), ex in zip(corpus, masked):
        labels, inputs = ex["mlm_labels"], ex["token_ids"]
        assert inputs[0] == CLS and inputs[-1] == SEP and labels[0] == -1 and labels[-1] == -1
        chosen = labels[1:-1] >= 0
        np.testing.assert_array_equal(labels[1:-1][chosen], ids[chosen])
        np.testing.assert_array_equal(inputs[1:-1][~chosen], ids[~chosen])
        assert set(np.unique(labels[1:-1][~chosen])) <= {-1}


def test_specials_never_masked_even_when_everything_else_is():
    rng = np.random.default_rng(1)
    chunks = [random_chunk(rng, n) for n in (1, 2, 3, 5, 8)]
    for ex in built(chunks, spec(mask_prob=1.0, replace_probs=(0.0, 1.0, 0.0))):
        assert ex["token_ids"][0] == CLS and ex["token_ids"][-1] == SEP
        assert ex["mlm_labels"][0] == -1 and ex["mlm_labels"][-1] == -1
        assert (ex["mlm_labels"][1:-1] >= 0).all()  # every real token predicted...
        replaced = ex["token_ids"][1:-1]  # ... and replaced from the range, never by a special
        assert ((replaced >= RANDOM_IDS[0]) & (replaced < RANDOM_IDS[1])).all()


def test_every_non_empty_chunk_gets_a_masked_token():
    rng = np.random.default_rng(2)
    chunks = [random_chunk(rng, n) for n in [1, 1, 2, 2, 3, 4, 5, 6] * 20]
    for ex in built(chunks, spec()):
        assert (ex["mlm_labels"] >= 0).sum() >= 1


def test_a_chunk_that_is_one_long_word_is_masked_whole():
    ids = np.arange(10_000, 10_012, dtype=np.int32)
    ws = np.zeros(12, np.int8)
    ws[0] = 1
    [ex] = built([(ids, ws, ws.copy())], spec())
    assert (ex["mlm_labels"][1:-1] >= 0).all()


def test_max_predictions_caps_masked_tokens():
    rng = np.random.default_rng(3)
    chunks = [random_chunk(rng, 200) for _ in range(40)]
    counts = [(ex["mlm_labels"] >= 0).sum() for ex in built(chunks, spec(mask_prob=0.5, max_predictions=20))]
    assert max(counts) == 20 and min(counts) >= 17  # closest prefix within the cap, never above it
    long_word = (np.arange(10_000, 10_006, dtype=np.int32), np.array([1, 0, 0, 0, 0, 0], np.int8),
                 np.array([1, 0, 0, 0, 0, 0], np.int8))
    [ex] = built([long_word], spec(max_predictions=2))
    np.testing.assert_array_equal(ex["mlm_labels"][1:-1] >= 0, [1, 1, 0, 0, 0, 0])


def _word_completeness(chunks, examples, word_len):
    """Of the words of `word_len` tokens with any token masked: the share masked whole."""
    whole = touched = 0
    for (_, ws, _), ex in zip(chunks, examples):
        chosen = ex["mlm_labels"][1:-1] >= 0
        for a, b in words_of(ws):
            if b - a == word_len and chosen[a:b].any():
                touched += 1
                whole += chosen[a:b].all()
    return whole / touched


def test_char_mask_share_mixes_character_level_units(corpus, masked):
    subset = corpus[:600]
    shares = {0.0: _word_completeness(subset, masked[:600], 2)}
    for share in (0.5, 1.0):
        shares[share] = _word_completeness(subset, built(subset, spec(char_mask_share=share)), 2)
    plain = _word_completeness(subset, built(subset, spec(whole_word=False)), 2)
    assert shares[0.0] == 1.0
    # Character level: a 2-character word with one token masked has its other masked with ~15% odds.
    assert shares[1.0] < 0.3 and plain < 0.3 and abs(shares[1.0] - plain) < 0.08
    # Half the words whole (touched with odds ~0.15, then masked whole), half per character (touched with
    # odds ~1 - 0.85^2, whole ~7% of those): about 0.35 + 0.65 * 0.07 = 0.40 of touched words are whole.
    assert 0.32 < shares[0.5] < 0.48, shares


def test_char_mask_share_keeps_coverage(corpus):
    examples = built(corpus[:600], spec(char_mask_share=0.5))
    share = sum((ex["mlm_labels"] >= 0).sum() for ex in examples) / sum(len(c[0]) for c in corpus[:600])
    assert abs(share - 0.15) < 0.005


def test_masks_are_reproducible_and_change_with_epoch_and_seed(corpus):
    chunks = corpus[:50]
    first = built(chunks, spec(), seed=5, epoch=3)
    again = built(chunks, spec(), seed=5, epoch=3)
    next_epoch = built(chunks, spec(), seed=5, epoch=4)
    other_seed = built(chunks, spec(), seed=6, epoch=3)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a["token_ids"], b["token_ids"])
        np.testing.assert_array_equal(a["mlm_labels"], b["mlm_labels"])
    same_epoch = [np.array_equal(a["mlm_labels"], b["mlm_labels"]) for a, b in zip(first, next_epoch)]
    same_seed = [np.array_equal(a["mlm_labels"], b["mlm_labels"]) for a, b in zip(first, other_seed)]
    assert sum(same_epoch) <= 2 and sum(same_seed) <= 2


def test_masks_depend_on_example_index_not_position(corpus):
    """A resumed or reshuffled stream gives each chunk the masks it has under its index anywhere."""
    chunks = corpus[:30]
    forward = built(chunks, spec(), seed=1, epoch=0, indices=range(100, 130))
    order = list(reversed(range(30)))
    backward = built([chunks[i] for i in order], spec(), seed=1, epoch=0, indices=[100 + i for i in order])
    for pos, i in enumerate(order):
        np.testing.assert_array_equal(backward[pos]["mlm_labels"], forward[i]["mlm_labels"])
        np.testing.assert_array_equal(backward[pos]["token_ids"], forward[i]["token_ids"])


def test_mask_chunk_eager_matches_graph(corpus):
    ids, ws, _ = corpus[0]
    key = example_key(9, 2, tf.constant(4, tf.int64))
    eager = mask_chunk(tf.constant(ids), tf.constant(ws), key, spec())
    graph = tf.function(lambda: mask_chunk(tf.constant(ids), tf.constant(ws), key, spec()))()
    for a, b in zip(eager, graph):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
