"""Small training corpora cut from MSRA for end-to-end tests."""
from pathlib import Path

import pytest


def write_slice(src: Path, dest: Path, n: int, with_entities: bool = True, max_chars: int = 0) -> Path:
    """The first n sentences of src (optionally only ones with an entity, or of at most max_chars characters), as a
    BIO file. Sentences of up to 30 characters all fit the smallest bucket (32 tokens): one batch shape, one trace
    of each step function, and short recurrent loops, where a test is not about lengths."""
    blocks, current = [], []
    with open(src, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                current.append(line)
            elif current:
                if (not with_entities or any("\tB-" in l for l in current)) and (
                        not max_chars or len(current) <= max_chars):
                    blocks.append(current)
                current = []
                if len(blocks) == n:
                    break
    dest.write_text("\n".join("".join(b) for b in blocks), encoding="utf-8")
    return dest


@pytest.fixture
def msra_slice(msra_dir, tmp_path):
    def make(n: int, name: str = "slice.txt", split: str = "train.txt", with_entities: bool = True,
             max_chars: int = 0) -> Path:
        return write_slice(msra_dir / split, tmp_path / name, n, with_entities, max_chars)
    return make
