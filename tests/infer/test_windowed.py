"""The windowed tagger: every character tagged from its window, with partial batches trimmed."""
import numpy as np
import pytest

from albert_ner.data.corpus import Sentence
from albert_ner.data.features import Featurizer
from albert_ner.data.pipeline import bucket_lengths, make_windows
from albert_ner.data.vocab import Vocab
from albert_ner.infer.windowed import WindowedTagger, inference_buckets, inference_rows

LABELS = ("O", "B-X", "I-X", "E-X", "S-X")
CHARS = "abcdefghij"


def make_tagger(batch_size, calls, max_seq_len=12):
    """A tagger whose runner tags each character by its id (id mod 5) and records batch shapes."""
    vocab = Vocab({t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *CHARS])})

    def runner(inputs, confidence):
        calls.append(inputs["token_ids"].shape)
        assert {k: v.shape[0] for k, v in inputs.items()} == {k: inputs["lengths"].shape[0] for k in inputs}
        tags = inputs["token_ids"][:, 1:-1] % len(LABELS)
        tags = np.where(np.arange(tags.shape[1]) < inputs["lengths"][:, None], tags, 0)
        return {"tags": tags, "confidence": np.full(tags.shape, 0.5)}

    return WindowedTagger(runner, Featurizer(vocab), LABELS, max_seq_len, batch_size)


@pytest.mark.parametrize("needed, rows", [(1, 16), (16, 16), (17, 32), (100, 128), (200, 256), (300, 256)])
def test_inference_rows_are_a_power_of_two_up_to_the_batch_size(needed, rows):
    assert inference_rows(needed, 256) == rows


def test_partial_batches_are_trimmed_and_every_character_is_tagged_from_its_id():
    rng = np.random.default_rng(0)
    texts = ["".join(rng.choice(list(CHARS), size=int(n))) for n in rng.integers(1, 40, size=70)]
    calls = []
    tagger = make_tagger(batch_size=64, calls=calls)
    predicted = tagger.predict_texts(texts)
    for text, tags in zip(texts, predicted):
        assert tags == [LABELS[(4 + CHARS.index(c)) % len(LABELS)] for c in text]
    rows = [shape[0] for shape in calls]
    assert all(r in (16, 32, 64) for r in rows), rows
    windows = make_windows([len(t) for t in texts], tagger.max_chars, tagger.overlap)
    assert len(windows) > len(texts)  # long texts were windowed
    assert sum(rows) < 64 * len(rows), "no batch was trimmed"
    assert sum(rows) >= len(windows)


def random_texts(rng, count, longest=40):
    return ["".join(rng.choice(list(CHARS), size=int(n))) for n in rng.integers(0, longest, size=count)]


def expected_tags(text):
    return [LABELS[(4 + CHARS.index(c)) % len(LABELS)] for c in text]


def test_a_stream_of_chunks_runs_full_batches_until_flushed_and_keeps_order():
    rng = np.random.default_rng(1)
    chunks = [random_texts(rng, 23) for _ in range(9)]
    calls = []
    tagger = make_tagger(batch_size=16, calls=calls)
    stream = tagger.stream(confidence=True)
    results = []
    for texts in chunks:
        generation = stream.add(tagger.featurizer.encode([Sentence(tuple(t), None, "t", 1) for t in texts]))
        full_so_far = len(calls)
        stream.flush(before=generation)
        assert all(shape[0] == 16 for shape in calls[:full_so_far])
        results += stream.ready()
        assert stream.pending() <= 2 * 23 + 1  # never more than about two chunks held
    stream.flush()
    results += stream.ready()
    assert stream.pending() == 0
    texts = [t for chunk in chunks for t in chunk]
    assert [tagger.readable(r, True)[0] for r in results] == [expected_tags(t) for t in texts]
    assert all(c == 0.5 for r in results for c in tagger.readable(r, True)[1])


def test_a_failing_window_marks_only_its_sentence_when_errors_are_recorded():
    calls = []
    tagger = make_tagger(batch_size=8, calls=calls)
    good = tagger.runner
    bad_id = tagger.featurizer.vocab.encode(("j",))[0]

    def runner(inputs, confidence):
        if (inputs["token_ids"] == bad_id).any():
            raise RuntimeError("cannot run this window")
        return good(inputs, confidence)

    tagger.runner = runner
    texts = ["abc", "aj", "bcd", "", "dd"]
    stream = tagger.stream(confidence=False, record_errors=True)
    stream.add(tagger.featurizer.encode([Sentence(tuple(t), None, "t", 1) for t in texts]))
    stream.flush()
    results = stream.ready()
    assert results[1] == "prediction failed: RuntimeError: cannot run this window"
    for i in (0, 2, 3, 4):
        assert tagger.readable(results[i], False)[0] == expected_tags(texts[i])
    with pytest.raises(RuntimeError):
        tagger.predict_texts(texts)  # without recording, the error surfaces


@pytest.mark.parametrize("max_seq_len, buckets", [(16, (16,)), (40, (32, 40)), (128, (32, 48, 64, 96, 128)),
                                                  (512, (32, 48, 64, 96, 128, 192, 256, 384, 512))])
def test_inference_buckets_add_midpoints_to_the_training_buckets(max_seq_len, buckets):
    assert inference_buckets(max_seq_len) == buckets
    assert set(bucket_lengths(max_seq_len)) <= set(buckets)
