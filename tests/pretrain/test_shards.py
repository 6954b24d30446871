"""Shard files and the tf.data reader: round trip, checks naming file and member, deterministic streaming order."""
import json

import numpy as np
import pytest

from albert_ner.pretrain import shards
from albert_ner.pretrain.shards import count_examples, load_shard, read_examples, write_shard


def _chunk(rng, n):
    ws = rng.integers(0, 2, n).astype(np.int8)
    ss = np.zeros(n, np.int8)
    ws[0] = ss[0] = 1
    return rng.integers(1, 500, n).astype(np.int32), ws, ss


def make_folder(folder, sizes, heldout=(3,)):
    """A manifest folder whose train split has shards of `sizes` chunks; returns {example_index: token_ids}."""
    rng = np.random.default_rng(0)
    truth, splits = {}, {}
    for split, counts in (("train", sizes), ("heldout", heldout)):
        first, listed = 0, []
        for k, count in enumerate(counts):
            chunks = [_chunk(rng, int(rng.integers(1, 20))) for _ in range(count)]
            info = write_shard(folder / f"{split}-{k:05d}.npz", *zip(*chunks) if chunks else ([], [], []))
            listed.append(dict(info, first_index=first))
            if split == "train":
                truth.update({first + i: c for i, c in enumerate(chunks)})
            first += count
        splits[split] = {"examples": first, "tokens": sum(s["tokens"] for s in listed), "shards": listed}
    (folder / shards.MANIFEST).write_text(json.dumps({"format": shards.FORMAT, "format_version": shards.FORMAT_VERSION,
                                                      "splits": splits}), encoding="utf-8")
    return truth


def order(ds):
    return [int(e["example_index"]) for e in ds.as_numpy_iterator()]


def test_a_shard_round_trips_and_every_example_is_read_once_with_its_own_arrays(tmp_path):
    truth = make_folder(tmp_path, [5, 0, 7, 4, 9])
    arrays = load_shard(tmp_path / "train-00002.npz")
    assert arrays["offsets"].tolist()[0] == 0 and len(arrays["offsets"]) == 8
    assert count_examples(tmp_path) == 25 and count_examples(tmp_path, "heldout") == 3
    ds = read_examples(tmp_path, shuffle_buffer=6, seed=3, epoch=0)
    spec = ds.element_spec
    assert {k: (v.dtype.name, v.shape.as_list()) for k, v in spec.items()} == {
        "token_ids": ("int32", [None]), "word_starts": ("int8", [None]), "sentence_starts": ("int8", [None]),
        "example_index": ("int64", [])}
    seen = []
    for ex in ds.as_numpy_iterator():
        tok, ws, ss = truth[int(ex["example_index"])]
        assert ex["token_ids"].tolist() == tok.tolist() and ex["word_starts"].tolist() == ws.tolist()
        assert ex["sentence_starts"].tolist() == ss.tolist()
        seen.append(int(ex["example_index"]))
    assert sorted(seen) == list(range(25))


def test_the_order_is_fixed_by_seed_and_epoch_and_skip_resumes_it(tmp_path):
    make_folder(tmp_path, [6, 8, 5, 7])
    first = order(read_examples(tmp_path, shuffle_buffer=5, seed=1, epoch=0))
    assert first == order(read_examples(tmp_path, shuffle_buffer=5, seed=1, epoch=0))
    assert first != sorted(first)
    assert order(read_examples(tmp_path, shuffle_buffer=5, seed=1, epoch=1)) != first
    assert order(read_examples(tmp_path, shuffle_buffer=5, seed=2, epoch=0)) != first
    assert order(read_examples(tmp_path, shuffle_buffer=5, seed=1, epoch=0).skip(11)) == first[11:]
    assert order(read_examples(tmp_path, shuffle_buffer=0)) == list(range(26))  # stored order
    assert order(read_examples(tmp_path, "heldout", shuffle_buffer=0)) == [0, 1, 2]


def test_the_reader_streams_loading_only_the_shards_it_interleaves(tmp_path, monkeypatch):
    make_folder(tmp_path, [4] * 12)
    loaded = []
    real = shards.load_shard
    monkeypatch.setattr(shards, "load_shard", lambda path: loaded.append(path) or real(path))
    ds = read_examples(tmp_path, shuffle_buffer=2, seed=0, cycle_length=2)
    next(iter(ds))
    assert 2 <= len(set(loaded)) <= 6  # blocks of two shards: the one read and at most two loading ahead


def test_bad_shards_and_manifests_are_errors_naming_the_file(tmp_path):
    make_folder(tmp_path, [3])
    np.savez(tmp_path / "odd.npz", token_ids=np.zeros(3, np.int64), word_starts=np.zeros(3, np.int8),
             sentence_starts=np.zeros(3, np.int8), offsets=np.array([0, 3]))
    with pytest.raises(ValueError, match="odd.npz: member token_ids is int64"):
        load_shard(tmp_path / "odd.npz")
    np.savez(tmp_path / "short.npz", token_ids=np.zeros(3, np.int32), word_starts=np.zeros(2, np.int8),
             sentence_starts=np.zeros(3, np.int8), offsets=np.array([0, 3]))
    with pytest.raises(ValueError, match="short.npz: member word_starts has 2 entries"):
        load_shard(tmp_path / "short.npz")
    np.savez(tmp_path / "partial.npz", token_ids=np.zeros(3, np.int32))
    with pytest.raises(ValueError, match="partial.npz: not a pretraining shard"):
        load_shard(tmp_path / "partial.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="junk.npz: cannot be read as a pretraining shard"):
        load_shard(tmp_path / "junk.npz")
    with pytest.raises(ValueError, match="no split 'dev'"):
        count_examples(tmp_path, "dev")
    (tmp_path / "train-00000.npz").unlink()
    with pytest.raises(FileNotFoundError, match="train-00000.npz: shard listed in .*manifest.json is missing"):
        read_examples(tmp_path)
    with pytest.raises(FileNotFoundError, match="no manifest"):
        count_examples(tmp_path / "elsewhere")
    (tmp_path / "manifest.json").write_text('{"format": "other"}', encoding="utf-8")
    with pytest.raises(ValueError, match="manifest.json: not a pretraining shard manifest"):
        count_examples(tmp_path)
