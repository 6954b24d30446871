"""Benchmark: albert_ner.data.posseg against jieba.posseg on whole corpora: equal output, and speed.

Not a test (tests/data/test_posseg.py checks a slice and generated strings). Prints one Markdown
row per file: sentences, characters, sentences whose (word, tag) lists differ, chars/s of each.

    python bench/posseg_check.py ../shared/data/msra/train.txt ../shared/data/msra/test.txt
"""
from __future__ import annotations

import argparse
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+", help="corpus files (char<TAB>tag)")
    args = ap.parse_args()

    import jieba.posseg

    from albert_ner.data import posseg
    from albert_ner.data.corpus import read_corpus

    list(posseg.cut("预热"))  # load jieba's dictionary and tables before timing
    print("| file | sentences | chars | differing sentences | jieba.posseg chars/s | albert_ner posseg chars/s |")
    print("|---|---|---|---|---|---|")
    differing_total = 0
    for path in args.files:
        texts = [s.text for s in read_corpus(path)[0]]
        chars = sum(len(t) for t in texts)
        started = time.time()
        expected = [[(p.word, p.flag) for p in jieba.posseg.cut(t)] for t in texts]
        jieba_seconds = time.time() - started
        started = time.time()
        got = [list(posseg.cut(t)) for t in texts]
        ours_seconds = time.time() - started
        differing = sum(1 for a, b in zip(expected, got) if a != b)
        differing_total += differing
        print(f"| {path} | {len(texts):,} | {chars:,} | {differing} | {chars / jieba_seconds:,.0f} | "
              f"{chars / ours_seconds:,.0f} |")
    return 1 if differing_total else 0


if __name__ == "__main__":
    raise SystemExit(main())
