"""bench/wwm_stats.py on a 3-line corpus whose jieba words are known: its counts match a hand count, whole-word
masking never masks part of a word, char-level masking hits the per-chunk target exactly, and the example
layout (sentence-order swap included) is undone correctly."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "wwm_stats.py"
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# One document per line, one sentence each, as jieba 0.42 cuts them (HMM on).
WORDS = [["我们", "今天", "去", "北京", "。"],
         ["中国人民银行", "发布", "新", "政策", "。"],
         ["这家", "酒店", "服务", "很", "好", "，", "房间", "干净", "。"]]
LINES = ["".join(w) for w in WORDS]
TOKENS = sum(len(line) for line in LINES)  # 8 + 12 + 14 = 34
IN_MULTI = sum(len(w) for ws in WORDS for w in ws if len(w) > 1)  # 6 + 10 + 10 = 26
TARGETS = [max(int(np.floor(0.15 * len(line) + 0.5)), 1) for line in LINES]  # 1, 2, 2


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("wwm_stats")
    chars = sorted({c for line in LINES for c in line})
    (root / "vocab.txt").write_text("\n".join(SPECIALS + chars) + "\n", encoding="utf-8")
    (root / "corpus.txt").write_text("\n".join(LINES) + "\n\n", encoding="utf-8")  # + one blank line
    return root


def run(files, *args):
    out = files / f"stats_{len(list(files.glob('stats_*')))}.json"
    cmd = [sys.executable, str(SCRIPT), "--corpus", files / "corpus.txt", "--vocab-file", files / "vocab.txt",
           "--workers", 1, "--json-out", out, *args]
    proc = subprocess.run([str(a) for a in cmd], cwd=files, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(out.read_text(encoding="utf-8")), proc.stdout


def check_sums(report):
    c, st = report["stats"]["counts"], report["stats"]
    assert c["tokens"] == TOKENS and c["chunks"] == 3 and report["corpus"]["blank_documents"] == 1
    assert c["words"] == sum(len(ws) for ws in WORDS)
    assert c["multi_char_words"] == sum(len(w) > 1 for ws in WORDS for w in ws)
    assert c["tokens_in_multi_char_words"] == IN_MULTI
    assert st["tokens_in_multi_char_words_share"] == pytest.approx(IN_MULTI / TOKENS)
    assert 3 <= c["masked_tokens"] <= TOKENS and c["target_tokens"] == sum(TARGETS)
    assert c["spans"] == c["spans_whole_multi_char_word"] + c["spans_single_char_word"] + c["spans_part_of_word"]
    assert sum(int(k) * v for k, v in st["span_lengths"].items() if k.isdigit()) == c["masked_tokens"]
    assert sum(st["span_lengths"].values()) == c["spans"]
    assert c["replaced_mask"] + c["replaced_random"] + c["replaced_kept"] == c["masked_tokens"]
    assert st["masked_share"] == pytest.approx(c["masked_tokens"] / TOKENS)
    return c


def test_whole_word_masking_masks_whole_words_only(files):
    report, stdout = run(files)
    c = check_sums(report)
    assert c["spans_part_of_word"] == 0 and c["words_masked_in_part"] == 0
    assert c["words_masked_whole"] == c["spans"] >= 3  # at least one unit in each chunk
    assert report["settings"]["whole_word"] is True and report["settings"]["sop"] is False
    assert "| 4 lines (all) | whole word | 3 | 34 |" in stdout  # the blank line is read, and counted


def test_char_level_units_hit_the_target_exactly(files):
    report, _ = run(files, "--char-mask-share", "1.0", "--sop", "on")
    c = check_sums(report)
    assert c["masked_tokens"] == sum(TARGETS)  # every unit is one character: the target is reachable
    assert report["settings"]["char_mask_share"] == 1.0 and report["settings"]["sop"] is True


@pytest.fixture(scope="module")
def wwm_stats():
    spec = importlib.util.spec_from_file_location("wwm_stats_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("sop", [False, True])
def test_example_rows_map_back_to_their_chunks(wwm_stats, sop):
    """Whatever build_example does (pairs, swaps, masks), the positions recover each chunk token for token."""
    import tensorflow as tf

    from albert_ner.pretrain.examples import ExampleSpec, build_example

    spec = ExampleSpec(max_seq_len=16, cls_id=2, sep_id=3, mask_id=4, random_ids=(5, 40), sop=sop, mask_prob=0.3)
    rng = np.random.default_rng(0)
    chunks = [rng.integers(5, 40, n).astype(np.int32) for n in (1, 2, 5, 9, 13) for _ in range(4)]
    rows, swaps = [], 0
    for i, tokens in enumerate(chunks):
        n = len(tokens)
        chunk = {"token_ids": tf.constant(tokens), "word_starts": tf.constant(rng.integers(0, 2, n).astype(np.int8)),
                 "sentence_starts": tf.constant(np.eye(1, n, dtype=np.int8)[0]),
                 "example_index": tf.constant(i, tf.int64)}
        ex = {k: v.numpy() for k, v in build_example(chunk, spec, seed=7, epoch=0).items()}
        swaps += int(ex.get("sop_labels", 0))
        rows.append(ex)
    width = 16
    batch = {k: np.stack([np.pad(r[k], (0, width - len(r[k]))) for r in rows])
             for k in ("token_ids", "segment_ids", "mlm_labels")}
    batch.update(lengths=np.array([r["lengths"] for r in rows]), chunk_len=np.array([len(t) for t in chunks]),
                 chunk_tokens=np.stack([np.pad(t, (0, width - len(t))) for t in chunks]))
    if sop:
        batch["sop_labels"] = np.array([r["sop_labels"] for r in rows])
        assert 0 < swaps < len(rows)  # both orders occur
    where = wwm_stats.chunk_positions(batch, sop)
    for r, tokens in enumerate(chunks):
        pos = where[r, :len(tokens)]
        labels, inputs = batch["mlm_labels"][r, pos], batch["token_ids"][r, pos]
        assert np.array_equal(np.where(labels >= 0, labels, inputs), tokens), r
        assert not np.isin(pos, [0, int(rows[r]["lengths"]) - 1]).any()  # never [CLS] or the last [SEP]


def test_spans_are_cut_at_word_starts_and_counted_by_hand(wwm_stats):
    """Two chunks end to end: 我们|今天|去|北京|。 and 中国人民银行|发布|。 with hand-picked masks."""
    words = [["我们", "今天", "去", "北京", "。"], ["中国人民银行", "发布", "。"]]
    # 我们今天 (two whole words, adjacent), 北 (part); 国人 (part), 。 (one char)
    masks = ["11110010", "011000001"]
    starts = [int(i == 0) for ws in words for w in ws for i in range(len(w))]
    n = len(starts)
    tokens = np.arange(10, 10 + n)
    masked = np.array([c == "1" for m in masks for c in m])
    inputs = np.where(masked, 4, tokens)
    inputs[0] = tokens[0]  # one masked token kept as it was
    first = np.zeros(n, bool)
    first[[0, 8]] = True
    tally = wwm_stats.Tally()
    tally.add(tokens, np.array(starts), inputs, masked, first, 3, mask_id=4)
    c = tally.report()["counts"]
    assert c["chunks"] == 2 and c["tokens"] == 17 and c["words"] == 8 and c["multi_char_words"] == 5
    assert c["tokens_in_multi_char_words"] == 14 and c["masked_tokens"] == 8
    assert c["masked_tokens_in_multi_char_words"] == 7
    assert c["spans"] == 5  # 我们, 今天, 北, 国人, 。
    assert (c["spans_whole_multi_char_word"], c["spans_single_char_word"], c["spans_part_of_word"]) == (2, 1, 2)
    assert (c["words_masked_whole"], c["words_masked_in_part"]) == (3, 2)
    assert (c["replaced_mask"], c["replaced_kept"], c["replaced_random"]) == (7, 1, 0)
    assert tally.report()["span_lengths"]["1"] == 2 and tally.report()["span_lengths"]["2"] == 3
